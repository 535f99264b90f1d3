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
