"""Whole-volume NumPy passes split over threads.

NumPy releases Python's lock in gathers through look-up tables, comparisons and
``nonzero``, and SciPy in ``ndimage.label``: on a CT of 150 million voxels such a pass,
cut into slabs along the first array axis and run on two threads, takes about half
the time on two cores.  Results are combined in slab order, so they do not depend on
the number of threads.

The number of threads is the machine's cores (at most :data:`MAX_THREADS`), or what
:func:`set_threads` chose (a batch run with one worker process per core sets 1).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

if TYPE_CHECKING:          # numpy is imported where it is used: ``--help`` imports none
    import numpy as np

T = TypeVar("T")
R = TypeVar("R")

#: never more threads than this (the passes are limited by memory bandwidth beyond)
MAX_THREADS = 4

_chosen: int | None = None


def set_threads(n: int | None) -> None:
    """Threads for the passes of this process (``None``: the machine's cores)."""
    global _chosen
    _chosen = None if n is None else max(1, int(n))


def threads() -> int:
    """Threads the passes use now."""
    if _chosen is not None:
        return _chosen
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def slab_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, stop) ranges covering ``range(n)`` (none empty)."""
    parts = max(1, min(parts, n))
    edges = [n * p // parts for p in range(parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


#: a pass over a volume in slabs of at most this many voxels keeps its temporaries small
#: (4 MB of a mask, 8 MB of 16-bit values): the C library hands larger blocks back to the system when they are
#: freed, and memory fetched afresh costs a page fault per 4 kB on its first touch - on a
#: box of tens of millions of voxels more than the pass itself
SLAB_VOXELS = 1 << 22


def over_slabs(fn: Callable[[int, int], R], n: int, min_slab: int = 1, plane: int | None = None) -> list[R]:
    """``fn(start, stop)`` for slabs covering ``range(n)``, on up to :func:`threads`
    threads; the results in slab order.  Slabs hold at least ``min_slab`` indices
    (small work is not worth a thread); given ``plane`` (the voxels of one index: a
    volume's slice), at most :data:`SLAB_VOXELS` voxels where ``min_slab`` allows."""
    most = max(1, n // max(1, min_slab))           # slabs of at least min_slab indices
    parts = min(threads(), most)
    if plane:
        per = max(SLAB_VOXELS // max(1, plane), 1)
        parts = min(max(parts, -(-n // per)), most)
    bounds = slab_bounds(n, parts)
    return parallel_map(lambda b: fn(*b), bounds)


def parallel_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]`` on up to :func:`threads` threads (in order)."""
    items = list(items)
    n = min(threads(), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, items))


def copy_window(array: np.ndarray, window: tuple) -> np.ndarray:
    """``np.ascontiguousarray(array[window])`` (``window``: a tuple of slices), copied slab by
    slab on :func:`threads` threads (a spine box of a CT is tens of millions of voxels)."""
    import numpy as np
    view = array[window]
    out = np.empty(view.shape, dtype=view.dtype)

    def part(a: int, b: int) -> None:
        out[a:b] = view[a:b]

    over_slabs(part, view.shape[0], 8, plane=int(np.prod(view.shape[1:])))
    return out


def any_where(array: np.ndarray, predicate: Callable[[np.ndarray], np.ndarray]) -> bool:
    """``bool(predicate(array).any())``, slab by slab along the first axis on :func:`threads`
    threads (no temporary of the whole array)."""
    import numpy as np
    plane = int(np.prod(array.shape[1:])) if array.ndim > 1 else 1
    return any(over_slabs(lambda a, b: bool(predicate(array[a:b]).any()), array.shape[0], 8, plane=plane))


def flatnonzero_where(array: np.ndarray, predicate: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``np.flatnonzero(predicate(array))`` for a C-contiguous ``array``, slab by slab along
    its first axis on :func:`threads` threads (sorted, as ``np.flatnonzero``)."""
    import numpy as np
    plane = int(np.prod(array.shape[1:])) if array.ndim > 1 else 1
    parts = over_slabs(lambda a, b: np.flatnonzero(predicate(array[a:b])) + a * plane, array.shape[0], 8, plane=plane)
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
