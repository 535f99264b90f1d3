#!/usr/bin/env python3
"""Draw the Sample Data thumbnails (CalcinosisQuant/Resources/Icons/SampleData/<sample>.png,
128 x 128) from the samples themselves (calcinosis.mrml.sampledata): the radiograph, a
coronal maximum-intensity projection of the CTs, the MRI's middle coronal slice.

    python Utilities/make_sample_thumbnails.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "CalcinosisQuant" / "Resources" / "Icons" / "SampleData"
SIZE = 128


def picture(volume, modality: str) -> np.ndarray:
    """A 2D picture (rows top to bottom = superior to inferior / image rows) of the volume."""
    a = np.asarray(volume.array, np.float32)
    if a.shape[0] == 1:                      # radiograph
        img = a[0]
    elif modality == "MR":                   # coronal grid (k -> A): the slice with the most hand in it
        img = a[int(np.argmax(a.reshape(a.shape[0], -1).mean(axis=1)))]
    else:                                    # axial CT (k -> S, j -> P): mean along A (radiograph-like), S up
        img = np.clip(a, -200, 2000).mean(axis=1)[::-1]
    lo, hi = np.percentile(img, [1, 99.7])
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)


def thumbnail(img: np.ndarray, path: Path) -> None:
    from PIL import Image
    h, w = img.shape
    side = max(h, w)
    square = np.zeros((side, side), np.float32)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = img
    Image.fromarray((square * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.LANCZOS).convert("RGB").save(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="calcinosis-samples-"))
    from calcinosis.core import image_io
    from calcinosis.mrml import sampledata
    OUT.mkdir(parents=True, exist_ok=True)
    for s in sampledata.SAMPLES:
        folder = sampledata.make_sample(s.name, work)
        volume = image_io.load_image(folder / s.image)
        thumbnail(picture(volume, s.modality), OUT / f"{s.name}.png")
        print(OUT / f"{s.name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
