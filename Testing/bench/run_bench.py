"""Run the benchmarks (``make bench``): every ``Testing/bench/bench_*.py``.

Each benchmark module exposes ``run(quick: bool = False) -> list[dict]``; each dict has
``name``, ``our_median_s``, ``native_median_s`` (or None), ``ratio`` (native / ours, or None),
``peak_mem_mb`` and ``notes`` (and may add more keys, kept in the JSON).  This script
prints one table of all rows and writes ``bench-output/results.json``.

Usage: ``python Testing/bench/run_bench.py [--quick] [--only NAME ...] [-o FILE]``.
``--quick`` runs small smoke versions (seconds), for checking that the benchmarks work;
figures worth recording come from the full run on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent.parent
COLUMNS = ("name", "our_median_s", "native_median_s", "ratio", "peak_mem_mb", "notes")


def discover(only: list[str] | None = None) -> list[str]:
    names = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    if only:
        wanted = {o if o.startswith("bench_") else f"bench_{o}" for o in only}
        unknown = wanted - set(names)
        if unknown:
            raise SystemExit(f"run_bench: no benchmark {', '.join(sorted(unknown))}; have {', '.join(names)}")
        names = [n for n in names if n in wanted]
    return names


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    head = ["benchmark", "ours median s", "native median s", "native/ours", "peak MB", "notes"]
    body = [[r.get("name", "?"), _fmt(r.get("our_median_s")), _fmt(r.get("native_median_s")),
             _fmt(r.get("ratio")), _fmt(r.get("peak_mem_mb"), 4), str(r.get("notes", ""))] for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(5)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head[:5], widths)) + "  " + head[5]]
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 5)
    for b in body:
        lines.append("  ".join(x.ljust(w) for x, w in zip(b[:5], widths)) + "  " + b[5])
    return "\n".join(lines)


def machine() -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_mb"] = round(int(f.readline().split()[1]) / 1024)
    except OSError:
        pass
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small smoke versions (check the benchmarks work)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (e.g. foundation)")
    ap.add_argument("-o", "--output", default=str(REPO / "bench-output" / "results.json"),
                    help="JSON results file (default bench-output/results.json)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(BENCH_DIR))
    rows: list[dict] = []
    failed = []
    started = time.time()
    for name in discover(args.only):
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(name)
            result = module.run(quick=args.quick)
        except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
            traceback.print_exc()
            failed.append(name)
            rows.append({"name": name, "our_median_s": None, "native_median_s": None, "ratio": None,
                         "peak_mem_mb": None, "notes": "FAILED (see traceback above)", "benchmark": name})
            continue
        for r in result:
            missing = [c for c in COLUMNS if c not in r]
            if missing:
                raise SystemExit(f"{name}: result row lacks {missing}")
            r.setdefault("benchmark", name)
            rows.append(r)
        print(f"   {len(result)} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    print()
    print(format_table(rows))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
              "quick": args.quick, "machine": machine(), "wall_s": round(time.time() - started, 1), "results": rows}
    tmp = out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(record, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"\nresults: {out}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
