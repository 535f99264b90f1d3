"""Slice images of a case with its lesions outlined (for the HTML reports).

3D images: axial planes through the largest lesions, resampled in RAS (any grid
orientation), shown as Slicer shows an axial view — patient right on the left of the
picture (radiological convention), anterior at the top.  2D radiographs: the image as
acquired, cropped around the lesions.  Outlines are drawn from the lesion label map
(``lesion_labels.nrrd``); drawing uses Pillow (the fonts of matplotlib, which the
report's other figures need).
"""

from __future__ import annotations

import functools
from pathlib import Path

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


#: lesion view layout (pixels of the PNG): the view's longer side, title lines, margins
VIEW_PX, TITLE_LINE_PX, PANEL_PAD_PX, FONT_PX = 300, 14, 14, 11


def lesion_panels(volume, labels: np.ndarray, lesion_rows: list[dict], max_panels: int = 6,
                  title: str = "", context_mm: float = 12.0) -> bytes:
    """PNG with up to ``max_panels`` views around the largest lesions, outlines coloured per
    lesion (2 px for the lesion named, 1 px for others); each view at least ``2 * context_mm``
    across (the vertebra or finger in view), titled with the site the lesion was assigned to,
    with a scale bar (mm) and, for axial views, R / L / A / P at its edges.  Drawn with Pillow
    into the pixels directly (a view's voxels as blocks, as a viewer shows them at this zoom):
    a tenth of what a plotting library's figure costs, for reports of hundreds of cases."""
    from PIL import Image, ImageDraw
    from calcinosis.core.pipeline import lesion_colors
    from .figures import _plt, _png_image
    _plt()        # FiguresUnavailable without matplotlib, as the report's other figures
    geom = volume.geometry
    size_col = "area_mm2" if geom.is_2d else "volume_mm3"
    rows = sorted([r for r in lesion_rows if r.get(size_col) is not None], key=lambda r: -float(r[size_col]))[:max_panels]
    if not rows:
        raise ValueError("no lesions to show")
    colors = lesion_colors(max(int(r["lesion_id"]) for r in lesion_rows))
    ct = (volume.modality == "CT")
    ncol = min(3, len(rows))
    nrow = int(np.ceil(len(rows) / ncol))
    title_h = 3 * TITLE_LINE_PX + 6
    panel_w, panel_h = VIEW_PX + 2 * PANEL_PAD_PX, title_h + VIEW_PX + PANEL_PAD_PX
    top = 2 * TITLE_LINE_PX if title else 0
    canvas = Image.new("RGB", (panel_w * ncol, top + panel_h * nrow), "white")
    draw = ImageDraw.Draw(canvas)
    font, bold = _font(FONT_PX), _font(FONT_PX, bold=True)
    if title:
        draw.text((canvas.width / 2, TITLE_LINE_PX), title, fill="black", font=_font(FONT_PX + 2), anchor="mm")
    for n, r in enumerate(rows):
        row_k, col_k = divmod(n, ncol)
        x0, y0 = col_k * panel_w, top + row_k * panel_h
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
            extent = (0.0, float(rr[0] - rr[-1]), 0.0, float(aa[0] - aa[-1]))
            label = f"axial S = {center[2]:.1f} mm"
        if ct:
            vmin, vmax = -450.0, 1050.0
        else:
            vmin, vmax = np.percentile(img, [1, 99.5]) if img.size else (0.0, 1.0)
        width_mm, height_mm = abs(extent[1] - extent[0]), abs(extent[3] - extent[2])
        scale = VIEW_PX / max(width_mm, height_mm, 1e-6)                     # px per mm
        w, h = max(int(round(width_mm * scale)), 1), max(int(round(height_mm * scale)), 1)
        rgb = view_rgb(img, lab, (h, w), vmin, vmax, colors, lid)
        vx, vy = x0 + PANEL_PAD_PX + (VIEW_PX - w) // 2, y0 + title_h + (VIEW_PX - h) // 2
        canvas.paste(Image.fromarray(rgb), (vx, vy))
        site = site_text(r)
        lines = [f"lesion {lid}: {float(r[size_col]):.1f} {'mm²' if geom.is_2d else 'mm³'}"] + ([site] if site else [])
        lines.append(label)
        for k, text in enumerate(lines):
            draw.text((x0 + panel_w / 2, y0 + title_h - (len(lines) - k) * TITLE_LINE_PX), text, fill="black",
                      font=font, anchor="mt")
        length = scale_bar_mm(width_mm)
        bx, by = vx + int(0.06 * w), vy + h - int(0.06 * h)
        draw.rectangle((bx, by - 2, bx + int(round(length * scale)), by + 1), fill="white")
        draw.text((bx + length * scale / 2, by - 4), f"{length:g} mm", fill="white", font=font, anchor="md")
        if not geom.is_2d:
            for tx, ty, t, anchor in ((vx + 3, vy + h / 2, "R", "lm"), (vx + w - 3, vy + h / 2, "L", "rm"),
                                      (vx + w / 2, vy + 3, "A", "mt"), (vx + w / 2, vy + h - 3, "P", "mb")):
                draw.text((tx, ty), t, fill=(255, 255, 0), font=bold, anchor=anchor)
    return _png_image(canvas)


def view_rgb(img: np.ndarray, lab: np.ndarray, shape: tuple[int, int], vmin: float, vmax: float,
             colors, named: int) -> np.ndarray:
    """The view as RGB pixels of ``shape`` (rows, cols): the image windowed to [vmin, vmax] in
    grey, each voxel a block (nearest neighbour), every lesion's outline in its colour, 2 px
    wide for lesion ``named`` and 1 px for the others."""
    rows = np.minimum((np.arange(shape[0]) + 0.5) * img.shape[0] / shape[0], img.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * img.shape[1] / shape[1], img.shape[1] - 1).astype(int)
    grey = np.clip((np.asarray(img, np.float64) - vmin) / max(vmax - vmin, 1e-9), 0.0, 1.0)
    grey = (255 * grey[np.ix_(rows, cols)] + 0.5).astype(np.uint8)
    out = np.repeat(grey[:, :, None], 3, axis=2)
    big = np.asarray(lab)[np.ix_(rows, cols)]
    for v in np.unique(big):
        if v == 0:
            continue
        m = big == v
        inner = ndimage.binary_erosion(m, iterations=2 if int(v) == named else 1, border_value=1)
        c = colors[int(v) - 1] if 0 < int(v) <= len(colors) else (1.0, 1.0, 0.0)
        out[m & ~inner] = [int(round(255 * x)) for x in c[:3]]
    return out


@functools.lru_cache(maxsize=8)
def _font(size: int, bold: bool = False):
    """DejaVu Sans (matplotlib's own font file) at ``size`` px, read once; Pillow's default
    font without it."""
    from PIL import ImageFont
    try:
        import matplotlib
        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def scale_bar_mm(width_mm: float) -> float:
    """A round scale-bar length (1, 2, 5, 10, 20, 50 or 100 mm): the longest within a quarter
    of a view ``width_mm`` wide (1 mm for narrower views)."""
    nice = [length for length in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0) if length <= width_mm / 4]
    return nice[-1] if nice else 1.0


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
