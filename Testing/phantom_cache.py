"""Phantoms made once per test run, shared by the test files (which pytest-xdist runs on
different processes, each with its own ``functools.lru_cache``).

``cached(fn, *args, **kwargs)`` returns ``fn(*args, **kwargs)``, computing it once and then
reading it back from a pickle in ``.pytest_cache/phantoms/``.  The key is the function's
name, its arguments and a digest of every source file of the ``calcinosis`` package (and the
Python, NumPy and SciPy versions), so any code change makes new phantoms; a lock file keeps two processes from computing the same
phantom at once.  Each call returns its own copy (unpickled), so a test that changes its
phantom cannot change another test's.  ``CALCINOSIS_TEST_PHANTOM_CACHE=0`` switches the
cache off.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "CalcinosisQuant" / "calcinosis"
CACHE_DIR = REPO_ROOT / ".pytest_cache" / "phantoms"


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    import numpy
    import scipy
    h = hashlib.sha256(repr((sys.version, numpy.__version__, scipy.__version__)).encode())
    for p in sorted(PACKAGE.rglob("*.py")):
        h.update(str(p.relative_to(PACKAGE)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_key(fn, args: tuple, kwargs: dict) -> str:
    text = repr((fn.__module__, fn.__qualname__, args, sorted(kwargs.items()), source_digest()))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def enabled() -> bool:
    return os.environ.get("CALCINOSIS_TEST_PHANTOM_CACHE", "1") != "0"


@functools.lru_cache(maxsize=1)
def _prune_stale() -> None:
    """Remove phantoms made by other versions of the code (their names carry its digest)."""
    current = source_digest()[:8]
    for p in CACHE_DIR.glob("*-*-*.pkl"):
        if p.stem.split("-")[-2] != current:
            p.unlink(missing_ok=True)
            p.with_suffix(".lock").unlink(missing_ok=True)


def cached(fn, *args, **kwargs):
    if not enabled():
        return fn(*args, **kwargs)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    _prune_stale()
    path = CACHE_DIR / f"{fn.__name__}-{source_digest()[:8]}-{cache_key(fn, args, kwargs)}.pkl"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            with open(path, "rb") as f:
                return pickle.load(f)
        value = fn(*args, **kwargs)
        fd, tmp = tempfile.mkstemp(dir=CACHE_DIR, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return value
