"""The tasks: one image through one pipeline, from files to a result folder.

The one Python API that the command line (``calcinosis measure|hand|spine``), the cohort
batch (one manifest row = one task) and scripts call:

* ``measure`` - lesions of one image by threshold or from a segmentation (:mod:`.measure`);
* ``hand``    - hand calcinosis on a radiograph, CT or MRI (:mod:`.hand`);
* ``spine``   - spine CT calcifications on levels and segments (:mod:`.spine`).

Each task module has ``HELP`` and ``DESCRIPTION`` (one line, one paragraph),
``SUMMARY_FILE`` (the file the cohort joins), ``add_arguments(parser)`` (its options, with
their units and defaults) and ``run(args, progress=None) -> TaskOutcome`` (compute and write
the result folder all at once; warnings are returned, never printed).  Task modules are
imported only when asked for, so that naming a task costs nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

from .arguments import TaskArgumentParser

TASKS = ("measure", "hand", "spine")


@dataclass
class TaskOutcome:
    """What a task did: the warnings to show and a few lines summing up its result."""
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


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
