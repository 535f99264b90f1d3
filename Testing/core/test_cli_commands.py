"""The command line's explicit command list, its fast start, and error messages that name
only options that exist.

The start-up check is not timed (tests never time): it asserts which modules a process
imports, which is what makes ``calcinosis --help`` fast or slow.  The times themselves are
in ``docs/benchmarks.md`` (``make bench``).
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from calcinosis import tasks
from calcinosis.cli import main as cli_main
from calcinosis.hand import params as hand_params
from calcinosis.spine import params as spine_params

PACKAGE = Path(cli_main.__file__).resolve().parents[1]


_subparsers = cli_main.subparsers
_all_parsers = cli_main.walk_parsers


def all_option_strings() -> set[str]:
    out = set()
    for _, p in _all_parsers(cli_main.build_parser(full=True)):
        out |= set(p._option_string_actions)  # noqa: SLF001
    return out


def test_the_command_list_matches_what_the_modules_register():
    full = dict(_subparsers(cli_main.build_parser(full=True)))
    assert list(full) == list(cli_main.COMMANDS)
    top = cli_main.build_parser(full=True)
    helps = {a.dest: a.help for sub in top._actions if isinstance(sub, argparse._SubParsersAction)  # noqa: SLF001
             for a in sub._choices_actions}  # noqa: SLF001
    assert helps == {name: help_line for name, (_, help_line) in cli_main.COMMANDS.items()}


def test_every_help_page_formats():
    """Every command's and sub-command's --help renders (a bare % in a help text breaks it)."""
    pages = 0
    for path, parser in _all_parsers(cli_main.build_parser(full=True)):
        assert parser.format_help(), path
        pages += 1
    assert pages > len(cli_main.COMMANDS)


@pytest.mark.parametrize("argv", [["--help"], ["measure", "--help"], ["hand", "--help"], ["spine", "--help"]])
def test_help_starts_without_numpy(argv):
    code = ("import sys\nfrom calcinosis.cli.main import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('numpy', 'scipy', 'SimpleITK', 'pydicom', 'matplotlib') if m in sys.modules)\n"
            "sys.stderr.write('HEAVY=' + ','.join(heavy))\n" % (argv,))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "usage: calcinosis" in done.stdout
    assert done.stderr.strip().endswith("HEAVY="), done.stderr[-500:]


def test_the_full_command_is_registered_only_when_chosen():
    lean = cli_main.build_parser()
    measure = dict(_subparsers(lean))["measure"]
    assert "--threshold" not in measure._option_string_actions  # noqa: SLF001 - a stub until chosen
    chosen = dict(_subparsers(cli_main.build_parser("measure")))["measure"]
    assert "--threshold" in chosen._option_string_actions  # noqa: SLF001


def _error_message_flags() -> list[tuple[str, int, str]]:
    """``--flag`` words at the start of the text of every ``InputError(...)`` in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                    "InputError", "ConventionError", "ContractError", "OutputExistsError"):
                texts = [n.value for a in node.args for n in ast.walk(a)
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                for text in texts:
                    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text):
                        found.append((str(path.relative_to(PACKAGE)), node.lineno, flag))
    return found


def test_error_messages_name_only_options_that_exist():
    known = all_option_strings()
    flags = _error_message_flags()
    assert len(flags) > 20  # the scan finds the messages
    missing = [f"{p}:{line} names {flag}" for p, line, flag in flags if flag not in known]
    assert missing == []


def test_the_flag_scan_catches_a_made_up_flag(tmp_path):
    """The scan itself can fail: a planted message naming a missing option is found."""
    planted = PACKAGE / "core" / "_planted_for_test.py"
    planted.write_text('def f():\n    raise InputError("--rim-mm: expected a number")\n', encoding="utf-8")
    try:
        assert ("core/_planted_for_test.py", 2, "--rim-mm") in _error_message_flags()
        assert "--rim-mm" not in all_option_strings()
    finally:
        planted.unlink()


@pytest.mark.parametrize("task,module,classes", [
    ("hand", hand_params, (hand_params.DetectParams, hand_params.AssignParams)),
    ("spine", spine_params, (spine_params.SpineParams,)),
])
def test_every_parameter_is_named_by_an_existing_option(task, module, classes):
    options = tasks.option_strings(task)
    names = [f.name for cls in classes for f in fields(cls)]
    assert set(module.OPTIONS) <= set(names), "OPTIONS names a parameter that does not exist"
    for name in names:
        said = hand_params.option_name(name) if task == "hand" else spine_params._flag(name)  # noqa: SLF001
        flag = said.split()[0]
        if flag.startswith("--"):
            assert flag in options, f"{name}: {said} is not an option of calcinosis {task}"
        else:
            assert said == f"parameter {name}"


def test_bad_values_are_refused_naming_the_real_option():
    with pytest.raises(Exception, match=r"^--bone-rim: expected a number >= 0"):
        hand_params.DetectParams(rim_mm=-1.0).validate()
    with pytest.raises(Exception, match=r"^--cortex-max: expected a number >= 0"):
        hand_params.DetectParams(cortex_max_mm=float("nan")).validate()
    with pytest.raises(Exception, match=r"^--search-margin: expected a positive number"):
        spine_params.SpineParams(search_margin_mm=0.0).validate()
    with pytest.raises(Exception, match=r"^--param pll_back_mm: expected a number >= 0"):
        spine_params.SpineParams(pll_back_mm=-2.0).validate()


def test_task_parser_raises_instead_of_exiting():
    from calcinosis.core.errors import InputError
    with pytest.raises(InputError, match="argument --min-size"):
        tasks.parser_for("measure").parse_args(["ct.nrrd", "--min-size", "-1", "-o", "out"])
    with pytest.raises(InputError, match="required"):
        tasks.parser_for("spine").parse_args(["ct.nrrd"])
    with pytest.raises(KeyError):
        tasks.get("knee")


def test_cohort_contract_follows_the_tasks_and_the_anatomy():
    from calcinosis.cohort import contract
    from calcinosis.hand import anatomy as ha
    from calcinosis.spine import anatomy as sa
    assert set(contract.TASKS) == set(tasks.TASKS)
    assert contract.TASK_SUMMARY_FILE == {"measure": "lesions.csv", "hand": "hand.csv", "spine": "patient.csv"}
    assert contract.LEVELS == tuple(sa.LEVELS) and contract.LEVELS[0] == "C7-T1" and contract.LEVELS[-1] == "L5-S1"
    assert contract.HAND_DIGITS == ha.DIGITS + ("unassigned",)
