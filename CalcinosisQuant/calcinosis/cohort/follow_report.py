"""The report of a follow-up (``calcinosis report FOLLOW_DIR --image BASELINE --followup-image
FOLLOWUP``): the patient's change, then every lesion group with its baseline and follow-up
side by side (issue 14).

Each pair of views is one axial plane of the baseline, through the group's baseline centroid
(a new lesion's: its follow-up centroid carried onto the baseline), and the same plane of the
follow-up image, sampled through the registration's motion - so the two views show the same
anatomy.  Outlines: the baseline's lesions (``baseline_labels.nrrd``) on the left, the
follow-up's carried onto the baseline grid (``followup_labels_on_baseline.nrrd``) on the right,
the group's own 2 px wide.  Without the images the report has the tables only, and says so.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from calcinosis.core import image_io
from calcinosis.core.errors import InputError
from calcinosis.core.tables import Table
from calcinosis.follow.pipeline import CLASS_COLORS
from calcinosis.follow.register import labels_on_grid, mapping_from_record

from .report import HtmlDoc, _provenance_block
from .slices import VIEW_PX, _font, axial_crop, scale_bar_mm, site_text, view_rgb

#: the views: at least this far around the centroid (mm), at most this many groups drawn
CONTEXT_MM, MAX_GROUPS = 12.0, 60


def _plane_through_motion(array: np.ndarray, geometry, centre_ras, half_mm: float, step_mm: float, motion,
                          order: int) -> np.ndarray:
    """The baseline's axial plane through ``centre_ras`` (as :func:`axial_crop` samples it),
    read in the follow-up image: each point carried by the inverse motion."""
    c = np.asarray(centre_ras, float)
    n = int(np.ceil(2 * half_mm / step_mm)) + 1
    r = c[0] + half_mm - step_mm * np.arange(n)
    a = c[1] + half_mm - step_mm * np.arange(n)
    A, R = np.meshgrid(a, r, indexing="ij")
    ras = np.stack([R, A, np.full_like(R, c[2])], axis=-1).reshape(-1, 3)
    ijk = geometry.ras_to_ijk(motion.to_followup(ras)).reshape(n, n, 3)
    coords = np.stack([ijk[..., 2], ijk[..., 1], ijk[..., 0]])
    return ndimage.map_coordinates(array, coords, order=order, mode="constant",
                                   cval=float(array.min()) if order else 0.0, prefilter=False)


def group_views(row: dict, base_vol, fu_vol, base_labels: np.ndarray, fu_labels_on_base: np.ndarray, motion,
                unit: str, what: str, modality: str | None = None) -> bytes:
    """PNG: the group's baseline view (left) and follow-up view (right), titled with its
    class, ids, sizes and site."""
    from PIL import Image, ImageDraw

    from .figures import _png_image       # Pillow only: drawn in Slicer's Python without matplotlib too
    geom = base_vol.geometry
    if row["baseline_centroid_r_mm"] is not None:
        centre = [row[f"baseline_centroid_{a}_mm"] for a in "ras"]
    else:
        centre = motion.to_baseline([row[f"followup_centroid_{a}_mm"] for a in "ras"])[0].tolist()
    size = max(float(row[f"baseline_{what}_{unit}"] or 0.0), float(row[f"followup_{what}_{unit}"] or 0.0))
    half = max(CONTEXT_MM, 2.5 * (size * 6 / np.pi) ** (1 / 3))
    step = max(min(geom.spacing[:2]) * 0.75, half / 200)
    b_img, rr, aa = axial_crop(base_vol.array.astype(np.float32), geom, centre, half, step, order=1)
    b_lab, _, _ = axial_crop(base_labels, geom, centre, half, step, order=0)
    f_img = _plane_through_motion(fu_vol.array.astype(np.float32), fu_vol.geometry, centre, half, step, motion, 1)
    f_lab, _, _ = axial_crop(fu_labels_on_base, geom, centre, half, step, order=0)
    ct = str(modality or base_vol.modality or "").upper() == "CT"
    # one window for both views (a lesion gone must look gone, not re-windowed)
    window = (-450.0, 1050.0) if ct else tuple(float(v) for v in np.percentile(np.r_[b_img.ravel(), f_img.ravel()],
                                                                               [1, 99.5]))
    color = CLASS_COLORS.get(row["change"], (1.0, 1.0, 0.0))
    b_ids = [int(i) for i in (row["baseline_lesion_ids"] or "").split(";") if i]
    f_ids = [int(i) for i in (row["followup_lesion_ids"] or "").split(";") if i]
    pad, title_h = 10, 3 * 14 + 14
    canvas = Image.new("RGB", (2 * (VIEW_PX + 2 * pad), title_h + VIEW_PX + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    for k, (img, lab, ids, label, sz) in enumerate((
            (b_img, b_lab, b_ids, "baseline", row[f"baseline_{what}_{unit}"]),
            (f_img, f_lab, f_ids, "follow-up (registered)", row[f"followup_{what}_{unit}"]))):
        vmin, vmax = window
        # the group's lesions in the class colour, the others grey
        mapped = np.where(np.isin(lab, ids), 1, np.where(lab > 0, 2, 0))
        rgb = view_rgb(img, mapped, (VIEW_PX, VIEW_PX), vmin, vmax, [color, (0.6, 0.6, 0.6)], 1)
        x0 = k * (VIEW_PX + 2 * pad) + pad
        canvas.paste(Image.fromarray(rgb), (x0, title_h))
        text = f"{label}: {'-' if sz is None else f'{float(sz):.1f}'} {unit.replace('mm3', 'mm³').replace('mm2', 'mm²')}"
        draw.text((x0 + VIEW_PX / 2, title_h - 4), text, fill="black", font=font, anchor="mb")
        width_mm = float(rr[0] - rr[-1])
        length = scale_bar_mm(width_mm)
        px = VIEW_PX / max(width_mm, 1e-6)
        bx, by = x0 + 12, title_h + VIEW_PX - 14
        draw.rectangle((bx, by - 2, bx + int(round(length * px)), by + 1), fill="white")
        draw.text((bx + length * px / 2, by - 4), f"{length:g} mm", fill="white", font=font, anchor="md")
    pct = "" if row["change_pct"] is None else f" {float(row['change_pct']):+.0f}%"
    site = site_text({k: v for k, v in row.items() if k != "pattern"})    # the group's pattern is not a site
    pattern = "" if row["pattern"] in (row["change"], "one-to-one") else f" ({row['pattern']})"
    head = f"group {row['group_id']}: {row['change']}{pct}{pattern}" + (f" - {site}" if site else "")
    draw.text((canvas.width / 2, 4), head, fill="black", font=_font(12), anchor="mt")
    draw.text((canvas.width / 2, 21), f"axial S = {centre[2]:.1f} mm (baseline RAS)", fill="black", font=font,
              anchor="mt")
    return _png_image(canvas)


def follow_report_html(follow_dir: str | Path, baseline_image: str | Path | None = None,
                       followup_image: str | Path | None = None) -> str:
    """The follow-up's report (see the module's text)."""
    from .report import _read_prov
    d = Path(follow_dir)
    prov = _read_prov(d) or {}
    changes = Table.read_csv(d / "lesion_changes.csv")
    summary = Table.read_csv(d / "change_summary.csv")
    unit = "mm2" if any(c.name.endswith("_mm2") and c.name.startswith("baseline_") for c in changes.columns) else "mm3"
    what = "area" if unit == "mm2" else "volume"
    doc = HtmlDoc(f"Follow-up of case {prov.get('case_id') or d.name}")
    doc.h(1, f"Lesions followed from baseline to follow-up: case {prov.get('case_id') or d.name}")
    doc.p(f"Report made {_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()} from the files in "
          f"{d.name}; coordinates RAS (as Slicer shows them), lengths in mm.", "meta")
    p = summary.rows[0]
    doc.h(2, "Summary")
    doc.kpis([("% change", "-" if p["change_pct"] is None else f"{p['change_pct']:+.1f}"),
              ("class", p["change_class"]), ("new", p["n_new"]), ("resolved", p["n_resolved"]),
              ("grown", p["n_grown"]), ("shrunk", p["n_shrunk"]), ("stable", p["n_stable"])])
    doc.source(f"change_summary.csv (patient row); sizes: {changes.rows[0]['size_measure'] if len(changes) else '-'}")
    doc.warnings(prov.get("warnings") or [], "Warnings (protocol, sizes)")
    doc.toc_here()
    doc.h(2, "Per patient and per digit / level")
    doc.table(summary)
    doc.source("change_summary.csv")
    doc.h(2, "Every lesion: baseline and follow-up side by side")
    if baseline_image is None or followup_image is None:
        doc.note("Views left out: give the images (--image BASELINE --followup-image FOLLOWUP) to see each lesion at "
                 "both visits.")
    else:
        motion = mapping_from_record((prov.get("parameters") or {}).get("registration") or {})
        base_vol = _checked_image(baseline_image, ((prov.get("inputs") or {}).get("baseline_result") or {}),
                                  "--image")
        fu_vol = _checked_image(followup_image, ((prov.get("inputs") or {}).get("followup_result") or {}),
                                "--followup-image")
        modality = (((prov.get("inputs") or {}).get("baseline_result") or {}).get("protocol") or {}).get("modality")
        # on the image's grid (a spine result's label maps cover the spine's box only)
        base_li = image_io.load_label_image(d / "baseline_labels.nrrd")
        fu_li = image_io.load_label_image(d / "followup_labels_on_baseline.nrrd")
        base_labels = labels_on_grid(base_li.layers[0], base_li.geometry, base_vol.geometry)
        fu_labels = labels_on_grid(fu_li.layers[0], fu_li.geometry, base_vol.geometry)
        order = sorted(changes.rows, key=lambda r: (r["change"] == "stable", -max(
            float(r[f"baseline_{what}_{unit}"] or 0), float(r[f"followup_{what}_{unit}"] or 0))))
        for r in order[:MAX_GROUPS]:
            doc.img(group_views(r, base_vol, fu_vol, base_labels, fu_labels, motion, unit, what, modality),
                    f"group {r['group_id']}")
        if len(order) > MAX_GROUPS:
            doc.p(f"… {len(order) - MAX_GROUPS} more stable groups in lesion_changes.csv.", "source")
        doc.p("Changed groups first, then by size. Outline colours: grown red, shrunk blue, stable green, new "
              "orange, resolved purple; other lesions grey.", "source")
    doc.h(2, "Lesion groups")
    doc.table(changes, max_rows=500)
    doc.source("lesion_changes.csv (one row per lesion group)")
    _provenance_block(doc, prov)
    return doc.render()


def _checked_image(path, described: dict, option: str):
    volume = image_io.load_image(path)
    want, got = described.get("image_input_id"), volume.meta.get("input_id")
    if want and got and want != got:
        raise InputError(f"{option} {Path(path).name}: not the image that result was measured on")
    return volume


def is_follow_folder(d: Path) -> bool:
    p = Path(d) / "provenance.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("command") == "follow"
    except (OSError, ValueError, AttributeError):
        return False
