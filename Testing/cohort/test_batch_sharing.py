"""The readings of one image in a batch share what does not depend on their parameters
(calcinosis.core.memo): a radiograph read three times (default minimum size, 2 and 20 mm²) and a
spine CT read three times (default; minimum size 2 mm³; 200 HU).  The second and third
readings' tables must be byte for byte those of the same readings computed alone, and the sharing must happen (the
second and third readings get the image, the radiograph candidates and the spine frame from
the first)."""

from __future__ import annotations

import pytest

from calcinosis.cli.main import main as cli
from calcinosis.cohort import batch
from calcinosis.cohort.manifest import read_manifest, write_manifest
from calcinosis.core import memo

TABLES = {"hand": ("lesions.csv", "hand.csv", "digits.csv", "lesion_assignment.csv"),
          "spine": ("lesions.csv", "levels.csv", "patient.csv")}


@pytest.fixture(scope="module")
def readings(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharing")
    assert cli(["phantom", "hand-xr", "-o", str(root / "xr"), "-q", "--seed", "2", "--spacing", "0.25"]) == 0
    assert cli(["phantom", "spine-ct", "-o", str(root / "sp"), "-q", "--seed", "2", "--spacing", "1.0,1.0,1.25",
                "--coverage", "chest", "--per-level", "0.5", "--fit", "--format", "nrrd"]) == 0
    rows = []
    for n, extra in enumerate(({}, {"min_size": "2"}, {"min_size": "20"}), start=1):
        rows.append(dict(case_id=f"xr-{n}", patient_id="P1", task="hand", modality="xr", reader=f"R{n}",
                         image=str(root / "xr" / "xr.dcm"), landmarks=str(root / "xr" / "landmarks.mrk.json"), **extra))
    for n, extra in enumerate(({}, {"min_size": "2"}, {"threshold": "200"}), start=1):
        rows.append(dict(case_id=f"sp-{n}", patient_id="P1", task="spine", reader=f"R{n}",
                         image=str(root / "sp" / "ct.nrrd"), labels=str(root / "sp" / "vertebrae.nii.gz"), **extra))
    write_manifest(root / "manifest.csv", rows)
    specs = read_manifest(root / "manifest.csv")
    args = {where: [(s.to_dict(), str(root / where / s.case_id), False, False) for s in specs]
            for where in ("alone", "shared")}
    for a in args["alone"]:            # each reading in its own sharing scope: nothing to share
        if not a[0]["case_id"].endswith("-1"):     # (the first reading of each computes everything anyway)
            with memo.sharing():
                assert batch.run_case(*a)["status"] == "ok"
    before = memo.stats()
    groups = batch.image_groups(args["shared"])
    states = [d for g in groups for d in batch.run_case_group(g)]
    after = memo.stats()
    return root, specs, groups, states, {k: after[k] - before[k] for k in after}


def test_readings_of_one_image_form_one_group(readings):
    _, specs, groups, _, _ = readings
    assert sorted(sorted(a[0]["case_id"] for a in g) for g in groups) == [["sp-1", "sp-2", "sp-3"],
                                                                          ["xr-1", "xr-2", "xr-3"]]


def test_shared_readings_equal_readings_alone(readings):
    root, specs, _, states, _ = readings
    assert all(d["status"] == "ok" for d in states), [d["reason"] for d in states]
    for s in specs:
        if s.case_id.endswith("-1"):
            continue
        for name in TABLES[s.task]:
            alone = (root / "alone" / s.case_id / name).read_bytes()
            assert (root / "shared" / s.case_id / name).read_bytes() == alone, (s.case_id, name)
    # and the readings do differ (the parameters were applied, not the first reading copied)
    lesions = {s.case_id: (root / "shared" / s.case_id / "lesions.csv").read_text().count("\n") for s in specs}
    assert lesions["xr-2"] >= lesions["xr-1"] >= lesions["xr-3"] and lesions["xr-2"] > lesions["xr-3"]
    sp = {c: (root / "shared" / c / "lesions.csv").read_bytes() for c in ("sp-1", "sp-3")}
    assert sp["sp-3"] != sp["sp-1"]      # 200 HU: other outlines, other volumes


def test_the_second_and_third_readings_share(readings):
    *_, counts = readings
    # images: the radiograph 1 + 2, the CT within the spine inputs (1 + 2; not kept on its own); radiograph
    # candidates 1 + 2 (the minimum size only differs); spine frame 1 + 2; bone surfaces: two
    # thresholds -> 2 computed, 1 shared; their CT profiles (threshold-free) 1 + 1 (the 200 HU reading)
    assert counts == {"computed": 1 + 1 + 1 + 1 + 2 + 1, "shared": 2 + 2 + 2 + 2 + 1 + 1}, counts
