"""``calcinosis follow``: two result folders of one patient -> every lesion followed.

Reads both results (:mod:`.results`), registers the follow-up image to the baseline's
(:mod:`.register`; or none, for images already aligned), matches the lesions in groups
(:mod:`.match`) and classes each group by the change of its size (the ±25% classes of
:func:`calcinosis.core.change.classify_change`: grown > +25%, shrunk < -25%, else stable; a
baseline lesion alone is resolved, a follow-up lesion alone new).  Per patient and per digit
(hand) or level (spine): the totals, their change and class, the counts of each lesion class,
and the change split into what the matched lesions, the new ones and the resolved ones
contributed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calcinosis.core import image_io, provenance
from calcinosis.core.change import classify_change
from calcinosis.core.errors import InputError
from calcinosis.core.output import OutputTransaction
from calcinosis.core.progress import Progress, report
from calcinosis.core.protocol import protocol_differences
from calcinosis.core.tables import Column, Table

from .match import LesionGroup, match_lesions
from .register import PiecewiseMotion, RigidMotion, identity, labels_on_grid, refine_locally, register_rigid
from .results import GROUP_COLUMNS, PLACE_COLUMNS, LesionResult, load_image_of, read_result, size_column

LESION_CLASSES = ("grown", "shrunk", "stable", "new", "resolved")
#: each class of change as drawn (RGB 0-1), in the report and in Slicer's comparison view
CLASS_COLORS = {"grown": (0.9, 0.2, 0.2), "shrunk": (0.2, 0.5, 1.0), "stable": (0.2, 0.8, 0.3),
                "new": (1.0, 0.6, 0.0), "resolved": (0.7, 0.3, 0.9), "missing": (1.0, 1.0, 0.0)}
_GROWTH = {"progression": "grown", "improvement": "shrunk", "stable": "stable", "missing": "missing"}


@dataclass
class FollowResult:
    baseline: LesionResult
    followup: LesionResult
    motion: RigidMotion
    size: str
    groups: list
    changes: Table
    summary: Table
    warnings: list = field(default_factory=list)
    followup_labels_on_baseline: np.ndarray | None = None
    limit_pct: float = 25.0


def _unit(size: str) -> str:
    return "mm2" if size == "area_mm2" else "mm3"


def change_columns(command: str, size: str) -> list[Column]:
    u = _unit(size)
    what = "area" if u == "mm2" else "volume"
    place = [Column(c, "string", "", f"{c} of the lesion (baseline's; a new lesion's own)")
             for c in PLACE_COLUMNS[command]]
    return [
        Column("group_id", "int", "", "Lesion group: one baseline lesion and what it became (or a new lesion)"),
        Column("change", "string", "", "grown (> +limit%), shrunk (< -limit%), stable, new, resolved; missing "
                                       "without a size"),
        Column("pattern", "string", "", "one-to-one, split, merged, complex, new or resolved"),
        Column("baseline_lesion_ids", "string", "", "lesion_id(s) in the baseline result (';'-separated)"),
        Column("followup_lesion_ids", "string", "", "lesion_id(s) in the follow-up result (';'-separated)"),
        *place,
        Column(f"baseline_{what}_{u}", "double", u, f"Sum of the group's baseline {size}"),
        Column(f"followup_{what}_{u}", "double", u, f"Sum of the group's follow-up {size}"),
        Column("change_pct", "double", "%", "100 x (follow-up - baseline) / baseline"),
        Column("size_measure", "string", "", "The lesion column compared (pv_volume_mm3 when both results have it)"),
        Column("linked_by", "string", "", "overlap (voxels shared after registration) or distance (centroids)"),
        Column("dice", "double", "", "Overlap of the group's voxels after registration, 2|A∩B|/(|A|+|B|)"),
        Column("distance_mm", "double", "mm", "Distance between the group's centroids after registration"),
        Column("baseline_centroid_r_mm", "double", "mm", "Baseline centroid, R (RAS, baseline image)"),
        Column("baseline_centroid_a_mm", "double", "mm", "Baseline centroid, A (RAS, baseline image)"),
        Column("baseline_centroid_s_mm", "double", "mm", "Baseline centroid, S (RAS, baseline image)"),
        Column("followup_centroid_r_mm", "double", "mm", "Follow-up centroid, R (RAS, follow-up image)"),
        Column("followup_centroid_a_mm", "double", "mm", "Follow-up centroid, A (RAS, follow-up image)"),
        Column("followup_centroid_s_mm", "double", "mm", "Follow-up centroid, S (RAS, follow-up image)"),
    ]


def summary_columns(command: str, size: str) -> list[Column]:
    u = _unit(size)
    what = "area" if u == "mm2" else "volume"
    keys = [Column(c, "string", "", f"{c} ('all' in the patient's row)") for c in GROUP_COLUMNS[command]]
    return [
        Column("scope", "string", "", "patient, or the anatomical group of the row"),
        *keys,
        Column("baseline_lesions", "int", "lesions", "Lesions at baseline"),
        Column("followup_lesions", "int", "lesions", "Lesions at follow-up"),
        *[Column(f"n_{c}", "int", "groups", f"Lesion groups classed {c}") for c in LESION_CLASSES],
        Column(f"baseline_total_{what}_{u}", "double", u, f"Sum of baseline {size}"),
        Column(f"followup_total_{what}_{u}", "double", u, f"Sum of follow-up {size}"),
        Column("change_pct", "double", "%", "100 x (follow-up total - baseline total) / baseline total"),
        Column("change_class", "string", "", "progression (> +limit%), stable, improvement (< -limit%)"),
        Column(f"change_from_matched_{u}", "double", u, "Follow-up minus baseline over the matched lesion groups"),
        Column(f"added_by_new_{u}", "double", u, "Sum of the new lesions"),
        Column(f"lost_by_resolved_{u}", "double", u, "Sum of the resolved lesions (as a positive number)"),
    ]


def bone_anchors(landmarks_path: Path) -> tuple[np.ndarray, list]:
    """The middle of each bone of each ray - between consecutive landmarks CMC, MCP, PIP / IP,
    DIP, tip of a hand result's ``landmarks.mrk.json`` - with its (side, digit); none without
    the file."""
    from calcinosis.core.pointlists import read_point_list
    from calcinosis.hand.anatomy import DIGITS, digit_points
    if not Path(landmarks_path).is_file():
        return np.zeros((0, 3)), []
    points = {label: p for label, p in read_point_list(landmarks_path, "landmarks") if p is not None}
    out, keys = [], []
    for side in ("R", "L"):
        for digit in DIGITS:
            chain = [points.get(f"{side}_{digit}_{j}") for j in digit_points(digit)]
            for a, b in zip(chain, chain[1:]):
                if a is not None and b is not None:
                    out.append((np.asarray(a, float) + np.asarray(b, float)) / 2.0)
                    keys.append((side, digit))
    return (np.array(out) if out else np.zeros((0, 3))), keys


def vertebra_anchors(vertebrae_csv: Path) -> np.ndarray:
    """The body centre of each vertebra a spine result used (``vertebrae.csv``); none without it."""
    if not Path(vertebrae_csv).is_file():
        return np.zeros((0, 3))
    rows = [r for r in Table.read_csv(vertebrae_csv).rows
            if r.get("status") == "used" and r.get("body_r_mm") is not None]
    return np.array([[r["body_r_mm"], r["body_a_mm"], r["body_s_mm"]] for r in rows], float).reshape(-1, 3)


def _sizes(result: LesionResult, size: str) -> dict[int, float | None]:
    return {int(r["lesion_id"]): (None if r.get(size) is None else float(r[size])) for r in result.lesions.rows}


def _rows_by_id(result: LesionResult) -> dict[int, dict]:
    return {int(r["lesion_id"]): r for r in result.lesions.rows}


def _centroids(result: LesionResult) -> tuple[np.ndarray, np.ndarray]:
    n = len(result.lesions)
    cen = np.zeros((n, 3))
    dia = np.zeros(n)
    for r in result.lesions.rows:
        k = int(r["lesion_id"]) - 1
        cen[k] = [r["centroid_r_mm"], r["centroid_a_mm"], r["centroid_s_mm"]]
        dia[k] = float(r.get("equivalent_diameter_mm") or 0.0)
    return cen, dia


def _sum(ids, sizes) -> float | None:
    vals = [sizes.get(i) for i in ids]
    return None if any(v is None for v in vals) else float(sum(vals))


def follow(baseline_dir, followup_dir, baseline_image=None, followup_image=None, registration: str = "local",
           limit_pct: float = 25.0, progress: Progress | None = None) -> FollowResult:
    """Read, register, match and class (no writing)."""
    if not (0.0 < limit_pct < 100.0):
        raise InputError(f"--limit: {limit_pct:g}% must lie between 0 and 100")
    base = read_result(baseline_dir, "baseline")
    fu = read_result(followup_dir, "follow-up")
    if base.command != fu.command:
        raise InputError(f"baseline is a result of `calcinosis {base.command}`, follow-up of `calcinosis "
                         f"{fu.command}`: follow lesions between results of the same command")
    size = size_column(base, fu)
    warnings = [f"protocol: {d}" for d in protocol_differences(base.protocol, fu.protocol)]
    if size != "pv_volume_mm3" and not base.is_2d and any("slice thickness" in w or "kernel" in w for w in warnings):
        warnings.append("the sizes compared are threshold volumes (volume_mm3), which depend on the protocol; "
                        "measure both with --partial-volume")
    bc, bd = _centroids(base)
    fc, fd = _centroids(fu)
    if registration in ("rigid", "local"):
        report(progress, 0.0, "loading the images")
        bv = load_image_of(base, baseline_image, "baseline", "--baseline-image")
        fv = load_image_of(fu, followup_image, "follow-up", "--followup-image")
        motion = register_rigid(bv, fv, progress.sub(0.05, 0.5 if registration == "local" else 0.8)
                                if progress else None)
        local = []
        mapping = PiecewiseMotion(motion, bc, [])
        if registration == "local" and bv.is_2d:
            motion.record["local_refinement_note"] = "radiographs: one motion per image (no local refinement)"
        elif registration == "local" and len(bc):
            labels_on_image = labels_on_grid(base.labels, base.geometry, bv.geometry)
            # a hand's anchors are chained along their digit, a spine's along the column
            anchors, keys = bc, None
            if base.command == "hand":
                rows = _rows_by_id(base)
                keys = [(rows[i].get("side"), rows[i].get("digit")) if rows[i].get("digit") not in (None, "unassigned")
                        else None for i in range(1, len(bc) + 1)]
                # each bone of each finger too (the middle of two landmarks of its ray), so that a
                # finger bent at a joint is followed bone by bone, from the hand outwards
                bones, bone_keys = bone_anchors(base.folder / "landmarks.mrk.json")
                if len(bones):
                    anchors, keys = np.vstack([bones, bc]), bone_keys + keys
            elif base.command == "spine":
                # each vertebral body too (vertebrae.csv), all chained along the column
                bodies = vertebra_anchors(base.folder / "vertebrae.csv")
                keys = ["spine"] * (len(bodies) + len(bc))
                if len(bodies):
                    anchors = np.vstack([bodies, bc])
            local = refine_locally(bv, fv, motion, anchors, labels_on_image,
                                   progress.sub(0.5, 0.8) if progress else None, keys)
            mapping = PiecewiseMotion(motion, anchors, local)
        motion.record.update({"local_refinement": registration == "local", **mapping.record})
    elif registration == "none":
        motion = identity("--registration none: the images are taken as aligned")
        mapping = PiecewiseMotion(motion, bc, [])
    else:
        raise InputError(f"--registration: expected local, rigid or none, got {registration!r}")
    report(progress, 0.85, "matching lesions")
    fu_on_base = mapping.carry_labels(fu.labels, fu.geometry, base.geometry)
    fc_on_base = mapping.to_baseline(fc) if len(fc) else fc
    groups = match_lesions(base.labels, fu_on_base, len(base.lesions), len(fu.lesions), bc, fc_on_base, bd, fd)
    changes, summary = _tables(base, fu, groups, size, limit_pct)
    if registration != "none":
        matched = [g.distance_mm for g in groups if g.pattern == "one-to-one" and g.distance_mm is not None]
        if matched:
            motion.record["median_matched_distance_mm"] = round(float(np.median(matched)), 3)
    report(progress, 1.0, f"{len(groups)} lesion groups")
    return FollowResult(base, fu, motion, size, groups, changes, summary, warnings, fu_on_base, limit_pct)


def _tables(base: LesionResult, fu: LesionResult, groups: list[LesionGroup], size: str,
            limit_pct: float) -> tuple[Table, Table]:
    u = _unit(size)
    what = "area" if u == "mm2" else "volume"
    changes = Table(change_columns(base.command, size), name="lesion_changes",
                    description="One row per lesion group: baseline -> follow-up")
    bs, fs = _sizes(base, size), _sizes(fu, size)
    brow, frow = _rows_by_id(base), _rows_by_id(fu)
    for n, g in enumerate(groups, start=1):
        b_total = _sum(g.baseline_ids, bs) if g.baseline_ids else 0.0
        f_total = _sum(g.followup_ids, fs) if g.followup_ids else 0.0
        if g.pattern == "new":
            change, pct = "new", None
        elif g.pattern == "resolved":
            change, pct = "resolved", None
        else:
            pct, cls, _ = classify_change(b_total, f_total, limit_pct)
            change = _GROWTH[cls]
        where = brow[g.baseline_ids[0]] if g.baseline_ids else frow[g.followup_ids[0]]
        first_b = brow[g.baseline_ids[0]] if g.baseline_ids else None
        first_f = frow[g.followup_ids[0]] if g.followup_ids else None
        row = {"group_id": n, "change": change, "pattern": g.pattern,
               "baseline_lesion_ids": ";".join(map(str, g.baseline_ids)),
               "followup_lesion_ids": ";".join(map(str, g.followup_ids)),
               f"baseline_{what}_{u}": b_total, f"followup_{what}_{u}": f_total,
               "change_pct": None if pct is None else round(pct, 3), "size_measure": size,
               "linked_by": g.linked_by or None, "dice": None if g.dice is None else round(g.dice, 4),
               "distance_mm": None if g.distance_mm is None else round(g.distance_mm, 3)}
        for c in PLACE_COLUMNS[base.command]:
            row[c] = where.get(c)
        for prefix, r in (("baseline", first_b), ("followup", first_f)):
            for axis in "ras":
                row[f"{prefix}_centroid_{axis}_mm"] = None if r is None else r[f"centroid_{axis}_mm"]
        changes.append(row)
    summary = Table(summary_columns(base.command, size), name="change_summary",
                    description="Change per patient and per anatomical group")
    keys = GROUP_COLUMNS[base.command]
    scopes = [("patient", None)]
    seen = []
    for r in changes.rows:
        k = tuple(r[c] for c in keys)
        if keys and k not in seen:
            seen.append(k)
    scopes += [(" ".join(f"{c} {v}" for c, v in zip(keys, k)), k) for k in sorted(seen, key=lambda k: tuple(
        "" if v is None else str(v) for v in k))]
    for scope, k in scopes:
        rows = [r for r in changes.rows if k is None or tuple(r[c] for c in keys) == k]
        b_ids = [int(i) for r in rows for i in (r["baseline_lesion_ids"] or "").split(";") if i]
        f_ids = [int(i) for r in rows for i in (r["followup_lesion_ids"] or "").split(";") if i]
        b_total, f_total = _sum(b_ids, bs), _sum(f_ids, fs)
        b_total = 0.0 if not b_ids else b_total
        f_total = 0.0 if not f_ids else f_total
        pct, cls, _ = classify_change(b_total, f_total, limit_pct)
        matched = [r for r in rows if r["change"] in ("grown", "shrunk", "stable")]
        out = {"scope": scope, "baseline_lesions": len(b_ids), "followup_lesions": len(f_ids),
               f"baseline_total_{what}_{u}": b_total, f"followup_total_{what}_{u}": f_total,
               "change_pct": None if pct is None else round(pct, 3), "change_class": cls,
               f"change_from_matched_{u}": float(sum(r[f"followup_{what}_{u}"] - r[f"baseline_{what}_{u}"]
                                                     for r in matched)) if matched else 0.0,
               f"added_by_new_{u}": float(sum(r[f"followup_{what}_{u}"] or 0.0 for r in rows if r["change"] == "new")),
               f"lost_by_resolved_{u}": float(sum(r[f"baseline_{what}_{u}"] or 0.0 for r in rows
                                                  if r["change"] == "resolved"))}
        for c in LESION_CLASSES:
            out[f"n_{c}"] = sum(1 for r in rows if r["change"] == c)
        for i, c in enumerate(keys):
            out[c] = "all" if k is None else k[i]
        summary.append(out)
    return changes, summary


def write_follow_outputs(outdir, result: FollowResult, *, force: bool = False, case_id: str | None = None,
                         progress: Progress | None = None) -> list[Path]:
    """``lesion_changes.csv``, ``change_summary.csv``, ``followup_labels_on_baseline.nrrd``
    (the follow-up's lesions on the baseline grid) and ``baseline_labels.nrrd`` (the
    baseline's, the same grid: load both with the baseline image in Slicer to compare),
    ``provenance.json``."""
    with OutputTransaction(outdir, force=force) as out:
        report(progress, 0.0, "writing tables")
        out.write_table(result.changes, "lesion_changes.csv")
        out.write_table(result.summary, "change_summary.csv")
        labels = result.followup_labels_on_baseline
        image_io.write_image(labels, result.baseline.geometry, out.path("followup_labels_on_baseline.nrrd"))
        image_io.write_image(result.baseline.labels, result.baseline.geometry, out.path("baseline_labels.nrrd"))
        out.write_workbook()
        inputs = {"baseline_result": _describe(result.baseline), "followup_result": _describe(result.followup)}
        params = {"registration": result.motion.record, "size_measure": result.size, "limit_pct": result.limit_pct,
                  "match_distance_mm": "max(3 mm, mean radius of the two lesions)"}
        patient = result.summary.rows[0]
        results = {"groups": len(result.groups),
                   **{f"n_{c}": patient[f"n_{c}"] for c in LESION_CLASSES},
                   "patient_change_pct": patient["change_pct"], "patient_change_class": patient["change_class"],
                   "baseline_protocol": result.baseline.protocol, "followup_protocol": result.followup.protocol}
        record = provenance.build_record("follow", inputs, params, results, result.warnings,
                                         outputs=out.written + ["provenance.json"],
                                         case_id=case_id or result.baseline.case_id)
        out.write_json(record, "provenance.json")
        written = [Path(outdir) / n for n in out.written]
        report(progress, 1.0, "done")
    return written


def _describe(r: LesionResult) -> dict:
    return {"command": r.command, "case_id": r.case_id, "lesions": len(r.lesions),
            "image_input_id": r.image_description.get("input_id"), "protocol": r.protocol}
