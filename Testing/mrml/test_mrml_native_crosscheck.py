"""The core engine against Slicer's own route on slicer-core (issue 2, item 9).

Same voxels in, so the numbers must agree exactly (float sums to 1e-9 relative):
per lesion voxel count, volume, mean/min/max and SD of intensity; and the islands split
by ``vtkITKIslandMath`` are the engine's lesions.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from calcinosis.core import phantoms, pipeline
from calcinosis.core.geometry import Geometry
from calcinosis.core.lesions import LesionParams, split_lesions
from calcinosis.core.volume import Volume

pytestmark = pytest.mark.mrml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import native_route  # noqa: E402


@pytest.fixture(scope="module")
def ct_phantom():
    """Spheres 1.5-6 mm plus a cluster of small specks, oblique anisotropic grid, int16 HU."""
    arr, geom, ells = phantoms.spheres_phantom(diameters_mm=(1.5, 2, 3, 4, 6), spacing=(0.5, 0.45, 0.6),
                                               oblique_deg=15.0, noise_sd=25.0, seed=4)
    return Volume(np.round(arr).astype(np.int16), geom, {"modality": "CT"}), ells


def _partition_map(a: np.ndarray, b: np.ndarray) -> dict[int, int]:
    """One-to-one map label_in_a -> label_in_b when both label the same voxel sets, else fail."""
    nz = (a != 0) | (b != 0)
    assert np.array_equal(a != 0, b != 0), "different voxels labelled"
    pairs = np.unique(np.stack([a[nz], b[nz]], axis=1), axis=0)
    assert len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1])), "islands split differently"
    return {int(x): int(y) for x, y in pairs}


def test_per_lesion_statistics_identical_to_segment_statistics(mrml_scene, ct_phantom):
    vol, _ = ct_phantom
    result = pipeline.measure_volume(vol, LesionParams(threshold_low=130.0, min_size=0.5))
    assert result.lesions.n >= 5
    native = native_route.native_measure(result.lesions.labels, vol.geometry, vol.array, scene=mrml_scene)
    assert sorted(native) == list(range(1, result.lesions.n + 1))
    for row in result.table:
        s = native[row["lesion_id"]]
        n = row["voxel_count"]
        assert s["voxel_count"] == n and s["labelmap_voxel_count"] == n
        assert s["volume_mm3"] == pytest.approx(row["volume_mm3"], rel=1e-12)
        assert s["min"] == row["min_intensity"] and s["max"] == row["max_intensity"]
        assert s["mean"] == pytest.approx(row["mean_intensity"], rel=1e-9)
        if n > 1:  # vtkImageAccumulate's SD divides by N-1, the engine's by N
            assert s["stdev"] == pytest.approx(row["std_intensity"] * np.sqrt(n / (n - 1)), rel=1e-7)


@pytest.mark.parametrize("connectivity", ["face", "full"])
def test_full_native_route_finds_the_same_lesions(mrml_scene, ct_phantom, connectivity):
    """Threshold -> vtkITKIslandMath (min size in voxels) -> import -> statistics, against the
    engine's threshold -> components -> min size (mm3) -> measure."""
    vol, _ = ct_phantom
    min_size = 3 * vol.geometry.voxel_volume_mm3  # exactly 3 voxels: equal-size islands are kept by both
    ours = pipeline.measure_volume(vol, LesionParams(threshold_low=130.0, min_size=min_size,
                                                     connectivity=connectivity))
    native = native_route.native_route(vol.array, vol.geometry, 130.0, min_size, connectivity, scene=mrml_scene)
    assert len(native) == ours.lesions.n
    key = lambda d: (d[0], round(d[1], 6))  # noqa: E731
    assert sorted(key((s["voxel_count"], s["mean"])) for s in native.values()) == \
        sorted(key((r["voxel_count"], r["mean_intensity"])) for r in ours.table)


def test_islands_match_vtkitk_island_math_with_more_than_255(oblique_geometry):
    """300 blobs (never touching) plus diagonal-only contacts: counts and partitions equal
    vtkITKIslandMath's for both connectivities.  The mask is cast to 16 bits before
    vtkITKIslandMath (uint8 input with >255 islands aborts the process)."""
    from mrml_helpers import blobs_labels

    geom = oblique_geometry
    mask = blobs_labels(geom.shape, 300, seed=2) > 0
    # three pairs of voxels touching only along an edge or a corner
    for k, j, i, dk, dj, di in ((1, 1, 1, 0, 1, 1), (1, 50, 70, 1, 1, 1), (36, 2, 2, 1, 0, 1)):
        mask[k - 1:k + 3, j - 1:j + 3, i - 1:i + 3] = False
        mask[k, j, i] = True
        mask[k + dk, j + dj, i + di] = True
    counts = {}
    for connectivity in ("face", "full"):
        ours = split_lesions(mask, geom, LesionParams(min_size=0, connectivity=connectivity))
        theirs, n = native_route.native_islands(mask, geom, connectivity)
        assert n == ours.n > 255
        _partition_map(ours.labels, theirs)
        counts[connectivity] = n
    # the blobs never touch (a one-voxel guard all round): only the three pairs differ
    assert counts["face"] - counts["full"] == 3


def test_minimum_size_means_the_same_in_both(oblique_geometry):
    """Islands of exactly the minimum size are kept by both (>=), smaller ones dropped."""
    geom = Geometry.create((20, 20, 20), (0.5, 0.5, 0.5))
    mask = np.zeros(geom.shape, bool)
    mask[1, 1, 1:4] = True   # 3 voxels
    mask[5, 5, 5:9] = True   # 4 voxels
    mask[10, 10, 10:12] = True  # 2 voxels
    ours = split_lesions(mask, geom, LesionParams(min_size=3 * geom.voxel_volume_mm3))
    theirs, n = native_route.native_islands(mask, geom, "face", min_size_voxels=3)
    assert ours.n == n == 2
    _partition_map(ours.labels, theirs)
