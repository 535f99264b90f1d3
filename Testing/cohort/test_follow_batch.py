"""Issue 14, deliverables 4-5: lesions followed in a batch by time point, and the cohort
statistics on the per-lesion outcomes.

Two patients: P1 seen at baseline and at M12 with known changes and another pose
(``hand.phantom_followup``), P2 seen twice with the same image (nothing changed).  The batch
follows each patient's M12 from its baseline; ``stats outcomes`` summarises."""

from __future__ import annotations

import pytest

from calcinosis.core import image_io
from calcinosis.core.tables import Table
from calcinosis.hand import phantom as ph
from calcinosis.hand.phantom_followup import ct_followup_phantom

SPACING = (0.8, 0.8, 0.8)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from calcinosis.cli.main import main
    from calcinosis.cohort.manifest import write_manifest
    d = tmp_path_factory.mktemp("followbatch")
    patient = ph.make_patient("R", 0)
    base = ph.ct_phantom(patient=patient, seed=0, spacing=SPACING)
    fu, changes, _ = ct_followup_phantom(patient, {1: "grown", 12: "resolved", 19: "shrunk"},
                                         [ph.Site("middle", "distal_phalanx", "subcutaneous")], spacing=SPACING)
    image_io.write_image(base.array, base.geometry, d / "p1_base.nrrd")
    image_io.write_image(fu.array, fu.geometry, d / "p1_m12.nrrd")
    image_io.write_image(base.array, base.geometry, d / "p2_base.nrrd")
    rows = [{"case_id": "p1b", "patient_id": "P1", "task": "hand", "image": "p1_base.nrrd", "modality": "ct",
             "time_point": "baseline", "options": "--laterality R"},
            {"case_id": "p1m", "patient_id": "P1", "task": "hand", "image": "p1_m12.nrrd", "modality": "ct",
             "time_point": "M12", "options": "--laterality R"},
            {"case_id": "p2b", "patient_id": "P2", "task": "hand", "image": "p2_base.nrrd", "modality": "ct",
             "time_point": "baseline", "options": "--laterality R"},
            {"case_id": "p2m", "patient_id": "P2", "task": "hand", "image": "p2_base.nrrd", "modality": "ct",
             "time_point": "M12", "options": "--laterality R"}]
    write_manifest(d / "manifest.csv", rows)
    assert main(["batch", str(d / "manifest.csv"), "-o", str(d / "out"), "--workers", "1", "-q"]) == 0
    return d, changes


def test_each_patient_is_followed_from_baseline(batch):
    d, changes = batch
    out = Table.read_csv(d / "out" / "lesion_outcomes.csv")
    assert sorted((r["patient_id"], r["baseline_time_point"], r["time_point"]) for r in out.rows) == \
        [("P1", "baseline", "M12"), ("P2", "baseline", "M12")]
    p1 = next(r for r in out.rows if r["patient_id"] == "P1")
    p2 = next(r for r in out.rows if r["patient_id"] == "P2")
    # P2: the same image twice - every lesion stable, nothing new or resolved
    assert p2["n_new"] == p2["n_resolved"] == p2["n_grown"] == p2["n_shrunk"] == 0 and p2["n_stable"] > 10
    assert p2["change_pct"] == 0.0 and p2["change_class"] == "stable"
    # P1: the phantom's changes: one grown, one shrunk, one resolved, the new 40 mm3 lesion (at
    # 0.8 mm the detector also finds 1 mm3 specks at one visit only: they count as new too)
    assert p1["n_grown"] == 1 and p1["n_shrunk"] == 1 and p1["n_resolved"] == 1 and p1["n_new"] >= 1
    # the per-lesion table holds every group of both follow-ups, with its keys, as the follow-up wrote them
    lesions = Table.read_csv(d / "out" / "lesion_changes.csv")
    assert {r["patient_id"] for r in lesions.rows} == {"P1", "P2"}
    new = [r for r in lesions.rows if r["patient_id"] == "P1" and r["change"] == "new"]
    assert len(new) == p1["n_new"] and max(r["followup_volume_mm3"] for r in new) == pytest.approx(40.0, rel=0.15)
    own = Table.read_csv(d / "out" / p1["follow_folder"] / "lesion_changes.csv")
    assert len(own) == sum(1 for r in lesions.rows if r["patient_id"] == "P1")
    assert (d / "out" / p1["follow_folder"] / "lesion_changes.csv").is_file()


def test_a_second_run_keeps_the_follow_ups(batch):
    from calcinosis.cli.main import main
    d, _ = batch
    folder = next((d / "out" / "follow").iterdir())
    before = (folder / "provenance.json").read_bytes()
    assert main(["batch", str(d / "manifest.csv"), "-o", str(d / "out"), "--workers", "1", "-q"]) == 0
    assert (folder / "provenance.json").read_bytes() == before


def test_stats_outcomes_summarise_the_per_lesion_outcomes(cli, batch, tmp_path):
    """stats outcomes: 2 patients followed to M12; 1 with a new lesion (50%, Wilson CI
    9.5-90.5%), 1 with a resolved one; the counts those of lesion_outcomes.csv."""
    d, _ = batch
    code, stdout, stderr = cli("stats", "outcomes", d / "out", "-o", tmp_path / "s", "-q")
    assert code == 0, stderr
    t = Table.read_csv(tmp_path / "s" / "outcomes.csv")
    assert len(t) == 1
    r = t.rows[0]
    assert r["time_point"] == "M12" and r["patients"] == 2
    assert r["patients_with_new"] == 1 and r["patients_with_new_pct"] == 50.0
    assert r["patients_with_new_ci_low_pct"] == pytest.approx(9.45, abs=0.1)
    assert r["patients_with_new_ci_high_pct"] == pytest.approx(90.55, abs=0.1)
    assert r["patients_with_resolved"] == 1
    out = Table.read_csv(d / "out" / "lesion_outcomes.csv")
    assert r["groups_stable"] == sum(x["n_stable"] for x in out.rows)
    assert r["new_lesions"] == sum(x["n_new"] for x in out.rows)
    assert r["patients_stable_total_changed_lesions"] == sum(
        1 for x in out.rows if x["change_class"] == "stable" and (x["n_new"] or x["n_resolved"] or x["n_grown"]
                                                                   or x["n_shrunk"]))
    assert (tmp_path / "s" / "outcomes.html").is_file()


def test_the_cohort_report_has_the_lesions_followed(cli, batch, tmp_path):
    d, _ = batch
    code, _, stderr = cli("report", d / "out", "-o", tmp_path / "rep", "--no-case-reports", "--workers", "0", "-q")
    assert code == 0, stderr
    page = (tmp_path / "rep" / "cohort.html").read_text(encoding="utf-8")
    assert "Lesions followed over time" in page and "Lesions followed to M12" in page
    assert "Total stable while lesions changed" in page
