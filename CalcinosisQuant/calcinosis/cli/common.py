"""Helpers shared by the sub-commands: argument types, progress, printing."""

from __future__ import annotations

import argparse
import sys

from calcinosis.core.errors import InputError
from calcinosis.core.progress import Progress, StderrProgressBar
from calcinosis.tasks.arguments import (add_output_args, fraction, in_range, nonneg_float, number,  # noqa: F401
                                        positive_float, positive_int, positive_list, seed_int, spacing_arg,
                                        grid_size, positive_list_upto)


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


def require(cond: bool, message: str) -> None:
    if not cond:
        raise InputError(message)


def run_task(name: str, args) -> int:
    """Run task ``name`` (:mod:`calcinosis.tasks`) with a progress bar; print its warnings
    and summary."""
    from calcinosis import tasks
    outcome = tasks.get(name).run(args, progress_for(args, name))
    warn_all(outcome.warnings)
    for line in outcome.lines:
        say(args, line)
    return 0
