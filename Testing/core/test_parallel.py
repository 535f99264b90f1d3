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
