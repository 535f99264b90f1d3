"""What a task takes, as command-line options: argument types, the output options, and a
parser that raises :class:`~calcinosis.core.errors.InputError` instead of exiting.

The tasks define their options here, once, because a cohort manifest gives a case's extra
parameters in the same syntax (its ``options`` column): the command line and the batch parse
them with the same parser, so a flag means the same in both.
"""

from __future__ import annotations

import argparse

from calcinosis.core.errors import InputError


def spacing_arg(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers in mm like 0.1,0.1, got {text!r}") from None
    if not vals or any(not (v > 0) for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive numbers in mm, got {text!r}")
    return vals


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    v = nonneg_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return v


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def add_output_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-o", "--output", dest="outdir", required=required, metavar="OUTDIR",
                   help="output folder (created; an earlier result there is kept unless --force)")
    p.add_argument("--force", action="store_true", help="replace an earlier result in OUTDIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")


class TaskArgumentParser(argparse.ArgumentParser):
    """An argument parser for use inside a program (the batch): a bad option raises
    :class:`InputError` with argparse's message instead of printing usage and exiting."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise InputError(message)

    def exit(self, status: int = 0, message: str | None = None):
        raise InputError((message or f"exit {status}").strip())
