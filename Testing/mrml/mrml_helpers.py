"""Phantom helpers shared by the MRML tests (import as ``from mrml_helpers import ...``)."""

from __future__ import annotations

import numpy as np


def blobs_labels(shape=(40, 60, 80), n=300, seed=0, max_size=3):
    """``n`` separated boxy blobs of random size (1..max_size voxels a side), label 1..n in
    placement order; returns the label array (uint16)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    occupied = np.zeros(shape, bool)
    placed = 0
    tries = 0
    while placed < n:
        tries += 1
        assert tries < 100 * n, "phantom too crowded"
        size = rng.integers(1, max_size + 1, 3)
        lo = np.array([rng.integers(0, s - z) for s, z in zip(shape, size)])
        hi = lo + size
        guard = tuple(slice(max(a - 1, 0), b + 1) for a, b in zip(lo, hi))
        if occupied[guard].any():
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        labels[box] = placed + 1
        occupied[box] = True
        placed += 1
    return labels
