#!/usr/bin/env python3
"""Draw docs/images/hand-real-xr.png: the hand model and the radiograph detector on the real
normal hand of ``../shared/data/external/real-hand-xr-normal`` (never copied into the
repository; only this picture is).

Left: the hand's outline (red; the lead marker is outside it), its bones (yellow), each
digit's centre line (blue) and the automatic landmarks (green +) beside those placed by eye
(cyan x).  Right: what the detector reports on this hand, which has no calcinosis (red: a
false lesion, with its confidence) and the candidates of steps 1-5 its operating point drops
(orange, confidence below 0.5).  Needs matplotlib and Pillow.

    python Utilities/make_hand_realxr_figure.py [--external ../shared/data/external]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images" / "hand-real-xr.png"
sys.path.insert(0, str(ROOT / "CalcinosisQuant"))
SPACING_MM = 0.104


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--external", default=str(ROOT.parent / "shared" / "data" / "external"))
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from calcinosis.core.geometry import Geometry
    from calcinosis.core.volume import Volume
    from calcinosis.hand import detect
    from calcinosis.hand.detect import DetectParams

    folder = Path(args.external) / "real-hand-xr-normal"
    img = np.asarray(Image.open(folder / "normal-hand-pa.jpg").convert("L")).astype(np.float32)
    geom = Geometry.create((img.shape[1], img.shape[0], 1), (SPACING_MM, SPACING_MM, 1.0), (0, 0, 0),
                           np.diag([-1.0, -1.0, 1.0]))
    vol = Volume(img[None], geom, {"modality": "XR", "laterality": "L"})
    det = detect.detect_xr(vol, DetectParams())
    everything = detect.detect_xr(vol, DetectParams(xr_min_confidence=0.0))
    model = det.hand_model
    with open(folder / "landmarks_lps.csv") as f:
        placed = [(float(r["p"]) / SPACING_MM, float(r["l"]) / SPACING_MM) for r in csv.DictReader(f)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 9.5))
    ax = axes[0]
    ax.imshow(img, cmap="gray")
    ax.contour(model.upsample(model.hand, img.shape), [0.5], colors="r", linewidths=0.8)
    ax.contour(model.upsample(model.bone, img.shape), [0.5], colors="y", linewidths=0.3)
    for d in model.digits:
        line = model.to_input_rc(d.centreline)
        ax.plot(line[:, 1], line[:, 0], "b-", lw=0.6)
        for rc in d.points.values():
            r, c = model.to_input_rc(rc)
            ax.plot(c, r, "+", color="lime", ms=9, mew=1.5)
    for r, c in placed:
        ax.plot(c, r, "x", color="cyan", ms=6)
    ax.set_title("hand model: outline, bones, centre lines,\nautomatic (green +) and placed (cyan x) landmarks")
    ax = axes[1]
    ax.imshow(img, cmap="gray")
    dropped = (everything.lesions.labels[0] > 0) & ~(det.lesions.labels[0] > 0)
    ax.contour(dropped, [0.5], colors="orange", linewidths=0.7)
    lab = det.lesions.labels[0]
    ax.contour(lab > 0, [0.5], colors="r", linewidths=1.2)
    for i, conf in enumerate(det.confidence, start=1):
        rows, cols = np.nonzero(lab == i)
        ax.text(cols.max() + 25, rows.mean(), f"{conf:.2f}", color="r", fontsize=9)
    ax.set_title(f"reported on this normal hand: {det.lesions.n} (false; red, with its confidence)\n"
                 f"dropped by the operating point: {everything.lesions.n - det.lesions.n} (orange)")
    for a in axes:
        a.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=70)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
