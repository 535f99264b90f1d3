"""Benchmark: the CalcinosisQuant panel's steps on a 512x512x300 hand CT, headless (slicer-core).

What a user waits for after each button (``calcinosis.mrml.hand_session``, the code the
panel's Logic calls; no Qt, no rendering):

* **Detect**: volume node -> bone removal, detection, outlines -> first assignment for
  the names -> segmentation node with one named segment per lesion;
* **Measure (untouched)**: Measure right after Detect (the detection itself is measured);
* **Measure (edited)**: after a segment was deleted: the segmentation is read back from
  the node, measured, assigned, and the table and chart nodes refilled;
* **Export**: the files of ``calcinosis hand``.

Native route (Measure, edited): Slicer's own way to per-segment numbers for the same
lesions - import the label map as segments and run Segment-Statistics-style
``vtkImageAccumulate`` per segment (``Testing/bench/native_route.native_measure``); it
gives no digits, zones or tables, so it is a lower bound on what the panel adds.

Peak memory: of the whole flow (node creation + the four steps) in a separate process,
minus an interpreter that only imported the same libraries.

Run: ``python Testing/bench/bench_handgui.py [--quick]`` (``make bench`` calls ``run()``).
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_hand  # noqa: E402  (the same phantom CT as the command-line benchmark)


def _setup(ct: Path, lm: Path):
    from calcinosis.core import image_io
    from calcinosis import mrml
    from calcinosis.hand import landmarks as lmk

    scene = mrml.headless_scene()
    node = mrml.node_from_volume(image_io.load_image(ct, modality="ct"), "hand CT")
    points = mrml.markups_from_points(lmk.read_landmarks(lm).as_points(), "landmarks")
    return scene, node, points


def _flow(node, points, out: Path) -> dict:
    """One pass of the panel's steps; seconds per step."""
    import shutil

    from calcinosis.mrml import hand_session as hand

    t = {}
    t0 = time.perf_counter()
    det = hand.detect(node, "auto", landmarks_node=points)
    t["detect"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = hand.measure(node, det.segmentation_node, "auto", points, det)
    t["measure_untouched"] = time.perf_counter() - t0
    seg = det.segmentation_node.GetSegmentation()
    seg.RemoveSegment(seg.GetNthSegmentID(0))
    t0 = time.perf_counter()
    m = hand.measure(node, det.segmentation_node, "auto", points, det, lesion_table_node=m.lesion_table_node,
                     digit_table_node=m.digit_table_node, hand_table_node=m.hand_table_node, chart_node=m.chart_node)
    t["measure_edited"] = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    hand.export(out, m)
    t["export"] = time.perf_counter() - t0
    t["n_lesions"] = det.lesions.n
    t["_measurement"] = m
    return t


_MEM_SCRIPT = """
import json, resource, sys
sys.path.insert(0, sys.argv[2])
import numpy, scipy.ndimage, SimpleITK
from calcinosis.core import mrml
from calcinosis.hand import slicer_logic
import bench_handgui
if sys.argv[1] == 'run':
    scene, node, points = bench_handgui._setup(sys.argv[3], sys.argv[4])
    bench_handgui._flow(node, points, __import__('pathlib').Path(sys.argv[5]))
try:
    kb = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))
except (OSError, StopIteration):
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(kb))
"""


def _peak_mem_mb(ct: Path, lm: Path, out: Path) -> float | None:
    try:
        base = json.loads(subprocess.run([sys.executable, "-c", _MEM_SCRIPT, "base", str(HERE)], check=True,
                                         capture_output=True, text=True).stdout.strip().splitlines()[-1])
        peak = json.loads(subprocess.run([sys.executable, "-c", _MEM_SCRIPT, "run", str(HERE), str(ct), str(lm),
                                          str(out)], check=True, capture_output=True, text=True).stdout
                          .strip().splitlines()[-1])
    except (subprocess.CalledProcessError, ValueError, IndexError):
        return None
    return (peak - base) / 1024.0


def _native():
    path = HERE / "native_route.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("native_route", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, "native_measure", None)


def run(quick: bool = False) -> list[dict]:
    from calcinosis import mrml

    size = bench_hand.QUICK_SIZE if quick else bench_hand.FULL_SIZE
    repeats = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-handgui-") as tmp:
        tmp = Path(tmp)
        ct, lm, info = bench_hand._make_ct(tmp, size)
        scene, node, points = _setup(ct, lm)
        try:
            _flow(node, points, tmp / "out")  # warm-up
            runs = [_flow(node, points, tmp / "out") for _ in range(repeats)]
            m = runs[-1]["_measurement"]
            native_fn = _native()
            native = None
            if native_fn is not None:
                from calcinosis.mrml import volume_from_node
                vol = volume_from_node(node, copy=False)
                ntimes = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    native_fn(m.result.lesions.labels, m.result.lesions.geometry, vol.array)
                    ntimes.append(time.perf_counter() - t0)
                native = statistics.median(ntimes)
        finally:
            mrml.close_headless_scene(scene)
        peak = _peak_mem_mb(ct, lm, tmp / "out-mem")
    tag = " (quick)" if quick else ""
    base = (f"{size[0]}x{size[1]}x{size[2]} int16 hand CT, spacing {info['spacing_mm']} mm, "
            f"{runs[-1]['n_lesions']} lesions; headless slicer-core; median of {repeats}")

    def row(name, key, notes, native_s=None, mem=None):
        ours = statistics.median(r[key] for r in runs)
        return {"name": f"hand panel {name}{tag}", "our_median_s": ours, "native_median_s": native_s,
                "ratio": (native_s / ours) if native_s else None, "peak_mem_mb": mem, "notes": f"{base}; {notes}"}

    mem_note = (f"peak memory of the whole flow {peak / info['input_mb']:.1f}x the input volume "
                f"({info['input_mb']:.0f} MB)") if peak is not None else "peak memory not measured"
    return [
        row("Detect", "detect", "volume node -> named segmentation node; " + mem_note, mem=peak),
        row("Measure (untouched)", "measure_untouched", "right after Detect: the detection itself, tables + chart"),
        row("Measure (edited)", "measure_edited",
            "one segment deleted: segmentation read back, measured, assigned, nodes refilled; native = import as "
            "segments + Segment Statistics on the same lesions (no assignment, no tables)"
            if native is not None else "one segment deleted; native route absent", native_s=native),
        row("Export", "export", "the files of calcinosis hand"),
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(json.dumps(r, indent=2))
