"""The candidate search's building blocks against plain dense references.

The spine map tests its margins sparsely (only where an answer decides) and measures
distances on a coarse grid with a k-d tree; here each piece is compared with the
obvious full-volume computation on small synthetic boxes, exactly (same voxels, same
distances): the sparse forms are optimisations, not approximations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.core import parallel
from calcinosis.core.geometry import Geometry
from calcinosis.spine import candidates, conventions as conv
from calcinosis.spine.vertebrae import CAT_AORTA, CAT_BONE, CAT_RIB, CAT_VESSEL, Box, SpineLabels


def _labels(seed: int, spacing=(0.7, 0.8, 1.25)) -> SpineLabels:
    """A 40 x 44 x 48 box with a vertebra block, a rib, other bone and two vessels."""
    rng = np.random.default_rng(seed)
    shape = (40, 44, 48)                           # k, j, i
    g = Geometry.create(shape[::-1], spacing, (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    vert = np.zeros(shape, np.int16)
    cat = np.zeros(shape, np.uint8)
    vert[8:30, 10:24, 12:30] = 1
    vert[30:36, 12:22, 14:28] = 2
    cat[10:16, 26:30, 8:40] = CAT_RIB
    cat[20:26, 30:34, 30:38] = CAT_BONE
    K, J, I = np.ogrid[:shape[0], :shape[1], :shape[2]]
    cat[((J - 33) ** 2 + (I - 14) ** 2 <= 9) & (K >= 5) & (K < 35)] = CAT_AORTA
    cat[((J - 8) ** 2 + (I - 38) ** 2 <= 4) & (K >= 6) & (K < 20)] = CAT_VESSEL
    # voxels above the threshold: scattered, clustered near the structures, away from the edge
    above = rng.random(shape) < 0.25
    above &= ndimage.binary_dilation((vert > 0) | (cat > 0), iterations=4) | (rng.random(shape) < 0.05)
    inner = np.zeros(shape, bool)
    inner[6:-6, 6:-6, 6:-6] = True       # the box's room around the spine: no wrap at the array's edge
    above &= inner & (vert == 0) & (cat == 0)
    return SpineLabels(g, Box((0, 0, 0), shape), ["T1", "T2"], vert, cat), np.flatnonzero(above)


def _within(mask: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Voxels whose centre is within ``radius_mm`` of a mask voxel's centre, or one of
    its 26 neighbours (the rule :func:`candidates.neighbour_offsets` states)."""
    d = ndimage.distance_transform_edt(~mask, sampling=spacing_kji)
    return (d <= radius_mm + 1e-6) | ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool))


@pytest.mark.parametrize("seed,margins", [(0, (1.0, 1.0, 3.0)), (1, (1.0, 2.0, 3.0)), (2, (2.0, 1.0, 5.0))])
def test_margin_tests_match_the_dense_definition(seed, margins):
    lab, idx = _labels(seed)
    vm, bm, vessel_mm = margins
    g = lab.box_geometry
    sp = [g.spacing_along_array_axis(a) for a in range(3)]
    above = np.zeros(lab.vert.shape, bool)
    above.ravel()[idx] = True
    near_bone = _within(lab.vert > 0, vm, sp) | _within((lab.category == CAT_RIB) | (lab.category == CAT_BONE), bm, sp)
    vessel = (lab.category == CAT_AORTA) | (lab.category == CAT_VESSEL)
    zone = _within(vessel, vessel_mm, sp)
    shell = _within(vessel, vessel_mm + max(g.spacing), sp) & ~zone
    dropped = above & (near_bone | zone)
    kept = above & ~dropped
    rim = dropped & ~shell
    contact = kept & ndimage.binary_dilation(rim, structure=ndimage.generate_binary_structure(3, 1))

    got = candidates.margin_tests(idx, lab, vm, bm, vessel_mm)
    assert np.array_equal(got.idx, np.flatnonzero(kept))
    assert np.array_equal(got.mask, kept)
    assert np.array_equal(got.touch, (kept & shell).ravel()[got.idx])
    assert np.array_equal(got.contact, contact.ravel()[got.idx])
    # the synthetic box exercises every rule
    assert got.touch.any() and got.contact.any() and got.idx.size < idx.size


def test_margin_tests_without_vessels_or_voxels():
    lab, idx = _labels(3)
    lab.category[(lab.category == CAT_AORTA) | (lab.category == CAT_VESSEL)] = 0
    got = candidates.margin_tests(idx, lab, 1.0, 1.0, 3.0)
    assert not got.touch.any()
    empty = candidates.margin_tests(np.zeros(0, np.int64), lab, 1.0, 1.0, 3.0)
    assert empty.idx.size == 0 and not empty.mask.any()


def test_label_mask_windows_equal_the_whole_box_mask():
    """``SpineLabels.mask_of`` read window by window is the whole-box mask's window (with and
    without the vertebrae), and ``label_structures`` finds each bone's voxels as the
    whole-box comparison does, slab by slab on one or two threads."""
    lab, _ = _labels(5)
    whole = (lab.vert > 0) | (lab.category == CAT_RIB) | (lab.category == CAT_BONE)
    no_vert = (lab.category == CAT_AORTA) | (lab.category == CAT_VESSEL)
    rng = np.random.default_rng(5)
    for _ in range(20):
        lo = rng.integers(0, 30, 3)
        hi = lo + rng.integers(1, 15, 3)
        w = tuple(slice(a, b) for a, b in zip(lo, hi))
        assert np.array_equal(lab.mask_of((CAT_RIB, CAT_BONE))[w], whole[w])
        assert np.array_equal(lab.mask_of((CAT_AORTA, CAT_VESSEL), vertebrae=False)[w], no_vert[w])
    try:
        for threads in (1, 2):
            parallel.set_threads(threads)
            got = dict(candidates.label_structures(lab))
            assert np.array_equal(got["ribs"], np.flatnonzero(lab.category == CAT_RIB))
            assert np.array_equal(got["other bone"], np.flatnonzero(lab.category == CAT_BONE))
            assert np.array_equal(got["T2"], np.flatnonzero(lab.vert == 2))
    finally:
        parallel.set_threads(None)


@pytest.mark.parametrize("method", ["tree", "map", "auto"])
def test_coarse_distance_equals_a_distance_map_of_the_coarse_grid(method):
    """Both look-up paths (k-d tree for a few cells, a distance map for many) give the
    exact distances between coarse cell centres; the bounded tree search returns inf beyond."""
    lab, _ = _labels(4)
    g = lab.box_geometry
    flat = np.flatnonzero(lab.vert)
    cd = candidates.CoarseDistance(flat, lab.vert.shape, g)
    coarse = np.zeros(cd.coarse_shape, bool)
    k, j, i = np.unravel_index(flat, lab.vert.shape)
    coarse[k // cd.f[0], j // cd.f[1], i // cd.f[2]] = True
    ref_map = ndimage.distance_transform_edt(~coarse, sampling=cd.cell).astype(np.float32)
    q = np.random.default_rng(0).integers(0, lab.vert.size, 3000)
    k, j, i = np.unravel_index(q, lab.vert.shape)
    ref = ref_map[k // cd.f[0], j // cd.f[1], i // cd.f[2]]
    assert np.array_equal(cd.lookup(q, method=method), ref)
    bounded = cd.lookup(q, beyond_mm=8.0, method=method)
    assert np.array_equal(bounded[ref < 8.0], ref[ref < 8.0])
    if method == "tree":
        assert np.all(np.isinf(bounded[ref > 8.0 + 1e-6]))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_value_histogram_counts_every_value_on_every_slice(dtype, axis):
    rng = np.random.default_rng(axis)
    a = (rng.integers(0, 9, size=(23, 17, 31)) * (rng.random((23, 17, 31)) < 0.3)).astype(dtype)
    a[5] = 0                                                    # an empty slice
    ref = np.stack([np.bincount(np.take(a, s, axis=axis).ravel(), minlength=9) for s in range(a.shape[axis])])
    got = conv.value_histogram_along_axis(a, axis, 8)
    assert np.array_equal(got, ref)
    old_slab = conv.SLAB_VOXELS
    try:
        conv.SLAB_VOXELS = 7                                    # slabs of one slice: same counts
        for n_threads in (1, 2, 5):                             # slabs shared among threads: same counts
            parallel.set_threads(n_threads)
            assert np.array_equal(conv.value_histogram_along_axis(a, axis, 8), ref)
    finally:
        conv.SLAB_VOXELS = old_slab
        parallel.set_threads(None)


def test_group_medians_equal_numpy_median_per_group():
    """The bone-surface fit's local medians in one sort (bone.group_medians) equal
    ``np.median`` of each group exactly - ties, empty groups and groups under the minimum
    count included (the fit's results must not move by a bit)."""
    from calcinosis.spine.bone import group_medians
    rng = np.random.default_rng(7)
    for _ in range(300):
        v = rng.normal(size=int(rng.integers(1, 80))).round(int(rng.integers(0, 3)))
        groups = [list(rng.choice(len(v), int(rng.integers(0, len(v) + 1)), replace=False))
                  for _ in range(int(rng.integers(1, 40)))]
        ref = np.array([np.median(v[g]) if len(g) >= 5 else -9.0 for g in groups])
        assert np.array_equal(group_medians(v, groups, min_count=5, fill=-9.0), ref)


@pytest.mark.parametrize("q", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_group_quantiles_equal_numpy_nearest_rank_per_group(q):
    """bone.group_quantiles (the local cortex's upper fifth) equals ``np.quantile`` of each
    group with the nearest-rank method exactly, ties and small groups included."""
    from calcinosis.spine.bone import group_quantiles
    rng = np.random.default_rng(11)
    for _ in range(200):
        v = rng.normal(size=int(rng.integers(1, 80))).round(int(rng.integers(0, 3)))
        groups = [list(rng.choice(len(v), int(rng.integers(0, len(v) + 1)), replace=False))
                  for _ in range(int(rng.integers(1, 40)))]
        ref = np.array([np.quantile(v[g], q, method="nearest") if len(g) >= 5 else -9.0 for g in groups])
        assert np.array_equal(group_quantiles(v, groups, q, min_count=5, fill=-9.0), ref)


def test_outer_layer_equals_scipy_erosion_border():
    """bone.outer_layer (the bone fit's border voxels, by shifted ANDs) equals scipy's
    ``mask & ~binary_erosion(mask, border_value=0)`` exactly: random shapes, masks touching
    every face of the array, thin and one-voxel-wide ones."""
    from scipy import ndimage
    from calcinosis.spine.bone import outer_layer
    rng = np.random.default_rng(5)
    for _ in range(60):
        shape = tuple(int(s) for s in rng.integers(1, 12, size=3))
        m = ndimage.binary_opening(rng.random(shape) < rng.uniform(0.3, 0.95)) if min(shape) > 2 \
            else rng.random(shape) < 0.7
        m[tuple(rng.integers(0, s) for s in shape)] = True
        assert np.array_equal(outer_layer(m), m & ~ndimage.binary_erosion(m, border_value=0)), shape
    full = np.ones((4, 5, 6), bool)
    assert outer_layer(full).sum() == full.size - 2 * 3 * 4
