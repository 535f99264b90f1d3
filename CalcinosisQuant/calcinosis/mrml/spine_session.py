"""The SpineCalcMap panel's work, on MRML nodes, without Qt (tested headless on slicer-core).

The module file ``SpineCalcMap.py`` only wires widgets; its Logic delegates here.  One
:class:`SpineSession` holds the map the panel shows and the reader's corrections:

* :meth:`SpineSession.map` - CT volume node + vertebrae (segmentation node, label map
  node or point list) [+ aorta segment or label map] + :class:`~.params.SpineParams`
  -> :func:`~.pipeline.map_spine` (the command line's code), then the nodes: the
  calcification segmentation (one segment per calcification, named
  ``<level> <segment> <subsite> #<id>``, coloured by segment), the lesion, levels,
  patient and vertebrae table nodes (units and descriptions on every column), a
  level x segment bar chart (assessed levels only; the others are named in the axis
  title and are ``not_assessed`` in the levels table, never 0), and the reader's
  decisions.  Nothing is added to the scene before the map is complete, so a cancelled
  or failed run leaves the scene (and the previous map) as it was.
* Reader correction: :meth:`~SpineSession.review_rows` (every calcification, with what
  the reader decided), :meth:`~SpineSession.stage` a deletion, a change of level /
  segment / sub-site / pattern or a return to the automatic values, then
  :meth:`~SpineSession.apply_corrections` -> :func:`~.overrides.overrides_from_edits`
  and :func:`~.pipeline.apply_reader_overrides` (tables only, nothing re-detected).
  The decisions live in a table node in the overrides-file format (``overrides.csv``),
  so they are saved with the scene, can be loaded from a CSV
  (:meth:`~SpineSession.load_overrides`), and every later :meth:`~SpineSession.map`
  (another threshold ...) re-applies them, matched by centroid.
* :meth:`SpineSession.export` - the files ``calcinosis spine`` writes
  (:func:`~.pipeline.write_spine_outputs`).
* :meth:`SpineSession.jump_to` - centre the slice views on a calcification.
* :func:`run_totalsegmentator` - vertebra labels from the TotalSegmentator extension
  (task ``total``), when it is installed.

Parameter names: the panel's parameter node uses the :class:`~.params.SpineParams` field
names unchanged (:data:`SPINE_PARAMETER_NAMES`), so :func:`spine_params` reads them
straight from it and the defaults come from ``SpineParams`` alone.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from calcinosis import mrml
from calcinosis.core import provenance
from calcinosis.core.errors import InputError
from calcinosis.core.image_io import LabelImage, resample_labels
from calcinosis.core.progress import Progress, report
from calcinosis.core.tables import Column, Table
from calcinosis.core.volume import Volume

from calcinosis.spine import overrides as ov
from calcinosis.spine import pipeline
from calcinosis.spine.anatomy import LEVELS, PATTERNS, SEGMENT_COLORS, SEGMENTS, SUBSITE_SEGMENT, SUBSITES
from calcinosis.spine.params import SpineParams
from calcinosis.spine.vertebrae import CAT_AORTA, SpineLabels, spine_labels

from .tablenodes import fill_table_node
from .views import center_views_on

#: Parameter-node names shared with :class:`SpineParams` (same names, same meaning).
SPINE_PARAMETER_NAMES = tuple(f.name for f in fields(SpineParams))

#: The segmentation node attribute the foundation's scene-close clean-up looks for
#: (``workflow.release_lesion_segmentations``); it also records the map's parameters.
PARAMETERS_ATTRIBUTE = "Calcinosis.DetectionParameters"
#: Node references from the lesion table node to the nodes that belong with it.
REF_VERTEBRAE = "SpineCalcMap.vertebrae"
REF_CHART_TABLE = "SpineCalcMap.chartTable"
REF_RECORD = "SpineCalcMap.overrideRecord"

ACTIONS = ("delete", "change", "revert")
COMMAND = "SpineCalcMap (Slicer): spine map"

VERTEBRA_NODE_CLASSES = ("vtkMRMLSegmentationNode", "vtkMRMLLabelMapVolumeNode", "vtkMRMLMarkupsFiducialNode")


# ---------------------------------------------------------------------- parameters
def spine_params(values) -> SpineParams:
    """:class:`SpineParams` from an object (the parameter node) or a dict holding the
    :data:`SPINE_PARAMETER_NAMES`; validated (a clear :class:`InputError` otherwise)."""
    get = values.get if isinstance(values, dict) else (lambda name, default=None: getattr(values, name, default))
    defaults = SpineParams()
    kw = {}
    for f in fields(SpineParams):
        v = get(f.name, None)
        if v is None:
            continue
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            v = bool(v)
        elif isinstance(default, int):
            if float(v) != int(v):
                raise InputError(f"{f.name}: expected a whole number, got {v!r}")
            v = int(v)
        elif isinstance(default, float):
            v = float(v)
        else:
            v = str(v)
        kw[f.name] = v
    p = SpineParams(**kw)
    p.validate()
    return p


# ---------------------------------------------------------------------- inputs from nodes
def _is(node, class_name: str) -> bool:
    return node is not None and node.IsA(class_name)


def ct_volume_from_node(volume_node) -> Volume:
    """The CT as a core :class:`Volume` sharing the node's voxels (keep it no longer than
    the map); refuses 2D images and volumes that say they are not CT."""
    if volume_node is None:
        raise InputError("no CT selected: choose the CT volume (Inputs, CT)")
    if _is(volume_node, "vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"'{volume_node.GetName()}' is a label map; choose the CT volume as the CT")
    return pipeline.require_ct(mrml.volume_from_node(volume_node, copy=False), f"'{volume_node.GetName()}'")


def _label_array(node, what: str) -> tuple[np.ndarray, object]:
    vol = mrml.volume_from_node(node, copy=False)
    arr = vol.array
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError(f"{what} '{node.GetName()}' holds non-integer values; a label map needs whole numbers")
        arr = arr.astype(np.int32)
    elif arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise InputError(f"{what} '{node.GetName()}' holds negative values ({int(arr.min())})")
    return arr, vol.geometry


def vertebra_input_kind(node) -> str:
    """'segmentation', 'label map' or 'point list' (an :class:`InputError` otherwise)."""
    if node is None:
        raise InputError("no vertebrae selected: choose a segmentation or label map with the vertebrae, or a point "
                         "list with one point per vertebral body labelled T8, L1 ... (or run TotalSegmentator)")
    if _is(node, "vtkMRMLSegmentationNode"):
        return "segmentation"
    if _is(node, "vtkMRMLLabelMapVolumeNode"):
        return "label map"
    if _is(node, "vtkMRMLMarkupsFiducialNode"):
        return "point list"
    raise InputError(f"'{node.GetName()}' ({node.GetClassName()}) cannot give the vertebrae: choose a segmentation, "
                     "a label map or a point list")


def aorta_mask_from_node(node, segment_id: str | None, volume: Volume) -> np.ndarray:
    """Boolean aorta mask on the CT grid: one segment of a segmentation node (all its
    segments when ``segment_id`` is empty), or every non-zero voxel of a label map node."""
    g = volume.geometry
    if _is(node, "vtkMRMLSegmentationNode"):
        li = mrml.label_image_from_segmentation(node, g)
        if not li.segments:
            raise InputError(f"aorta: segmentation '{node.GetName()}' holds no segment")
        if segment_id:
            seg = next((s for s in li.segments if s.segment_id == segment_id), None)
            if seg is None:
                raise InputError(f"aorta: segmentation '{node.GetName()}' has no segment '{segment_id}'")
            mask = li.mask(seg)
            what = f"segment '{seg.name}'"
        else:
            mask = li.union()
            what = f"segmentation '{node.GetName()}'"
    elif _is(node, "vtkMRMLLabelMapVolumeNode"):
        arr, geom = _label_array(node, "aorta label map")
        mask = resample_labels(arr, geom, g) != 0
        what = f"label map '{node.GetName()}'"
    else:
        raise InputError(f"aorta: '{node.GetName()}' is neither a segmentation nor a label map")
    if not mask.any():
        raise InputError(f"aorta: {what} holds no voxel inside the CT")
    return mask


def guess_aorta_segment(segmentation_node) -> str | None:
    """The id of the segment named like the aorta (``aorta``, ``Aorta``, ``aorta_thoracic``
    ...), else of the first segment; None without segments."""
    from .segmentations import segment_ids
    seg = segmentation_node.GetSegmentation()
    ids = segment_ids(seg)
    for sid in ids:
        if seg.GetSegment(sid).GetName().strip().lower().replace(" ", "_").startswith("aorta"):
            return sid
    return ids[0] if ids else None


def labels_from_nodes(volume: Volume, vertebrae_node, convention: str = "auto", aorta_node=None,
                      aorta_segment_id: str | None = None, bone_hu: float = 200.0,
                      progress: Progress | None = None, subregions_node=None) -> tuple[SpineLabels, dict]:
    """:class:`SpineLabels` from the panel's vertebra input (and an optional SPINEPS
    sub-region label map node), and what provenance records of it (kind, convention and
    how it was chosen, vertebrae found - no node names)."""
    kind = vertebra_input_kind(vertebrae_node)
    report(progress, 0.0, f"reading the vertebra {kind}")
    if kind == "segmentation":
        li = mrml.label_image_from_segmentation(vertebrae_node, volume.geometry)
        if not li.segments:
            raise InputError(f"vertebrae: segmentation '{vertebrae_node.GetName()}' holds no segment")
        lab = spine_labels(volume, label_image=li, convention=convention, source="vertebra segmentation",
                           progress=progress.sub(0.1, 0.9) if progress else None)
    elif kind == "label map":
        arr, geom = _label_array(vertebrae_node, "vertebra label map")
        lab = spine_labels(volume, label_image=LabelImage([arr], geom, [], source="vertebra label map"),
                           convention=convention, source="vertebra label map",
                           progress=progress.sub(0.1, 0.9) if progress else None)
    else:
        points = mrml.points_from_markups(vertebrae_node)
        if not points:
            raise InputError(f"vertebrae: point list '{vertebrae_node.GetName()}' holds no point")
        lab = spine_labels(volume, points=points, bone_hu=bone_hu, source="vertebra point list")
    if aorta_node is not None:
        report(progress, 0.9, "aorta")
        mask = aorta_mask_from_node(aorta_node, aorta_segment_id, volume)
        sub = mask[lab.box.slices]
        if not sub.any():
            lab.warnings.append("aorta: the aorta given holds no voxel near the spine")
        lab.category[sub & (lab.vert == 0)] = CAT_AORTA
    if subregions_node is not None:
        from calcinosis.spine.subregions import subregions_on_box
        if not _is(subregions_node, "vtkMRMLLabelMapVolumeNode"):
            raise InputError(f"sub-regions: '{subregions_node.GetName()}' is not a label map")
        arr, geom = _label_array(subregions_node, "sub-region label map")
        lab.subregion, lab.subregion_parts = subregions_on_box(
            LabelImage([arr], geom, [], source="sub-region label map"), volume.geometry, lab.box.slices,
            "sub-region label map")
    described = {"kind": f"Slicer {kind} node",
                 "convention": lab.convention.to_dict() if lab.convention else None,
                 "vertebrae_found": list(lab.names)}
    described.update(lab.inputs)
    report(progress, 1.0, f"{len(lab.names)} vertebrae")
    return lab, described


# ---------------------------------------------------------------------- reader decisions <-> tables
def overrides_from_table(table: Table, where: str = "reader decisions") -> list[ov.Override]:
    """Reader decisions from a table in the overrides-file format (what ``overrides.csv``
    holds; :func:`~.overrides.read_overrides` reads the same from a file)."""
    names = {c.name for c in table.columns}
    missing = [c for c in ("action", "centroid_r_mm", "centroid_a_mm", "centroid_s_mm") if c not in names]
    if table.rows and missing:
        raise InputError(f"{where}: missing column(s) {', '.join(missing)}")
    out = []
    for n, row in enumerate(table.rows, start=1):
        if not any(v not in (None, "") for v in row.values()):
            continue
        here = f"{where}, row {n}"
        try:
            c = np.array([float(row["centroid_r_mm"]), float(row["centroid_a_mm"]), float(row["centroid_s_mm"])])
        except (TypeError, ValueError):
            raise InputError(f"{here}: centroid_r_mm, centroid_a_mm, centroid_s_mm must be numbers (RAS, mm)") from None
        lid = row.get("lesion_id")
        try:
            lid = None if lid in (None, "") else int(float(lid))
        except ValueError:
            raise InputError(f"{here}, column lesion_id: {lid!r} is not a number") from None

        def text(name):
            v = row.get(name)
            return str(v).strip() if v not in (None, "") else None

        o = ov.Override(str(row.get("action") or "").strip().lower(), c, lid, text("level"), text("segment"),
                        text("subsite"), text("pattern"), text("note") or "", n)
        out.append(ov.validate_override(o, here))
    return out


def overrides_from_table_node(node) -> list[ov.Override]:
    if node is None:
        return []
    return overrides_from_table(mrml.table_from_table_node(node), f"reader decisions '{node.GetName()}'")


# ---------------------------------------------------------------------- nodes
@dataclass
class SpineNodes:
    """The nodes a map fills.  The first six are the panel's parameters (reused when
    given); the last three are referenced from the lesion table node."""

    segmentation: object = None
    lesions: object = None
    levels: object = None
    patient: object = None
    chart: object = None
    decisions: object = None
    vertebrae: object = None
    chart_table: object = None
    record: object = None

    def adopt_references(self, scene) -> None:
        """Forget nodes no longer in ``scene``; find the nodes referenced from the lesion
        table node (after a module reload)."""
        for f in fields(self):
            node = getattr(self, f.name)
            if node is not None and node.GetScene() is not scene:
                setattr(self, f.name, None)
        if self.lesions is None:
            return
        for attr, role in (("vertebrae", REF_VERTEBRAE), ("chart_table", REF_CHART_TABLE), ("record", REF_RECORD)):
            if getattr(self, attr) is None:
                setattr(self, attr, self.lesions.GetNodeReference(role))


CHART_COLUMNS = [Column("level", "string", "", "Disco-vertebral level (assessed levels only)")] + [
    Column(s, "int", "", f"Calcifications of the {s} segment at this level") for s in SEGMENTS]


def _level_ranges(levels: Sequence[str]) -> str:
    """'C7-T1…T4-T5, L5-S1': runs of consecutive levels."""
    idx = sorted(LEVELS.index(lv) for lv in levels)
    runs, start = [], None
    for n, k in enumerate(idx):
        if start is None:
            start = k
        if n + 1 == len(idx) or idx[n + 1] != k + 1:
            runs.append(LEVELS[start] if start == k else f"{LEVELS[start]}…{LEVELS[k]}")
            start = None
    return ", ".join(runs)


def chart_table(result: pipeline.SpineResult) -> Table:
    """Counts per segment of the assessed levels (the chart's data: no made-up zeros)."""
    t = Table(CHART_COLUMNS, name="level chart", description="Calcifications per assessed level and segment")
    for r in result.levels.rows:
        if r["status"] == "assessed":
            t.append({"level": r["level"], **{s: int(r[f"count_{s}"] or 0) for s in SEGMENTS}})
    return t


def level_chart_axis_title(result: pipeline.SpineResult) -> str:
    missing = [lv for lv in LEVELS if lv not in result.assessed]
    title = "disco-vertebral level"
    if missing:
        title += f" (not assessed, not shown: {_level_ranges(missing)})"
    return title


# ---------------------------------------------------------------------- review rows
@dataclass
class ReviewRow:
    """One calcification as the reader reviews it."""

    auto_id: int                  # lesion_id in the automatic map (stable until the next Map)
    lesion_id: int | None         # lesion_id in the corrected tables; None when the reader deleted it
    level: str
    segment: str
    subsite: str
    pattern: str
    volume_mm3: float | None
    centroid: np.ndarray
    reader: str = ""              # the reader's applied decision, in words
    pending: str = ""             # the staged, not yet applied, correction

    def display_values(self) -> list[str]:
        """The review table's cells (:data:`REVIEW_COLUMNS`): sub-sites by their short names
        so that level, segment, sub-site and pattern fit the module panel's width together."""
        from calcinosis.spine.anatomy import SUBSITE_SHORT
        return [str(self.lesion_id) if self.lesion_id is not None else "-", self.level, self.segment,
                SUBSITE_SHORT.get(self.subsite, self.subsite), self.pattern,
                "" if self.volume_mm3 is None else f"{self.volume_mm3:.1f}",
                f"pending: {self.pending}" if self.pending else self.reader]


#: the columns of the panel's review table
REVIEW_COLUMNS = ["#", "level", "segment", "sub-site", "pattern", "mm³", "reader"]


@dataclass
class Edit:
    action: str                   # delete, change, revert
    changes: dict = field(default_factory=dict)

    def describe(self) -> str:
        if self.action == "delete":
            return "delete"
        if self.action == "revert":
            return "back to the automatic values"
        return "set " + ", ".join(f"{k} {v}" for k, v in self.changes.items())


def _centroid(row: dict) -> np.ndarray:
    return np.array([row["centroid_r_mm"], row["centroid_a_mm"], row["centroid_s_mm"]], float)


# ---------------------------------------------------------------------- the session
class SpineSession:
    """The map the panel shows, its nodes and the reader's corrections (see the module
    docstring).  ``scene=None`` means ``slicer.mrmlScene``."""

    def __init__(self, scene=None) -> None:
        self._scene = scene
        self.result: pipeline.SpineResult | None = None
        self.nodes = SpineNodes()
        self.ct_node = None
        self.pending: dict[int, Edit] = {}
        self._final_auto_ids: list[int] = []

    @property
    def scene(self):
        return mrml.get_scene(self._scene)

    # ------------------------------------------------------------------ map
    def map(self, ct_node, vertebrae_node, params: SpineParams | None = None, aorta_node=None,
            aorta_segment_id: str | None = None, nodes: SpineNodes | None = None, decisions_node=None,
            progress: Progress | None = None, subregions_node=None) -> pipeline.SpineResult:
        """Map the calcifications and fill the nodes (``subregions_node``: an optional
        SPINEPS sub-region label map beside a SPINEPS vertebra input).  The reader's decisions come from
        ``decisions_node`` (or ``nodes.decisions``, else those this session holds) and are
        re-applied, matched by centroid.  On an error or a cancel nothing changes."""
        params = params or SpineParams()
        params.validate()
        nodes = nodes if nodes is not None else SpineNodes(**vars(self.nodes))
        nodes.adopt_references(self.scene)
        _check_distinct(nodes)
        decisions_node = decisions_node if decisions_node is not None else nodes.decisions
        if decisions_node is not None:
            decisions = overrides_from_table_node(decisions_node)
        else:
            decisions = list(self.result.overrides) if self.result is not None else []
        report(progress, 0.0, "reading the CT")
        volume = ct_volume_from_node(ct_node)
        lab, described = labels_from_nodes(volume, vertebrae_node, params.convention, aorta_node, aorta_segment_id,
                                           params.points_bone_hu, progress.sub(0.02, 0.25) if progress else None,
                                           subregions_node=subregions_node)
        result = pipeline.map_spine(volume, lab, params, decisions, progress.sub(0.25, 0.97) if progress else None)
        result.inputs = {"ct": provenance.describe_volume(volume), "vertebrae": described}
        if lab.subregion is not None:
            result.inputs["subregions"] = {"kind": "Slicer label map node (SPINEPS sub-regions)",
                                           "parts": lab.subregion_parts}
        if aorta_node is not None:
            kind = "segmentation segment" if _is(aorta_node, "vtkMRMLSegmentationNode") else "label map node"
            result.inputs["aorta"] = {"kind": f"Slicer {kind}"}
        # the result outlives this call but must not keep a view of the node's voxels
        result.volume = Volume(np.broadcast_to(np.zeros((), volume.array.dtype), volume.geometry.shape),
                               volume.geometry, volume.meta)
        # the last chance to cancel: after it the scene is changed in one go, with no
        # progress report (a report may raise Cancelled)
        report(progress, 0.97, f"{len(result.table)} calcifications on {len(result.assessed)} levels: making the "
                               "nodes")
        self.ct_node = ct_node
        self.nodes = nodes
        self.pending = {}
        self._set_result(result, decisions_node_wanted=decisions_node is not None or bool(decisions))
        return self.result

    def _set_result(self, result: pipeline.SpineResult, decisions_node_wanted: bool = True) -> None:
        self.result = result
        self._final_auto_ids = _final_auto_ids(result)
        self._fill_nodes(decisions_node_wanted)

    def _name(self, what: str) -> str:
        base = self.ct_node.GetName() if self.ct_node is not None else "CT"
        return f"{base} spine {what}"

    def _table_node(self, node, table: Table, what: str, locked: bool = True):
        return fill_table_node(table, node, self._name(what), self.scene, locked)

    def _fill_nodes(self, decisions_node_wanted: bool = True) -> None:
        r, n, scene = self.result, self.nodes, self.scene
        n.adopt_references(scene)   # the user may have deleted some since the last map
        ct = self.ct_node if self.ct_node is not None and self.ct_node.GetScene() is scene else None
        if n.segmentation is None:
            n.segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", self._name("calcifications"))
        mrml.segmentation_from_lesions(r.lesions, r.segment_names(), r.segment_colors(), scene=scene,
                                       node=n.segmentation, reference_volume_node=ct,
                                       terminologies=r.segment_terminologies())
        n.segmentation.SetAttribute(PARAMETERS_ATTRIBUTE, json.dumps(r.params.to_dict(), sort_keys=True))
        n.lesions = self._table_node(n.lesions, r.table, "lesions")
        n.levels = self._table_node(n.levels, r.levels, "levels")
        n.patient = self._table_node(n.patient, r.patient, "patient")
        n.vertebrae = self._table_node(n.vertebrae, r.vertebrae_table(), "vertebrae")
        n.chart_table = self._table_node(n.chart_table, chart_table(r), "level chart data")
        if r.overrides or n.record is not None:
            n.record = self._table_node(n.record, ov.record_table(r.applied), "reader overrides applied")
        if decisions_node_wanted or n.decisions is not None:
            n.decisions = self._table_node(n.decisions, ov.overrides_table(r.overrides), "reader decisions",
                                           locked=False)
        for role, node in ((REF_VERTEBRAE, n.vertebrae), (REF_CHART_TABLE, n.chart_table), (REF_RECORD, n.record)):
            n.lesions.SetNodeReferenceID(role, node.GetID() if node is not None else None)
        self._fill_chart()

    def _fill_chart(self) -> None:
        n = self.nodes
        n.chart = mrml.plot_chart_from_table(n.chart_table, "level", list(SEGMENTS), self._name("level chart"),
                                             scene=self.scene, chart_type="bar", chart_node=n.chart)
        for k, seg in enumerate(SEGMENTS):
            series = n.chart.GetNthPlotSeriesNode(k)
            series.SetColor(*SEGMENT_COLORS[seg])
            series.SetName(f"{self._name('level chart')}: {seg}")
        n.chart.SetTitle("Spinal calcifications per level")
        n.chart.SetXAxisTitle(level_chart_axis_title(self.result))
        n.chart.SetYAxisTitle("calcifications")

    # ------------------------------------------------------------------ review
    def _require_result(self) -> pipeline.SpineResult:
        if self.result is None:
            raise InputError("no spine map yet: press Map first")
        return self.result

    def review_rows(self) -> list[ReviewRow]:
        """Every automatic calcification: those in the tables (by lesion_id), then those
        the reader deleted; with the reader's applied and pending decisions."""
        r = self._require_result()
        auto = {row["lesion_id"]: row for row in r.auto_rows}
        rows = []
        for row, aid in zip(r.table.rows, self._final_auto_ids):
            rows.append(self._review_row(row, aid, row["lesion_id"], _describe_decision(auto[aid], row)))
        for a in r.applied:
            if a.status == "applied" and a.override.action == "delete" and a.auto_lesion_id is not None:
                rows.append(self._review_row(auto[a.auto_lesion_id], a.auto_lesion_id, None, "deleted"))
        return rows

    def _review_row(self, row: dict, auto_id: int, lesion_id, reader: str) -> ReviewRow:
        e = self.pending.get(auto_id)
        return ReviewRow(auto_id, lesion_id, row["level"], row["segment"], row["subsite"], row["pattern"],
                         row.get("volume_mm3"), _centroid(row), reader, e.describe() if e else "")

    def _shown_row(self, auto_id: int) -> tuple[dict | None, bool]:
        """(row as shown, deleted?) for an automatic calcification."""
        r = self._require_result()
        for row, aid in zip(r.table.rows, self._final_auto_ids):
            if aid == auto_id:
                return row, False
        for row in r.auto_rows:
            if row["lesion_id"] == auto_id:
                return row, True
        raise InputError(f"calcification {auto_id} is not in this map (press Map again?)")

    def stage(self, auto_id: int, action: str, level: str | None = None, segment: str | None = None,
              subsite: str | None = None, pattern: str | None = None) -> bool:
        """Stage a correction of one calcification (by its automatic id): ``delete``,
        ``change`` (the values given; a sub-site sets its segment) or ``revert`` (back to
        the automatic values, undoing the reader's earlier decisions on it).  Replaces a
        correction staged before for it.  Returns False when there is nothing to do."""
        r = self._require_result()
        if action not in ACTIONS:
            raise InputError(f"correction: expected one of {', '.join(ACTIONS)}, got {action!r}")
        row, deleted = self._shown_row(auto_id)
        has_decision = any(a.status == "applied" and a.auto_lesion_id == auto_id for a in r.applied)
        if action == "revert":
            if not has_decision:
                self.pending.pop(auto_id, None)
                return False
            self.pending[auto_id] = Edit("revert")
            return True
        if deleted:
            raise InputError(f"calcification {auto_id} was deleted by the reader: restore it first")
        if action == "delete":
            self.pending[auto_id] = Edit("delete")
            return True
        new = {"level": level or row["level"], "segment": segment or row["segment"],
               "subsite": subsite or row["subsite"], "pattern": pattern or row["pattern"]}
        if new["level"] not in r.assessed:
            raise InputError(f"level {new['level']} is not assessed in this scan (assessed: "
                             f"{_level_ranges(r.assessed)})")
        if new["pattern"] not in PATTERNS:
            raise InputError(f"pattern must be one of {', '.join(PATTERNS)}, got {new['pattern']!r}")
        if new["segment"] not in SEGMENTS:
            raise InputError(f"segment must be one of {', '.join(SEGMENTS)}, got {new['segment']!r}")
        if new["subsite"] not in SUBSITES:
            raise InputError(f"sub-site must be one of {', '.join(SUBSITES)}, got {new['subsite']!r}")
        if subsite:
            new["segment"] = SUBSITE_SEGMENT[subsite]
        elif SUBSITE_SEGMENT[new["subsite"]] != new["segment"]:
            if new["segment"] == "intracanal":
                new["subsite"] = "intracanal"
            else:
                raise InputError(f"segment {new['segment']}: choose its sub-site too ({row['subsite']} belongs to "
                                 f"the {SUBSITE_SEGMENT[row['subsite']]} segment)")
        changes = {k: v for k, v in new.items() if v != row[k]}
        if not changes:
            self.pending.pop(auto_id, None)
            return False
        self.pending[auto_id] = Edit("change", changes)
        return True

    def unstage(self, auto_id: int) -> bool:
        return self.pending.pop(auto_id, None) is not None

    def apply_corrections(self, note: str = "SpineCalcMap panel") -> pipeline.SpineResult:
        """Turn the staged corrections into reader decisions and recompute the tables,
        the segmentation and the chart (nothing is re-detected)."""
        r = self._require_result()
        if not self.pending:
            return r
        reverts = {aid for aid, e in self.pending.items() if e.action == "revert"}
        previous = [o for o, a in zip(r.overrides, r.applied) if a.auto_lesion_id not in reverts]
        shown, edited = [], []
        for row, aid in zip(r.table.rows, self._final_auto_ids):
            shown.append(row)
            e = self.pending.get(aid)
            if e is None or e.action == "revert":
                edited.append(row)
            elif e.action == "change":
                edited.append({**row, **e.changes})
            # delete: left out of the edited rows
        decisions = ov.overrides_from_edits(shown, edited, previous, r.params.override_tolerance_mm, note=note)
        self.pending = {}
        self._set_result(pipeline.apply_reader_overrides(r, decisions))
        return self.result

    def set_decisions(self, decisions: list[ov.Override]) -> pipeline.SpineResult | None:
        """Replace the reader's decisions (re-applied to the current map, if any)."""
        for n, o in enumerate(decisions, start=1):
            o.row = n
        self.pending = {}
        if self.result is None:
            self.nodes.decisions = self._table_node(self.nodes.decisions, ov.overrides_table(decisions),
                                                    "reader decisions", locked=False)
            return None
        self._set_result(pipeline.apply_reader_overrides(self.result, decisions))
        return self.result

    def load_overrides(self, path: str | Path) -> list[ov.Override]:
        """Reader decisions from an overrides CSV (the command line's ``--overrides``
        format; replaces the current decisions)."""
        decisions = ov.read_overrides(path)
        self.set_decisions(decisions)
        return decisions

    def decisions(self) -> list[ov.Override]:
        if self.result is not None:
            return list(self.result.overrides)
        return overrides_from_table_node(self.nodes.decisions)

    # ------------------------------------------------------------------ views
    def lesion_centroid(self, auto_id: int) -> np.ndarray:
        row, _ = self._shown_row(auto_id)
        return _centroid(row)

    def jump_to(self, auto_id: int) -> np.ndarray:
        """Centre every slice view on a calcification's centroid (RAS); returns it."""
        c = self.lesion_centroid(auto_id)
        center_views_on(c, self.scene)
        return c

    # ------------------------------------------------------------------ export
    def export(self, outdir: str | Path, force: bool = False, case_id: str | None = None, write_images: bool = True,
               progress: Progress | None = None, dicom_seg: bool = False, dicom_sr: bool = False,
               volume_node=None) -> list[Path]:
        """The files of ``calcinosis spine`` (lesions, levels, patient, vertebrae tables,
        level chart when matplotlib is present, label map, segmentation, reader overrides,
        provenance).  Refuses to replace an earlier result unless ``force``.  ``dicom_seg`` /
        ``dicom_sr``: also the DICOM SEG / SR on the DICOM series ``volume_node`` came from."""
        r = self._require_result()
        if not outdir or str(outdir) in ("", "."):
            raise InputError("choose an output folder")
        if self.pending:
            raise InputError(f"{len(self.pending)} correction(s) staged but not applied: press Apply corrections "
                             "(or undo them) before exporting")
        inputs = dict(r.inputs)
        if r.overrides:
            inputs["overrides"] = {"kind": "reader overrides", "source": "SpineCalcMap panel",
                                   "count": len(r.overrides)}
        r.inputs = inputs
        from .dicom_objects import export_request
        dicom = export_request(volume_node, dicom_seg, dicom_sr)
        return pipeline.write_spine_outputs(outdir, r, force=force, case_id=case_id or None,
                                            write_images=write_images, command=COMMAND, dicom=dicom,
                                            progress=progress)

    # ------------------------------------------------------------------ summary
    def summary(self) -> str:
        r = self._require_result()
        p = r.patient.rows[0]
        text = (f"{p['calcification_count']} calcifications on {p['levels_assessed']} assessed levels "
                f"({p['first_level_assessed']} to {p['last_level_assessed']}, coverage {p['coverage']}): "
                f"anterior {p['count_anterior']}, intracanal {p['count_intracanal']}, "
                f"posterior {p['count_posterior']}")
        if r.overrides:
            applied = sum(a.status == "applied" for a in r.applied)
            text += f"; {applied} of {len(r.applied)} reader decisions applied"
        return text


def _check_distinct(nodes: SpineNodes) -> None:
    tables = [(k, getattr(nodes, k)) for k in ("lesions", "levels", "patient", "decisions")]
    seen: dict[str, str] = {}
    for k, node in tables:
        if node is None:
            continue
        if node.GetID() in seen:
            raise InputError(f"the {seen[node.GetID()]} and {k} tables are the same node '{node.GetName()}': "
                             "choose different tables (or 'Create new')")
        seen[node.GetID()] = k


def _final_auto_ids(result: pipeline.SpineResult) -> list[int]:
    """The automatic lesion_id of each final row (overrides keep the rows' order and drop
    the deleted ones; checked by centroid)."""
    deleted = {a.auto_lesion_id for a in result.applied if a.status == "applied" and a.override.action == "delete"}
    surviving = [row for row in result.auto_rows if row["lesion_id"] not in deleted]
    if len(surviving) != len(result.table.rows):
        raise RuntimeError("reader overrides: final rows do not follow the automatic ones")
    for a, b in zip(surviving, result.table.rows):
        if not np.array_equal(_centroid(a), _centroid(b)):
            raise RuntimeError("reader overrides: final rows do not follow the automatic ones")
    return [int(row["lesion_id"]) for row in surviving]


def _describe_decision(auto: dict, final: dict) -> str:
    changes = [f"{k} {auto[k]} → {final[k]}" for k in ov.FIELDS if auto[k] != final[k]]
    return ("changed: " + "; ".join(changes)) if changes else ""


# ---------------------------------------------------------------------- TotalSegmentator
TOTALSEGMENTATOR_INSTALL_HINT = (
    "Install the TotalSegmentator extension (View > Extensions Manager, search 'TotalSegmentator', Install, "
    "restart Slicer) to make vertebra labels from the CT here; or give a label map, a segmentation or a point "
    "list with one point per vertebral body.")


def totalsegmentator_available() -> bool:
    """True when Slicer has the TotalSegmentator module (the extension is installed)."""
    import slicer
    modules = getattr(slicer, "modules", None)
    return modules is not None and hasattr(modules, "totalsegmentator")


def totalsegmentator_packages_installed() -> bool:
    """True when TotalSegmentator's own Python package (and so PyTorch) is installed;
    without it the extension downloads several GB on its first run."""
    return importlib.util.find_spec("totalsegmentator") is not None


def _totalsegmentator_logic():
    try:
        import TotalSegmentator as module  # the extension's scripted module, on Slicer's path
        return module.TotalSegmentatorLogic()
    except (ImportError, AttributeError):
        import slicer
        return slicer.util.getModuleLogic("TotalSegmentator")


def totalsegmentator_process_arguments(process: Callable, fast: bool, task: str = "total") -> dict:
    """Keyword arguments for the extension's ``TotalSegmentatorLogic.process`` of any
    version: ``quality`` ('fast'/'normal', current) or ``fast`` (bool, older), ``task``,
    no interactive pop-ups."""
    try:
        names = set(inspect.signature(process).parameters)
    except (TypeError, ValueError):
        names = set()
    kw: dict = {}
    if "quality" in names:
        kw["quality"] = "fast" if fast else "normal"
    elif "fast" in names:
        kw["fast"] = bool(fast)
    if "task" in names:
        kw["task"] = task
    if "interactive" in names:
        kw["interactive"] = False
    return kw


def run_totalsegmentator(volume_node, fast: bool = True, segmentation_node=None,
                         log: Callable[[str], None] | None = None, scene=None):
    """Vertebra (and aorta, rib ...) labels of a CT by the TotalSegmentator extension, task
    ``total``, into a segmentation node whose segment names are TotalSegmentator's class
    names (``vertebrae_T8``, ``aorta`` ...).  A new node is removed again on failure."""
    if volume_node is None:
        raise InputError("no CT selected: choose the CT volume first")
    if not totalsegmentator_available():
        raise InputError(TOTALSEGMENTATOR_INSTALL_HINT)
    scene = mrml.get_scene(scene)
    logic = _totalsegmentator_logic()
    if log is not None and hasattr(logic, "logCallback"):
        logic.logCallback = log
    if hasattr(logic, "useStandardSegmentNames"):
        logic.useStandardSegmentNames = False   # class names: ribs and discs stay readable by the spine map
    if hasattr(logic, "setupPythonRequirements"):
        logic.setupPythonRequirements()
    created = segmentation_node is None
    if created:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                    f"{volume_node.GetName()} TotalSegmentator")
    try:
        logic.process(volume_node, segmentation_node, **totalsegmentator_process_arguments(logic.process, fast))
        if segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
            raise InputError("TotalSegmentator produced no segments (see its log in the Python console)")
    except BaseException:
        if created and segmentation_node.GetScene() is not None:
            scene.RemoveNode(segmentation_node)
        raise
    return segmentation_node


__all__ = ["SPINE_PARAMETER_NAMES", "spine_params", "ct_volume_from_node", "vertebra_input_kind",
           "aorta_mask_from_node", "guess_aorta_segment", "labels_from_nodes", "overrides_from_table",
           "overrides_from_table_node",
           "SpineNodes", "ReviewRow", "Edit", "SpineSession", "chart_table", "level_chart_axis_title",
           "center_views_on", "totalsegmentator_available", "totalsegmentator_packages_installed",
           "totalsegmentator_process_arguments", "run_totalsegmentator", "TOTALSEGMENTATOR_INSTALL_HINT"]
