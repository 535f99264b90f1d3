"""Benchmark: batch throughput (cases per minute) with 1 and 2 worker processes.

The issue asks for 20 spine phantoms; until ``calcinosis spine`` exists on this branch the
cases are ``measure`` cases on sphere phantoms (CT-like, 0.4 mm voxels).  When
``CalcinosisCLI.spine_cmd`` is installed, the spine variant switches on (20 TAP spine
phantoms from ``calcinosis phantom spine-ct``, vertebra labels from the phantom).

``run(quick)`` returns one dict per configuration (name, our_median_s, native_median_s,
ratio, peak_mem_mb, notes); ``python Testing/bench/bench_cohort.py [--quick]`` prints them.
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _spine_available() -> bool:
    return importlib.util.find_spec("CalcinosisCLI.spine_cmd") is not None


def _make_cases(folder: Path, n: int, spine: bool) -> Path:
    rows = []
    if spine:
        from CalcinosisCLI.demo_cohort import _find, _find_image, _phantom_options
        from CalcinosisCLI.main import main as cli
        opts = _phantom_options("spine-ct")
        for k in range(n):
            d = folder / f"spine{k:02d}"
            argv = ["phantom", "spine-ct", "-o", str(d), "-q"]
            if "--seed" in opts:
                argv += ["--seed", str(k)]
            if "--coverage" in opts:
                argv += ["--coverage", "tap"]
            if cli(argv) != 0:
                raise RuntimeError("calcinosis phantom spine-ct failed")
            rows.append({"case_id": f"s{k:02d}", "patient_id": f"P{k:02d}", "task": "spine",
                         "image": str(_find_image(d)), "labels": str(_find(d, ["*vertebra*", "*label*", "*seg*"]))})
    else:
        from CalcinosisLib import image_io, phantoms
        for k in range(n):
            arr, geom, _ = phantoms.spheres_phantom((2, 3, 4, 6, 8, 12), 400.0, (0.4, 0.4, 0.6), noise_sd=10.0, seed=k)
            p = folder / f"ct{k:02d}.nrrd"
            image_io.write_image(arr.round().astype("int16"), geom, p)
            rows.append({"case_id": f"m{k:02d}", "patient_id": f"P{k:02d}", "task": "measure", "image": str(p),
                         "modality": "ct", "threshold": "220"})
    cols = list(dict.fromkeys(c for r in rows for c in r))
    m = folder / "manifest.csv"
    with open(m, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(rows)
    return m


def run(quick: bool = False) -> list[dict]:
    from CalcinosisLib.cohort.batch import run_batch
    spine = _spine_available()
    n = 4 if quick else 20
    repeats = 1 if quick else 3
    kind = "spine phantoms" if spine else "measure cases on sphere phantoms"
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_cohort_") as tmp:
        tmp = Path(tmp)
        manifest = _make_cases(tmp, n, spine)
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
            results.append({"name": f"batch {n} {kind}, {workers} worker{'s' if workers > 1 else ''}",
                            "our_median_s": med, "native_median_s": None, "ratio": None,
                            "peak_mem_mb": max(peaks) if peaks else None,
                            "notes": f"{60.0 * n / med:.1f} cases/min (median of {repeats}; includes worker start-up "
                                     f"and the cohort tables); peak memory = largest worker process"})
    return results


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['name']}: {r['our_median_s']:.2f} s, {r['notes']}, peak {r['peak_mem_mb']:.0f} MB")
