"""Issue 14, step 1: the same deposits imaged with slice thicknesses 0.6-3 mm and three
kernels (``core.acquisition_phantom``), and what each lesion measure does across them
(``core.partial_volume``).  Ground truth is analytic (sphere volumes, true excess); the
tolerances are stated where asserted, with the physics that allows them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.core.acquisition_phantom import KERNEL_FWHM_MM, Acquisition, Deposit, acquire
from calcinosis.core.partial_volume import lesion_excess

ACQUISITIONS = [Acquisition(t, k) for t in (0.6, 1.25, 3.0) for k in KERNEL_FWHM_MM]
DEPOSITS = [Deposit(d, hu) for d in (2.0, 3.0, 5.0, 8.0) for hu in (600.0, 1500.0)]


@pytest.fixture(scope="module")
def acquired():
    """{acquisition name: (measures per deposit - None when 130 HU found none -, truth rows)}."""
    out = {}
    for acq in ACQUISITIONS:
        arr, g, truth = acquire(DEPOSITS, acq, seed=2)
        lab, n = ndimage.label(arr >= 130.0, structure=np.ones((3, 3, 3)))
        m = lesion_excess(arr, lab, n, g)
        vox = float(np.prod(g.spacing))
        rows = []
        for r in truth.rows:
            i = int(round(r["center_r_mm"] / g.spacing[0]))
            j = int(round(r["center_a_mm"] / g.spacing[1]))
            k = int(round(r["center_s_mm"] / g.spacing[2]))
            c = int(lab[k, j, i])
            rows.append(None if c == 0 else {"threshold_volume_mm3": float(np.sum(lab == c) * vox),
                                             **{key: float(v[c - 1]) for key, v in m.items()}})
        out[acq.name] = (rows, truth.rows, arr, g)
    return out


def test_blur_conserves_each_deposits_excess(acquired):
    """The phantom's premise, checked independently of partial_volume: the sum of (value -
    background) x voxel volume over each deposit's own stretch of the image equals
    (hu - background) x pi d^3 / 6.  Tolerance 1%: the sphere is drawn on a 0.1 mm grid
    (a 2 mm sphere's drawn volume is within 0.5% of pi d^3 / 6) and sampled by linear
    interpolation."""
    for name, (_, truth, arr, g) in acquired.items():
        edges = [0.0] + [(a["center_r_mm"] + b["center_r_mm"]) / 2 for a, b in zip(truth, truth[1:])] + [1e9]
        x = np.arange(arr.shape[2]) * g.spacing[0]
        vox = float(np.prod(g.spacing))
        for r, lo, hi in zip(truth, edges, edges[1:]):
            total = float((arr[:, :, (x >= lo) & (x < hi)] - r["background_hu"]).sum() * vox)
            assert total == pytest.approx(r["excess_hu_mm3"], rel=0.01), (name, r["diameter_mm"], r["hu"])


def test_integrated_excess_does_not_depend_on_the_acquisition(acquired):
    """The integral over the lesion and 3 mm around it, less the shell's median background:
    within 2% of the true excess for every deposit of 2-8 mm, 600-1,500 HU, in all nine
    acquisitions (0.6-3 mm slices, three kernels).  2%: the margin holds the blur's tails
    (4 sigma of the softest kernel, half of a 3 mm slice) but not quite all of them."""
    for name, (rows, truth, _, _) in acquired.items():
        for m, r in zip(rows, truth):
            assert m is not None, (name, r["diameter_mm"], r["hu"])
            assert m["excess_hu_mm3"] == pytest.approx(r["excess_hu_mm3"], rel=0.02), (name, r["diameter_mm"], r["hu"])


def test_the_threshold_volume_does_depend_on_it(acquired):
    """The problem the issue names, on the same images: the 130 HU volume of one deposit
    changes by tens of percent between acquisitions (a 3 mm, 1,500 HU deposit: measured
    1.9-3.3 x its volume)."""
    for i, d in enumerate(DEPOSITS):
        if d.diameter_mm > 5:
            continue
        ratios = [rows[i]["threshold_volume_mm3"] / truth[i]["volume_mm3"] for rows, truth, _, _ in acquired.values()]
        assert max(ratios) / min(ratios) > 1.3, (d, ratios)


def test_excess_over_peak_is_the_volume_where_the_peak_is_resolved(acquired):
    """excess / (peak - background): within 2% of the true volume where the deposit is wider
    than the blur in every direction - 5 mm and more at slices up to 1.25 mm, 8 mm at 3 mm
    slices.  3 mm deposits at slices up to 1.25 mm: within 12% (blur lowers their peak:
    measured 0-10.3% too large over six sub-voxel offsets, the most with the soft kernel at
    1.25 mm).  Where the peak is not resolved (5 mm deposits on 3 mm slices: up to 1.22 x;
    3 mm ones: 1.1-2.4 x, measured) it is not the volume: the open part of issue 14."""
    for name, (rows, truth, _, _) in acquired.items():
        slice_mm = float(name.split()[0])
        for m, r in zip(rows, truth):
            d = r["diameter_mm"]
            ratio = m["excess_volume_mm3"] / r["volume_mm3"]
            if d >= 8 or (d >= 5 and slice_mm <= 1.25):
                assert ratio == pytest.approx(1.0, abs=0.02), (name, d, r["hu"], ratio)
            elif d >= 3 and slice_mm <= 1.25:
                assert 0.98 <= ratio <= 1.12, (name, d, r["hu"], ratio)


def test_acquisition_rejects_an_unknown_kernel():
    with pytest.raises(ValueError, match="kernel 'bone'"):
        Acquisition(1.0, "bone")


@pytest.mark.parametrize("acq", [Acquisition(0.6, "sharp"), Acquisition(1.25, "standard"), Acquisition(3.0, "soft")],
                         ids=lambda a: a.name)
def test_volume_from_the_excess_and_the_density_with_the_scanners_blur_known(acq):
    """Given the acquisition's point-spread function, volume = excess / density, the density
    the core's mean where a core deeper than the blur exists, else fitted (a blurred sphere
    keeping the excess): within 3% of the true volume for 3-5 mm deposits of 600-1,500 HU
    on 0.6-3 mm slices, noise-free (measured, nine acquisitions: within 1% for every
    deposit of 3-8 mm, 300-1,500 HU, but a 3 mm one of 300 HU on 3 mm slices with the soft
    kernel, 0.96).  Excess / peak on the same 3 mm deposits on 3 mm slices: 1.1-2.4 x."""
    from calcinosis.core.psf import ScannerPSF
    deposits = [Deposit(d, hu) for d in (3.0, 5.0) for hu in (600.0, 1500.0)]
    arr, g, truth = acquire(deposits, acq, seed=4)
    lab, n = ndimage.label(arr >= 130.0, structure=np.ones((3, 3, 3)))
    m = lesion_excess(arr, lab, n, g, psf=ScannerPSF(KERNEL_FWHM_MM[acq.kernel], acq.slice_mm))
    for r in truth.rows:
        i, j, k = (int(round(r[c] / s)) for c, s in zip(("center_r_mm", "center_a_mm", "center_s_mm"), g.spacing))
        c = int(lab[k, j, i])
        assert c > 0
        assert m["volume_mm3"][c - 1] == pytest.approx(r["volume_mm3"], rel=0.03), (r["diameter_mm"], r["hu"])
        assert m["density_hu"][c - 1] == pytest.approx(r["hu"], rel=0.05), (r["diameter_mm"], r["hu"])
    if acq.slice_mm >= 3:
        assert m["density_fitted"].all()                      # no core is deeper than a 3 mm slice's blur


def test_density_fit_finds_the_sphere_it_is_given():
    """fit_sphere_density on a sphere drawn by the same model (3 mm, 900 HU over the
    background, 3 mm slices, 0.4 mm off the slice centre): its radius within 0.05 mm, its
    density within 2% (the model's grid is 0.15 mm against the drawing's 0.1 mm)."""
    from calcinosis.core.partial_volume import fit_sphere_density
    from calcinosis.core.psf import ScannerPSF, blurred_sphere
    psf = ScannerPSF(0.9, 3.0)
    grid, first = blurred_sphere(1.5, 900.0, np.array([0.4, -0.13, 0.21]), psf, np.full(3, 6.0), 0.1)
    sp = np.array([3.0, 0.5, 0.5])
    kji = np.stack(np.meshgrid(*[np.arange(-2, 3), np.arange(-8, 9), np.arange(-8, 9)], indexing="ij"), -1).reshape(-1, 3)
    pts = kji * sp
    vals = ndimage.map_coordinates(grid, ((pts - first) / 0.1).T, order=1)
    excess = float(vals.sum() * np.prod(sp))
    centroid = (pts * vals[:, None]).sum(axis=0) / vals.sum()      # in plane the centre; along z 3 mm samples
    assert abs(centroid[0] - 0.4) > 0.05                           # ... do not give it: the fit searches it
    density, radius = fit_sphere_density(vals, pts, excess, float(vals.max()), centroid, psf)
    assert radius == pytest.approx(1.5, abs=0.05)
    assert density == pytest.approx(900.0, rel=0.02)


def _cylinder_in_air(fwhm_mm: float, slices: int = 20) -> np.ndarray:
    """A 44 mm tissue cylinder (40 HU) in air, its axis along the slices, blurred in plane by a
    Gaussian of ``fwhm_mm`` on a 0.1 mm grid, sampled at 0.5 mm pixels, 15 HU noise."""
    from calcinosis.core.psf import FWHM_TO_SIGMA
    y, x = np.mgrid[:600, :600] * 0.1
    fine = np.where(np.hypot(y - 30.3, x - 29.7) < 22.0, 40.0, -1000.0)
    fine = ndimage.gaussian_filter(fine, fwhm_mm * FWHM_TO_SIGMA / 0.1)
    vol = np.repeat(fine[2::5, 2::5][None], slices, axis=0).astype(np.float32)
    return vol + np.random.default_rng(0).normal(0, 15, vol.shape).astype(np.float32)


@pytest.mark.parametrize("fwhm", [0.6, 0.9, 1.3])
def test_in_plane_blur_measured_on_the_skin(fwhm):
    """The slanted-edge estimate of the in-plane FWHM from the air-tissue edge: within 8% of
    the blur applied (measured: within 5% for 0.6-1.3 mm at 0.5 mm pixels, 15 HU noise);
    sub-pixel offsets along the round edge sample the edge spread function finely."""
    from calcinosis.core.psf import in_plane_fwhm_from_skin
    est, used = in_plane_fwhm_from_skin(_cylinder_in_air(fwhm), np.array([1.25, 0.5, 0.5]))
    assert used >= 1000
    assert est == pytest.approx(fwhm, rel=0.08)


def test_in_plane_blur_without_air_is_not_made_up():
    from calcinosis.core.psf import in_plane_fwhm_from_skin
    est, used = in_plane_fwhm_from_skin(np.full((5, 40, 40), 40.0, np.float32), np.array([1.0, 0.5, 0.5]))
    assert np.isnan(est) and used == 0


def test_the_table_under_the_body_is_not_taken_for_skin():
    """A 1.5 mm plate (the CT table) under the body is a thin line, not a step: its edges
    read as a sharper blur (measured: 0.56 mm for a 0.9 mm blur when every air edge is used).
    Only the outline of each slice's largest piece of tissue is read: within 8%."""
    from calcinosis.core.psf import FWHM_TO_SIGMA, in_plane_fwhm_from_skin
    y, x = np.mgrid[:600, :600] * 0.1
    fine = np.where(np.hypot(y - 27.3, x - 29.7) < 20.0, 40.0, -1000.0)
    fine[(y > 50) & (y < 51.5) & (x > 3) & (x < 57)] = 200.0
    fine = ndimage.gaussian_filter(fine, 0.9 * FWHM_TO_SIGMA / 0.1)
    vol = np.repeat(fine[2::5, 2::5][None], 20, axis=0).astype(np.float32)
    vol += np.random.default_rng(0).normal(0, 15, vol.shape).astype(np.float32)
    est, _ = in_plane_fwhm_from_skin(vol, np.array([1.25, 0.5, 0.5]))
    assert est == pytest.approx(0.9, rel=0.08)


def _rise_10_90_along_rows_mm(ct: np.ndarray, pixel_mm: float) -> float:
    """An independent, cruder reading of the skin's blur: the median distance from -900 to
    -100 HU across the left and right body edges along image rows (the middle rows of every
    8th slice).  It can only overestimate: the edge's normal is oblique to the rows, and
    linear interpolation between pixels adds its own width."""
    widths = []
    for k in range(10, ct.shape[0] - 10, 8):
        for row in range(ct.shape[1] * 3 // 10, ct.shape[1] * 13 // 20, 6):
            for p in (ct[k, row].astype(float), ct[k, row, ::-1].astype(float)):
                j = int(np.argmax(p > -500))
                seg = p[max(j - 6, 0):j + 4]
                if j < 10 or not (seg[0] < -900 and seg.max() > -100):
                    continue
                rise = np.maximum.accumulate(seg[:int(np.argmax(seg > -100)) + 1])   # increasing, for interp
                cross = [np.interp(level, rise, np.arange(len(rise))) for level in (-900.0, -100.0)]
                widths.append((cross[1] - cross[0]) * pixel_mm)
    return float(np.median(widths))


def test_in_plane_blur_of_the_real_contrast_ct(tcia_ct):
    """The real contrast CT (1.07 mm pixels, 3 mm slices): its skin gives an in-plane FWHM of
    1.82 mm (measured; 1.32 mm when the table's and the bowel gas's edges were read too).
    Checked against an independent reading, the 10-90% rise across the body's sides along
    rows (2.33 mm, i.e. a FWHM of 2.14 mm: an overestimate, see the helper): at most that,
    and at least 0.7 of it.  From over 1,000 edge points."""
    from calcinosis.core import image_io
    from calcinosis.core.psf import in_plane_fwhm_from_skin
    v = image_io.load_image(tcia_ct / "ct.nrrd")
    g = v.geometry
    est, used = in_plane_fwhm_from_skin(v.array, np.array([g.spacing_along_array_axis(a) for a in range(3)]))
    crude_fwhm = _rise_10_90_along_rows_mm(v.array, g.spacing[0]) / 1.088     # 10-90% of an erf = 1.088 FWHM
    assert used >= 1000
    assert 0.7 * crude_fwhm <= est <= crude_fwhm, (est, crude_fwhm)


def test_scanner_psf_of_a_ct_says_where_each_number_came_from():
    """The slice thickness from the header when it has one (else the spacing); the in-plane
    blur given, measured on the skin, or - without air in the image - assumed, and said so."""
    from calcinosis.core.geometry import Geometry
    from calcinosis.core.psf import ASSUMED_IN_PLANE_FWHM_MM, scanner_psf_of
    from calcinosis.core.volume import Volume
    arr = _cylinder_in_air(1.3)
    g = Geometry.create((arr.shape[2], arr.shape[1], arr.shape[0]), (0.5, 0.5, 1.25))
    psf, rec = scanner_psf_of(Volume(arr, g, {"modality": "CT", "dicom": {"SliceThickness": 2.0}}))
    assert psf.slice_mm == 2.0 and rec["slice_thickness_source"].startswith("SliceThickness")
    assert psf.in_plane_fwhm_mm == pytest.approx(1.3, rel=0.08) and rec["in_plane_fwhm_source"].startswith("measured")
    psf, rec = scanner_psf_of(Volume(arr, g, {"modality": "CT"}), in_plane_fwhm_mm=0.7)
    assert (psf.slice_mm, psf.in_plane_fwhm_mm, rec["in_plane_fwhm_source"]) == (1.25, 0.7, "user")
    assert rec["slice_thickness_source"].startswith("slice spacing")
    flat = np.full((6, 40, 40), 40.0, np.float32)
    psf, rec = scanner_psf_of(Volume(flat, Geometry.create((40, 40, 6), (0.5, 0.5, 1.0)), {"modality": "CT"}))
    assert psf.in_plane_fwhm_mm == ASSUMED_IN_PLANE_FWHM_MM and rec["in_plane_fwhm_source"].startswith("assumed")
    with pytest.raises(ValueError, match="in-plane FWHM"):
        scanner_psf_of(Volume(flat, Geometry.create((40, 40, 6), (0.5, 0.5, 1.0)), {}), in_plane_fwhm_mm=0.0)
