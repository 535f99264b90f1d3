"""Batch over real hand and spine phantom cases, through the real ``calcinosis hand`` and
``calcinosis spine`` commands, joined into the cohort tables and analysed.

The cohort numbers must be the per-case numbers (the join loses nothing and invents
nothing), and levels a scan does not cover must not enter prevalence denominators."""

from __future__ import annotations

import pytest

from calcinosis.core.tables import Table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phantom_cases(phantom_folder):
    """The folder of the session's phantoms (conftest), with the five used here made."""
    folders = [phantom_folder(name) for name in ("hand-ct", "hand-mri", "hand-xr", "spine-lumbar", "spine-none")]
    return folders[0].parent


def test_hand_and_spine_cases_through_batch_and_cohort_statistics(phantom_cases, tmp_path, cli, manifest_writer):
    d = phantom_cases
    rows = [
        {"case_id": "P1-xr", "patient_id": "P1", "task": "hand", "image": d / "hand-xr" / "xr.dcm",
         "landmarks": d / "hand-xr" / "landmarks.mrk.json"},
        {"case_id": "P1-ct", "patient_id": "P1", "task": "hand", "image": d / "hand-ct" / "ct", "modality": "ct",
         "landmarks": d / "hand-ct" / "landmarks.mrk.json"},
        {"case_id": "P1-mri", "patient_id": "P1", "task": "hand", "image": d / "hand-mri" / "mri", "modality": "mri",
         "landmarks": d / "hand-mri" / "landmarks.mrk.json", "region": d / "hand-mri" / "regions.seg.nrrd"},
        {"case_id": "P1-spine", "patient_id": "P1", "task": "spine", "image": d / "spine-lumbar" / "ct",
         "labels": d / "spine-lumbar" / "vertebrae.nii.gz"},
        {"case_id": "P2-spine", "patient_id": "P2", "task": "spine", "image": d / "spine-none" / "ct",
         "labels": d / "spine-none" / "vertebrae.nii.gz", "convention": "totalsegmentator"},
    ]
    out = tmp_path / "batch"
    rows = [{k: str(v) for k, v in r.items()} for r in rows]
    code, _, err = cli("batch", manifest_writer(tmp_path / "m.csv", rows), "-o", out, "--workers", "2", "-q")
    assert code == 0, err
    cases = {r["case_id"]: r for r in Table.read_csv(out / "cases.csv").rows}
    assert {c: r["status"] for c, r in cases.items()} == {r["case_id"]: "ok" for r in rows}
    assert "--roi" in cases["P1-mri"]["command"] and "--vertebrae" in cases["P1-spine"]["command"]

    patients = {r["patient_id"]: r for r in Table.read_csv(out / "patients.csv").rows}
    assert set(patients) == {"P1", "P2"}
    # every joined number is the case's own number
    for case, modality in (("P1-xr", "xr"), ("P1-ct", "ct"), ("P1-mri", "mri")):
        hand = Table.read_csv(out / "cases" / case / "hand.csv").rows[0]
        assert patients["P1"][f"hand_{modality}_lesion_count"] == hand["lesion_count"]
    assert patients["P1"]["hand_ct_total_volume_mm3"] == pytest.approx(
        Table.read_csv(out / "cases" / "P1-ct" / "hand.csv").rows[0]["total_volume_mm3"])
    for pid, case in (("P1", "P1-spine"), ("P2", "P2-spine")):
        own = Table.read_csv(out / "cases" / case / "patient.csv").rows[0]
        for col in ("calcification_count", "any_calcification", "any_anterior", "levels_assessed"):
            assert patients[pid][f"spine_{col}"] == own[col], (pid, col)
    # the phantom with no spinal calcification has none (its aortic wall calcifications are not spinal)
    assert patients["P2"]["spine_any_calcification"] == 0
    assert patients["P1"]["spine_any_calcification"] == 1

    # prevalence: lumbar coverage, so thoracic levels are not assessed and have N = 0
    code, _, err = cli("stats", "prevalence", out, "-o", tmp_path / "prev", "-q")
    assert code == 0, err
    prev_files = sorted(f for f in (tmp_path / "prev").glob("*.csv") if not f.name.endswith(".schema.csv"))
    level_rows = []
    for f in prev_files:
        t = Table.read_csv(f)
        if "level" in t.column_names:
            level_rows += t.rows
    assert level_rows, "prevalence per level written"
    by_level = {r["level"]: r for r in level_rows if r["scope"] == "level"}
    assert "T8-T9" not in by_level or by_level["T8-T9"]["N"] in (0, None)  # outside lumbar coverage
    assert by_level["L4-L5"]["N"] == 2
    own = {r["level"]: r for r in Table.read_csv(out / "cases" / "P1-spine" / "levels.csv").rows}
    assert by_level["L4-L5"]["n"] == int((own["L4-L5"]["count_total"] or 0) > 0)
