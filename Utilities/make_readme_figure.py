#!/usr/bin/env python3
"""Draw docs/images/overview.png (the README's picture) from the project's own phantoms.

Left: the synthetic hand radiograph with the deposits the detector found outlined and
numbered (``calcinosis hand``). Right: the spine map's level x segment chart of the
synthetic TAP CT (``calcinosis spine``). Needs matplotlib (``pip install -e .[headless]``).

    python Utilities/make_readme_figure.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images" / "overview.png"


def run(*argv) -> None:
    subprocess.run([sys.executable, "-m", "calcinosis.cli", *map(str, argv), "-q"], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="calcinosis-figure-"))
    xr, spine = work / "xr", work / "spine"
    if not (xr / "result" / "lesions.csv").exists():
        run("phantom", "hand-xr", "-o", xr / "phantom", "--force")
        run("hand", xr / "phantom" / "xr.dcm", "--landmarks", xr / "phantom" / "landmarks.mrk.json",
            "-o", xr / "result", "--force")
    if not (spine / "result" / "level_chart.png").exists():
        run("phantom", "spine-ct", "-o", spine / "phantom", "--force")
        run("spine", spine / "phantom" / "ct", "--vertebrae", spine / "phantom" / "vertebrae.nii.gz",
            "-o", spine / "result", "--force")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy import ndimage

    from calcinosis.core import image_io
    from calcinosis.core.tables import Table

    image = image_io.load_image(xr / "phantom" / "xr.dcm")
    labels = image_io.load_label_image(xr / "result" / "lesion_labels.nrrd")
    pixels = np.asarray(image.array, dtype=float).squeeze()
    lab = np.asarray(labels.layers[0]).squeeze()
    table = Table.read_csv(xr / "result" / "lesions.csv")

    fig = plt.figure(figsize=(11, 5.2), dpi=110)
    ax = fig.add_axes([0.0, 0.0, 0.44, 0.94])
    lo, hi = np.percentile(pixels, [1, 99.5])
    ax.imshow(pixels, cmap="gray", vmin=lo, vmax=hi, origin="upper")
    edge = lab.astype(bool) & ~ndimage.binary_erosion(lab.astype(bool), iterations=2)
    overlay = np.zeros(lab.shape + (4,))
    overlay[edge] = (1.0, 0.85, 0.1, 1.0)
    ax.imshow(overlay, origin="upper")
    for r in table.rows:
        k = int(r["lesion_id"])
        ys, xs = np.nonzero(lab == k)
        if len(xs):
            ax.text(xs.max() + 8, ys.min(), f"{k}", color=(1.0, 0.85, 0.1), fontsize=7)
    ax.set_title(f"Hand radiograph (synthetic): {len(table)} deposits found, area in mm²", fontsize=10)
    ax.axis("off")
    ax2 = fig.add_axes([0.46, 0.0, 0.54, 0.94])
    ax2.imshow(plt.imread(spine / "result" / "level_chart.png"))
    ax2.set_title("Spine CT (synthetic): calcifications per level and segment", fontsize=10)
    ax2.axis("off")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
