"""Entry point of the ``calcinosis`` console script.

The sub-commands are listed in :data:`COMMANDS` (name -> module, one-line help).  Only the
module of the command being run is imported, so ``calcinosis --help`` and ``calcinosis
measure --help`` start without numpy or scipy.  Each ``*_cmd.py`` module has
``register(subparsers)``; its handler returns an exit code.  Bad input (``InputError``)
prints one line and exits with 2, as do argument errors; nothing is half-written (outputs go
through ``OutputTransaction``).  Ctrl-C exits with 130 and SIGTERM with 143, both after the
partial output is removed (:mod:`calcinosis.core.interrupt`).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback

from calcinosis import __version__
from calcinosis.core import interrupt
from calcinosis.core.errors import Cancelled, InputError
from calcinosis.core.output import os_error_text

#: every sub-command: name -> (module in this package, the help line of ``calcinosis --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "measure": ("measure_cmd", "find and measure lesions in one image"),
    "hand": ("hand_cmd", "hand calcinosis on a radiograph, CT or MRI: lesions per digit, joint and hand"),
    "hand-compare": ("hand_cmd", "one hand across radiograph, CT and MRI results, per digit (study 1)"),
    "hand-form": ("hand_cmd", "the structural-lesion form of hand radiographs: write blank / check filled"),
    "hand-landmarks": ("hand_cmd", "write a blank hand landmark list (every label, unplaced) for Slicer"),
    "spine": ("spine_cmd", "map spine CT calcifications to levels C7-T1 … L5-S1, segments and sub-sites"),
    "follow": ("follow_cmd", "follow every lesion from a baseline result to a follow-up: new, resolved, grown, shrunk"),
    "batch": ("batch_cmd", "run every case of a manifest (hand, spine, measure) and build the cohort tables"),
    "stats": ("stats_cmd", "cohort statistics: groups, agreement, modalities, prevalence, change, outcomes"),
    "report": ("report_cmd", "HTML report of a case folder or of a batch folder (figures embedded)"),
    "phantom": ("phantom_cmd", "write a synthetic image with its ground truth"),
    "demo": ("demo_cmd", "run the pipelines on built-in sample data and show where the outputs are"),
}


def command_module(name: str):
    return importlib.import_module(f"{__package__}.{COMMANDS[name][0]}")


def _chosen_command(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is one), or None."""
    for word in argv:
        if word in COMMANDS:
            return word
        if not word.startswith("-"):
            return None
    return None


class CommandLineParser(argparse.ArgumentParser):
    """argparse, with a bad option reported in one line naming the command and the option
    (and where to read more), exit code 2."""

    def error(self, message: str):
        sys.stderr.write(f"calcinosis: error: {self.prog}: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def build_parser(command: str | None = None, full: bool = False) -> argparse.ArgumentParser:
    """The parser: every command listed with its help line; ``command`` (or, with ``full``,
    every command) registered in full from its module."""
    parser = CommandLineParser(
        prog="calcinosis",
        description="Calcinosis imaging in systemic sclerosis: find, measure and map calcified lesions "
                    "on radiographs, CT and MRI (the SlicerCalcinosis pipelines, without Slicer).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = {COMMANDS[command][0]} if command else set()
    if full:
        wanted = {module for module, _ in COMMANDS.values()}
    done = set()
    for name, (module, help_line) in COMMANDS.items():
        if module in wanted:
            if module not in done:
                done.add(module)
                command_module(name).register(sub)
        else:
            sub.add_parser(name, help=help_line, add_help=False)
    return parser


def subparsers(parser: argparse.ArgumentParser):
    """(name, parser) of each sub-command of ``parser``."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of sub-commands
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            yield from action.choices.items()


def walk_parsers(parser: argparse.ArgumentParser, path: tuple = ()):
    """(command path, parser) of ``parser`` and of every sub-command below it."""
    yield path, parser
    for name, sub in subparsers(parser):
        yield from walk_parsers(sub, path + (name,))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_chosen_command(argv))
    args = parser.parse_args(argv)
    with interrupt.unwind_on_signals():   # SIGTERM unwinds like Ctrl-C: no hidden .partial-* folder is left
        return _run(args)


def _outcome(e: BaseException, default: str = "nothing was written") -> str:
    """What an interrupted or failed run left (a batch keeps its finished cases)."""
    return getattr(e, "calcinosis_outcome", None) or default


def _run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        sys.stderr.write(f"calcinosis: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}\n")
        return 2
    except (Cancelled, KeyboardInterrupt) as e:
        signum = getattr(e, "signum", signal.SIGINT)
        if signum == signal.SIGINT:
            sys.stderr.write(f"calcinosis: cancelled; {_outcome(e)}\n")
        else:
            sys.stderr.write(f"calcinosis: stopped by {interrupt.signal_name(signum)}; {_outcome(e)}\n")
        return interrupt.exit_code(signum)
    except OSError as e:  # disk full, permission denied, ...: not a bug, not bad input
        sys.stderr.write(f"calcinosis: error: {os_error_text(e)}; {_outcome(e)}\n")
        return 1
    except MemoryError:
        sys.stderr.write("calcinosis: error: out of memory (image too large for this machine?)\n")
        return 1
    except Exception:  # noqa: BLE001 - an internal error: show it in full, it is a bug
        sys.stderr.write("calcinosis: internal error (please report it with the lines below)\n")
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
