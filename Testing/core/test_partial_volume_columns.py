"""Issue 14, deliverables 1-2: the partial-volume columns in the measurement tables, the
command line and provenance; a calcium mass from a calibration; and the same deposits
measured through nine acquisitions as a user's run measures them.

Ground truth is analytic (``core.acquisition_phantom``: sphere volumes, densities, excess);
tolerances are stated where asserted, with the physics that allows them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.core.acquisition_phantom import KERNEL_FWHM_MM, Acquisition, Deposit, acquire
from calcinosis.core.acquisition_study import acquisition_study
from calcinosis.core.calibration import calibration_from_rods, calibration_from_text
from calcinosis.core.errors import InputError
from calcinosis.core.partial_volume import PV_COLUMN_NAMES, lesion_excess
from calcinosis.core.psf import ScannerPSF
from calcinosis.core.tables import Table

ACQUISITIONS = [Acquisition(t, k) for t in (0.6, 1.25, 3.0) for k in KERNEL_FWHM_MM]
#: the issue's range: 1-15 mm, 200-1,500 HU
STUDY_DEPOSITS = [Deposit(d, hu) for d in (1.0, 2.0, 3.0, 5.0, 8.0, 15.0) for hu in (200.0, 600.0, 1500.0)]
#: a CT's noise in soft tissue (HU SD) at a hand or spine protocol's dose
NOISE_HU = 15.0


@pytest.fixture(scope="module")
def study():
    return acquisition_study(STUDY_DEPOSITS, ACQUISITIONS, noise_sd=NOISE_HU, seed=3)


def _by_acquisition(table):
    out = {}
    for r in table.rows:
        out.setdefault(r["acquisition"], []).append(r)
    return out


def _resolvable(r) -> bool:
    """Deposits whose volume the image holds to 10% at 15 HU of noise: 3 mm and more at 600 HU
    and more; 5 mm and more at any density on slices up to 1.25 mm; 8 mm and more on 3 mm
    slices.  (A faint small deposit's integrated excess alone carries about 9% of noise - a
    3 mm, 200 HU deposit on 3 mm slices: 15 HU x 0.75 mm3 x sqrt(300 voxels) against 160 HU x
    14 mm3 - so no estimator can hold it to 10%: see the next test.)"""
    d, hu, t = r["diameter_mm"], r["hu"], r["slice_mm"]
    return (d >= 3.0 and hu >= 600.0) or (d >= 5.0 and t <= 1.25) or d >= 8.0


def test_every_resolvable_deposit_within_10_percent_in_every_acquisition(study):
    """Deliverable 2: 0.6-3 mm slices, three kernels, 15 HU noise, the blur measured on the
    skin: each deposit of :func:`_resolvable` found at 130 HU and its pv_volume_mm3 within
    10% of pi d^3 / 6 (the issue's bound)."""
    checked = 0
    for name, rows in _by_acquisition(study).items():
        for r in rows:
            if not _resolvable(r):
                continue
            assert r["pv_volume_mm3"] is not None, (name, r["diameter_mm"], r["hu"])
            ratio = r["pv_volume_mm3"] / r["true_volume_mm3"]
            assert 0.90 <= ratio <= 1.10, (name, r["diameter_mm"], r["hu"], ratio)
            checked += 1
    assert checked >= 9 * 9


def test_without_noise_every_deposit_of_3mm_or_more_within_10_percent():
    """The issue's criterion as stated, on the images without noise: every deposit of 3 mm and
    more (200-1,500 HU) within 10% in all nine acquisitions (0.96-1.04 measured: what is left is
    the fit of the 3 mm ones on thick slices), and the patient total within 5% (within 1%)."""
    study = acquisition_study(STUDY_DEPOSITS, ACQUISITIONS, noise_sd=0.0, seed=3)
    for name, rows in _by_acquisition(study).items():
        for r in rows:
            if r["diameter_mm"] >= 3.0:
                assert r["pv_volume_mm3"] is not None, (name, r)
                assert 0.90 <= r["pv_volume_mm3"] / r["true_volume_mm3"] <= 1.10, (name, r)
        total = sum(r["pv_volume_mm3"] or 0.0 for r in rows) / sum(r["true_volume_mm3"] for r in rows)
        assert total == pytest.approx(1.0, abs=0.05), (name, total)


@pytest.mark.xfail(strict=True, reason="issue 14: a faint (200-300 HU) 3-5 mm deposit on 3 mm slices with a soft "
                                       "kernel and 15 HU of noise is not held to 10%: its excess alone carries about "
                                       "9% of noise and its density is fitted to a few voxels (0.67-1.28 seen)")
def test_faint_small_deposits_on_thick_slices_within_10_percent():
    from calcinosis.core.acquisition_study import measure_acquisition
    deposits = [Deposit(d, hu) for d in (3.0, 5.0) for hu in (200.0, 300.0)]
    for seed in range(6):
        for r in measure_acquisition(deposits, Acquisition(3.0, "soft"), NOISE_HU, seed):
            assert r["pv_volume_mm3"] is not None
            assert 0.90 <= r["pv_volume_mm3"] / r["true_volume_mm3"] <= 1.10, (seed, r)


def test_the_patient_total_within_5_percent_where_the_threshold_total_moves_by_tens_of_percent(study):
    """Per acquisition, the sum of pv_volume_mm3 over the lesions found against the sum of
    the true volumes of all 18 deposits (1-2 mm ones the threshold misses count as lost):
    within 5% (the issue's bound) - and also over the deposits under 15 mm alone, so that
    the three largest do not carry the total.  The 130 HU total of the same images is
    10-27% too large and moves by over 10% between acquisitions."""
    thr_ratios = []
    for name, rows in _by_acquisition(study).items():
        for subset in (rows, [r for r in rows if r["diameter_mm"] < 15.0]):
            true = sum(r["true_volume_mm3"] for r in subset)
            pv = sum(r["pv_volume_mm3"] or 0.0 for r in subset)
            assert pv / true == pytest.approx(1.0, abs=0.05), (name, len(subset), pv / true)
        thr_ratios.append(sum(r["threshold_volume_mm3"] or 0.0 for r in rows) / sum(r["true_volume_mm3"] for r in rows))
    assert min(thr_ratios) > 1.05 and max(thr_ratios) / min(thr_ratios) > 1.10, thr_ratios


def test_the_scanner_blur_is_measured_on_the_skin(study):
    """The in-plane FWHM read on the phantom's skin within 10% of the kernel's (0.6, 0.9,
    1.3 mm): the skin is a blurred step; 10% allows the noise and its rounded corners."""
    for name, rows in _by_acquisition(study).items():
        kernel = rows[0]["kernel"]
        assert rows[0]["measured_fwhm_mm"] == pytest.approx(KERNEL_FWHM_MM[kernel], rel=0.10), name


# ---------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    """Deposits of 3-15 mm on 3 mm slices, soft kernel, 10 HU noise, with a skin; written as NRRD."""
    deposits = [Deposit(d, hu) for d in (3.0, 5.0, 8.0, 15.0) for hu in (300.0, 1500.0)]
    arr, g, truth = acquire(deposits, Acquisition(3.0, "soft"), noise_sd=10.0, seed=1, skin=True)
    path = tmp_path_factory.mktemp("pv") / "ct.nrrd"
    image_io.write_sitk_image(image_io.array_to_sitk(np.round(arr).astype(np.int16), g), path, True)
    return path, g, truth


def _match(table, truth, geometry):
    """The lesion row at each deposit's true centre (by nearest centroid)."""
    out = []
    for t in truth.rows:
        c = np.array([t["center_r_mm"], t["center_a_mm"], t["center_s_mm"]])
        out.append(min(table.rows, key=lambda r: float(np.sum((np.array(
            [r["centroid_r_mm"], r["centroid_a_mm"], r["centroid_s_mm"]]) - c) ** 2))))
    return out


def test_measure_partial_volume_columns_mass_and_provenance(cli, phantom_file, tmp_path):
    path, g, truth = phantom_file
    out = tmp_path / "res"
    code, stdout, stderr = cli("measure", path, "--modality", "ct", "--partial-volume", "--calibration", "0.8,-5",
                               "-o", out, "-q")
    assert code == 0, stderr
    table = Table.read_csv(out / "lesions.csv")
    names = table.column_names
    assert names[names.index("volume_mm3") + 1:names.index("volume_mm3") + 1 + len(PV_COLUMN_NAMES)] == \
        PV_COLUMN_NAMES
    assert table.column_spec("pv_volume_mm3").unit == "mm3"
    assert table.column_spec("calcium_mass_mg").unit == "mg"
    for t, r in zip(truth.rows, _match(table, truth, g)):
        # 3 mm slices, soft kernel, 10 HU noise, blur measured: within 10% (the bound)
        # where the image holds the volume (the 300 HU, 3 mm one it does not: see above)
        if t["hu"] >= 600.0 or t["diameter_mm"] >= 5.0:
            assert r["pv_volume_mm3"] == pytest.approx(t["volume_mm3"], rel=0.10), t
        # the mass is the line's slope x the integrated excess (the intercept cancels) ...
        assert r["calcium_mass_mg"] == pytest.approx(0.8 * r["excess_hu_mm3"] / 1000.0, rel=1e-4)
        # ... and the true mass within 5% from 5 mm (the excess is conserved by blur; 5%: the noise
        # summed over the margin), 15% at 3 mm (about 6% of noise on a 300 HU one's excess)
        assert r["calcium_mass_mg"] == pytest.approx(0.8 * t["excess_hu_mm3"] / 1000.0,
                                                     rel=0.05 if t["diameter_mm"] >= 5 else 0.15), t
    record = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    pv = record["parameters"]["partial_volume"]
    assert pv["calibration"]["slope_mg_cm3_per_HU"] == 0.8 and pv["calibration"]["source"] == "given"
    assert pv["scanner_blur"]["in_plane_fwhm_source"].startswith("measured on the skin")
    assert pv["scanner_blur"]["in_plane_fwhm_mm"] == pytest.approx(1.3, rel=0.1)
    assert pv["scanner_blur"]["slice_thickness_mm"] == 3.0
    assert "partial-volume corrected total" in stdout or code == 0


def test_without_partial_volume_the_table_is_unchanged(cli, phantom_file, tmp_path):
    path, _, _ = phantom_file
    code, _, stderr = cli("measure", path, "--modality", "ct", "-o", tmp_path / "plain", "-q")
    assert code == 0, stderr
    table = Table.read_csv(tmp_path / "plain" / "lesions.csv")
    assert not any(table.has_column(c) for c in PV_COLUMN_NAMES)
    record = json.loads((tmp_path / "plain" / "provenance.json").read_text(encoding="utf-8"))
    assert "partial_volume" not in record["parameters"]


def test_a_given_blur_is_used_and_recorded(cli, phantom_file, tmp_path):
    path, _, _ = phantom_file
    out = tmp_path / "given"
    code, _, stderr = cli("measure", path, "--modality", "ct", "--partial-volume", "--in-plane-fwhm", "1.3",
                          "-o", out, "-q")
    assert code == 0, stderr
    blur = json.loads((out / "provenance.json").read_text(encoding="utf-8"))["parameters"]["partial_volume"]
    assert blur["scanner_blur"]["in_plane_fwhm_source"] == "user"
    assert blur["scanner_blur"]["in_plane_fwhm_mm"] == 1.3
    assert Table.read_csv(out / "lesions.csv").column("calcium_mass_mg") == [None] * 8   # no calibration


@pytest.mark.parametrize("argv, says", [
    (["--partial-volume", "--calibration", "0.8"], "SLOPE,INTERCEPT"),
    (["--calibration", "0.8,0"], "add --partial-volume"),
    (["--partial-volume", "--calibration", "0.8,x"], "two numbers"),
    (["--partial-volume", "--calibration", "80,0"], "outside"),
    (["--in-plane-fwhm", "1.0"], "add --partial-volume"),
    (["--partial-volume", "--rod-densities", "0,100"], "--calibration-rods"),
    (["--partial-volume", "--calibration-rods", "rods.nrrd"], "--rod-densities"),
    (["--partial-volume", "--in-plane-fwhm", "-1"], "--in-plane-fwhm"),
])
def test_bad_partial_volume_options_are_one_line_and_exit_2(cli, phantom_file, tmp_path, argv, says):
    path, _, _ = phantom_file
    out = tmp_path / "bad"
    code, stdout, stderr = cli("measure", path, "--modality", "ct", *argv, "-o", out, "-q")
    assert code == 2
    assert says in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not out.exists()


def test_partial_volume_on_a_radiograph_is_refused(cli, tmp_path):
    code, _, stderr = cli("phantom", "radiograph", "-o", tmp_path / "xr", "-q")
    assert code == 0, stderr
    image = next(p for p in (tmp_path / "xr").rglob("*") if p.suffix in (".dcm", "") and p.is_file()
                 and p.name not in ("truth.csv",))
    code, _, stderr = cli("measure", image, "--threshold", "100", "--partial-volume", "-o", tmp_path / "o", "-q")
    assert code == 2 and "needs a 3D CT" in stderr, stderr


# ---------------------------------------------------------------------- calibration
def _rods_image(densities_hu, noise=8.0, seed=0):
    """Rods (cylinders along the slices) of the given HU in water, and their label array."""
    rng = np.random.default_rng(seed)
    img = np.zeros((10, 40, 40 * len(densities_hu)), np.float32)
    rods = np.zeros(img.shape, np.int16)
    y, x = np.mgrid[0:40, 0:40 * len(densities_hu)]
    for n, hu in enumerate(densities_hu):
        inside = (y - 20) ** 2 + (x - 20 - 40 * n) ** 2 <= 12 ** 2
        img[:, inside] = hu
        rods[:, inside] = n + 1
    return img + rng.normal(0, noise, img.shape).astype(np.float32), rods


def test_calibration_rods_give_the_line_they_were_made_with():
    """Rods of 0, 100, 400 and 800 mg HA/cm3 imaged on the line HU = (rho + 10) / 0.75:
    the fitted slope within 1% and intercept within 2 mg/cm3 (the noise of 8 HU averages
    over about 4,000 voxels per rod)."""
    dens = [0.0, 100.0, 400.0, 800.0]
    img, rods = _rods_image([(d + 10.0) / 0.75 for d in dens])
    cal = calibration_from_rods(img, rods, dens)
    assert cal.slope_mg_cm3_per_hu == pytest.approx(0.75, rel=0.01)
    assert cal.intercept_mg_cm3 == pytest.approx(-10.0, abs=2.0)
    assert cal.r2 > 0.999 and len(cal.rods) == 4


def test_calibration_rods_in_the_wrong_order_are_refused():
    dens = [0.0, 100.0, 400.0, 800.0]
    img, rods = _rods_image([(d + 10.0) / 0.75 for d in (0.0, 800.0, 100.0, 400.0)])
    with pytest.raises(InputError, match="do not follow their densities"):
        calibration_from_rods(img, rods, dens)


def test_calibration_rods_from_the_command_line(cli, tmp_path, phantom_file):
    """--calibration-rods with a label map on the image's grid: the mass follows the
    fitted line (slope recorded)."""
    from calcinosis.core.geometry import Geometry
    dens = [0.0, 200.0, 600.0]
    img, rods = _rods_image([(d + 10.0) / 0.75 for d in dens], noise=0.0)
    # a body of water: a skin around the rods, the rods as dense as deposits
    g = Geometry.create((img.shape[2], img.shape[1], img.shape[0]), (0.5, 0.5, 1.0), (0, 0, 0))
    ct, lab = tmp_path / "rods_ct.nrrd", tmp_path / "rods.nrrd"
    image_io.write_sitk_image(image_io.array_to_sitk(np.round(img).astype(np.int16), g), ct, True)
    image_io.write_sitk_image(image_io.array_to_sitk(rods, g), lab, True)
    out = tmp_path / "r"
    code, _, stderr = cli("measure", ct, "--modality", "ct", "--threshold", "400", "--partial-volume",
                          "--in-plane-fwhm", "0.9", "--calibration-rods", lab, "--rod-densities", "0,200,600",
                          "-o", out, "-q")
    assert code == 0, stderr
    cal = json.loads((out / "provenance.json").read_text(encoding="utf-8"))["parameters"]["partial_volume"]
    assert cal["calibration"]["source"] == "fitted to calibration rods"
    assert cal["calibration"]["slope_mg_cm3_per_HU"] == pytest.approx(0.75, rel=0.01)
    code, _, stderr = cli("measure", ct, "--modality", "ct", "--threshold", "400", "--partial-volume",
                          "--calibration-rods", lab, "--rod-densities", "0,200", "-o", tmp_path / "r2", "-q")
    assert code == 2 and "rods more than densities" in stderr, stderr


def test_calibration_text():
    cal = calibration_from_text("0.78, -3.5")
    assert (cal.slope_mg_cm3_per_hu, cal.intercept_mg_cm3) == (0.78, -3.5)
    assert cal.mass_mg(1_000_000.0) == pytest.approx(780.0)


# ---------------------------------------------------------------------- what the margin meets
def test_a_deposit_under_the_skin_keeps_its_volume_and_is_flagged():
    """A 5 mm deposit whose outline is 1 mm under the skin: the air (and the skin's blurred
    edge) is left out of the background and of the excess, so the background is the
    tissue's, not a mix with air at -1,000 HU; the lesion is flagged (near_air) because part
    of its blur crossed the skin.  Volume within 10%: with a 0.9 mm FWHM, under 1% of the
    excess lies 1 mm beyond the outline; the rest of the 10% is the skin's own blur tail."""
    from calcinosis.core.geometry import Geometry
    from calcinosis.core.psf import blurred_sphere
    p, t = 0.5, 1.0
    shape = (30, 60, 60)
    arr = np.full(shape, 40.0, np.float32)
    psf = ScannerPSF(0.9, t)
    sigma = 0.9 / 2.3548
    from scipy import special
    x = np.arange(shape[2]) * p
    skin_x = 22.0
    arr[:] = (-1000.0 + 1040.0 * 0.5 * special.erfc((x - skin_x) / (np.sqrt(2) * sigma)))[None, None, :]
    centre = np.array([15.0, 15.0, skin_x - 3.5])     # (z, y, x) mm: surface 1 mm under the skin
    fine, first = blurred_sphere(2.5, 960.0, np.zeros(3), psf, np.full(3, 6.0), 0.1)
    from scipy import ndimage
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    idx = [(kk * t - centre[0] - first[0]) / 0.1, (jj * p - centre[1] - first[1]) / 0.1,
           (ii * p - centre[2] - first[2]) / 0.1]
    arr += ndimage.map_coordinates(fine, idx, order=1, mode="constant").astype(np.float32)
    g = Geometry.create((shape[2], shape[1], shape[0]), (p, p, t), (0, 0, 0))
    lab, n = ndimage.label((arr >= 130.0) & (np.arange(shape[2]) * p < skin_x - 0.5)[None, None, :])
    assert n == 1
    m = lesion_excess(arr, lab, n, g, psf=psf)
    assert m["near_air"][0]
    assert m["background_hu"][0] == pytest.approx(40.0, abs=5.0)
    assert m["volume_mm3"][0] == pytest.approx(np.pi / 6 * 5.0 ** 3, rel=0.10)


def test_a_lesion_longer_than_any_deposit_is_not_measured():
    """A 120 mm rod at 500 HU (a bone or a vessel caught by the threshold): not measured, said so
    in pv_note; a 5 mm deposit beside it is."""
    from calcinosis.core.geometry import Geometry
    from calcinosis.core.partial_volume import MAX_EXTENT_MM, partial_volume_columns
    arr = np.full((40, 60, 300), 40.0, np.float32)
    arr[18:22, 10:14, 20:260] = 500.0                      # 240 voxels x 0.5 mm = 120 mm
    z, y, x = np.mgrid[0:40, 0:60, 0:300]
    arr[(z - 20) ** 2 + ((y - 40) * 0.5) ** 2 * 4 + ((x - 150) * 0.5) ** 2 * 4 <= 2.5 ** 2 * 4] = 800.0
    g = Geometry.create((300, 60, 40), (0.5, 0.5, 1.0), (0, 0, 0))
    from scipy import ndimage
    lab, n = ndimage.label(arr >= 130.0)
    assert n == 2 and MAX_EXTENT_MM < 120.0
    rows = partial_volume_columns(arr, lab, n, g, ScannerPSF(0.9, 1.0))
    rod = int(lab[20, 12, 100]) - 1
    assert rows[rod]["pv_volume_mm3"] is None and "not measured" in rows[rod]["pv_note"]
    assert rows[1 - rod]["pv_volume_mm3"] is not None and rows[1 - rod]["pv_note"] == ""
