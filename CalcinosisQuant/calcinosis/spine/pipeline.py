"""The spine map, end to end: CT + vertebrae -> calcifications on levels and segments.

Three calls serve the command line, batch runs and the Slicer panel alike:

* :func:`map_spine` (in memory: a CT :class:`~calcinosis.core.volume.Volume` and
  :class:`~.vertebrae.SpineLabels`) -> :class:`SpineResult`;
* :func:`apply_reader_overrides` -> a new :class:`SpineResult` with the reader's
  decisions (fast: nothing is recomputed but the tables);
* :func:`write_spine_outputs` -> the result folder (tables, chart, segmentation,
  provenance), atomically.

:func:`run_spine` loads the files first (the command line's entry point).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from calcinosis.core import image_io, memo, parallel, provenance
from calcinosis.core.dicom_export import NO_LESION_WARNING, DicomExport, LesionEntry, write_dicom_objects
from calcinosis.core.errors import InputError
from calcinosis.core.image_io import LabelImage
from calcinosis.core.lesions import LesionSet
from calcinosis.core.measure import measure_lesions
from calcinosis.core.output import OutputTransaction
from calcinosis.core import terminology
from calcinosis.core.pipeline import write_lesion_images
from calcinosis.core.progress import Progress, report
from calcinosis.core.tables import Column, Table
from calcinosis.core.volume import Volume

from . import overrides as ov
from .anatomy import LEVELS, SEGMENTS, SUBSITES, subsite_color
from .assign import assign_lesions
from .candidates import ENHANCED_BLOOD_HU, CandidateOptions, find_candidates, label_dtype, noise_and_surfaces
from .frame import SpineFrame, build_frame
from .levelcheck import RibCheck, check_levels_against_ribs
from .params import SpineParams
from .summary import lesion_table_columns, levels_table, patient_table
from .vertebrae import LabelValues, SpineLabels, label_values, load_spine_labels, read_label_map

DROP_REASONS = ("prevertebral", "outside_levels", "bone_rim_posterior")
INDEX_COLUMNS = {"bbox_k_min": 0, "bbox_k_max": 0, "bbox_j_min": 1, "bbox_j_max": 1, "bbox_i_min": 2,
                 "bbox_i_max": 2}


@dataclass
class SpineResult:
    """A spine map.  ``auto_rows`` are the automatic calcifications (before reader
    overrides); ``table``, ``levels``, ``patient`` and ``lesions`` the final ones.
    Lesion label maps live on the box around the spine (``labels.box``), placed in
    physical space like the CT."""

    volume: Volume
    labels: SpineLabels
    frame: SpineFrame
    params: SpineParams
    assessed: list[str]
    auto_rows: list[dict]
    auto_lesions: LesionSet
    table: Table
    levels: Table
    patient: Table
    lesions: LesionSet
    overrides: list[ov.Override] = field(default_factory=list)
    applied: list[ov.AppliedOverride] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- for the panel
    def segment_names(self) -> list[str]:
        """One name per final lesion: '<level> <segment> <subsite> #<id>'."""
        return [f"{r['level']} {r['segment']} {r['subsite']} #{r['lesion_id']}" for r in self.table.rows]

    def segment_colors(self) -> list[tuple[float, float, float]]:
        """Colour by segment (sub-sites in shades of their segment's colour)."""
        return [subsite_color(r["subsite"]) for r in self.table.rows]

    def segment_terminologies(self) -> list[str]:
        """Each calcification coded as such, in the part of the spine its level lies in
        (:mod:`calcinosis.core.terminology`)."""
        return [terminology.terminology_entry(*terminology.spine_region(r["level"])) for r in self.table.rows]

    def dicom_entries(self) -> list[LesionEntry]:
        """What the DICOM SEG and SR say of each calcification (:mod:`calcinosis.core.dicom_export`):
        volume, level, segment, sub-site and pattern; the disco-vertebral level as region
        (:func:`~calcinosis.core.terminology.spine_level_region`)."""
        out = []
        for r, label, color in zip(self.table.rows, self.segment_names(), self.segment_colors()):
            region, lat = terminology.spine_level_region(r["level"])
            out.append(LesionEntry(int(r["lesion_id"]), label, region, lat, "volume", float(r["volume_mm3"]),
                                   [("level", r["level"]), ("segment", r["segment"]), ("subsite", r["subsite"]),
                                    ("pattern", r["pattern"])], color))
        return out

    def full_grid_labels(self, dtype=np.uint16) -> np.ndarray:
        """The final lesion label map on the CT's own grid (lesion_id per voxel)."""
        out = np.zeros(self.volume.geometry.shape, dtype=dtype)
        out[self.labels.box.slices] = self.lesions.labels.astype(dtype, copy=False)
        return out

    def vertebrae_table(self) -> Table:
        return vertebrae_table(self.frame, self.labels)


VERTEBRA_COLUMNS = [
    Column("vertebra", "string", "", "Vertebra"),
    Column("status", "string", "", "used, or why not (duplicated, out of order, not bone on this CT)"),
    Column("body_r_mm", "double", "mm", "Body centre, R (RAS)"),
    Column("body_a_mm", "double", "mm", "Body centre, A (RAS)"),
    Column("body_s_mm", "double", "mm", "Body centre, S (RAS)"),
    Column("canal_r_mm", "double", "mm", "Canal centre at the body's mid-height, R (RAS)"),
    Column("canal_a_mm", "double", "mm", "Canal centre, A (RAS)"),
    Column("canal_s_mm", "double", "mm", "Canal centre, S (RAS)"),
    Column("axis_cranial_r", "double", "", "Cranio-caudal axis (unit vector towards the head), R"),
    Column("axis_cranial_a", "double", "", "Cranio-caudal axis, A"),
    Column("axis_cranial_s", "double", "", "Cranio-caudal axis, S"),
    Column("axis_anterior_r", "double", "", "Antero-posterior axis (unit vector, canal to body), R"),
    Column("axis_anterior_a", "double", "", "Antero-posterior axis, A"),
    Column("axis_anterior_s", "double", "", "Antero-posterior axis, S"),
    Column("canal_width_mm", "double", "mm", "Width of the vertebral foramen"),
    Column("canal_depth_mm", "double", "mm", "Antero-posterior depth of the vertebral foramen"),
    Column("body_width_mm", "double", "mm", "Width of the vertebral body"),
    Column("body_depth_mm", "double", "mm", "Antero-posterior depth of the vertebral body"),
    Column("body_height_mm", "double", "mm", "Height of the vertebral body (between its endplates)"),
    Column("canal_method", "string", "", "How the canal was found: foramen, spinal cord label, mid-line gap, assumed"),
    Column("truncated", "int", "0/1", "1 when the scan's edge cuts the vertebra (shape taken from its neighbour)"),
]


def vertebrae_table(frame: SpineFrame, lab: SpineLabels) -> Table:
    t = Table(VERTEBRA_COLUMNS, name="vertebrae", description="Vertebrae found and the spine frame")
    geoms = {v.name: v for v in frame.vertebrae}
    from .anatomy import order_number
    for name in sorted(set(lab.names) | set(geoms), key=order_number):
        if name in geoms:
            row = geoms[name].to_row()
            row["status"] = "used"
        else:
            row = {"vertebra": name, "status": "; ".join(lab.problems.get(name, ["not usable"]))}
        t.append(row)
    return t


# ---------------------------------------------------------------------- mapping
def _relabel(lesions: LesionSet, new_of_old: np.ndarray, n_new: int) -> LesionSet:
    """A LesionSet with ids mapped old -> new (0 drops the lesion)."""
    lab = new_of_old[lesions.voxel_label]
    sel = lab > 0
    labels = np.zeros(lesions.labels.shape, dtype=label_dtype(n_new))
    labels.ravel()[lesions.voxel_index[sel]] = lab[sel]
    return LesionSet(labels, lesions.geometry, lesions.voxel_index[sel], lab[sel], ["threshold"] * n_new,
                     lesions.params, list(lesions.notes))


#: the slice thickness the map's accuracy is asserted on (the study's 1.25 mm; the hard
#: phantoms' 1.25 mm slices, 0.8-1 mm pixels); thicker slices are measured, and asserted
#: only where docs/validation.md says so
VALIDATED_SLICE_MM = 1.25


def slice_thickness_warning(slice_mm: float) -> str | None:
    """What a CT's axial slices thicker than :data:`VALIDATED_SLICE_MM` (by more than a
    tenth) cost, for the result's warnings; None on thinner slices.  ``slice_mm`` is the
    grid's axial spacing: the reconstruction's own thickness is not in the image (an
    overlapping one, 2.5 mm thick every 1.25 mm, passes as 1.25 mm)."""
    if slice_mm <= 1.1 * VALIDATED_SLICE_MM:
        return None
    return (f"slices of {slice_mm:g} mm, thicker than the {VALIDATED_SLICE_MM:g} mm the spine map's accuracy is "
            f"asserted on: a calcification of a few mm against bone can be lost in the bone's partial-volume rim, "
            f"and a piece of bone cut by a slice (a process's tip, a small osteophyte) can be reported - check the "
            f"ones reported against bone (measured on phantoms: docs/validation.md, 'Slice thickness')")


def map_spine(volume: Volume, labels: SpineLabels, params: SpineParams | None = None,
              overrides: list[ov.Override] | None = None, progress: Progress | None = None,
              share_key: tuple | None = None) -> SpineResult:
    """Find, measure and assign the calcifications of one CT (see the package docs).
    ``share_key`` names the CT and vertebra inputs (files): within
    :func:`calcinosis.core.memo.sharing`, readings with the same key share the spine frame."""
    params = params or SpineParams()
    params.validate()
    labels.vertebra_voxels()     # computed once, before two threads read it
    g_box = labels.box_geometry
    opts = CandidateOptions.from_params(params)
    ct_box = parallel.copy_window(volume.array, labels.box.slices)
    # the bone-surface fit first, on every core; then the spine frame (many small steps per
    # vertebra) on the other core while the candidates are searched (mostly on one)
    report(progress, 0.0, "bone surfaces from the CT")
    fitted = noise_and_surfaces(ct_box, labels, opts)
    with ThreadPoolExecutor(max_workers=1) as pool:
        def frame_and_ribs():
            return _frame_and_rib_check(volume, labels, params.rib_level_check)

        pending_frame = pool.submit(frame_and_ribs if share_key is None else lambda: memo.remember(
            "spine-frame", (share_key, params.rib_level_check), frame_and_ribs))
        cand = find_candidates(volume, labels, opts, ct_box, progress.sub(0.3, 0.7) if progress else None,
                               fitted=fitted)
        frame, ribs = pending_frame.result()
    _apply_rib_check(labels, ribs)
    assessed = frame.assessed_levels()
    if not assessed:
        present = ", ".join(labels.names) or "none"
        raise InputError(f"{labels.source}: no disco-vertebral level C7-T1 … L5-S1 can be assessed: two adjacent, "
                         f"usable vertebrae are needed (vertebrae here: {present})")
    report(progress, 0.7, f"measuring {cand.lesions.n} calcifications")
    box_vol = Volume(ct_box, g_box, dict(volume.meta, modality="CT"))
    table = measure_lesions(cand.lesions, box_vol)
    _shift_index_columns(table, labels.box.lo, g_box.axial_axis)
    report(progress, 0.8, "levels and segments")
    asg = assign_lesions(table, cand.lesions, frame, labels, params)
    # kept only as filling the space between two vertebrae's end plates, but behind the
    # canal: no disc there - the tip of an articular process the label missed, across a
    # gap from the other vertebra's arch
    if cand.disc_fill_only is not None:
        for k, r in enumerate(table.rows):
            if k not in asg.dropped and asg.segment[k] == "posterior" and cand.disc_fill_only[r["lesion_id"] - 1]:
                asg.dropped[k] = "bone_rim_posterior"
    dropped = {r: 0 for r in DROP_REASONS}
    rows = []
    for k, r in enumerate(table.rows):
        if k in asg.dropped:
            dropped[asg.dropped[k]] += 1
            continue
        r = dict(r)
        r.update(level=asg.level[k], segment=asg.segment[k], subsite=asg.subsite[k], pattern=asg.pattern[k])
        rows.append(r)
    # number the calcifications cranial to caudal, then by segment, then S (deterministic)
    rows.sort(key=lambda r: (LEVELS.index(r["level"]), SEGMENTS.index(r["segment"]), -r["centroid_s_mm"],
                             r["centroid_r_mm"], r["centroid_a_mm"]))
    new_of_old = np.zeros(cand.lesions.n + 1, dtype=np.int64)
    for new_id, r in enumerate(rows, start=1):
        new_of_old[r["lesion_id"]] = new_id
        r["lesion_id"] = new_id
    auto_lesions = _relabel(cand.lesions, new_of_old, len(rows))
    warnings = list(dict.fromkeys(list(volume.meta.get("warnings", [])) + list(labels.warnings)))
    thick = slice_thickness_warning(g_box.spacing_along_array_axis(g_box.axial_axis))
    if thick:
        warnings.append(thick)
    notes = [f"{v.name}: {n}" for v in frame.vertebrae for n in v.notes]
    notes += [f"{v.name}: canal found by {v.canal_method}" for v in frame.vertebrae if v.canal_method != "foramen"]
    has_aorta = labels.has_aorta
    stats = {"candidates_rejected": dict(cand.rejected), "calcifications_dropped": dropped,
             "aorta_found_by_shape": cand.aorta_by_shape, "aorta_label": has_aorta,
             "rib_labels": labels.has_ribs, "disc_labels": labels.has_discs, "notes": notes, **cand.stats}
    # enhanced vessels found by shape (the blood measured in them) recognise the aorta's wall
    # calcifications as vascular (they touch the lumen) even where the aorta is not one tube
    enhanced = params.detect_aorta and (cand.stats.get("blood_hu") or 0.0) >= ENHANCED_BLOOD_HU
    if not has_aorta and not cand.aorta_by_shape and not enhanced:
        warnings.append("no aorta label and no contrast-filled aorta found: aortic wall calcifications lying against "
                        "the spine cannot be told from ligament calcifications (give a label map with the aorta)")
    result = SpineResult(volume, labels, frame, params, assessed, rows, auto_lesions, Table([]), Table([]),
                         Table([]), auto_lesions, warnings=warnings, inputs=dict(labels.inputs), stats=stats)
    out = apply_reader_overrides(result, overrides or [])
    report(progress, 1.0, f"{len(out.table)} calcifications on {len(assessed)} levels")
    return out


def _frame_and_rib_check(volume: Volume, labels: SpineLabels, check: bool) -> tuple[SpineFrame, RibCheck | None]:
    frame = build_frame(labels)
    if not check:
        return frame, None
    v = frame.vertebrae
    ribs = check_levels_against_ribs(volume, [g.name for g in v], np.array([g.body for g in v]),
                                     np.array([g.u for g in v]), np.array([g.r for g in v]), np.array([g.a for g in v]))
    return frame, ribs


def _apply_rib_check(labels: SpineLabels, ribs: RibCheck | None) -> None:
    """The level names against the ribs (:mod:`.levelcheck`): recorded in the inputs; two or
    more vertebrae off is an error, one off a warning."""
    if ribs is None:
        labels.inputs["rib_level_check"] = {"status": "off"}
        return
    labels.inputs["rib_level_check"] = ribs.to_dict()
    hint = "check the vertebra names (or set --param rib_level_check=false for a patient whose ribs are known " \
           "to be atypical)"
    if ribs.status == "no ribs":
        raise InputError(f"{labels.source}: the vertebra names disagree with the ribs in this CT: {ribs.reason}, "
                         f"where thoracic vertebrae carry ribs; {hint}")
    if ribs.status == "shifted":
        n = abs(ribs.offset)
        way = "lower" if ribs.offset > 0 else "higher"
        raise InputError(f"{labels.source}: the vertebra names disagree with the ribs in this CT: the last vertebra "
                         f"carrying a rib is named {ribs.last_rib}, where T12 is expected (T11 or L1 in anatomical "
                         f"variants): every vertebra looks named {n} vertebrae {way} than it is; {hint}")
    if ribs.status == "not checked":
        labels.warnings.append(f"{labels.source}: the vertebra names could not be checked against the ribs "
                               f"({ribs.reason}); a label map or point list off by whole vertebrae would go unnoticed: "
                               "confirm the level count (from C2 or the sacrum) on the images")
    if ribs.status == "variant or one off":
        labels.warnings.append(f"{labels.source}: the last vertebra carrying a rib is named {ribs.last_rib}, not "
                               f"T12: an anatomical variant (eleven or thirteen rib pairs, a transitional vertebra) "
                               f"or every name one vertebra off; check the level names")


def _shift_index_columns(table: Table, lo: tuple[int, int, int], axial_axis: int) -> None:
    for r in table.rows:
        for col, ax in INDEX_COLUMNS.items():
            if r.get(col) is not None:
                r[col] = int(r[col]) + lo[ax]
        for col in ("axial_slice_first", "axial_slice_last"):
            if r.get(col) is not None:
                r[col] = int(r[col]) + lo[axial_axis]


def apply_reader_overrides(result: SpineResult, overrides: list[ov.Override]) -> SpineResult:
    """The same map with the reader's overrides applied to its automatic calcifications
    (replaces any overrides the result held)."""
    rows, applied = ov.apply_overrides(result.auto_rows, overrides, result.assessed,
                                       result.params.override_tolerance_mm)
    new_of_old = np.zeros(len(result.auto_rows) + 1, dtype=np.int64)
    final_rows = []
    for new_id, r in enumerate(rows, start=1):
        new_of_old[r["lesion_id"]] = new_id
        r = dict(r)
        r["lesion_id"] = new_id
        final_rows.append(r)
    for a in applied:
        if a.status == "applied" and a.override.action == "change" and a.auto_lesion_id is not None:
            a.lesion_id = int(new_of_old[a.auto_lesion_id])
    table = Table(lesion_table_columns(), final_rows, name="lesions",
                  description="Spinal calcifications: engine measures plus level, segment, sub-site and pattern")
    lesions = _relabel(result.auto_lesions, new_of_old, len(final_rows))
    warnings = [w for w in result.warnings if not w.startswith("reader override")]
    for a in applied:
        if a.status != "applied":
            warnings.append(f"reader override row {a.override.row} ({a.override.action}) {a.status}: {a.message}")
    return replace(result, table=table, levels=levels_table(final_rows, result.assessed),
                   patient=patient_table(final_rows, result.assessed), lesions=lesions,
                   overrides=list(overrides), applied=applied, warnings=warnings)


# ---------------------------------------------------------------------- files
def require_ct(volume: Volume, name: str) -> Volume:
    """The spine map's input check: a 3D image that is (or does not say it is not) a CT;
    marked as CT in HU.  ``name`` says which image in the message."""
    if volume.is_2d:
        raise InputError(f"{name} is a 2D image; the spine map needs a CT volume")
    if volume.modality not in (None, "CT"):
        raise InputError(f"{name} is {volume.modality}; the spine map needs a CT (values in HU)")
    volume.meta["modality"] = "CT"
    volume.meta["intensity_unit"] = "HU"
    return volume


def run_spine(ct: str | Path, *, vertebrae: str | Path | None = None, points: str | Path | None = None,
              aorta: str | Path | None = None, overrides: str | Path | None = None,
              subregions: str | Path | None = None,
              params: SpineParams | None = None, series: str | None = None, record_paths: bool = False,
              progress: Progress | None = None) -> SpineResult:
    """Load the CT and the vertebra input, map, apply reader overrides from a CSV."""
    params = params or SpineParams()
    params.validate()
    over = ov.read_overrides(overrides) if overrides is not None else []
    report(progress, 0.0, "loading CT")

    def load() -> tuple[Volume, SpineLabels]:
        # the label map is read (decompressed) and its values counted on the other core while the CT is read
        # (the CT is kept once, with the labels, when the inputs are shared: not also on its own)
        with memo.paused(), ThreadPoolExecutor(max_workers=1) as pool:
            label_map = pool.submit(_read_and_count, vertebrae) if vertebrae is not None and points is None else None
            volume = require_ct(image_io.load_image(ct, series=series), str(ct))
            report(progress, 0.15, "loading vertebrae")
            label_image, values = label_map.result() if label_map is not None else (None, None)
        lab = load_spine_labels(volume, vertebrae, params.convention, points, aorta=aorta,
                                bone_hu=params.points_bone_hu, progress=progress.sub(0.15, 0.3) if progress else None,
                                label_image=label_image, values=values, subregions=subregions)
        return volume, lab

    # the readings of one CT in a batch (calcinosis.core.memo) read it and its vertebrae once,
    # and share the spine frame (it depends on neither threshold nor minimum size)
    inputs_key = (tuple(memo.file_key(f) for f in (ct, vertebrae, points, aorta, subregions)), series,
                  repr(params.convention), params.points_bone_hu)
    volume, lab = memo.remember("spine-inputs", lambda: inputs_key, load)
    result = map_spine(volume, lab, params, over, progress.sub(0.3, 1.0) if progress else None,
                       share_key=inputs_key)
    inputs = {"ct": provenance.describe_volume(volume, str(ct), record_paths),
              "vertebrae": _describe_file(vertebrae if vertebrae is not None else points, record_paths,
                                          kind="label map" if vertebrae is not None else "point list")}
    inputs["vertebrae"].update({"convention": lab.convention.to_dict() if lab.convention else None,
                                "vertebrae_found": list(lab.names)})
    inputs["vertebrae"].update(lab.inputs)
    if aorta is not None:
        inputs["aorta"] = _describe_file(aorta, record_paths, kind="aorta mask")
    if subregions is not None:
        inputs["subregions"] = dict(_describe_file(subregions, record_paths, kind="SPINEPS sub-region mask"),
                                    parts=lab.subregion_parts)
    if overrides is not None:
        inputs["overrides"] = _describe_file(overrides, record_paths, kind="reader overrides")
    result.inputs = inputs
    return result


def _read_and_count(path: str | Path) -> tuple[LabelImage, LabelValues]:
    label_image = read_label_map(path)
    return label_image, label_values(label_image, Path(path).name)


def _describe_file(path, record_paths: bool, kind: str) -> dict:
    from calcinosis.core.dicom_meta import path_content_id
    d = {"kind": kind, "input_id": path_content_id(path)}
    if record_paths:
        d["path"] = str(path)
    return d


def results_summary(result: SpineResult) -> dict:
    p = result.patient.rows[0]
    return {
        "n_calcifications": len(result.table),
        "coverage": p["coverage"], "levels_assessed": list(result.assessed),
        "levels_not_assessed": [lv for lv in LEVELS if lv not in result.assessed],
        "per_segment": {s: p[f"count_{s}"] for s in SEGMENTS},
        "per_subsite": {s: p[f"count_{s}"] for s in SUBSITES},
        "automatic_calcifications": len(result.auto_rows),
        "reader_overrides": {s: sum(a.status == s for a in result.applied) for s in ("applied", "unmatched",
                                                                                        "rejected")},
        "lesion_label_grid": {"note": "lesion_labels.nrrd covers the box around the spine on the CT's grid "
                                      "(same spacing and axes, shifted origin)",
                              "box_index_kji_lo": list(result.labels.box.lo),
                              "box_index_kji_hi": list(result.labels.box.hi)},
        **result.stats,
    }


def write_spine_outputs(outdir: str | Path, result: SpineResult, *, force: bool = False, case_id: str | None = None,
                        write_images: bool = True, chart: bool = True, command: str = "spine", nifti: bool = False,
                        dicom: DicomExport | None = None, progress: Progress | None = None) -> list[Path]:
    """Write the result folder (docs/spine.md lists every file); ``dicom``: also
    ``lesions.seg.dcm`` (and ``measurements.sr.dcm``) on the source DICOM series."""
    from .chart import chart_available, draw_level_chart
    warnings = list(result.warnings)
    with OutputTransaction(outdir, force=force) as out:
        report(progress, 0.0, "writing tables")
        out.write_table(result.table, "lesions.csv")
        out.write_table(result.levels, "levels.csv")
        out.write_table(result.patient, "patient.csv")
        out.write_table(result.vertebrae_table(), "vertebrae.csv")
        if result.overrides:
            out.write_table(ov.record_table(result.applied), "reader_overrides.csv")
            out.write_table(ov.overrides_table(result.overrides), "overrides.csv")
        # the chart (matplotlib, Python) is drawn on the other core while the label map and the
        # segmentation are compressed and written (SimpleITK, outside Python's lock)
        with ThreadPoolExecutor(max_workers=1) as pool:
            drawing = None
            if chart:
                if chart_available():
                    report(progress, 0.3, "drawing the level chart")
                    drawing = pool.submit(draw_level_chart, result.levels, out.path("level_chart.png"))
                else:
                    warnings.append("level_chart.png not drawn: matplotlib is not installed")
            if write_images:
                report(progress, 0.5, "writing label map and segmentation")
                write_lesion_images(out, result.lesions, result.segment_names(), result.segment_colors(),
                                    terminologies=result.segment_terminologies(), nifti=nifti)
            if dicom is not None:
                report(progress, 0.7, "writing DICOM SEG" + (" and SR" if dicom.sr else ""))
                if not write_dicom_objects(out, dicom, result.full_grid_labels(), result.volume.geometry,
                                           result.dicom_entries(), planar=False, case_id=case_id):
                    warnings.append(NO_LESION_WARNING)
            if drawing is not None:
                drawing.result()
        out.write_workbook()
        record = provenance.build_record(
            command, result.inputs, result.params.to_dict(), results_summary(result), warnings,
            outputs=out.written + ["provenance.json"], case_id=case_id)
        out.write_json(record, "provenance.json")
        written = [Path(outdir) / n for n in out.written]
    report(progress, 1.0, "done")
    return written
