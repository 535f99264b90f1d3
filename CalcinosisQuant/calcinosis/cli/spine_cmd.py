"""``calcinosis spine``: the ``spine`` task (:mod:`calcinosis.tasks.spine`)."""

from __future__ import annotations

from .common import run_task


def register(sub) -> None:
    from calcinosis.tasks import spine as task
    p = sub.add_parser("spine", help=task.HELP, description=task.DESCRIPTION)
    task.add_arguments(p)
    p.set_defaults(func=lambda args: run_task("spine", args))
