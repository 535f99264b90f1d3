"""``calcinosis demo``: the main jobs on built-in sample data (phantoms made on the fly).

Each step is a module listed in :data:`STEPS`, with ``TITLE`` and
``run(outdir: Path, force: bool) -> list[str]`` (lines to print).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from calcinosis.core.output import check_output_free

#: the demo's steps, in order
STEPS = ("demo_foundation", "demo_hand", "demo_follow", "demo_spine", "demo_cohort")


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the pipelines on built-in sample data and show where the outputs are")
    p.add_argument("-o", "--output", dest="outdir", default="demo-output", metavar="DIR",
                   help="output folder (default: demo-output)")
    p.add_argument("--force", action="store_true", help="replace an earlier demo output")
    p.add_argument("--only", help="run only the step whose name contains this text")
    p.set_defaults(func=run)


def run(args) -> int:
    from calcinosis.core.errors import InputError
    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"-o {outdir}: is a file; the demo writes into a folder")
    chosen = [name for name in STEPS if not args.only or args.only in name]
    if not chosen:
        raise InputError(f"--only {args.only!r}: no demo step has that in its name "
                         f"({', '.join(n.removeprefix('demo_') for n in STEPS)})")
    check_output_free(outdir / "measure-ct", args.force)
    t_start = time.perf_counter()
    # the cohort's phantoms are made in the background while the other steps run (each of
    # those uses about one core)
    phantoms = None
    if "demo_cohort" in chosen and len(chosen) > 1:
        from . import demo_cohort
        phantoms = demo_cohort.start_phantoms(outdir)
    try:
        for name in chosen:
            step = importlib.import_module(f"{__package__}.{name}")
            t0 = time.perf_counter()
            print(f"== {step.TITLE}", flush=True)
            lines = step.run(outdir, args.force, phantoms) if name == "demo_cohort" else step.run(outdir, args.force)
            for line in lines:
                print(f"   {line}")
            print(f"   ({time.perf_counter() - t0:.1f} s"
                  + (", its phantoms made in the background during the steps before" if name == "demo_cohort"
                     and phantoms is not None else "") + ")", flush=True)
    finally:
        if phantoms is not None:
            phantoms.cancel()
    print(f"\nAll demo outputs are in {outdir.resolve()} ({time.perf_counter() - t_start:.0f} s)")
    return 0
