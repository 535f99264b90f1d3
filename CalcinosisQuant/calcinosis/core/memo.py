"""Sharing work between the readings of one image (batch runs).

A cohort often reads one image several times: two readers, a reader twice, a sensitivity
analysis with another minimum size or threshold.  Steps that do not depend on what differs
between those readings (reading the image from disk, the hand model and the radiograph
candidates, the spine frame) can be computed once.  :func:`sharing` opens a scope in which
:func:`remember` keeps such results; outside a scope :func:`remember` just computes, so
nothing is kept between unrelated calls (a Slicer session, a single command).

Each value is handed out as a deep copy, so a caller that changes what it gets cannot
change what the next reading gets.  Keys must name everything the value depends on:
:func:`file_key` for input files (path, size, modification time), :func:`array_key` for
arrays (a digest of their bytes).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

_store: dict | None = None
_stats = {"computed": 0, "shared": 0}


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Within this block, :func:`remember` keeps what it computes (nested blocks share the
    outer one's store); everything kept is dropped when the outermost block ends."""
    global _store
    outer = _store is not None
    if not outer:
        _store = {}
    try:
        yield
    finally:
        if not outer:
            _store = None


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Within this block nothing is kept or shared (for a step whose result is kept whole
    by an outer :func:`remember`: its parts need not be kept twice)."""
    global _store
    saved, _store = _store, None
    try:
        yield
    finally:
        _store = saved


def active() -> bool:
    return _store is not None


def remember(kind: str, key: Callable[[], tuple] | tuple, compute: Callable[[], object]):
    """``compute()``, or (within :func:`sharing`) a copy of the value computed earlier for the
    same ``kind`` and ``key``.  ``key`` may be a function, called only within a scope (so a
    costly key, such as an array digest, costs nothing elsewhere)."""
    if _store is None:
        return compute()
    k = (kind, key() if callable(key) else key)
    if k not in _store:
        _store[k] = compute()
        _stats["computed"] += 1
    else:
        _stats["shared"] += 1
    return copy.deepcopy(_store[k])


def stats() -> dict:
    """How many values were computed and how many handed out again (this process)."""
    return dict(_stats)


def file_key(path) -> tuple:
    """A file or folder as a key: its resolved path, and for each file (a folder's files,
    not recursing) its name, size and modification time."""
    if path is None:
        return (None,)
    p = Path(path)
    try:
        if p.is_dir():
            entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(p) if e.is_file())
            return (str(p.resolve()), tuple(entries))
        st = p.stat()
        return (str(p.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        return (str(p), "unreadable")


def array_key(a) -> tuple:
    """An array as a key: shape, dtype and a digest of its bytes (``None`` stays ``None``)."""
    if a is None:
        return (None,)
    a = np.ascontiguousarray(a)
    return (a.shape, str(a.dtype), hashlib.blake2b(a.view(np.uint8).reshape(-1), digest_size=16).hexdigest())
