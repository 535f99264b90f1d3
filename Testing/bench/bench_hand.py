"""Benchmarks: a 512x512x300 hand CT end to end with ``calcinosis hand`` (target <= 1.5 s
median), and radiograph detection on a 2500 x 2000 hand radiograph (target: a few seconds).

"End to end" = read the CT (uncompressed NRRD), find and remove bone, detect lesions and
draw their outlines, measure, assign to digits and joints from landmarks, and write every
output (tables, label map, ``.seg.nrrd``, provenance).  Building the phantom is not timed.

Native route: if ``Testing/bench/native_route.py`` exists (the bridge engineer's
``native_measure(labels, geometry, intensity)``: Slicer's own per-segment route on
slicer-core), it is timed on the same lesion label map and the ratio reported.
Otherwise ``native_median_s`` is None and the notes say so.

Peak memory is measured in a separate process (its maximum resident set size minus that
of an interpreter that only imported the same libraries).

Radiograph: the phantom hand rendered at 0.2 mm (noise-free), resampled to 0.1 mm pixels,
placed in a 2500 x 2000 field (the rest is the unexposed-air level) with noise SD 6; timed:
``detect.detect_xr`` with the landmark bone model (the detector analyses 0.2 mm blocks and
draws the outlines back on the 0.1 mm pixels).  Building the image is not timed.

Run: ``python Testing/bench/bench_hand.py [--quick]`` (``make bench`` calls ``run()``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FULL_SIZE = (512, 512, 300)
QUICK_SIZE = (256, 256, 150)   # same voxels as the full CT, a quarter of its field of view each way


def _make_ct(folder: Path, size: tuple[int, int, int], spacing_for=FULL_SIZE) -> tuple[Path, Path, dict]:
    from calcinosis.core import image_io
    from calcinosis.hand import landmarks as lmk, phantom as ph

    patient = ph.make_patient("R", 0)
    lo, hi = ph.hand_bounds(patient)
    ext = hi - lo
    sp_xy = float(np.ceil(max(ext[0], ext[1]) / (spacing_for[0] - 1) * 100) / 100)
    sp_z = float(np.ceil(ext[2] / (spacing_for[2] - 1) * 100) / 100)
    P = ph.ct_phantom(patient=patient, spacing=(sp_xy, sp_xy, sp_z), size_ijk=size)
    ct = folder / "hand_ct.nrrd"
    image_io.write_image(P.array, P.geometry, ct, compress=False)
    lm = folder / "landmarks.mrk.json"
    lm.write_text(lmk.markups_json_text(P.landmarks))
    return ct, lm, {"spacing_mm": [sp_xy, sp_xy, sp_z], "n_truth_lesions": len(P.truth),
                    "input_mb": P.array.nbytes / 2 ** 20}


def _run_once(ct: Path, lm: Path, out: Path):
    from calcinosis.hand import pipeline as hand_pipeline
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = hand_pipeline.run_hand(ct, modality="ct", landmarks=lm)
    hand_pipeline.write_hand_outputs(out, result)
    return time.perf_counter() - t0, result


# VmHWM (peak resident set of this process image; ru_maxrss would also count the parent's
# memory copied at fork, before exec)
_MEM_SCRIPT = """
import resource, sys, json
from calcinosis.hand import hand_pipeline
import numpy, scipy.ndimage, SimpleITK
if sys.argv[1] == 'run':
    r = hand_pipeline.run_hand(sys.argv[2], modality='ct', landmarks=sys.argv[3])
    hand_pipeline.write_hand_outputs(sys.argv[4], r)
try:
    kb = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))
except (OSError, StopIteration):
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(kb))
"""


def _peak_mem_mb(ct: Path, lm: Path, out: Path) -> float | None:
    try:
        base = json.loads(subprocess.run([sys.executable, "-c", _MEM_SCRIPT, "base"], check=True,
                                         capture_output=True, text=True).stdout)
        shutil.rmtree(out, ignore_errors=True)
        peak = json.loads(subprocess.run([sys.executable, "-c", _MEM_SCRIPT, "run", str(ct), str(lm), str(out)],
                                         check=True, capture_output=True, text=True).stdout)
    except (subprocess.CalledProcessError, ValueError):
        return None
    return (peak - base) / 1024.0  # KiB -> MiB


def _native():
    path = HERE / "native_route.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("native_route", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, "native_measure", None)


XR_SHAPE = (2500, 2000)        # rows x columns, 0.1 mm pixels


def _make_xr():
    from scipy import ndimage
    from calcinosis.core.geometry import Geometry
    from calcinosis.core.volume import Volume
    from calcinosis.hand import phantom as ph
    from calcinosis.hand.landmarks import landmarks_from_points

    P = ph.xr_phantom("R", 0, noise_sd=0.0)
    fine = ndimage.zoom(P.radiograph.image, 2.0, order=1)
    img = np.full(XR_SHAPE, ph.XR_OFFSET, np.float64)
    r0 = (XR_SHAPE[0] - fine.shape[0]) // 2
    c0 = (XR_SHAPE[1] - fine.shape[1]) // 2
    img[r0:r0 + fine.shape[0], c0:c0 + fine.shape[1]] = fine
    img += np.random.default_rng(0).normal(0.0, 6.0, img.shape)
    g0 = P.geometry
    geom = Geometry.create((XR_SHAPE[1], XR_SHAPE[0], 1), (0.1, 0.1, 1.0),
                           g0.ijk_to_ras(np.array([-c0 / 2.0, -r0 / 2.0, 0.0])), g0.direction)
    vol = Volume(img[None].astype(np.float32), geom, {"modality": "XR"})
    return vol, landmarks_from_points(P.landmarks), len(P.truth)


def run_xr(quick: bool = False) -> dict:
    from calcinosis.hand import detect
    vol, lm, n_truth = _make_xr()
    params = detect.DetectParams()
    detect.detect_xr(vol, params, landmarks=lm)      # warm-up
    times, det = [], None
    for _ in range(1 if quick else 5):
        t0 = time.perf_counter()
        det = detect.detect_xr(vol, params, landmarks=lm)
        times.append(time.perf_counter() - t0)
    notes = (f"{XR_SHAPE[0]}x{XR_SHAPE[1]} radiograph, 0.1 mm pixels (analysed at "
             f"{det.parameters['analysis_pixel_mm']:g} mm), landmark bone model; {det.lesions.n} candidates kept "
             f"({n_truth} deposits in the phantom hand), {det.parameters['seeds']} seeds; "
             f"median of {len(times)}")
    return {"name": "hand radiograph detection 2500x2000" + (" (quick)" if quick else ""),
            "our_median_s": statistics.median(times), "native_median_s": None, "ratio": None,
            "peak_mem_mb": None, "notes": notes + "; no native route (Slicer has no radiograph calcinosis detector)"}


def run(quick: bool = False) -> list[dict]:
    return [run_ct(quick), run_xr(quick)]


def run_ct(quick: bool = False) -> dict:
    size = QUICK_SIZE if quick else FULL_SIZE
    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="bench-hand-") as tmp:
        tmp = Path(tmp)
        ct, lm, info = _make_ct(tmp, size)
        out = tmp / "out"
        _run_once(ct, lm, out)  # warm-up (imports, file cache)
        times, result = [], None
        for _ in range(repeats):
            dt, result = _run_once(ct, lm, out)
            times.append(dt)
        ours = statistics.median(times)
        native_fn = _native()
        native = None
        notes = (f"{size[0]}x{size[1]}x{size[2]} int16 hand CT, spacing {info['spacing_mm']} mm, "
                 f"{result.lesions.n} lesions found ({info['n_truth_lesions']} in the whole phantom hand); "
                 f"load+bone removal+detection+outlines+measure+assignment+write; median of {repeats}")
        if native_fn is not None:
            labels = result.lesions.labels
            ntimes = []
            for _ in range(3 if quick else 5):
                t0 = time.perf_counter()
                native_fn(labels, result.lesions.geometry, result.volume.array)
                ntimes.append(time.perf_counter() - t0)
            native = statistics.median(ntimes)
            notes += "; native route = Testing/bench/native_route.native_measure on the same lesion label map"
        else:
            notes += "; native route not timed (Testing/bench/native_route.py absent: hook for the lead)"
        peak = _peak_mem_mb(ct, lm, tmp / "out-mem")
        if peak is not None:
            notes += f"; peak memory {peak / info['input_mb']:.1f}x the input volume ({info['input_mb']:.0f} MB)"
    return {"name": "hand CT end to end" + (" (quick)" if quick else ""), "our_median_s": ours,
            "native_median_s": native, "ratio": (native / ours) if native else None,
            "peak_mem_mb": peak, "notes": notes}


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row, indent=2))
