"""The slab splitting behind the threaded whole-volume passes."""

from __future__ import annotations

import threading

import pytest

from calcinosis.core import parallel


@pytest.mark.parametrize("n", [0, 1, 2, 7, 600])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_slabs_cover_the_range_once_in_order(n, parts):
    bounds = parallel.slab_bounds(n, parts)
    covered = [i for a, b in bounds for i in range(a, b)]
    assert covered == list(range(n))
    assert all(b > a for a, b in bounds) and len(bounds) <= max(parts, 1)


def test_results_in_slab_order_and_threads_as_chosen():
    seen = set()

    def part(a, b):
        seen.add(threading.get_ident())
        return (a, b)

    try:
        parallel.set_threads(3)
        assert parallel.threads() == 3
        got = parallel.over_slabs(part, 30)
        assert [a for a, _ in got] == sorted(a for a, _ in got) and got[0][0] == 0 and got[-1][1] == 30
        assert len(got) == 3
        # slabs never smaller than min_slab: 30 indices in slabs of >= 20 -> one slab, on this thread
        seen.clear()
        assert parallel.over_slabs(part, 30, min_slab=20) == [(0, 30)]
        assert seen == {threading.get_ident()}
        parallel.set_threads(1)
        assert parallel.parallel_map(lambda x: x * x, range(5)) == [0, 1, 4, 9, 16]
    finally:
        parallel.set_threads(None)
    assert 1 <= parallel.threads() <= parallel.MAX_THREADS


def test_slabs_bounded_by_voxels_when_a_plane_is_given(monkeypatch):
    """With ``plane`` (voxels per index), slabs hold at most SLAB_VOXELS voxels (never fewer
    than ``min_slab`` indices), still cover the range once and in order."""
    monkeypatch.setattr(parallel, "SLAB_VOXELS", 1000)
    try:
        parallel.set_threads(2)
        got = parallel.over_slabs(lambda a, b: (a, b), 95, min_slab=3, plane=100)   # 10 indices per slab
        assert [i for a, b in got for i in range(a, b)] == list(range(95))
        assert max(b - a for a, b in got) <= 10 and len(got) == 10
        got = parallel.over_slabs(lambda a, b: (a, b), 95, min_slab=20, plane=100)  # min_slab wins
        assert [i for a, b in got for i in range(a, b)] == list(range(95))
        assert min(b - a for a, b in got) >= 20 and len(got) == 4
        assert parallel.over_slabs(lambda a, b: (a, b), 5, min_slab=8, plane=100) == [(0, 5)]
        assert parallel.over_slabs(lambda a, b: (a, b), 95, plane=None) == [(0, 47), (47, 95)]
    finally:
        parallel.set_threads(None)


@pytest.mark.parametrize("threads", [1, 2])
def test_window_copy_and_flatnonzero_match_numpy(monkeypatch, threads):
    np = pytest.importorskip("numpy")
    monkeypatch.setattr(parallel, "SLAB_VOXELS", 500)     # many slabs on a small array
    rng = np.random.default_rng(3)
    a = rng.integers(-1000, 1500, size=(37, 23, 29)).astype(np.int16)
    window = (slice(3, 31), slice(2, 20), slice(5, 27))
    try:
        parallel.set_threads(threads)
        c = parallel.copy_window(a, window)
        assert c.flags.c_contiguous and c.dtype == a.dtype and np.array_equal(c, a[window])
        assert np.array_equal(parallel.flatnonzero_where(c, lambda x: x >= 130), np.flatnonzero(c >= 130))
        assert parallel.flatnonzero_where(c, lambda x: x > 10 ** 4).size == 0
        assert parallel.any_where(c, lambda x: x >= 1400) == bool((c >= 1400).any())
        assert not parallel.any_where(c, lambda x: x > 10 ** 4)
    finally:
        parallel.set_threads(None)
