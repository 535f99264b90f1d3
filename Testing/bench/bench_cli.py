"""The command line as a user runs it: whole processes, interpreter start included.

* ``calcinosis --help`` and ``calcinosis measure --help`` (target: under 0.3 s);
* ``calcinosis measure`` on a 512 x 512 x 600 int16 CT with 300 lesions (NRRD), writing
  everything it writes (lesions.csv + schema, lesion_labels.nrrd, lesions.seg.nrrd,
  provenance.json), against a plain script that only reads the same CT, thresholds it
  and labels the components (target: within 3x of it).

Medians of ``repeats`` runs after one warm-up run, ours and the plain script interleaved
(this machine's speed drifts from minute to minute), with Python's bytecode caches as a
user's machine has them.  Run through ``make bench`` or ``python Testing/bench/bench_cli.py``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent.parent

PLAIN_SCRIPT = """
import sys
import SimpleITK as sitk
img = sitk.ReadImage(sys.argv[1])
labels = sitk.ConnectedComponent(sitk.BinaryThreshold(img, 130, 32767, 1, 0))
print(int(sitk.GetArrayViewFromImage(labels).max()))
"""

FULL = {"shape": (600, 512, 512), "n_lesions": 300, "repeats": 5}
QUICK = {"shape": (120, 256, 256), "n_lesions": 40, "repeats": 3}


#: as on a user's machine: Python writes and reuses its bytecode caches (a development shell
#: may set PYTHONDONTWRITEBYTECODE, which makes every process compile every module again)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t0


def run(quick: bool = False) -> list[dict]:
    import numpy as np
    import SimpleITK as sitk

    sys.path.insert(0, str(BENCH_DIR))
    from bench_foundation import make_ct_volume

    cfg = QUICK if quick else FULL
    cli = [sys.executable, "-m", "calcinosis.cli"]
    exe = shutil.which("calcinosis")
    if exe and Path(exe).parent == Path(sys.executable).parent:
        cli = [exe]          # the console script, as a user types it
    out_dir = REPO / "bench-output"
    out_dir.mkdir(exist_ok=True)
    rows = []
    start = [_time([sys.executable, "-c", "pass"]) for _ in range(cfg["repeats"])]
    for args in (["--help"], ["measure", "--help"]):
        _time(cli + args)    # warm-up: bytecode caches written
        times = [_time(cli + args) for _ in range(cfg["repeats"])]
        rows.append({"name": f"calcinosis {' '.join(args)} (whole process)", "our_median_s": statistics.median(times),
                     "native_median_s": None, "ratio": None, "peak_mem_mb": None,
                     "notes": f"{len(times)} runs; bare interpreter start {statistics.median(start):.3f} s; "
                              "target <= 0.3 s", "our_times_s": times})
    vol, geom, _ = make_ct_volume(cfg["shape"], n_lesions=cfg["n_lesions"])
    with tempfile.TemporaryDirectory(dir=out_dir, prefix="bench-cli-") as tmp:
        ct = Path(tmp) / "ct.nrrd"
        img = sitk.GetImageFromArray(np.ascontiguousarray(vol))
        img.SetSpacing(tuple(float(s) for s in geom.spacing))
        sitk.WriteImage(img, str(ct), False)     # uncompressed, as a CT export usually is
        del vol, img
        script = Path(tmp) / "plain.py"
        script.write_text(PLAIN_SCRIPT, encoding="utf-8")
        ours, plain = [], []
        measure = cli + ["measure", str(ct), "--threshold", "130", "-o", str(Path(tmp) / "out"), "--force", "-q"]
        _time(measure)      # warm-up: bytecode caches written, the file in the page cache
        for k in range(cfg["repeats"]):
            plain.append(_time([sys.executable, str(script), str(ct)]))
            ours.append(_time(measure))
        written = sorted(p.name for p in (Path(tmp) / "out").iterdir())
    shape = "x".join(str(s) for s in reversed(cfg["shape"]))
    o, p = statistics.median(ours), statistics.median(plain)
    rows.append({"name": f"calcinosis measure {shape} CT, {cfg['n_lesions']} lesions (whole process)",
                 "our_median_s": o, "native_median_s": p, "ratio": o / p, "peak_mem_mb": None,
                 "notes": f"'native' here = a plain read + threshold + label script; ours / plain = {o / p:.2f} "
                          f"(target <= 3); {len(ours)} interleaved runs; ours writes {', '.join(written)}",
                 "our_times_s": ours, "plain_times_s": plain})
    return rows


if __name__ == "__main__":
    from run_bench import format_table
    print(format_table(run("--quick" in sys.argv)))
