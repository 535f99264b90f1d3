"""Benchmark: batch throughput (cases per minute) with 1 and 2 worker processes.

20 TAP spine phantoms (``calcinosis phantom spine-ct --coverage tap``, default 512 x 512
grid, vertebra labels from the phantom) run through ``calcinosis batch`` as spine cases.

``run(quick)`` returns one dict per configuration (name, our_median_s, native_median_s,
ratio, peak_mem_mb, notes); ``python Testing/bench/bench_cohort.py [--quick]`` prints them.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _make_cases(folder: Path, n: int) -> Path:
    from calcinosis.cli.demo_cohort import make_phantoms, spine_case
    from calcinosis.cohort.manifest import write_manifest
    dirs = [folder / f"spine{k:02d}" for k in range(n)]
    make_phantoms([["phantom", "spine-ct", "-o", str(d), "-q", "--seed", str(k), "--coverage", "tap"]
                   for k, d in enumerate(dirs)])
    rows = [dict(spine_case(d), case_id=f"s{k:02d}", patient_id=f"P{k:02d}") for k, d in enumerate(dirs)]
    return write_manifest(folder / "manifest.csv", rows)


def run(quick: bool = False) -> list[dict]:
    from calcinosis.cohort.batch import run_batch
    n = 4 if quick else 20
    repeats = 1 if quick else 3
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_cohort_") as tmp:
        tmp = Path(tmp)
        manifest = _make_cases(tmp, n)
        for workers in (1, 2):
            times, peaks = [], []
            for r in range(repeats):
                out = tmp / f"out_{workers}_{r}"
                t0 = time.perf_counter()
                s = run_batch(manifest, out, workers=workers)
                times.append(time.perf_counter() - t0)
                peaks += [st.peak_rss_mb or 0.0 for st in s.states.values()]
                failed = [st for st in s.states.values() if st.status != "ok"]
                if failed:
                    raise RuntimeError(f"benchmark case failed: {failed[0].case_id}: {failed[0].reason}")
                shutil.rmtree(out, ignore_errors=True)
            med = statistics.median(times)
            results.append({"name": f"batch {n} TAP spine phantoms, {workers} worker{'s' if workers > 1 else ''}",
                            "our_median_s": med, "native_median_s": None, "ratio": None,
                            "peak_mem_mb": max(peaks) if peaks else None,
                            "notes": f"{60.0 * n / med:.1f} cases/min (median of {repeats}; includes worker start-up "
                                     f"and the cohort tables); peak memory = largest worker process"})
    return results


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['name']}: {r['our_median_s']:.2f} s, {r['notes']}, peak {r['peak_mem_mb']:.0f} MB")
