"""The tasks: one image through one pipeline, from files to a result folder.

The one Python API that the command line (``calcinosis measure|hand|spine``), the cohort
batch (one manifest row = one task) and scripts call:

* ``measure`` - lesions of one image by threshold or from a segmentation (:mod:`.measure`);
* ``hand``    - hand calcinosis on a radiograph, CT or MRI (:mod:`.hand`);
* ``spine``   - spine CT calcifications on levels and segments (:mod:`.spine`).

Each task module has ``HELP`` and ``DESCRIPTION`` (one line, one paragraph),
``SUMMARY_FILE`` (the file that proves the task ran), ``add_arguments(parser)`` (its options,
with their units and defaults), ``run(args, progress=None) -> TaskOutcome`` (compute and
write the result folder all at once; warnings are returned, never printed) and
``summarise(case_dir, case_id) -> dict`` (what the cohort joins from a result folder,
checked against the columns the task promises: the table contract).  Task modules are
imported only when asked for, so that naming a task costs nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Sequence

from calcinosis.core.errors import InputError

from .arguments import TaskArgumentParser

TASKS = ("measure", "hand", "spine")


@dataclass
class TaskOutcome:
    """What a task did: the warnings to show and a few lines summing up its result."""
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class ContractError(InputError):
    """A result folder whose summary files break the table contract."""


def read_summary_table(path, columns, what: str, added: Sequence[str] = ()):
    """A summary file of a result folder, checked to hold the contract's ``columns``.
    ``added``: columns later versions added - a result written before them is read with
    them empty (not known), in their contract place."""
    from calcinosis.core.tables import Column, Table

    if not path.is_file():
        raise ContractError(f"{what}: {path.name} missing")
    table = Table.read_csv(path)
    missing = [c for c in columns if not table.has_column(c)]
    for c in [c for c in missing if c in added]:
        k = list(columns).index(c)
        before = next((p for p in reversed(list(columns)[:k]) if table.has_column(p)), None)
        table.add_column(Column(c, "int"), [None] * len(table), after=before)
    missing = [c for c in missing if c not in added]
    if missing:
        raise ContractError(f"{what}: {path.name} lacks contract column {missing[0]!r}")
    return table


def redact_inputs(texts: list[str], args, roles) -> list[str]:
    """``texts`` with the task's input paths (``args.<role>``) replaced by ``<role>``, unless
    the user asked for paths (``--record-paths``): names in file names stay out of outputs."""
    if getattr(args, "record_paths", False):
        return list(texts)
    from calcinosis.core.provenance import redact_paths
    return redact_paths(list(texts), {role: getattr(args, role, None) for role in roles})


def redact_warnings(result, args, roles) -> None:
    """A task's result warnings, before they are written: no input path or file name in
    them (unless ``--record-paths``)."""
    result.warnings[:] = redact_inputs(result.warnings, args, roles)


def get(name: str) -> ModuleType:
    """The module of task ``name`` (``measure``, ``hand`` or ``spine``)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return importlib.import_module(f"{__name__}.{name}")


def parser_for(name: str, prog: str | None = None) -> TaskArgumentParser:
    """The options of task ``name`` as a parser that raises ``InputError`` on a bad option."""
    task = get(name)
    parser = TaskArgumentParser(prog=prog or f"calcinosis {name}", description=task.DESCRIPTION)
    task.add_arguments(parser)
    return parser


def option_strings(name: str) -> set[str]:
    """Every option string task ``name`` accepts (``--threshold``, ``-o`` ...)."""
    return set(parser_for(name)._option_string_actions)  # noqa: SLF001 - our own parser


def summary_file(name: str) -> str:
    return get(name).SUMMARY_FILE
