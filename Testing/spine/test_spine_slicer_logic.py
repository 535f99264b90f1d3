"""The SpineCalcMap panel's logic (``calcinosis.mrml.spine_session``) on real MRML (slicer-core).

The reference is the command line: the same phantom files go through ``calcinosis spine``
and, loaded as nodes, through the panel's session; the tables must say the same (numbers
to 1e-6: the node path reads the grid back from Slicer's IJK-to-RAS matrix, which may
differ from the file's in the last bits of a double; integer and text cells exactly).
Every vertebra input the panel takes is covered (label map node, segmentation node with
TotalSegmentator or plain names, point list), and the reader's corrections: staged,
applied, kept across a re-map at another threshold, exported, and identical to the
command line given the same overrides CSV.
"""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.core.errors import Cancelled, InputError
from calcinosis.core.lesions import LesionSet
from calcinosis.core.progress import Progress
from calcinosis.core.tables import Table
from calcinosis.core.volume import Volume
from calcinosis.spine import overrides as ov
from calcinosis.spine import points as points_io
from calcinosis.spine.anatomy import LEVELS, SEGMENT_COLORS, SEGMENTS, SUBSITE_SEGMENT
from calcinosis.spine.conventions import category, structure_names
from calcinosis.spine.params import SpineParams
from calcinosis.spine.phantom import vertebra_body_points
from calcinosis.spine.vertebrae import read_label_map

from spine_helpers import get_phantom, write_spineps_case

pytestmark = pytest.mark.mrml

TABLES = ("lesions", "levels", "patient")


# ---------------------------------------------------------------------- files and the command line
def _cli(*argv) -> None:
    from calcinosis.cli.main import main
    assert main([str(a) for a in argv] + ["-q"]) == 0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The lumbar phantom as files: CT (NRRD), TotalSegmentator label map, body points (CSV, RAS)."""
    r = get_phantom("lumbar")
    d = tmp_path_factory.mktemp("spine-panel")
    image_io.write_image(r.ct, r.geometry, d / "ct.nrrd")
    image_io.write_image(r.labels, r.geometry, d / "vertebrae.nii.gz")
    pts = vertebra_body_points(r.phantom, r.geometry)
    lines = [f"{n},{float(p[0])!r},{float(p[1])!r},{float(p[2])!r}\n" for n, p in pts]
    (d / "points.csv").write_text("label,r,a,s\n" + "".join(lines))
    return d


@pytest.fixture(scope="module")
def cli_labels(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "labels"
    _cli("spine", files / "ct.nrrd", "--vertebrae", files / "vertebrae.nii.gz", "-o", out, "--no-chart")
    return out


@pytest.fixture(scope="module")
def cli_points(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "points"
    _cli("spine", files / "ct.nrrd", "--points", files / "points.csv", "-o", out, "--no-chart", "--no-images")
    return out


# ---------------------------------------------------------------------- nodes
@pytest.fixture
def session(mrml_scene):
    from calcinosis.mrml.spine_session import SpineSession
    return SpineSession()


@pytest.fixture
def ct_node(mrml_scene, files):
    from calcinosis import mrml
    return mrml.node_from_volume(image_io.load_image(files / "ct.nrrd"), "phantom CT")


@pytest.fixture
def label_node(mrml_scene, files):
    from calcinosis import mrml
    li = read_label_map(files / "vertebrae.nii.gz")
    return mrml.node_from_volume(Volume(li.layers[0], li.geometry, {}), "phantom vertebrae", labelmap=True)


def segmentation_node_from_labels(labels: np.ndarray, geometry, names_of_value: dict[int, str], name: str):
    """A segmentation node with one named segment per label value (label values renumbered
    1..n, so only the names can tell the structures apart)."""
    from calcinosis import mrml
    values = [int(v) for v in np.unique(labels) if v and int(v) in names_of_value]
    remap = np.zeros(int(labels.max()) + 1, np.uint16)
    for k, v in enumerate(values, start=1):
        remap[v] = k
    lab = remap[labels]
    idx = np.flatnonzero(lab)
    lesions = LesionSet(lab, geometry, idx, lab.ravel()[idx].astype(np.int64), [names_of_value[v] for v in values])
    return mrml.segmentation_from_lesions(lesions, [names_of_value[v] for v in values],
                                          [(0.8, 0.8, 0.6)] * len(values), name=name)


def totalsegmentator_names(style: str = "class") -> dict[int, str]:
    """Label value -> segment name as the TotalSegmentator extension names its segments
    (``vertebrae_T8``, ``aorta`` ...) or plainly (``T8``)."""
    out = {}
    for v, n in structure_names("totalsegmentator").items():
        out[v] = f"vertebrae_{n}" if style == "class" and category(n) == "vertebra" else n
    return out


# ---------------------------------------------------------------------- comparing tables
def assert_tables_equal(a: Table, b: Table, what: str, ignore: tuple[str, ...] = ()) -> None:
    names_a = [c.name for c in a.columns if c.name not in ignore]
    assert names_a == [c.name for c in b.columns if c.name not in ignore], what
    assert len(a.rows) == len(b.rows), what
    for n, (ra, rb) in enumerate(zip(a.rows, b.rows)):
        for c in names_a:
            va, vb = ra[c], rb[c]
            if isinstance(va, float) or isinstance(vb, float):
                assert va is not None and vb is not None, (what, n, c, va, vb)
                assert math.isclose(va, vb, rel_tol=1e-6, abs_tol=1e-6), (what, n, c, va, vb)
            else:
                assert va == vb, (what, n, c, va, vb)


def node_tables(nodes) -> dict[str, Table]:
    from calcinosis import mrml
    return {"lesions": mrml.table_from_table_node(nodes.lesions), "levels": mrml.table_from_table_node(nodes.levels),
            "patient": mrml.table_from_table_node(nodes.patient)}


def cli_tables(folder) -> dict[str, Table]:
    return {t: Table.read_csv(folder / f"{t}.csv") for t in TABLES}


def assert_like_cli(nodes, folder) -> None:
    got, want = node_tables(nodes), cli_tables(folder)
    for t in TABLES:
        assert_tables_equal(got[t], want[t], t)
    # units travel with the columns (the CLI's schema says the same)
    for c in want["lesions"].columns:
        assert nodes.lesions.GetColumnUnitLabel(c.name) == (c.unit or ""), c.name


# ---------------------------------------------------------------------- map: the three vertebra inputs
def test_map_from_label_map_node_matches_the_command_line(session, ct_node, label_node, cli_labels):
    from calcinosis import mrml

    result = session.map(ct_node, label_node)
    nodes = session.nodes
    assert_like_cli(nodes, cli_labels)
    # levels outside the scan: not_assessed with empty counts in the node (never 0)
    levels = mrml.table_from_table_node(nodes.levels).rows
    assessed = [r["level"] for r in levels if r["status"] == "assessed"]
    assert assessed == LEVELS[LEVELS.index("T11-T12"):] == result.assessed
    for r in levels:
        if r["status"] == "not_assessed":
            assert all(r[k] is None for k in r if k.startswith("count_")), r
    # the segmentation: one named segment per calcification, coloured by segment, label value = lesion_id
    seg = nodes.segmentation.GetSegmentation()
    assert seg.GetNumberOfSegments() == len(result.table)
    back = mrml.label_image_from_segmentation(nodes.segmentation, result.volume.geometry)
    assert [s.name for s in back.segments] == result.segment_names()
    full = result.full_grid_labels()
    for s in back.segments:
        lesion_id = int(s.name.rsplit("#", 1)[1])
        assert s.label_value == lesion_id
        assert np.array_equal(np.flatnonzero(back.mask(s)), np.flatnonzero(full == lesion_id))
        row = result.table.rows[lesion_id - 1]
        base = SEGMENT_COLORS[SUBSITE_SEGMENT[row["subsite"]]]
        # shades of the segment's colour: the largest channel of the segment colour stays the largest
        assert int(np.argmax(s.color)) == int(np.argmax(base)), (s.name, s.color, base)
    # the chart: assessed levels only, one bar series per segment with its colour and its counts
    chart_rows = mrml.table_from_table_node(nodes.chart_table).rows
    assert [r["level"] for r in chart_rows] == assessed
    by_level = {r["level"]: r for r in levels}
    for r in chart_rows:
        for s in SEGMENTS:
            assert r[s] == by_level[r["level"]][f"count_{s}"]
    assert nodes.chart.GetNumberOfPlotSeriesNodes() == 3
    for k, s in enumerate(SEGMENTS):
        series = nodes.chart.GetNthPlotSeriesNode(k)
        assert series.GetYColumnName() == s and series.GetLabelColumnName() == "level"
        assert series.GetTableNode() is nodes.chart_table
        assert np.allclose(series.GetColor(), SEGMENT_COLORS[s])
    assert "not assessed, not shown: C7-T1…T10-T11" in nodes.chart.GetXAxisTitle()
    # computed tables are locked against edits in a table view; vertebrae listed
    assert nodes.lesions.GetLocked() and nodes.levels.GetLocked()
    assert nodes.vertebrae.GetTable().GetNumberOfRows() == len(result.frame.vertebrae)
    assert nodes.decisions is None   # no reader decisions yet


@pytest.mark.parametrize("style,convention", [("class", "auto"), ("plain", "names")])
def test_map_from_segmentation_node_matches_the_command_line(session, ct_node, cli_labels, style, convention):
    """TotalSegmentator's segmentation as the extension makes it (class names), or segments
    named plainly T8, L1 ...: read by names (label values renumbered), same map."""
    r = get_phantom("lumbar")
    seg = segmentation_node_from_labels(r.labels, r.geometry, totalsegmentator_names(style), "vertebrae")
    result = session.map(ct_node, seg, SpineParams(convention=convention))
    assert result.labels.convention.key == "names"
    assert_like_cli(session.nodes, cli_labels)


def test_map_from_point_list_matches_the_command_line(session, ct_node, files, cli_points):
    from calcinosis import mrml

    pts = points_io.read_points(files / "points.csv")
    node = mrml.markups_from_points(pts, "vertebral bodies")
    result = session.map(ct_node, node)
    assert result.labels.convention.key == "points"
    assert_like_cli(session.nodes, cli_points)


def test_aorta_from_a_segment_is_used(session, ct_node, mrml_scene):
    """Vertebrae without an aorta (a VerSe-like input: vertebra segments only) plus the aorta
    as one segment of another segmentation: the aorta's zone is excluded as with a label."""
    r = get_phantom("lumbar")
    names = totalsegmentator_names("class")
    vert_only = {v: n for v, n in names.items() if n.startswith("vertebrae_") or n == "sacrum"}
    vertebrae = segmentation_node_from_labels(r.labels, r.geometry, vert_only, "vertebrae only")
    aorta_value = next(v for v, n in names.items() if n == "aorta")
    vessels = segmentation_node_from_labels(r.labels, r.geometry, {aorta_value: "Aorta", 52 + 13: "iliac_artery_left"},
                                            "vessels")
    from calcinosis.mrml.spine_session import guess_aorta_segment
    aorta_id = guess_aorta_segment(vessels)
    assert vessels.GetSegmentation().GetSegment(aorta_id).GetName() == "Aorta"
    params = SpineParams(detect_aorta=False)
    without = session.map(ct_node, vertebrae, params)
    assert not without.labels.has_aorta
    assert any("no aorta label" in w for w in without.warnings)
    with_aorta = session.map(ct_node, vertebrae, params, aorta_node=vessels, aorta_segment_id=aorta_id)
    assert with_aorta.labels.has_aorta
    assert not any("no aorta label" in w for w in with_aorta.warnings)
    assert with_aorta.inputs["aorta"]["kind"] == "Slicer segmentation segment"
    # the aorta voxels are aorta in the map's labels, exactly those of the segment near the spine
    aorta_box = (r.labels == aorta_value)[with_aorta.labels.box.slices]
    from calcinosis.spine.vertebrae import CAT_AORTA
    assert np.array_equal(with_aorta.labels.category == CAT_AORTA, aorta_box & (with_aorta.labels.vert == 0))


# ---------------------------------------------------------------------- reader correction
def _by_centroid(table_rows, centroid):
    hits = [r for r in table_rows if np.allclose([r["centroid_r_mm"], r["centroid_a_mm"], r["centroid_s_mm"]],
                                                 centroid, atol=1e-9)]
    return hits[0] if len(hits) == 1 else None


def test_reader_edits_are_applied_kept_across_a_remap_and_exported_like_the_cli(session, ct_node, label_node, files,
                                                                                tmp_path):
    from calcinosis import mrml

    first = session.map(ct_node, label_node)
    rows = session.review_rows()
    n = len(rows)
    assert n == len(first.table) and all(r.reader == "" and r.pending == "" for r in rows)
    assessed = first.assessed
    a, b, c, d, e = rows[0], rows[1], rows[3], rows[5], rows[7]
    new_level = next(lv for lv in assessed if lv != b.level)
    new_pattern = next(p for p in ("linear", "punctate", "pseudotumoral") if p != e.pattern)
    new_subsite = next(s for s in ("interspinous", "costotransverse") if s != d.subsite)
    assert session.stage(a.auto_id, "delete")
    assert session.stage(b.auto_id, "change", level=new_level)
    assert session.stage(c.auto_id, "change", segment="intracanal")          # a segment alone: intracanal only
    assert session.stage(d.auto_id, "change", subsite=new_subsite)            # a sub-site sets its segment
    assert session.stage(e.auto_id, "change", pattern=new_pattern)
    assert not session.stage(rows[2].auto_id, "change", level=rows[2].level)  # nothing changes: nothing staged
    staged = {r.auto_id: r.pending for r in session.review_rows() if r.pending}
    assert staged == {a.auto_id: "delete", b.auto_id: f"set level {new_level}",
                      c.auto_id: "set segment intracanal, subsite intracanal" if c.segment != "intracanal"
                      else staged.get(c.auto_id),
                      d.auto_id: f"set segment posterior, subsite {new_subsite}" if d.segment != "posterior"
                      else f"set subsite {new_subsite}",
                      e.auto_id: f"set pattern {new_pattern}"}
    # nothing is recomputed before Apply
    assert session.nodes.lesions.GetTable().GetNumberOfRows() == n
    out = session.apply_corrections()
    table = mrml.table_from_table_node(session.nodes.lesions).rows
    assert len(table) == n - 1 == len(out.table)
    assert [r["lesion_id"] for r in table] == list(range(1, n))
    assert _by_centroid(table, a.centroid) is None
    assert _by_centroid(table, b.centroid)["level"] == new_level
    assert (_by_centroid(table, c.centroid)["segment"], _by_centroid(table, c.centroid)["subsite"]) == \
        ("intracanal", "intracanal")
    assert (_by_centroid(table, d.centroid)["segment"], _by_centroid(table, d.centroid)["subsite"]) == \
        ("posterior", new_subsite)
    assert _by_centroid(table, e.centroid)["pattern"] == new_pattern
    # the summaries follow the table; the segmentation is renamed and loses the deleted one
    patient = mrml.table_from_table_node(session.nodes.patient).rows[0]
    assert patient["calcification_count"] == n - 1
    assert patient["count_posterior"] == sum(r["segment"] == "posterior" for r in table)
    levels = {r["level"]: r for r in mrml.table_from_table_node(session.nodes.levels).rows}
    for lv in assessed:
        assert levels[lv]["count_total"] == sum(r["level"] == lv for r in table)
    assert session.nodes.segmentation.GetSegmentation().GetNumberOfSegments() == n - 1
    assert mrml.label_image_from_segmentation(session.nodes.segmentation, out.volume.geometry).segments[0].name == \
        out.segment_names()[0]
    # the review list: every calcification, the deleted one last, each decision in words
    review = {r.auto_id: r for r in session.review_rows()}
    assert len(review) == n and review[a.auto_id].lesion_id is None and review[a.auto_id].reader == "deleted"
    assert review[b.auto_id].reader == f"changed: level {b.level} → {new_level}"
    assert not any(r.pending for r in review.values())
    # the decisions: a table node in the overrides-file format, recorded
    decisions = mrml.table_from_table_node(session.nodes.decisions)
    assert [r["action"] for r in decisions.rows] == ["delete", "change", "change", "change", "change"]
    record = mrml.table_from_table_node(session.nodes.record).rows
    assert [r["status"] for r in record] == ["applied"] * 5

    # Map again at another threshold: the decisions follow the calcifications (centroid match)
    again = session.map(ct_node, label_node, SpineParams(threshold_hu=150.0))
    assert [x.status for x in again.applied] == ["applied"] * 5
    assert all(x.distance_mm < 1.0 for x in again.applied)
    t150 = again.table.rows
    assert len(t150) == len(again.auto_rows) - 1
    near = [min(t150, key=lambda r, c=x.centroid: np.linalg.norm(_centroid(r) - c)) for x in (b, d, e)]
    assert near[0]["level"] == new_level and near[1]["subsite"] == new_subsite and near[2]["pattern"] == new_pattern

    # Export, and the command line with the exported overrides.csv says the same
    panel_out = tmp_path / "panel"
    written = {p.name for p in session.export(panel_out, case_id="case-07")}
    assert {"lesions.csv", "levels.csv", "patient.csv", "vertebrae.csv", "reader_overrides.csv", "overrides.csv",
            "lesion_labels.nrrd", "lesions.seg.nrrd", "provenance.json"} <= written
    with pytest.raises(InputError, match="earlier result"):
        session.export(panel_out)
    cli_out = tmp_path / "cli"
    _cli("spine", files / "ct.nrrd", "--vertebrae", files / "vertebrae.nii.gz", "--threshold", "150",
         "--overrides", panel_out / "overrides.csv", "-o", cli_out, "--no-chart")
    for t in TABLES:
        assert_tables_equal(Table.read_csv(panel_out / f"{t}.csv"), Table.read_csv(cli_out / f"{t}.csv"), t)
    # the record: the same decisions, matched to the same calcifications (row numbers are the file's)
    assert_tables_equal(Table.read_csv(panel_out / "reader_overrides.csv"),
                        Table.read_csv(cli_out / "reader_overrides.csv"), "record", ignore=("override_row",))
    import json
    prov = json.loads((panel_out / "provenance.json").read_text())
    assert prov["case_id"] == "case-07" and prov["inputs"]["overrides"]["count"] == 5
    assert prov["parameters"]["threshold_hu"] == 150.0


def _centroid(row):
    return np.array([row["centroid_r_mm"], row["centroid_a_mm"], row["centroid_s_mm"]])


def test_revert_restores_the_automatic_values(session, ct_node, label_node):
    auto = session.map(ct_node, label_node)
    rows = session.review_rows()
    session.stage(rows[0].auto_id, "delete")
    session.stage(rows[1].auto_id, "change", pattern="pseudotumoral" if rows[1].pattern != "pseudotumoral"
                  else "linear")
    session.apply_corrections()
    review = {r.auto_id: r for r in session.review_rows()}
    with pytest.raises(InputError, match="restore it first"):
        session.stage(rows[0].auto_id, "change", pattern="linear")
    assert not session.stage(rows[4].auto_id, "revert")      # no decision on it: nothing to undo
    assert session.stage(review[rows[0].auto_id].auto_id, "revert")
    assert session.stage(rows[1].auto_id, "revert")
    assert session.unstage(rows[1].auto_id) and session.stage(rows[1].auto_id, "revert")
    back = session.apply_corrections()
    assert back.overrides == [] and len(back.table) == len(auto.table)
    for r1, r2 in zip(back.table.rows, auto.table.rows):
        assert all(r1[f] == r2[f] for f in ("lesion_id", "level", "segment", "subsite", "pattern"))
    assert session.nodes.decisions.GetTable().GetNumberOfRows() == 0


def test_overrides_csv_loaded_before_and_after_map(session, ct_node, label_node, tmp_path):
    from calcinosis import mrml
    from calcinosis.spine import pipeline, vertebrae

    r = get_phantom("lumbar")
    vol = Volume(r.ct, r.geometry, {"modality": "CT"})
    ref = pipeline.map_spine(vol, vertebrae.spine_labels(vol, label_image=read_label_map_image(r)))
    row0, row3 = ref.table.rows[0], ref.table.rows[3]
    csv_path = tmp_path / "overrides.csv"
    csv_path.write_text("action,centroid_r_mm,centroid_a_mm,centroid_s_mm,pattern,note\n"
                        f"delete,{row0['centroid_r_mm']},{row0['centroid_a_mm']},{row0['centroid_s_mm']},,\n"
                        f"change,{row3['centroid_r_mm'] + 0.5},{row3['centroid_a_mm']},{row3['centroid_s_mm']},"
                        "pseudotumoral,reader B\n")
    loaded = session.load_overrides(csv_path)          # no map yet: kept in the decisions node
    assert len(loaded) == 2 and session.result is None
    assert mrml.table_from_table_node(session.nodes.decisions).rows[1]["note"] == "reader B"
    result = session.map(ct_node, label_node)          # Map applies them
    assert [a.status for a in result.applied] == ["applied", "applied"] and len(result.table) == len(ref.table) - 1
    assert _by_centroid(result.table.rows, _centroid(row3))["pattern"] == "pseudotumoral"
    # loading another file replaces them (and re-applies at once)
    csv_path.write_text("action,centroid_r_mm,centroid_a_mm,centroid_s_mm\n"
                        f"delete,{row3['centroid_r_mm']},{row3['centroid_a_mm']},{row3['centroid_s_mm']}\n")
    session.load_overrides(csv_path)
    assert len(session.result.table) == len(ref.table) - 1
    assert _by_centroid(session.result.table.rows, _centroid(row0)) is not None
    assert _by_centroid(session.result.table.rows, _centroid(row3)) is None
    # a bad file: the reader's error naming row and column, and nothing changes
    csv_path.write_text("action,centroid_r_mm,centroid_a_mm,centroid_s_mm,level\nchange,1,2,3,T8-T10\n")
    with pytest.raises(InputError, match="row 2, column level"):
        session.load_overrides(csv_path)
    assert len(session.result.overrides) == 1


def read_label_map_image(r):
    from calcinosis.core.image_io import LabelImage
    return LabelImage([r.labels], r.geometry, [])


def test_decisions_table_edited_by_hand_is_validated(session, ct_node, label_node):
    from calcinosis import mrml

    session.map(ct_node, label_node)
    row = session.result.table.rows[2]
    t = ov.overrides_table([ov.Override("change", _centroid(row), row["lesion_id"], subsite="intracanal",
                                        segment="posterior")])
    node = mrml.table_node_from_table(t, name="typed decisions")
    from calcinosis.mrml.spine_session import SpineNodes
    with pytest.raises(InputError, match=r"typed decisions', row 1: sub-site intracanal belongs to the intracanal"):
        session.map(ct_node, label_node, nodes=SpineNodes(decisions=node))


def test_staging_refuses_what_the_map_cannot_hold(session, ct_node, label_node):
    session.map(ct_node, label_node)
    row = next(r for r in session.review_rows() if r.segment == "anterior")
    with pytest.raises(InputError, match="T5-T6 is not assessed"):
        session.stage(row.auto_id, "change", level="T5-T6")
    with pytest.raises(InputError, match="choose its sub-site too"):
        session.stage(row.auto_id, "change", segment="posterior")
    with pytest.raises(InputError, match="pattern must be one of"):
        session.stage(row.auto_id, "change", pattern="blob")
    with pytest.raises(InputError, match="expected one of delete, change, revert"):
        session.stage(row.auto_id, "remove")
    with pytest.raises(InputError, match="not in this map"):
        session.stage(9999, "delete")
    assert session.pending == {}


# ---------------------------------------------------------------------- cancel and bad inputs
def _cancel_after(k):
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > k
    return Progress(None, cancelled), calls


@pytest.mark.parametrize("k", [0, 2, 6, 12, "last"])
def test_cancel_leaves_the_scene_and_the_previous_map_as_they_were(session, ct_node, label_node, mrml_scene, k):
    if k == "last":   # the very last chance to cancel (the map is complete, no node made yet)
        from calcinosis.mrml.spine_session import SpineSession
        counting, calls = _cancel_after(10 ** 9)
        SpineSession().map(ct_node, label_node, progress=counting)    # how many checks a whole map makes
        k = calls["n"] - 1
    progress, calls = _cancel_after(k)
    before = mrml_scene.GetNumberOfNodes()
    with pytest.raises(Cancelled):
        session.map(ct_node, label_node, progress=progress)
    assert calls["n"] == k + 1
    assert mrml_scene.GetNumberOfNodes() == before and session.result is None
    # with a map shown: a cancelled re-map changes nothing
    first = session.map(ct_node, label_node)
    rows = session.nodes.lesions.GetTable().GetNumberOfRows()
    before = mrml_scene.GetNumberOfNodes()
    progress, _ = _cancel_after(k)
    with pytest.raises(Cancelled):
        session.map(ct_node, label_node, SpineParams(threshold_hu=400.0), progress=progress)
    assert mrml_scene.GetNumberOfNodes() == before
    assert session.result is first and session.nodes.lesions.GetTable().GetNumberOfRows() == rows


def test_remapping_reuses_the_nodes(session, ct_node, label_node, mrml_scene):
    session.map(ct_node, label_node)
    nodes = dict(vars(session.nodes))
    count = mrml_scene.GetNumberOfNodes()
    for threshold in (150.0, 130.0, 200.0):
        session.map(ct_node, label_node, SpineParams(threshold_hu=threshold))
        assert mrml_scene.GetNumberOfNodes() == count          # no leaked plot series or tables
        assert all(getattr(session.nodes, k) is v for k, v in nodes.items())
    # after a module reload (a new session) the nodes given by the panel are refilled, and
    # those referenced from the lesion table are found again
    from calcinosis.mrml.spine_session import SpineNodes, SpineSession
    fresh = SpineSession()
    fresh.map(ct_node, label_node, nodes=SpineNodes(session.nodes.segmentation, session.nodes.lesions,
                                                    session.nodes.levels, session.nodes.patient, session.nodes.chart))
    assert mrml_scene.GetNumberOfNodes() == count
    assert fresh.nodes.vertebrae is session.nodes.vertebrae and fresh.nodes.chart_table is session.nodes.chart_table


def test_nodes_deleted_by_the_user_are_made_again(session, ct_node, label_node, mrml_scene):
    session.map(ct_node, label_node)
    old_table, old_chart = session.nodes.lesions, session.nodes.chart
    mrml_scene.RemoveNode(old_table)
    mrml_scene.RemoveNode(old_chart)
    session.stage(session.review_rows()[0].auto_id, "delete")
    result = session.apply_corrections()
    for node in (session.nodes.lesions, session.nodes.chart, session.nodes.vertebrae):
        assert node.GetScene() is mrml_scene
    assert session.nodes.lesions is not old_table and session.nodes.chart is not old_chart
    assert session.nodes.lesions.GetTable().GetNumberOfRows() == len(result.table)
    assert session.nodes.lesions.GetNodeReference("SpineCalcMap.vertebrae") is session.nodes.vertebrae


def test_bad_inputs_get_the_cores_clear_errors(session, ct_node, label_node, mrml_scene):
    from calcinosis import mrml

    r = get_phantom("lumbar")
    g = r.geometry
    cases = []
    cases.append(((None, label_node), "no CT selected"))
    cases.append(((ct_node, None), "no vertebrae selected"))
    cases.append(((label_node, label_node), "is a label map; choose the CT"))
    mr = mrml.node_from_volume(Volume(r.ct, g, {"modality": "MR"}), "an MRI")
    cases.append(((mr, label_node), "is MR; the spine map needs a CT"))
    g1 = g.__class__.create((g.size_ijk[0], g.size_ijk[1], 1), g.spacing, g.origin_ras, g.direction)
    flat = mrml.node_from_volume(Volume(r.ct[:1], g1, {"modality": "CT"}), "one slice")
    cases.append(((flat, label_node), "needs a CT volume"))
    organs = np.where(r.labels == 52, 52, 0).astype(np.uint8)      # the aorta only
    aorta_only = mrml.node_from_volume(Volume(organs, g, {}), "aorta only", labelmap=True)
    cases.append(((ct_node, aorta_only), "fit no known convention"))
    cases.append(((ct_node, aorta_only, "totalsegmentator"), "no vertebra labels in this label map"))
    odd = np.where(r.labels > 0, 200, 0).astype(np.uint8)          # a value no convention knows
    cases.append(((ct_node, mrml.node_from_volume(Volume(odd, g, {}), "odd", labelmap=True)), "200"))
    shifted = Volume(r.labels, g.__class__.create(g.size_ijk, g.spacing, np.asarray(g.origin_ras) + [0, 0, 900.0],
                                                  g.direction), {})
    cases.append(((ct_node, mrml.node_from_volume(shifted, "another scan", labelmap=True)), "field of view"))
    cases.append(((ct_node, mrml.markups_from_points([("left", [0.0, 0.0, 0.0])], "not vertebrae")),
                  "no point names a vertebra"))
    cases.append(((ct_node, mrml.markups_from_points([], "empty")), "holds no point"))
    table = mrml_scene.AddNewNodeByClass("vtkMRMLTableNode", "a table")
    cases.append(((ct_node, table), "cannot give the vertebrae"))
    empty_seg = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    cases.append(((ct_node, empty_seg), "holds no segment"))
    for inputs, message in cases:
        ct, vertebrae = inputs[:2]
        params = SpineParams(convention=inputs[2] if len(inputs) > 2 else "auto")
        before = mrml_scene.GetNumberOfNodes()
        with pytest.raises(InputError, match=message):
            session.map(ct, vertebrae, params)
        assert mrml_scene.GetNumberOfNodes() == before, message
    assert session.result is None
    # parameters the panel could hold that SpineParams refuses
    from calcinosis.mrml.spine_session import spine_params
    with pytest.raises(InputError, match="--connectivity"):
        spine_params({"connectivity": "corner"})
    with pytest.raises(InputError, match="--search-margin"):
        spine_params({"search_margin_mm": 0.0})
    with pytest.raises(InputError, match="study_min_slices: expected a whole number"):
        spine_params({"study_min_slices": 2.5})
    with pytest.raises(InputError, match="press Map first"):
        session.export("somewhere")
    with pytest.raises(InputError, match="press Map first"):
        session.review_rows()
    # an aorta segment that is not there
    with pytest.raises(InputError, match="has no segment 'nope'"):
        seg = segmentation_node_from_labels(r.labels, g, {52: "aorta"}, "vessels")
        session.map(ct_node, label_node, aorta_node=seg, aorta_segment_id="nope")


def test_export_refuses_staged_corrections_and_missing_folder(session, ct_node, label_node, tmp_path):
    session.map(ct_node, label_node)
    with pytest.raises(InputError, match="choose an output folder"):
        session.export("")
    session.stage(session.review_rows()[0].auto_id, "delete")
    with pytest.raises(InputError, match="staged but not applied"):
        session.export(tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- views
def test_jump_centres_every_slice_view_on_the_calcification(session, ct_node, label_node, mrml_scene):
    import slicer
    from calcinosis import mrml

    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(mrml_scene)
    views = []
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        node = mrml_scene.AddNewNodeByClass("vtkMRMLSliceNode", name)
        node.SetLayoutName(name)
        node.SetDimensions(256, 256, 1)
        node.SetFieldOfView(250.0, 250.0, 1.0)
        node.SetOrientation(orientation)
        views.append(node)
    session.map(ct_node, label_node)
    rows = session.review_rows()
    target = rows[4]
    session.jump_to(target.auto_id)
    # the centroid as the lesion table node holds it (not the session's copy)
    row = mrml.table_from_table_node(session.nodes.lesions).rows[target.lesion_id - 1]
    want = _centroid(row)
    for node in views:
        m = node.GetSliceToRAS()
        assert np.allclose([m.GetElement(k, 3) for k in range(3)], want, atol=1e-6), node.GetName()
    # a deleted calcification can still be shown (to restore it)
    session.stage(rows[1].auto_id, "delete")
    session.apply_corrections()
    c = session.jump_to(rows[1].auto_id)
    assert np.allclose(c, rows[1].centroid)


# ---------------------------------------------------------------------- the panel's parameters
def test_panel_parameters_are_spineparams_names_with_its_defaults():
    """Static: the parameter node of SpineCalcMap.py holds every SpineParams field under
    its own name, defaulting to SPINE_DEFAULTS.<name>, each shown by a widget."""
    import ast
    from dataclasses import fields
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gui"))
    import gui_checks

    repo = Path(__file__).resolve().parents[2]
    tree = ast.parse((repo / "SpineCalcMap" / "SpineCalcMap.py").read_text(encoding="utf-8"))
    cls = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "SpineCalcMapParameterNode")
    defaults = {s.target.id: ast.unparse(s.value) if s.value is not None else None
                for s in cls.body if isinstance(s, ast.AnnAssign)}
    ui = gui_checks.read_ui(repo / "SpineCalcMap" / "Resources" / "UI" / "SpineCalcMap.ui")
    from calcinosis.mrml.spine_session import SPINE_PARAMETER_NAMES
    assert set(SPINE_PARAMETER_NAMES) == {f.name for f in fields(SpineParams)}
    for name in SPINE_PARAMETER_NAMES:
        assert defaults.get(name) == f"SPINE_DEFAULTS.{name}", name
        assert name in ui.parameters, name
    # the spin boxes accept every default
    import xml.etree.ElementTree as ET
    root = ET.parse(repo / "SpineCalcMap" / "Resources" / "UI" / "SpineCalcMap.ui").getroot()
    d = SpineParams()
    for w in root.iter("widget"):
        props = {p.get("name"): p for p in w.findall("property")}
        if "SlicerParameterName" not in props or "minimum" not in props:
            continue
        name = props["SlicerParameterName"].find("string").text
        lo = float(next(iter(props["minimum"])).text)
        hi = float(next(iter(props["maximum"])).text)
        assert lo <= getattr(d, name) <= hi, name


def test_spine_params_reads_the_parameter_node_values():
    from calcinosis.mrml.spine_session import spine_params
    node = types.SimpleNamespace(threshold_hu=150, study_rule=0, study_min_slices=3.0, connectivity="full",
                                 convention="totalspineseg", inputVolume=object())
    p = spine_params(node)
    assert (p.threshold_hu, p.study_rule, p.study_min_slices, p.connectivity, p.convention) == \
        (150.0, False, 3, "full", "totalspineseg")
    assert p.pll_back_mm == SpineParams().pll_back_mm          # absent names keep their defaults
    assert isinstance(p.study_min_slices, int) and isinstance(p.threshold_hu, float)


# ---------------------------------------------------------------------- TotalSegmentator
class _FakeTotalSegmentatorLogic:
    """Stands in for the extension's TotalSegmentatorLogic: fills the output segmentation
    with the phantom's TotalSegmentator labels, as class-named segments."""

    calls: list = []
    fail = False

    def __init__(self):
        self.logCallback = None
        self.useStandardSegmentNames = True
        self.setup_called = False

    def setupPythonRequirements(self, upgrade=False):
        self.setup_called = True

    def process(self, inputVolume, outputSegmentation, quality=None, cpu=False, task=None, subset=None,
                interactive=False, sequenceBrowserNode=None):
        type(self).calls.append({"quality": quality, "task": task, "interactive": interactive,
                                 "standard_names": self.useStandardSegmentNames, "setup": self.setup_called})
        if self.logCallback:
            self.logCallback("Processing started")
        if type(self).fail:
            raise RuntimeError("CUDA out of memory")
        r = get_phantom("lumbar")
        made = segmentation_node_from_labels(r.labels, r.geometry, totalsegmentator_names("class"), "tmp")
        outputSegmentation.GetSegmentation().DeepCopy(made.GetSegmentation())
        made.GetScene().RemoveNode(made)


class _OldFakeTotalSegmentatorLogic(_FakeTotalSegmentatorLogic):
    def process(self, inputVolume, outputSegmentation, fast=True, cpu=False, task=None, subset=None):
        type(self).calls.append({"fast": fast, "task": task})
        r = get_phantom("lumbar")
        made = segmentation_node_from_labels(r.labels, r.geometry, totalsegmentator_names("class"), "tmp")
        outputSegmentation.GetSegmentation().DeepCopy(made.GetSegmentation())
        made.GetScene().RemoveNode(made)


@pytest.fixture
def fake_totalsegmentator(monkeypatch, mrml_scene):
    import slicer

    def install(logic_class):
        module = types.ModuleType("TotalSegmentator")
        module.TotalSegmentatorLogic = logic_class
        monkeypatch.setitem(sys.modules, "TotalSegmentator", module)
        monkeypatch.setattr(slicer.modules, "totalsegmentator", types.SimpleNamespace(), raising=False)
        logic_class.calls = []
        logic_class.fail = False
        return logic_class
    return install


def test_totalsegmentator_button_runs_the_extension_and_its_labels_map(session, ct_node, cli_labels,
                                                                       fake_totalsegmentator, mrml_scene):
    from calcinosis.mrml import spine_session as sl

    fake = fake_totalsegmentator(_FakeTotalSegmentatorLogic)
    assert sl.totalsegmentator_available()
    log = []
    seg = sl.run_totalsegmentator(ct_node, fast=True, log=log.append)
    assert fake.calls == [{"quality": "fast", "task": "total", "interactive": False, "standard_names": False,
                           "setup": True}]
    assert log == ["Processing started"]
    assert seg.GetName() == "phantom CT TotalSegmentator" and seg.GetSegmentation().GetNumberOfSegments() > 10
    session.map(ct_node, seg)
    assert_like_cli(session.nodes, cli_labels)
    sl.run_totalsegmentator(ct_node, fast=False)
    assert fake.calls[-1]["quality"] == "normal"
    # a failing run leaves no empty segmentation behind
    fake.fail = True
    before = mrml_scene.GetNumberOfNodes()
    with pytest.raises(RuntimeError, match="out of memory"):
        sl.run_totalsegmentator(ct_node)
    assert mrml_scene.GetNumberOfNodes() == before


def test_totalsegmentator_older_signature_and_absence(fake_totalsegmentator, ct_node, monkeypatch):
    import slicer
    from calcinosis.mrml import spine_session as sl

    fake = fake_totalsegmentator(_OldFakeTotalSegmentatorLogic)
    sl.run_totalsegmentator(ct_node, fast=False)
    assert fake.calls == [{"fast": False, "task": "total"}]
    monkeypatch.delattr(slicer.modules, "totalsegmentator")
    assert not sl.totalsegmentator_available()
    with pytest.raises(InputError, match="Extensions Manager"):
        sl.run_totalsegmentator(ct_node)


# ---------------------------------------------------------------------- real data
@pytest.mark.realdata
@pytest.mark.parametrize("as_segmentation", [False, True])
def test_real_ct_through_the_panel_matches_the_command_line(totalseg_example, session, as_segmentation):
    """The real abdominal CT with its TotalSegmentator labels, as a label map node or as the
    segmentation the extension would make (class-named segments): the same map as
    ``calcinosis spine`` on the files (levels T11-T12 ... L5-S1 assessed, the rest not)."""
    from calcinosis import mrml
    from calcinosis.spine import pipeline

    ct_path = totalseg_example / "example_ct.nii.gz"
    labels_path = totalseg_example / "example_seg_fast_force_split.nii.gz"
    ct = mrml.node_from_volume(image_io.load_image(ct_path), "abdomen")
    li = read_label_map(labels_path)
    if as_segmentation:
        vertebrae = segmentation_node_from_labels(li.layers[0], li.geometry, totalsegmentator_names("class"), "ts")
    else:
        vertebrae = mrml.node_from_volume(Volume(li.layers[0], li.geometry, {}), "ts", labelmap=True)
    result = session.map(ct, vertebrae)
    ref = pipeline.run_spine(ct_path, vertebrae=labels_path)
    assert result.assessed == ref.assessed == LEVELS[LEVELS.index("T11-T12"):]
    got = node_tables(session.nodes)
    for t, want in (("lesions", ref.table), ("levels", ref.levels), ("patient", ref.patient)):
        assert_tables_equal(got[t], want, t)


def test_spineps_subregion_node_gives_what_the_command_line_gives(session, mrml_scene, tmp_path, cli):
    """The panel's SPINEPS inputs (instance mask as the vertebrae, the sub-region mask as
    its own label map node) map as ``calcinosis spine --vertebrae ... --subregions ...``
    does: the same calcifications, sub-sites and recorded parts; a vertebra label map given
    as the sub-regions is refused naming the input."""
    import csv
    import json

    from calcinosis import mrml
    from calcinosis.spine import phantom
    r = get_phantom("lumbar", "spineps")
    sub = phantom.subregion_labels(r)
    ct = mrml.node_from_volume(Volume(r.ct, r.geometry, {"modality": "CT"}), "SPINEPS CT")
    inst = mrml.node_from_volume(Volume(r.labels, r.geometry, {}), "seg-vert", labelmap=True)
    subn = mrml.node_from_volume(Volume(sub, r.geometry, {}), "seg-spine", labelmap=True)
    result = session.map(ct, inst, SpineParams(), subregions_node=subn)
    assert result.inputs["subregions"]["parts"] == ["arch", "spinous", "costal", "body", "cord", "canal", "disc",
                                                     "sacrum"]
    ct_path, vert_path, sub_path = write_spineps_case(r, sub, tmp_path)
    code, _, err = cli("spine", ct_path, "--vertebrae", vert_path, "--subregions", sub_path, "-o", tmp_path / "out",
                       "-q")
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "out" / "lesions.csv", newline="", encoding="utf-8-sig")))
    assert [(x["level"], x["segment"], x["subsite"]) for x in rows] == [
        (x["level"], x["segment"], x["subsite"]) for x in result.table.rows]
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text(encoding="utf-8"))
    assert prov["inputs"]["subregions"]["parts"] == result.inputs["subregions"]["parts"]
    with pytest.raises(InputError, match="sub-region label map: not a SPINEPS sub-region mask"):
        session.map(ct, inst, SpineParams(), subregions_node=inst)
