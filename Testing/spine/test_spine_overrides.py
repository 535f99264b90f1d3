"""Reader overrides: delete or change a calcification; the decision survives re-runs
(matched by centroid) and is recorded, from what to what."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core.errors import InputError
from calcinosis.spine import overrides as ov
from calcinosis.spine import pipeline
from calcinosis.spine.params import SpineParams

from spine_helpers import get_phantom, labels_of, mapped, volume_of

HEADER = "action,lesion_id,centroid_r_mm,centroid_a_mm,centroid_s_mm,level,segment,subsite,pattern,note\n"


def _c(row, shift=(0.0, 0.0, 0.0)):
    return np.array([row["centroid_r_mm"], row["centroid_a_mm"], row["centroid_s_mm"]]) + np.asarray(shift)


def test_delete_and_change_are_applied_and_recorded():
    res = mapped("lumbar")
    rows = res.table.rows
    a, b = rows[0], rows[3]
    new_level = next(lv for lv in res.assessed if lv != b["level"])
    over = [ov.Override("delete", _c(a), a["lesion_id"], row=2),
            ov.Override("change", _c(b, (1.0, -1.0, 0.5)), None, level=new_level, subsite="interspinous", row=3)]
    out = pipeline.apply_reader_overrides(res, over)
    assert len(out.table) == len(rows) - 1
    assert [r["lesion_id"] for r in out.table.rows] == list(range(1, len(rows)))
    changed = [r for r in out.table.rows if np.allclose(_c(r), _c(b))]
    assert len(changed) == 1
    assert changed[0]["level"] == new_level and changed[0]["subsite"] == "interspinous"
    assert changed[0]["segment"] == "posterior"     # a sub-site sets its segment
    assert not any(np.allclose(_c(r), _c(a)) for r in out.table.rows)
    # the summaries follow the corrected table
    assert out.patient.rows[0]["calcification_count"] == len(rows) - 1
    lv = {r["level"]: r for r in out.levels.rows}
    assert lv[new_level]["count_interspinous"] == sum(r["level"] == new_level and r["subsite"] == "interspinous"
                                                       for r in out.table.rows)
    rec = ov.record_table(out.applied)
    assert rec.rows[0]["status"] == "applied" and rec.rows[0]["level_before"] == a["level"]
    assert rec.rows[0]["level_after"] is None and rec.rows[0]["lesion_id"] is None
    assert rec.rows[1]["subsite_before"] == b["subsite"] and rec.rows[1]["subsite_after"] == "interspinous"
    assert rec.rows[1]["level_after"] == new_level and rec.rows[1]["distance_mm"] == pytest.approx(1.5, abs=1e-6)
    assert out.table.rows[rec.rows[1]["lesion_id"] - 1] is changed[0]
    # the automatic result is untouched: overrides are re-applied from it
    assert len(res.table) == len(rows)


def test_matching_tolerance_and_unmatched_or_rejected_overrides():
    res = mapped("lumbar")
    r0 = res.table.rows[0]
    far = ov.Override("delete", _c(r0, (4.0, 0, 0)), row=2)   # 4 mm away: beyond the 3 mm tolerance
    out = pipeline.apply_reader_overrides(res, [far])
    assert len(out.table) == len(res.table) and out.applied[0].status == "unmatched"
    assert any("row 2" in w and "unmatched" in w for w in out.warnings)
    missing_level = next(lv for lv in ("C7-T1", "T5-T6") if lv not in res.assessed)
    rej = ov.Override("change", _c(r0), level=missing_level, row=3)
    out = pipeline.apply_reader_overrides(res, [rej])
    assert out.applied[0].status == "rejected" and "not assessed" in out.applied[0].message
    assert out.table.rows[0]["level"] == r0["level"]
    wider = pipeline.apply_reader_overrides(
        pipeline.SpineResult(**{**res.__dict__, "params": SpineParams(override_tolerance_mm=5.0)}), [far])
    assert wider.applied[0].status == "applied"


def test_lesion_id_only_breaks_ties():
    rows = [{"lesion_id": 1, "centroid_r_mm": 0.0, "centroid_a_mm": 0.0, "centroid_s_mm": 0.0, "level": "L1-L2",
             "segment": "anterior", "subsite": "anterior_longitudinal_ligament", "pattern": "punctate"},
            {"lesion_id": 2, "centroid_r_mm": 1.0, "centroid_a_mm": 0.0, "centroid_s_mm": 0.0, "level": "L1-L2",
             "segment": "anterior", "subsite": "anterior_longitudinal_ligament", "pattern": "punctate"}]
    point = np.array([0.4, 0.0, 0.0])  # nearer to 1, but within tolerance of both
    kept, rec = ov.apply_overrides(rows, [ov.Override("delete", point, lesion_id=2)], ["L1-L2"])
    assert [r["lesion_id"] for r in kept] == [1] and rec[0].auto_lesion_id == 2
    kept, rec = ov.apply_overrides(rows, [ov.Override("delete", point, lesion_id=9)], ["L1-L2"])
    assert [r["lesion_id"] for r in kept] == [2]        # an id that fits nothing is ignored


def test_override_file_errors_name_row_and_column(tmp_path):
    cases = {
        "remove,1,0,0,0,,,,,\n": "column action",
        "delete,1,0,x,0,,,,,\n": "must be numbers",
        "change,1,0,0,0,T8-T10,,,,\n": "column level",
        "change,1,0,0,0,,anterior,intracanal,,\n": "belongs to the intracanal segment",
        "change,1,0,0,0,,,,blob,\n": "column pattern",
        "change,1,0,0,0,,,,,\n": "needs at least one",
        "delete,1,0,0,0,L1-L2,,,,\n": "takes no new",
    }
    for n, (line, msg) in enumerate(cases.items()):
        p = tmp_path / f"o{n}.csv"
        p.write_text(HEADER + "delete,,1,2,3,,,,,\n" + line)
        with pytest.raises(InputError, match=f"row 3.*{msg}|{msg}.*"):
            ov.read_overrides(p)
        try:
            ov.read_overrides(p)
        except InputError as e:
            assert "row 3" in str(e)
    (tmp_path / "nocol.csv").write_text("action,lesion_id\ndelete,1\n")
    with pytest.raises(InputError, match="centroid_r_mm"):
        ov.read_overrides(tmp_path / "nocol.csv")


def test_overrides_round_trip_through_their_file(tmp_path):
    o = [ov.Override("change", np.array([1.5, -2.25, 300.125]), 4, level="L2-L3", subsite="foraminal",
                     segment="intracanal", note="reader A"), ov.Override("delete", np.array([0.0, 1.0, 2.0]))]
    p = tmp_path / "o.csv"
    p.write_text(ov.overrides_table(o).to_csv_text())
    back = ov.read_overrides(p)
    assert [(b.action, b.lesion_id, b.level, b.segment, b.subsite, b.note) for b in back] == \
        [("change", 4, "L2-L3", "intracanal", "foraminal", "reader A"), ("delete", None, None, None, None, "")]
    np.testing.assert_allclose(back[0].centroid, o[0].centroid)


def test_overrides_from_table_edits_keep_earlier_decisions():
    """What the Slicer panel does: the reader edits the table shown (already corrected);
    the new override list replaces the earlier decision for that calcification, keeping its
    earlier changes, and keeps the other decisions."""
    res = mapped("lumbar")
    rows = res.table.rows
    first = [ov.Override("change", _c(rows[1]), rows[1]["lesion_id"], pattern="linear"),
             ov.Override("delete", _c(rows[2]), rows[2]["lesion_id"])]
    shown = pipeline.apply_reader_overrides(res, first)
    edited = [dict(r) for r in shown.table.rows]
    target = next(r for r in edited if np.allclose(_c(r), _c(rows[1])))
    target["level"] = next(lv for lv in res.assessed if lv != target["level"])
    edited = [r for r in edited if not np.allclose(_c(r), _c(rows[0]))]    # and delete another
    allo = ov.overrides_from_edits(shown.table.rows, edited, first)
    again = pipeline.apply_reader_overrides(res, allo)
    assert [r["lesion_id"] for r in again.table.rows] == list(range(1, len(rows) - 1))   # two deleted
    t = next(r for r in again.table.rows if np.allclose(_c(r), _c(rows[1])))
    assert t["pattern"] == "linear" and t["level"] == target["level"]
    assert not any(np.allclose(_c(r), _c(rows[k])) for r in again.table.rows for k in (0, 2))


def test_overrides_survive_a_rerun_with_another_threshold():
    """Re-measured at 150 HU the centroids move by a fraction of a voxel: the decisions,
    matched by centroid, still apply; lesion ids alone would not be enough."""
    r = get_phantom("lumbar")
    res = mapped("lumbar")
    rows = res.table.rows
    over = [ov.Override("delete", _c(rows[0]), rows[0]["lesion_id"]),
            ov.Override("change", _c(rows[-1]), rows[-1]["lesion_id"], pattern="pseudotumoral")]
    res150 = pipeline.map_spine(volume_of(r), labels_of(r), SpineParams(threshold_hu=150.0), over)
    assert [a.status for a in res150.applied] == ["applied", "applied"]
    assert all(a.distance_mm < 1.0 for a in res150.applied)
    assert len(res150.table) == len(res150.auto_rows) - 1
