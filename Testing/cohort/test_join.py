"""The cohort join reads the hand/spine summary files exactly as the shared contract names them.

The case folders here are written by calcinosis.cohort.synthetic from known lesion lists
(the contract's file and column names, nothing else), so every expected number is a plain sum
computed in the test from those lists."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.cohort import synthetic as sy
from calcinosis.cohort.batch import run_batch
from calcinosis.cohort.contract import LEVELS
from calcinosis.core.tables import Table


def _hand(side, digit, zone, kind, size):
    return sy.HandLesion(side, digit, zone, kind, size)


@pytest.fixture
def contract_cases(tmp_path):
    res = tmp_path / "results"
    # patient P1: both hands on one radiograph, a CT of the right hand; spine TAP
    xr = [_hand("R", "index", "DIP", "periarticular", 12.0), _hand("R", "thumb", "distal_phalanx", "subcutaneous", 30.0),
          _hand("L", "index", "PIP", "subcutaneous", 5.0)]
    ct = [_hand("R", "index", "DIP", "periarticular", 150.0), _hand("R", "thumb", "distal_phalanx", "subcutaneous", 400.0),
          _hand("R", "middle", "MCP", "periarticular", 20.0)]
    sp = [sy.SpineLesion("T8-T9", "anterior_longitudinal_ligament", "linear"),
          sy.SpineLesion("T8-T9", "foraminal", "pseudotumoral"), sy.SpineLesion("L5-S1", "interspinous", "punctate")]
    # patient P2: radiograph only (no lesion); chest CT (lumbar levels not assessed)
    sp2 = [sy.SpineLesion("T2-T3", "intervertebral_disc", "punctate")]
    sy.write_case(res / "p1xr", sy.hand_tables(xr, "XR"), "hand", "XR")
    sy.write_case(res / "p1ct", sy.hand_tables(ct, "CT"), "hand", "CT")
    sy.write_case(res / "p1sp", sy.spine_tables(sp, sy.TAP, "TAP"), "spine", "CT")
    sy.write_case(res / "p2xr", sy.hand_tables([], "XR"), "hand", "XR")
    sy.write_case(res / "p2sp", sy.spine_tables(sp2, sy.CHEST, "chest"), "spine", "CT")
    rows = [{"case_id": "p1xr", "patient_id": "P1", "task": "hand", "result": "results/p1xr"},
            {"case_id": "p1ct", "patient_id": "P1", "task": "hand", "result": "results/p1ct"},
            {"case_id": "p1sp", "patient_id": "P1", "task": "spine", "result": "results/p1sp"},
            {"case_id": "p2xr", "patient_id": "P2", "task": "hand", "result": "results/p2xr"},
            {"case_id": "p2sp", "patient_id": "P2", "task": "spine", "result": "results/p2sp"}]
    return tmp_path, rows, (xr, ct, sp, sp2)


def test_join_of_contract_files(contract_cases, manifest_writer):
    tmp, rows, (xr, ct, sp, sp2) = contract_cases
    clinical = tmp / "clinical.csv"
    clinical.write_text("patient_id,subset,age_years\nP1,lcSSc,61\nP2,dcSSc,48\nP9,lcSSc,50\n")
    s = run_batch(manifest_writer(tmp / "m.csv", rows), tmp / "out", workers=0, clinical=clinical)
    assert all(st.status == "ok" for st in s.states.values()), [st.reason for st in s.states.values()]
    assert any("P9" in w for w in s.warnings)  # clinical patient not in the manifest: said, not silently dropped
    p = {r["patient_id"]: r for r in Table.read_csv(tmp / "out" / "patients.csv").rows}
    p1, p2 = p["P1"], p["P2"]
    # hand XR: both hands of the reading summed
    assert p1["hand_xr_hands"] == 2 and p1["hand_xr_lesion_count"] == 3
    assert p1["hand_xr_total_area_mm2"] == pytest.approx(47.0)
    assert p1["hand_xr_largest_area_mm2"] == pytest.approx(30.0)
    assert (p1["hand_xr_n_subcutaneous"], p1["hand_xr_n_periarticular"]) == (2, 1)
    assert (p1["hand_xr_zone_dip_count"], p1["hand_xr_zone_pip_count"], p1["hand_xr_zone_distal_phalanx_count"]) == (1, 1, 1)
    assert p1["hand_xr_digits_affected"] == 3  # R index, R thumb, L index
    assert (p1["hand_xr_any_calcinosis"], p1["hand_xr_any_periarticular"]) == (1, 1)
    # hand CT
    assert p1["hand_ct_total_volume_mm3"] == pytest.approx(570.0)
    assert p1["hand_ct_largest_volume_mm3"] == pytest.approx(400.0)
    assert p1["hand_ct_total_projected_area_mm2"] > 0
    # patient without lesions: zeros, not missing
    assert p2["hand_xr_lesion_count"] == 0 and p2["hand_xr_any_calcinosis"] == 0
    assert p2["hand_ct_lesion_count"] is None  # no CT for P2
    # spine: patient.csv columns prefixed spine_
    assert p1["spine_coverage"] == "TAP" and p1["spine_levels_assessed"] == len(LEVELS)
    assert p1["spine_calcification_count"] == 3 and p1["spine_any_all_three_segments"] == 1
    assert p1["spine_count_intracanal"] == 1 and p1["spine_count_foraminal"] == 1
    assert p2["spine_coverage"] == "chest" and p2["spine_last_level_assessed"] == "T12-L1"
    assert p2["spine_any_posterior"] == 0
    # clinical columns joined
    assert (p1["subset"], p2["age_years"]) == ("lcSSc", 48)
    # stacked tables
    levels = Table.read_csv(tmp / "out" / "levels.csv")
    assert len(levels) == 2 * len(LEVELS)
    l5 = [r for r in levels.rows if r["level"] == "L5-S1"]
    assert {r["patient_id"]: r["status"] for r in l5} == {"P1": "assessed", "P2": "not_assessed"}
    assert next(r for r in l5 if r["patient_id"] == "P2")["count_total"] is None
    digits = Table.read_csv(tmp / "out" / "digits.csv")
    r_index_xr = next(r for r in digits.rows if r["case_id"] == "p1xr" and r["side"] == "R" and r["digit"] == "index")
    assert r_index_xr["modality"] == "xr" and r_index_xr["total_area_mm2"] == pytest.approx(12.0)
    hands = Table.read_csv(tmp / "out" / "hands.csv")
    assert sorted((r["case_id"], r["side"]) for r in hands.rows) == [("p1ct", "R"), ("p1xr", "L"), ("p1xr", "R"), ("p2xr", "R")]
    lesions = Table.read_csv(tmp / "out" / "lesions.csv")
    assert len(lesions) == 3 + 3 + 3 + 0 + 1
    assert {"side", "digit", "zone", "kind", "level", "segment", "subsite", "pattern"} <= set(lesions.column_names)


def test_contract_violation_marks_the_case_failed(contract_cases, manifest_writer):
    tmp, rows, _ = contract_cases
    hand_csv = tmp / "results" / "p1ct" / "hand.csv"
    text = hand_csv.read_text().replace("n_periarticular", "n_periarticular_typo")
    hand_csv.write_text(text)
    (tmp / "results" / "p1ct" / "hand.schema.csv").unlink()
    s = run_batch(manifest_writer(tmp / "m.csv", rows), tmp / "out", workers=0)
    assert s.states["p1ct"].status == "failed"
    assert "lacks contract column 'n_periarticular'" in s.states["p1ct"].reason
    p = {r["patient_id"]: r for r in Table.read_csv(tmp / "out" / "patients.csv").rows}
    assert p["P1"]["n_failed"] == 1 and p["P1"]["hand_xr_lesion_count"] == 3


def test_stats_on_joined_cohort(contract_cases, manifest_writer, cli):
    tmp, rows, _ = contract_cases
    run_batch(manifest_writer(tmp / "m.csv", rows), tmp / "out", workers=0)
    code, out, err = cli("stats", "prevalence", tmp / "out", "-o", tmp / "prev")
    assert code == 0, err
    prev = {(r["scope"], r["item"], r["level"] or ""): r for r in Table.read_csv(tmp / "prev" / "prevalence.csv").rows}
    assert (prev[("level", "any calcification", "L5-S1")]["n"], prev[("level", "any calcification", "L5-S1")]["N"]) == (1, 1)
    assert (prev[("level", "any calcification", "T8-T9")]["n"], prev[("level", "any calcification", "T8-T9")]["N"]) == (1, 2)
    assert prev[("segment", "intracanal", "")]["n"] == 1
    assert (tmp / "prev" / "levels_by_segment.png").stat().st_size > 1000
