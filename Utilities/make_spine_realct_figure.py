#!/usr/bin/env python3
"""Draw docs/images/spine-real-ct.png: the spine map on the two real CTs of
``../shared/data/external`` (never copied into the repository; only this picture is).

Top row: the contrast-enhanced radiotherapy CT (TCIA Pancreatic-CT-CBCT-SEG, vertebrae
given as points), sagittal and axial slices through L3 and L5 (where the vena cava and
the iliac vessels were once reported) and through the largest calcification still
reported: the vertebra masks outlined green, what the map reports filled red.  Bottom
row: the TotalSegmentator example CT with its own labels, its vessel labels (aorta,
vena cava, iliac vessels ...) outlined orange.  Needs matplotlib.

    python Utilities/make_spine_realct_figure.py [--external ../shared/data/external]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images" / "spine-real-ct.png"
sys.path.insert(0, str(ROOT / "CalcinosisQuant"))


def _panels(res, title: str, axes, vessel_mask=None) -> None:
    """Sagittal and three axial views (L3, L5, the largest reported calcification, else
    T11) cropped to the box around the spine."""
    ct = res.volume.array
    g = res.volume.geometry
    lab = res.labels
    vert = np.zeros(ct.shape, bool)
    vert[lab.box.slices] = lab.vert > 0
    found = res.full_grid_labels() > 0
    ax_s = g.axial_axis
    ax_r = g.array_axis_along(np.array([1.0, 0.0, 0.0]))

    def cut(axis: int, index: int) -> tuple:
        sl = list(lab.box.slices)
        sl[axis] = index
        return tuple(sl)

    def axial_at(ras) -> int:
        kji = np.round(g.ras_to_ijk(np.asarray(ras, float)[None])[0][::-1]).astype(int)
        return int(np.clip(kji[ax_s], 0, ct.shape[ax_s] - 1))

    views = [("sagittal", cut(ax_r, int(np.round(np.median(np.nonzero(vert)[ax_r])))))]
    bodies = {v.name: v.body for v in res.frame.vertebrae}
    for name in ("L3", "L5"):
        if name in bodies:
            views.append((name, cut(ax_s, axial_at(bodies[name]))))
    if len(res.table):
        big = max(res.table.rows, key=lambda r: r["voxel_count"])
        views.append((f"reported #{big['lesion_id']} {big['level']}",
                      cut(ax_s, axial_at([big["centroid_r_mm"], big["centroid_a_mm"], big["centroid_s_mm"]]))))
    elif "T11" in bodies:
        views.append(("T11", cut(ax_s, axial_at(bodies["T11"]))))
    for ax, (name, sl) in zip(axes, views):
        img = ct[sl]
        other = [a for a in range(3) if sl[a].__class__ is slice]
        aspect = g.spacing_along_array_axis(other[0]) / g.spacing_along_array_axis(other[1])
        ax.imshow(img, cmap="gray", vmin=-250, vmax=700, aspect=aspect,
                  origin="lower" if name == "sagittal" and other[0] == ax_s and g.direction_of_array_axis(ax_s)[2] > 0
                  else "upper")
        masks = [(vert[sl], "lime")] + ([(vessel_mask[sl], "orange")] if vessel_mask is not None else [])
        for mask, colour in masks:
            if mask.any():
                ax.contour(mask, [0.5], colors=colour, linewidths=0.7)
        if found[sl].any():
            ax.contourf(found[sl], [0.5, 1.5], colors="red", alpha=0.85)
        ax.set_title(f"{title}: {name}", fontsize=8)
        ax.axis("off")
    for ax in axes[len(views):]:
        ax.axis("off")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--external", type=Path, default=ROOT.parent / "shared" / "data" / "external")
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from calcinosis.core import image_io
    from calcinosis.spine import pipeline
    from calcinosis.spine.conventions import category, structure_names

    tcia = args.external / "tcia-pancreatic-ct"
    ts = args.external / "totalsegmentator-example"
    res1 = pipeline.run_spine(tcia / "ct.nrrd", points=tcia / "vertebra_points_lps.csv")
    res2 = pipeline.run_spine(ts / "example_ct.nii.gz", vertebrae=ts / "example_seg_fast_force_split.nii.gz")
    seg = image_io.load_label_image(ts / "example_seg_fast_force_split.nii.gz").layers[0]
    vessels = [v for v, n in structure_names("totalsegmentator").items() if category(n) in ("aorta", "vessel")]
    fig, axs = plt.subplots(2, 4, figsize=(16, 8.4))
    _panels(res1, f"contrast CT, points ({len(res1.table)} reported)", axs[0])
    _panels(res2, f"TotalSegmentator example ({len(res2.table)} reported)", axs[1], np.isin(seg, vessels))
    fig.suptitle("Spine map on real CTs - green: vertebrae, orange: enhanced vessels, red: reported", fontsize=10)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=70)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
