"""Accuracy of the spine map on phantoms of the three coverages (issue item 9).

Thresholds (the issue's): level >= 95% correct, segment >= 90%, sub-site >= 85%,
pattern >= 85%, counted over every true spinal calcification (a missed one is wrong
for every field); no aortic or iliac wall calcification reported; levels outside the
coverage not assessed.  The phantoms are exact: each calcification was placed in a
named sub-site of a named level, so the truth does not depend on the map's rules.
"""

from __future__ import annotations

import pytest

from calcinosis.spine.anatomy import LEVELS, SEGMENTS
from calcinosis.spine.summary import SUBSITE_COLUMNS

from spine_helpers import expected_assessed, get_phantom, mapped, score

CASES = [
    ("tap", "totalsegmentator"), ("chest", "totalsegmentator"), ("lumbar", "totalsegmentator"),
    # the other conventions: discs (TotalSpineSeg), no aorta/rib labels (both: the aorta found by shape)
    ("lumbar", "totalspineseg"), ("chest", "verse"),
    # SPINEPS instances: VerSe numbers with discs 100 + the vertebra above
    ("lumbar", "spineps"),
]


@pytest.mark.parametrize("coverage,convention", CASES)
def test_accuracy_on_phantom(coverage, convention):
    r = get_phantom(coverage, convention)
    res = mapped(coverage, convention)
    s = score(r, res)
    assert s["n"] >= 12, "the phantom must hold enough calcifications for the rates to mean something"
    msg = f"{coverage}/{convention}: {s['wrong']}"
    assert s["level_rate"] >= 0.95, msg
    assert s["segment_rate"] >= 0.90, msg
    assert s["subsite_rate"] >= 0.85, msg
    assert s["pattern_rate"] >= 0.85, msg
    assert s["vascular_reported"] == [], f"aortic/iliac wall calcifications reported: {s['vascular_reported']}"
    # precision: the phantom has no other calcification; allow 5% spurious ones (noise and
    # partial volume could make one) - none is expected
    assert len(s["false_positives"]) <= max(1, int(0.05 * s["n"])), s["false_positives"]


@pytest.mark.parametrize("coverage,convention", CASES)
def test_levels_outside_the_coverage_are_not_assessed(coverage, convention):
    r = get_phantom(coverage, convention)
    res = mapped(coverage, convention)
    expected = expected_assessed(r.labels, convention)
    assert res.assessed == expected
    nominal = {"chest": ("C7-T1", "T12-L1"), "tap": ("C7-T1", "L5-S1"), "lumbar": ("T12-L1", "L5-S1")}[coverage]
    lo, hi = LEVELS.index(nominal[0]), LEVELS.index(nominal[1])
    assert set(LEVELS[lo:hi + 1]) <= set(res.assessed)
    if coverage == "chest":
        assert not {"L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"} & set(res.assessed)
    if coverage == "lumbar":
        assert not set(LEVELS[:LEVELS.index("T10-T11") + 1]) & set(res.assessed)
    for row in res.levels.rows:
        if row["level"] in res.assessed:
            assert row["status"] == "assessed" and row["count_total"] is not None
        else:
            assert row["status"] == "not_assessed"
            # never "0 calcifications" for a level the scan does not show
            assert all(v is None for k, v in row.items() if k.startswith("count_"))


@pytest.mark.parametrize("coverage", ["tap", "lumbar"])
def test_tables_agree_with_each_other(coverage):
    res = mapped(coverage)
    rows = res.table.rows
    p = res.patient.rows[0]
    assert p["calcification_count"] == len(rows) == sum(r["count_total"] or 0 for r in res.levels.rows)
    for seg in SEGMENTS:
        assert p[f"count_{seg}"] == sum(r["segment"] == seg for r in rows) \
            == sum(r[f"count_{seg}"] or 0 for r in res.levels.rows)
        assert p[f"any_{seg}"] == int(p[f"count_{seg}"] > 0)
    for sub in SUBSITE_COLUMNS:
        assert p[f"count_{sub}"] == sum(r["subsite"] == sub for r in rows)
    assert p["count_intracanal"] == sum(r["subsite"] in ("intracanal", "foraminal") for r in rows)
    assert p["count_linear"] + p["count_punctate"] + p["count_pseudotumoral"] == len(rows)
    assert p["levels_assessed"] == len(res.assessed)
    assert p["first_level_assessed"] == res.assessed[0] and p["last_level_assessed"] == res.assessed[-1]
    assert p["coverage"] == {"tap": "TAP", "lumbar": "lumbar"}[coverage]
    # lesions numbered 1..n, cranial to caudal by level
    assert [r["lesion_id"] for r in rows] == list(range(1, len(rows) + 1))
    assert [LEVELS.index(r["level"]) for r in rows] == sorted(LEVELS.index(r["level"]) for r in rows)


def test_every_subsite_and_pattern_is_exercised():
    """The TAP phantom places calcifications in all the study's eight sub-sites with all
    three patterns, and the map finds each sub-site and pattern (so no class passes by
    being absent).  The facet joint is the hard phantom's (this one has no articular
    processes): test_spine_facets."""
    r = get_phantom("tap")
    truth = [row for row in r.truth.rows if row["kind"] == "spinal"]
    from calcinosis.spine.anatomy import PATTERNS, SUBSITES
    study = set(SUBSITES) - {"facet_joint"}
    assert {row["subsite"] for row in truth} == study
    assert {row["pattern"] for row in truth} == set(PATTERNS)
    res = mapped("tap")
    assert {row["subsite"] for row in res.table.rows} == study
    assert {row["pattern"] for row in res.table.rows} == set(PATTERNS)
    assert sum(row["kind"] == "vascular" for row in r.truth.rows) >= 10


def test_without_contrast_and_aorta_label_the_limit_is_stated():
    """Without contrast and without an aorta label nothing shows the aorta: the map says
    so instead of silently reporting its wall calcifications as spinal."""
    res = mapped("lumbar", "verse", contrast=False)
    assert any("no aorta label" in w for w in res.warnings)
    res_c = mapped("lumbar", "verse", contrast=True)
    assert not any("no aorta label" in w for w in res_c.warnings)
    assert res_c.stats["aorta_found_by_shape"] >= 1


@pytest.mark.parametrize("coverage,seed", [("tap", 1), ("chest", 2)])
def test_accuracy_holds_for_other_patients(coverage, seed):
    """Other seeds draw another spine (rotation, scoliosis, which sub-sites at which level,
    shapes and densities): the thresholds are not met by one lucky phantom."""
    r = get_phantom(coverage, seed=seed)
    s = score(r, mapped(coverage, seed=seed))
    assert s["level_rate"] >= 0.95 and s["segment_rate"] >= 0.90, s["wrong"]
    assert s["subsite_rate"] >= 0.85 and s["pattern_rate"] >= 0.85, s["wrong"]
    assert s["vascular_reported"] == []


def test_a_spine_without_calcifications(tmp_path):
    """A healthy spine: every level assessed with 0, patient any_* = 0, all files written."""
    from calcinosis.spine import phantom, pipeline
    from spine_helpers import labels_of, volume_of
    r = phantom.make_spine_phantom("lumbar", spacing=(1.0, 1.0, 1.25), size_xy=None, seed=0,
                                   calcifications_per_level=0, vascular_calcifications=4)
    res = pipeline.map_spine(volume_of(r), labels_of(r))
    assert len(res.table) == 0
    assert all(row["count_total"] == 0 for row in res.levels.rows if row["status"] == "assessed")
    p = res.patient.rows[0]
    assert p["any_calcification"] == 0 and p["calcification_count"] == 0 and p["levels_assessed"] >= 6
    files = pipeline.write_spine_outputs(tmp_path / "out", res)
    assert {f.name for f in files} >= {"lesions.csv", "levels.csv", "patient.csv", "lesions.seg.nrrd",
                                       "level_chart.png", "provenance.json"}
