"""Thick slices (issue 16): a compact calcification filling the slice next to a bone is told
from that bone's end partial-volumed into the slice (``candidates.compact_on_thick_slices``).

Ground truth by construction: a bone block (a 750 HU cortex over 200 HU marrow; its top
slice holds 1 mm of end plate over 2 mm of marrow) ending at a slice boundary of 3 mm
slices, 1 mm pixels, soft tissue at 40 HU; in the slice
above it, one of four things. The values are what a 3 mm slice holds: a calcification 3 mm
across fills its voxels (800 HU); a process's tip ending half-way up the slice is 0.6 x
its 750 HU cortex; an end plate cut by the slice over 15 mm is a 400 HU plateau.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core.geometry import Geometry
from calcinosis.spine.candidates import compact_on_thick_slices

TISSUE, CORTEX, MARROW = 40.0, 750.0, 200.0
NOISE_MARGIN = 5 * 12.0            # the map's noise multiple x a quiet CT's noise


def _block(slice_mm: float = 3.0) -> tuple[np.ndarray, Geometry]:
    """[k, j, i]: a 30 x 30 mm bone block in slices 0-4 (cortex shell, marrow inside)."""
    ct = np.full((8, 40, 40), TISSUE, np.float32)
    ct[:5, 5:35, 5:35] = CORTEX
    ct[:4, 7:33, 7:33] = MARROW
    ct[4, 7:33, 7:33] = (CORTEX + 2 * MARROW) / 3     # the top slice: 1 mm of end plate over 2 of marrow
    return ct, Geometry.create((40, 40, 8), (1.0, 1.0, slice_mm))


def _compact(ct: np.ndarray, g: Geometry) -> np.ndarray:
    """The voxels of slice 5 at or above 130 HU flagged compact, as a mask of that slice."""
    zone = np.flatnonzero((ct >= 130.0).ravel() & (np.indices(ct.shape)[0].ravel() == 5))
    flags = compact_on_thick_slices(zone, ct, g, np.full(zone.size, TISSUE), np.full(zone.size, NOISE_MARGIN), 130.0)
    out = np.zeros(ct.shape, bool)
    out.ravel()[zone[flags]] = True
    return out[5]


def test_a_calcification_filling_the_slice_above_the_bone_is_compact():
    ct, g = _block()
    ct[5, 19:22, 19:22] = 800.0                 # 3 x 3 mm, on the block's top
    got = _compact(ct, g)
    assert got[19:22, 19:22].all() and got.sum() == 9


@pytest.mark.parametrize("calc_hu", [700.0, 740.0])
def test_a_calcification_no_denser_than_the_cortex_across_is_not_taken(calc_hu):
    """No denser than the bone across the slice boundary (the block's top is cortex here):
    nothing tells it from that bone's end - not flagged (it stays in the bone's zone)."""
    ct, g = _block()
    ct[4, 17:24, 17:24] = CORTEX                # cortex under it, 7 x 7 mm
    ct[5, 19:22, 19:22] = calc_hu
    assert not _compact(ct, g).any()


def test_a_process_tip_in_the_next_slice_is_not_compact():
    """The bone continuing into the slice (a tip ending half-way up it): a fraction of the
    bone across, never denser than it."""
    ct, g = _block()
    ct[4, 17:23, 17:23] = CORTEX
    ct[5, 17:23, 17:23] = 0.6 * CORTEX
    assert not _compact(ct, g).any()


def test_an_end_plate_cut_by_the_slice_is_not_compact():
    """A plateau over 15 mm: its ring is as dense as it (the bone's surface, not a body)."""
    ct, g = _block()
    ct[5, 12:27, 12:27] = 400.0
    ct[5, 18, 18] = 480.0                       # the dome's highest point
    assert not _compact(ct, g).any()


def test_thin_slices_are_left_to_the_other_rules():
    """On 1.25 mm slices (less than twice the pixel) nothing is flagged: a body one slice
    thick there is a speck the study rule judges."""
    ct, g = _block(1.25)
    ct[5, 19:22, 19:22] = 800.0
    assert not _compact(ct, g).any()
