"""Helpers shared by the sub-commands: argument types, progress, printing."""

from __future__ import annotations

import argparse
import sys

from calcinosis.core.errors import InputError
from calcinosis.core.progress import Progress, StderrProgressBar


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


def progress_for(args, label: str) -> Progress | None:
    if getattr(args, "quiet", False):
        return None
    return StderrProgressBar(label).progress()


def say(args, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text)


def warn_all(warnings, stream=None) -> None:
    stream = stream or sys.stderr
    for w in warnings:
        stream.write(f"calcinosis: warning: {w}\n")


def add_output_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-o", "--output", dest="outdir", required=required, metavar="OUTDIR",
                   help="output folder (created; an earlier result there is kept unless --force)")
    p.add_argument("--force", action="store_true", help="replace an earlier result in OUTDIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")


def require(cond: bool, message: str) -> None:
    if not cond:
        raise InputError(message)
