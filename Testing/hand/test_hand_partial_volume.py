"""Issue 14, deliverable 2's last part: the multi-modality hand phantom - one patient seen
by a CT with a scanner's blur (3 mm slices, standard kernel, 15 HU noise) and by MRI - and how
much of the CT-MRI volume difference the partial-volume volume removes.  Also the hand
task's partial-volume columns and totals.

Truth: the phantom's lesions (ellipsoids of known volume).  Each truth lesion is looked up in
each result's label map at its true centre."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.core.tables import Table


def _at_centres(out, truth: Table) -> list[dict | None]:
    lab = image_io.load_label_image(out / "lesion_labels.nrrd")
    arr, g = lab.layers[0], lab.geometry
    rows = {int(r["lesion_id"]): r for r in Table.read_csv(out / "lesions.csv").rows}
    found = []
    for t in truth.rows:
        ras = np.array([[t["center_r_mm"], t["center_a_mm"], t["center_s_mm"]]])
        i, j, k = np.round(g.ras_to_ijk(ras)[0]).astype(int)
        inside = 0 <= k < arr.shape[0] and 0 <= j < arr.shape[1] and 0 <= i < arr.shape[2]
        found.append(rows.get(int(arr[k, j, i])) if inside else None)
    return found


@pytest.fixture(scope="module")
def ct_and_mri(tmp_path_factory):
    from calcinosis.cli.main import main
    d = tmp_path_factory.mktemp("pvhand")
    assert main(["phantom", "hand-ct", "--kernel", "standard", "--spacing", "0.5,0.5,3", "--noise", "15",
                 "-o", str(d / "ct"), "-q"]) == 0
    assert main(["phantom", "hand-mri", "-o", str(d / "mr"), "-q"]) == 0
    assert main(["hand", str(d / "ct" / "ct"), "--landmarks", str(d / "ct" / "landmarks.mrk.json"),
                 "--partial-volume", "--calibration", "0.8,0", "-o", str(d / "ct_out"), "-q"]) == 0
    assert main(["hand", str(d / "mr" / "mri"), "--roi", str(d / "mr" / "regions.seg.nrrd"),
                 "--landmarks", str(d / "mr" / "landmarks.mrk.json"), "-o", str(d / "mr_out"), "-q"]) == 0
    return d


def test_partial_volume_removes_the_ct_mri_difference(ct_and_mri):
    """Lesions found on both, whose partial-volume columns are not flagged for bone in the
    margin (a deposit the 3 mm slices merged with the bone's edge is a detection failure, not
    a measurement): the CT's 130 HU total is over 25% above the MRI's (1.43 seen: the
    partial-volume rim of 3 mm slices), its pv_volume_mm3 total within 5% of the MRI's and of
    the truth (1.01 and 0.98 seen).  5%: the MRI total itself is 3% under the truth (its
    1.5 mm slices), and the faint deposits' fitted densities carry noise."""
    d = ct_and_mri
    truth_ct = Table.read_csv(d / "ct" / "truth.csv")
    truth_mr = Table.read_csv(d / "mr" / "truth.csv")      # the same patient, placed elsewhere
    ct = _at_centres(d / "ct_out", truth_ct)
    mr = _at_centres(d / "mr_out", truth_mr)
    true = thr = pv = mri = 0.0
    n = 0
    for t, c, m in zip(truth_ct.rows, ct, mr):
        if c is None or m is None or "bone" in (c["pv_note"] or ""):
            continue
        n += 1
        true += t["volume_mm3"]
        thr += c["volume_mm3"]
        pv += c["pv_volume_mm3"]
        mri += m["volume_mm3"]
    assert n >= 8, n
    assert thr / mri > 1.25, (thr, mri)
    assert pv / mri == pytest.approx(1.0, abs=0.05), (pv, mri)
    assert pv / true == pytest.approx(1.0, abs=0.05), (pv, true)


def test_hand_tables_carry_the_partial_volume_columns_and_totals(ct_and_mri):
    d = ct_and_mri / "ct_out"
    lesions = Table.read_csv(d / "lesions.csv")
    hands = Table.read_csv(d / "hand.csv")
    digits = Table.read_csv(d / "digits.csv")
    for name in ("pv_volume_mm3", "calcium_mass_mg", "pv_note"):
        assert lesions.has_column(name)
    for table, keys in ((hands, ("side",)), (digits, ("side", "digit"))):
        assert table.column_spec("total_pv_volume_mm3").unit == "mm3"
        for row in table.rows:
            mine = [r for r in lesions.rows if all(r[k] == row[k] for k in keys)]
            pvs = [r["pv_volume_mm3"] for r in mine]
            want = None if any(v is None for v in pvs) else sum(pvs)
            if want is None:
                assert row["total_pv_volume_mm3"] is None
            else:
                assert row["total_pv_volume_mm3"] == pytest.approx(want, rel=1e-6, abs=1e-3)
                assert row["total_calcium_mass_mg"] == pytest.approx(
                    sum(r["calcium_mass_mg"] for r in mine), rel=1e-6, abs=1e-3)
    record = json.loads((d / "provenance.json").read_text(encoding="utf-8"))
    pv = record["parameters"]["partial_volume"]
    # the phantom's DICOM carries Slice Thickness 3 mm; the blur is read on the hand's skin
    assert pv["scanner_blur"]["slice_thickness_source"].startswith("SliceThickness")
    assert pv["scanner_blur"]["slice_thickness_mm"] == 3.0
    assert pv["scanner_blur"]["in_plane_fwhm_source"].startswith("measured on the skin")


def test_partial_volume_on_mri_is_refused(cli, ct_and_mri, tmp_path):
    d = ct_and_mri
    code, _, stderr = cli("hand", d / "mr" / "mri", "--roi", d / "mr" / "regions.seg.nrrd", "--partial-volume",
                          "-o", tmp_path / "x", "-q")
    assert code == 2 and "needs a CT" in stderr, stderr
