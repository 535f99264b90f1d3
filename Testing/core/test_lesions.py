"""Lesion engine: candidates, connectivity, physical minimum size, slice rule, user segmentations."""

import numpy as np
import pytest

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.image_io import LabelImage, Segment
from calcinosis.core.lesions import LesionParams, candidate_mask, label_components, label_sparse_components, lesions_from_segmentation, longest_slice_runs, parse_threshold, split_lesions


def _geom(shape_kji, spacing=(1.0, 1.0, 1.0)):
    return Geometry.create((shape_kji[2], shape_kji[1], shape_kji[0]), spacing)


def test_candidate_window_region_exclude_and_below():
    a = np.arange(27).reshape(3, 3, 3)
    assert candidate_mask(a, 20).sum() == 7
    assert candidate_mask(a, 20, 22).sum() == 3
    assert candidate_mask(a, 5, below=True).sum() == 6
    region = np.zeros_like(a, bool)
    region[2] = True
    assert candidate_mask(a, 0, region=region).sum() == 9
    exclude = a % 2 == 0
    assert candidate_mask(a, 0, region=region, exclude=exclude).sum() == 4
    with pytest.raises(InputError, match="region"):
        candidate_mask(a, 0, region=np.ones((2, 2, 2), bool))


def test_face_vs_full_connectivity_matches_slicer_islands_convention():
    m = np.zeros((3, 4, 4), bool)
    m[1, 1, 1] = m[1, 2, 2] = True  # diagonal in-plane neighbours
    m[0, 0, 0] = m[1, 0, 3] = False
    _, n_face = label_components(m, "face")
    _, n_full = label_components(m, "full")
    assert (n_face, n_full) == (2, 1)
    # 2D: diagonal pixels join only with full (8-) connectivity; k is never a neighbour axis
    m2 = np.zeros((1, 3, 3), bool)
    m2[0, 0, 0] = m2[0, 1, 1] = True
    assert label_components(m2, "face", is_2d=True)[1] == 2
    assert label_components(m2, "full", is_2d=True)[1] == 1


@pytest.mark.parametrize("connectivity", ["face", "full"])
@pytest.mark.parametrize("shape", [(9, 11, 13), (1, 30, 40), (25, 3, 2)])
def test_sparse_components_equal_the_labelled_mask(connectivity, shape):
    """From the voxel list alone, the same components and the same numbering as labelling
    the whole mask (neighbours never wrap across a row or slice end)."""
    rng = np.random.default_rng(sum(shape))
    for density in (0.05, 0.3, 0.6):
        m = rng.random(shape) < density
        ref, n = label_components(m, connectivity)
        flat = np.flatnonzero(m)
        lab, k = label_sparse_components(flat, shape, connectivity)
        assert k == n
        assert np.array_equal(lab, ref.ravel()[flat])
    # a voxel at the end of one row and one at the start of the next are not neighbours
    m = np.zeros((1, 2, 3), bool)
    m[0, 0, 2] = m[0, 1, 0] = True
    assert label_sparse_components(np.flatnonzero(m), m.shape, connectivity)[1] == 2
    assert label_sparse_components(np.zeros(0, np.int64), shape, connectivity)[1] == 0
    with pytest.raises(ValueError):
        label_sparse_components(np.array([5, 3]), shape, connectivity)


def test_many_components_fall_back_to_wide_labels():
    m = np.zeros((1, 2, 2 * 70000), bool)
    m[0, 0, ::2] = True
    labels, n = label_components(m, "face", is_2d=True)
    assert n == 70000 and labels.dtype == np.int32 and labels.max() == 70000


def test_min_size_is_physical_not_voxels():
    # spacing 0.5 x 0.5 x 2 mm: a voxel is 0.5 mm³.  A 2-voxel lesion is 1 mm³, a 3-voxel one 1.5 mm³.
    g = _geom((5, 10, 10), (0.5, 0.5, 2.0))
    m = np.zeros(g.shape, bool)
    m[1, 1, 1:3] = True          # 2 voxels = 1.0 mm³
    m[3, 5, 5:8] = True          # 3 voxels = 1.5 mm³
    res = split_lesions(m, g, LesionParams(0, min_size=1.0))
    assert res.n == 2
    res = split_lesions(m, g, LesionParams(0, min_size=1.2))
    assert res.n == 1 and res.counts().tolist() == [3]
    # relabelled consecutively; the dropped lesion is gone from the label image too
    assert set(np.unique(res.labels)) == {0, 1}
    assert res.labels[1, 1, 1] == 0


def test_min_size_2d_is_mm2():
    g = Geometry.create((20, 20), (0.2, 0.2))  # 0.04 mm² pixels
    m = np.zeros(g.shape, bool)
    m[0, 2:7, 2:7] = True  # 25 px = 1.0 mm²
    m[0, 10:14, 10:14] = True  # 16 px = 0.64 mm²
    res = split_lesions(m, g, LesionParams(0, min_size=1.0))
    assert res.counts().tolist() == [25]


def test_min_slices_counts_contiguous_axial_slices_on_permuted_grid():
    # sagittal-like grid: the axial (S) direction is the i axis, numpy axis 2
    d = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], float)  # i->S, j->R, k->A
    g = Geometry.create((6, 6, 6), (1, 1, 1), (0, 0, 0), d)
    assert g.axial_axis == 2
    m = np.zeros(g.shape, bool)
    m[1, 1, 1] = m[2, 1, 1] = True  # spans 2 k-slices but only 1 axial slice (i = 1)
    m[4, 4, 2:4] = True  # spans 2 axial slices
    res = split_lesions(m, g, LesionParams(0, min_slices=2))
    assert res.n == 1
    k, j, i = res.voxel_kji()
    assert set(i.tolist()) == {2, 3}


def test_longest_run_handles_gaps():
    lab = np.array([1, 1, 1, 2, 2, 2, 2])
    s = np.array([0, 1, 5, 3, 4, 5, 9])
    first, last, runs = longest_slice_runs(lab, s, 2)
    assert first.tolist() == [0, 3] and last.tolist() == [5, 9] and runs.tolist() == [2, 3]


def test_user_segmentation_multilabel_islands_and_keep_segments():
    g = _geom((4, 8, 8))
    layer = np.zeros(g.shape, np.int16)
    layer[1, 1:3, 1:3] = 5          # segment A island 1
    layer[1, 6, 6] = 5              # segment A island 2
    layer[2, 4:6, 1:3] = 9          # segment B
    before = layer.copy()
    seg = LabelImage([layer], g, [Segment("A", 5), Segment("B", 9)])
    res = lesions_from_segmentation(seg, g, LesionParams(min_size=0))
    assert res.n == 3 and sorted(res.source) == ["A", "A", "B"]
    res = lesions_from_segmentation(seg, g, LesionParams(min_size=0, split_islands=False))
    assert res.n == 2 and res.counts().tolist() == [5, 4]
    np.testing.assert_array_equal(layer, before)  # never modified


def test_overlapping_segments_count_in_each_and_are_noted():
    g = _geom((2, 4, 4))
    l0 = np.zeros(g.shape, np.uint8)
    l1 = np.zeros(g.shape, np.uint8)
    l0[0, 0:2, 0:2] = 1
    l1[0, 1:3, 1:3] = 1
    seg = LabelImage([l0, l1], g, [Segment("a", 1, 0), Segment("b", 1, 1)])
    res = lesions_from_segmentation(seg, g, LesionParams(min_size=0))
    assert res.counts().tolist() == [4, 4]
    assert any("overlap" in n for n in res.notes)


@pytest.mark.parametrize("text,expected", [("130", (130.0, None)), ("-200:-50", (-200.0, -50.0))])
def test_parse_threshold(text, expected):
    assert parse_threshold(text) == expected


@pytest.mark.parametrize("text", ["abc", "1:2:3", ""])
def test_parse_threshold_errors(text):
    with pytest.raises(InputError, match="--threshold"):
        parse_threshold(text)


@pytest.mark.parametrize("params,match", [
    (LesionParams(0, connectivity="edge"), "--connectivity"),
    (LesionParams(0, min_size=-1), "--min-size"),
    (LesionParams(0, min_slices=0), "--min-slices"),
    (LesionParams(10, 5), "HIGH"),
    (LesionParams(0, 5, below=True), "--below"),
])
def test_param_validation_names_the_parameter(params, match):
    with pytest.raises(InputError, match=match):
        params.validate()
