"""``calcinosis measure``: the ``measure`` task (:mod:`calcinosis.tasks.measure`)."""

from __future__ import annotations

from .common import run_task


def register(sub) -> None:
    from calcinosis.tasks import measure as task
    p = sub.add_parser("measure", help=task.HELP, description=task.DESCRIPTION)
    task.add_arguments(p)
    p.set_defaults(func=lambda args: run_task("measure", args))
