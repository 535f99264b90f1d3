"""Benchmark of the spine map: a 512 x 512 x 600 thoraco-abdomino-pelvic (TAP) CT
phantom with its TotalSegmentator-style label map, end to end.

* ``spine map, end to end``: ``run_spine`` (read the CT as NRRD and the labels as
  NIfTI, find, measure and assign the calcifications) plus ``write_spine_outputs``
  (tables, chart, label map, ``.seg.nrrd``, provenance) - what ``calcinosis spine``
  does, without the interpreter's start-up;
* ``spine map, end to end, heavy burden``: the same with 6 calcifications per level
  (about 108) instead of 2.5 (45): our time barely changes, the native route's grows
  with every lesion (each segment costs a pass over the grid), so the ratio depends on
  the patient's burden;
* ``spine map, in memory``: ``map_spine`` on an already loaded CT and label map (what
  the Slicer panel runs after the nodes are converted);
* ``calcinosis spine, whole process``: the command line as a user runs it (interpreter
  start and imports included), against a plain script that only reads the same CT and
  label map, thresholds the CT and labels its components (SimpleITK), whole processes
  interleaved: what reading and labelling alone cost, the floor any map of this CT stands on.

The native route is Slicer's own for the same lesions, from file to file as ours:
Slicer's storage node reads the CT, the lesion label map is imported as segments,
Segment Statistics measures each, Slicer's storage nodes write the ``.seg.nrrd`` and the
table (``Testing/bench/native_route.py``'s ``native_end_to_end``); the notes give the
time of each step.

Target (issue 4): end to end <= 5 s median, >= 20x faster than the native route.
Run through ``make bench`` or ``python Testing/bench/bench_spine.py [--quick]``.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent

NATIVE_ROUTE = HERE / "native_route.py"


def _native_end_to_end():
    if not NATIVE_ROUTE.exists():
        return None
    spec = importlib.util.spec_from_file_location("native_route", NATIVE_ROUTE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return getattr(mod, "native_end_to_end", None)


def _make_case(folder: Path, quick: bool, per_level: float = 2.5) -> tuple[Path, Path, int]:
    from calcinosis.core import image_io
    from calcinosis.spine import phantom
    folder.mkdir(parents=True, exist_ok=True)
    if quick:
        r = phantom.make_spine_phantom("tap", spacing=(1.4, 1.4, 2.5), size_xy=(256, 256), seed=0, n_slices=300,
                                       calcifications_per_level=per_level)
    else:
        r = phantom.make_spine_phantom("tap", spacing=(0.7, 0.7, 1.25), size_xy=(512, 512), seed=0, n_slices=600,
                                       calcifications_per_level=per_level)
    ct, labels = folder / "ct.nrrd", folder / "labels.nii.gz"
    image_io.write_image(r.ct, r.geometry, ct, compress=False)
    image_io.write_image(r.labels, r.geometry, labels)
    n = sum(row["kind"] == "spinal" for row in r.truth.rows)
    return ct, labels, n


def _timed(fn, repeats: int):
    """(median wall time of ``repeats`` runs, the last run's result)."""
    times, out = [], None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


#: the floor: read the CT and the label map, threshold, label the components (whole process)
PLAIN_SCRIPT = """
import sys
import SimpleITK as sitk
img = sitk.ReadImage(sys.argv[1])
vertebrae = sitk.ReadImage(sys.argv[2])
labels = sitk.ConnectedComponent(sitk.BinaryThreshold(img, 130, 32767, 1, 0))
print(int(sitk.GetArrayViewFromImage(labels).max()))
"""

#: as on a user's machine: Python writes and reuses its bytecode caches
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _process_time(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t0


def _whole_process(ct: Path, lab: Path, out: Path, repeats: int) -> dict:
    """``calcinosis spine`` as a user runs it against the plain read-and-label script,
    interleaved, after one warm-up run of each."""
    exe = shutil.which("calcinosis")
    cli = [exe] if exe and Path(exe).parent == Path(sys.executable).parent else [sys.executable, "-m",
                                                                                   "calcinosis.cli"]
    ours_argv = cli + ["spine", str(ct), "--vertebrae", str(lab), "-o", str(out), "--force", "-q"]
    plain_argv = [sys.executable, "-c", PLAIN_SCRIPT, str(ct), str(lab)]
    _process_time(ours_argv)
    _process_time(plain_argv)
    ours, plain = [], []
    for _ in range(repeats):
        ours.append(_process_time(ours_argv))
        plain.append(_process_time(plain_argv))
    med, plain_med = statistics.median(ours), statistics.median(plain)
    return {"name": "calcinosis spine, whole process (same CT + labels, every output)", "our_median_s": med,
            "native_median_s": None, "ratio": None, "peak_mem_mb": None, "plain_median_s": plain_med,
            "notes": f"plain read-and-label script (read CT and labels, threshold, connected components; SimpleITK, "
                     f"whole process) {plain_med:.2f} s: ours / plain {med / plain_med:.1f}x; {len(ours)} runs each, "
                     "interleaved", "our_times_s": ours, "plain_times_s": plain}


# Peak memory in a child process: VmHWM (peak resident set, which counts what SimpleITK and
# VTK allocate outside Python as well - tracemalloc would miss the CT itself, whose buffer
# SimpleITK owns) minus the resident set of the same interpreter before the run.
_MEM_SCRIPT = """
import json, shutil, sys
import numpy, scipy.ndimage, SimpleITK
from calcinosis.core import image_io
from calcinosis.spine import pipeline, vertebrae

def status(key):
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))

mode, ct, lab, out = sys.argv[1:5]
if mode == 'memory':                        # map_spine on a CT and label map already loaded
    volume = image_io.load_image(ct)
    volume.meta['modality'] = 'CT'
    li = image_io.load_label_image(lab)
    open('/proc/self/clear_refs', 'w').write('5')    # reset the peak to the current resident set
base = status('VmRSS:')
if mode == 'memory':
    pipeline.map_spine(volume, vertebrae.labels_from_label_image(li, volume))
else:
    shutil.rmtree(out, ignore_errors=True)
    pipeline.write_spine_outputs(out, pipeline.run_spine(ct, vertebrae=lab))
print(json.dumps((status('VmHWM:') - base) / 1024.0))
"""


def _peak_mem_mb(mode: str, ct: Path, lab: Path, out: Path) -> float | None:
    """Peak resident memory (MB) of one run above the process' resident set before it."""
    try:
        done = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, mode, str(ct), str(lab), str(out)], check=True,
                              capture_output=True, text=True)
        return float(json.loads(done.stdout.strip().splitlines()[-1]))
    except (subprocess.CalledProcessError, ValueError, IndexError, OSError):
        return None


def run(quick: bool = False) -> list[dict]:
    from calcinosis.core import image_io
    from calcinosis.spine import pipeline, vertebrae
    repeats = 1 if quick else 5
    results = []
    native = _native_end_to_end()
    with tempfile.TemporaryDirectory(prefix="bench-spine-") as tmp:
        tmp = Path(tmp)
        for per_level, label in ((2.5, ""), (6.0, ", heavy burden")):
            case = tmp / f"case{per_level:g}"
            ct_path, lab_path, n_truth = _make_case(case, quick, per_level)
            k = [0]

            def end_to_end():
                k[0] += 1
                res = pipeline.run_spine(ct_path, vertebrae=lab_path)
                pipeline.write_spine_outputs(case / f"out{k[0]}", res)
                return res

            res = end_to_end()                      # warm-up (imports, first touch of memory); not timed
            shape = res.volume.array.shape
            vol_mb = res.volume.array.nbytes / 2 ** 20
            native_med = None
            note_native = "native route: Testing/bench/native_route.py not found"
            labels = res.full_grid_labels()
            steps: list[dict] = []

            def native_run():
                steps.append({})
                return native(ct_path, labels, res.volume.geometry, case / f"native{len(steps)}", timings=steps[-1])

            # ours and the native route interleaved, so that both meet the same machine (on a
            # shared virtual machine the time stolen by other guests changes from minute to minute)
            ours: list[float] = []
            native_times: list[float] = []
            rounds = 1 if (quick or native is None) else 3
            for r in range(rounds):
                if native is not None:
                    native_times.append(_timed(native_run, 1)[0])
                for _ in range(max(1, repeats // rounds + (r < repeats % rounds))):
                    ours.append(_timed(end_to_end, 1)[0])
            med = statistics.median(ours)
            peak = _peak_mem_mb("files", ct_path, lab_path, case / "out-mem")
            if native is not None:
                native_med = statistics.median(native_times)
                step_med = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
                note_native = (f"native route, file to file: Slicer reads the CT ({step_med['read']:.1f} s), imports "
                               f"the same {len(res.table)} lesions as segments ({step_med['import_segments']:.1f} s), "
                               f"Segment Statistics ({step_med['statistics']:.1f} s, "
                               f"{step_med['statistics'] / max(len(res.table), 1):.2f} s per lesion), writes the "
                               f".seg.nrrd and table ({step_med['write']:.1f} s); interleaved with ours, "
                               f"{len(native_times)} native runs, {len(ours)} of ours")
            results.append({
                "name": f"spine map, end to end ({'x'.join(map(str, shape[::-1]))} TAP CT + labels{label})",
                "our_median_s": med, "native_median_s": native_med,
                "ratio": (native_med / med) if native_med else None, "peak_mem_mb": peak,
                "notes": f"{len(res.table)} calcifications found of {n_truth} placed ({per_level:g} per level); "
                         f"{len(res.assessed)} levels; CT {vol_mb:.0f} MB (NRRD raw), labels NIfTI gz; {note_native}",
            })
        ct_path, lab_path = tmp / "case2.5" / "ct.nrrd", tmp / "case2.5" / "labels.nii.gz"
        results.append(_whole_process(ct_path, lab_path, tmp / "case2.5" / "out-cli", repeats))
        volume = image_io.load_image(ct_path)
        volume.meta["modality"] = "CT"
        li = image_io.load_label_image(lab_path)
        med2, res2 = _timed(lambda: pipeline.map_spine(volume, vertebrae.labels_from_label_image(li, volume)), repeats)
        peak2 = _peak_mem_mb("memory", ct_path, lab_path, tmp / "unused")
        results.append({
            "name": "spine map, in memory (loaded CT and labels -> tables)",
            "our_median_s": med2, "native_median_s": None, "ratio": None, "peak_mem_mb": peak2,
            "notes": f"{len(res2.table)} calcifications; no file reading or writing",
        })
    return results


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for r in run(quick):
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "n/a"
        nat = f"{r['native_median_s']:.2f} s" if r["native_median_s"] else "n/a"
        peak = f"peak {r['peak_mem_mb']:.0f} MB above baseline" if r["peak_mem_mb"] is not None else "peak n/a"
        print(f"{r['name']}: ours {r['our_median_s']:.2f} s, native {nat}, ratio {ratio}, {peak}; {r['notes']}")
