"""Slice images of a case with its lesions outlined (for the HTML reports).

3D images: axial planes through the largest lesions, resampled in RAS (any grid
orientation), shown as Slicer shows an axial view — patient right on the left of the
picture (radiological convention), anterior at the top.  2D radiographs: the image as
acquired, cropped around the lesions.  Outlines are drawn from the lesion label map
(``lesion_labels.nrrd``); drawing uses matplotlib (imported lazily).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from calcinosis.core.geometry import Geometry


def axial_crop(array: np.ndarray, geometry: Geometry, center_ras, half_mm: float, step_mm: float,
               order: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axial plane through ``center_ras``, sampled on a RAS grid.

    Returns (image[row, col], r_values[col], a_values[row]) with row 0 = most anterior and
    col 0 = most right (R decreasing to the right), i.e. ready for ``imshow`` (origin upper)
    in radiological convention."""
    c = np.asarray(center_ras, float)
    n = int(np.ceil(2 * half_mm / step_mm)) + 1
    r = c[0] + half_mm - step_mm * np.arange(n)      # right -> left
    a = c[1] + half_mm - step_mm * np.arange(n)      # anterior -> posterior (top -> bottom)
    A, R = np.meshgrid(a, r, indexing="ij")
    ras = np.stack([R, A, np.full_like(R, c[2])], axis=-1)
    ijk = geometry.ras_to_ijk(ras)
    coords = np.stack([ijk[..., 2], ijk[..., 1], ijk[..., 0]])  # to (k, j, i)
    img = ndimage.map_coordinates(array, coords, order=order, mode="constant",
                                  cval=float(array.min()) if order else 0.0, prefilter=False)
    return img, r, a


def site_text(row: dict) -> str:
    """Where the lesion was assigned, as the panel names it: 'T8-T9 anterior (disc), linear'
    or 'R index DIP, periarticular'; '' for a plain measurement."""
    if row.get("level"):
        sub = f" ({str(row['subsite']).replace('_', ' ')})" if row.get("subsite") and row["subsite"] != row.get("segment") else ""
        pat = f", {row['pattern']}" if row.get("pattern") else ""
        return f"{row['level']} {row.get('segment') or ''}{sub}{pat}".strip()
    if row.get("digit"):
        kind = f", {row['kind']}" if row.get("kind") else ""
        return f"{row.get('side') or ''} {row['digit']} {row.get('zone') or ''}{kind}".strip()
    return ""


def lesion_panels(volume, labels: np.ndarray, lesion_rows: list[dict], max_panels: int = 6,
                  title: str = "", context_mm: float = 12.0) -> bytes:
    """PNG with up to ``max_panels`` views around the largest lesions, outlines coloured per
    lesion; each view at least ``2 * context_mm`` across (the vertebra or finger in view) and
    titled with the site the lesion was assigned to."""
    from .figures import _plt, _png
    from calcinosis.core.pipeline import lesion_colors
    plt = _plt()
    geom = volume.geometry
    size_col = "area_mm2" if geom.is_2d else "volume_mm3"
    rows = sorted([r for r in lesion_rows if r.get(size_col) is not None], key=lambda r: -float(r[size_col]))[:max_panels]
    if not rows:
        raise ValueError("no lesions to show")
    colors = lesion_colors(max(int(r["lesion_id"]) for r in lesion_rows))
    ct = (volume.modality == "CT")
    ncol = min(3, len(rows))
    nrow = int(np.ceil(len(rows) / ncol))
    # a fixed layout (no tight layout, no tick labels: a scale bar and orientation letters as
    # in a viewer): the drawing is a fifth of what measured axes cost, and every view is square
    panel_w, panel_h, title_h = 3.3, 3.45, 0.55
    top_h = 0.35 if title else 0.0
    fig = plt.figure(figsize=(panel_w * ncol, panel_h * nrow + top_h))
    fig_h = panel_h * nrow + top_h
    side = panel_h - title_h - 0.1
    for n, r in enumerate(rows):
        row_k, col_k = divmod(n, ncol)
        left = col_k * panel_w + (panel_w - side) / 2
        bottom = fig_h - top_h - (row_k + 1) * panel_h + 0.05
        ax = fig.add_axes((left / (panel_w * ncol), bottom / fig_h, side / (panel_w * ncol), side / fig_h))
        ax.set_axis_off()
        lid = int(r["lesion_id"])
        if geom.is_2d:
            img, lab, extent, label = _crop_2d(volume, labels, r, context_mm)
        else:
            ext = max(float(r.get(f"bbox_{a}_max_mm", 0) or 0) - float(r.get(f"bbox_{a}_min_mm", 0) or 0) for a in "ra")
            half = max(context_mm, 2.0 * ext)
            step = max(min(geom.spacing[:2]) * 0.75, half / 200)
            center = [float(r["centroid_r_mm"]), float(r["centroid_a_mm"]), float(r["centroid_s_mm"])]
            img, rr, aa = axial_crop(volume.array.astype(np.float32), geom, center, half, step, order=1)
            lab, _, _ = axial_crop(labels, geom, center, half, step, order=0)
            # picture x grows to the patient's left: distance from the right edge, mm
            extent = (0.0, float(rr[0] - rr[-1]), 0.0, float(aa[0] - aa[-1]))
            label = f"axial S = {center[2]:.1f} mm"
        if ct:
            vmin, vmax = -450.0, 1050.0
        else:
            vmin, vmax = np.percentile(img, [1, 99.5]) if img.size else (0, 1)
        ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest", origin="upper")
        for v in np.unique(lab):
            if v == 0:
                continue
            m = (lab == v).astype(float)
            ys = np.linspace(extent[3], extent[2], m.shape[0])
            xs = np.linspace(extent[0], extent[1], m.shape[1])
            ax.contour(xs, ys, m, levels=[0.5], colors=[colors[int(v) - 1] if int(v) - 1 < len(colors) else "y"],
                       linewidths=1.6 if int(v) == lid else 1.0)
        _scale_bar(ax, extent)
        if not geom.is_2d:
            _orientation_letters(ax)
        site = site_text(r)
        ax.set_title(f"lesion {lid}: {float(r[size_col]):.1f} {'mm²' if geom.is_2d else 'mm³'}"
                     + (f"\n{site}" if site else "") + f"\n{label}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0 - 0.08 / fig_h, va="top")
    return _png(fig, tight=False)


def scale_bar_mm(width_mm: float) -> float:
    """A round scale-bar length (1, 2, 5, 10, 20, 50 or 100 mm): the longest within a quarter
    of a view ``width_mm`` wide (1 mm for narrower views)."""
    nice = [length for length in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0) if length <= width_mm / 4]
    return nice[-1] if nice else 1.0


def _scale_bar(ax, extent) -> None:
    """A scale bar (mm) in the lower left corner of a view whose ``extent`` is in mm."""
    x0, x1, y0, y1 = extent
    width, height = abs(x1 - x0), abs(y1 - y0)
    length = scale_bar_mm(width)
    sx = 1.0 if x1 >= x0 else -1.0
    sy = 1.0 if y1 >= y0 else -1.0
    bx = x0 + sx * 0.06 * width
    by = min(y0, y1) + 0.06 * height if sy > 0 else max(y0, y1) - 0.06 * height
    ax.plot([bx, bx + sx * length], [by, by], color="white", linewidth=2.5, solid_capstyle="butt")
    ax.text(bx + sx * length / 2, by + sy * 0.025 * height, f"{length:g} mm", color="white", fontsize=7,
            ha="center", va="bottom")


def _orientation_letters(ax) -> None:
    """R / L / A / P at the view's edges (radiological convention: patient right on the left)."""
    for x, y, t in ((0.02, 0.5, "R"), (0.98, 0.5, "L"), (0.5, 0.98, "A"), (0.5, 0.02, "P")):
        ax.text(x, y, t, transform=ax.transAxes, color="yellow", fontsize=7, fontweight="bold",
                ha="left" if x < 0.1 else "right" if x > 0.9 else "center",
                va="top" if y > 0.9 else "bottom" if y < 0.1 else "center")


def _crop_2d(volume, labels, r, context_mm: float = 8.0):
    geom = volume.geometry
    ijk = geom.ras_to_ijk(np.array([float(r["centroid_r_mm"]), float(r["centroid_a_mm"]), float(r["centroid_s_mm"])]))
    ci, cj = int(round(ijk[0])), int(round(ijk[1]))
    size = float(r.get("area_mm2") or 1.0)
    half_mm = max(context_mm, 3.0 * np.sqrt(size))
    hi = int(np.ceil(half_mm / geom.spacing[0]))
    hj = int(np.ceil(half_mm / geom.spacing[1]))
    a = volume.array[0]
    l2 = labels[0]
    j0, j1 = max(0, cj - hj), min(a.shape[0], cj + hj + 1)
    i0, i1 = max(0, ci - hi), min(a.shape[1], ci + hi + 1)
    img = a[j0:j1, i0:i1].astype(np.float32)
    lab = l2[j0:j1, i0:i1]
    extent = (i0 * geom.spacing[0], i1 * geom.spacing[0], j1 * geom.spacing[1], j0 * geom.spacing[1])
    return img, lab, extent, "radiograph (image columns →, rows ↓)"
