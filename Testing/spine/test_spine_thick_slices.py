"""Thick slices (issue 16): a compact calcification filling the slice next to a bone is told
from that bone's end partial-volumed into the slice (``candidates.compact_on_thick_slices``).

Ground truth by construction: a bone block (a 750 HU cortex over 200 HU marrow; its top and
bottom slices hold 1 mm of end plate over 2 mm of marrow) filling slices 2-6 of 3 mm slices,
1 mm pixels, soft tissue at 40 HU; in the slice above it (7) or below it (1), one of several
things. The values are what a 3 mm slice holds: a calcification 3 mm across fills its voxels
(800 HU); a process's tip ending 0.6 of the way into the slice is 0.6 x its 750 HU cortex;
an end plate cut by the slice over 15 mm is a 400 HU plateau.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core.geometry import Geometry
from calcinosis.spine.candidates import compact_on_thick_slices, thick_slices

TISSUE, CORTEX, MARROW = 40.0, 750.0, 200.0
NOISE_MARGIN = 5 * 12.0            # the map's noise multiple x a quiet CT's noise
TOP, BOTTOM = 7, 1                 # the slices above and below the block


def _block(slice_mm: float = 3.0) -> tuple[np.ndarray, Geometry]:
    """[k, j, i]: a 30 x 30 mm bone block in slices 2-6 (cortex shell, marrow inside)."""
    ct = np.full((10, 40, 40), TISSUE, np.float32)
    ct[2:7, 5:35, 5:35] = CORTEX
    ct[2:7, 7:33, 7:33] = MARROW
    ct[[2, 6], 7:33, 7:33] = (CORTEX + 2 * MARROW) / 3     # 1 mm of end plate over 2 of marrow
    return ct, Geometry.create((40, 40, ct.shape[0]), (1.0, 1.0, slice_mm))


def _compact(ct: np.ndarray, g: Geometry, k: int = TOP) -> np.ndarray:
    """The voxels of slice ``k`` at or above 130 HU flagged compact, as a mask of that slice."""
    zone = np.flatnonzero((ct >= 130.0).ravel() & (np.indices(ct.shape)[0].ravel() == k))
    flags = compact_on_thick_slices(zone, ct, g, np.full(zone.size, TISSUE), np.full(zone.size, NOISE_MARGIN), 130.0)
    out = np.zeros(ct.shape, bool)
    out.ravel()[zone[flags]] = True
    return out[k]


@pytest.mark.parametrize("k", [TOP, BOTTOM])
def test_a_calcification_filling_the_slice_next_to_the_bone_is_compact(k):
    """On the block's top or under its bottom: both slice boundaries are looked at."""
    ct, g = _block()
    ct[k, 19:22, 19:22] = 800.0                 # 3 x 3 mm
    got = _compact(ct, g, k)
    assert got[19:22, 19:22].all() and got.sum() == 9


def test_the_calcifications_rim_goes_with_its_core():
    """A 5 x 5 mm body, 800 HU inside, 300 HU at its rim: the rim voxels are not cores (the
    core is in their ring) but lie within 1.5 mm of one."""
    ct, g = _block()
    ct[TOP, 18:23, 18:23] = 300.0
    ct[TOP, 19:22, 19:22] = 800.0
    got = _compact(ct, g)
    assert got[18:23, 18:23].all() and got.sum() == 25


@pytest.mark.parametrize("k", [TOP, BOTTOM])
@pytest.mark.parametrize("calc_hu", [700.0, 740.0])
def test_a_calcification_no_denser_than_the_cortex_across_is_not_taken(calc_hu, k):
    """No denser than the bone across the slice boundary (cortex there, 7 x 7 mm): nothing
    tells it from that bone's end - not flagged (it stays in the bone's zone)."""
    ct, g = _block()
    ct[k - 1 if k == TOP else k + 1, 17:24, 17:24] = CORTEX
    ct[k, 19:22, 19:22] = calc_hu
    assert not _compact(ct, g, k).any()


@pytest.mark.parametrize("k", [TOP, BOTTOM])
def test_a_process_tip_in_the_next_slice_is_not_compact(k):
    """The bone continuing into the slice (a 3 x 3 mm tip, 0.6 of the way into it): compact
    in its slice, but a fraction of the bone across, never denser than it."""
    ct, g = _block()
    ct[k - 1 if k == TOP else k + 1, 19:22, 19:22] = CORTEX
    ct[k, 19:22, 19:22] = 0.6 * CORTEX
    assert not _compact(ct, g, k).any()


def test_a_process_tip_at_the_scans_edge_is_not_compact():
    """The same tip in the scan's last slice, the bone it continues from beyond the scan: what
    lies across is unknown, so it is not a core."""
    ct, g = _block()
    ct[6, 19:22, 19:22] = CORTEX
    ct[TOP, 19:22, 19:22] = 0.6 * CORTEX
    top_only = ct[TOP:].copy()                  # the tip's slice is now the first of the box
    assert not _compact(top_only, Geometry.create((40, 40, top_only.shape[0]), (1.0, 1.0, 3.0)), 0).any()


def test_an_end_plate_cut_by_the_slice_is_not_compact():
    """A plateau over 15 mm: its ring is as dense as it (the bone's surface, not a body)."""
    ct, g = _block()
    ct[TOP, 12:27, 12:27] = 400.0
    ct[TOP, 18, 18] = 480.0                     # the dome's highest point
    assert not _compact(ct, g).any()


def test_thin_slices_are_left_to_the_other_rules():
    """On 1.25 mm slices nothing is flagged: a body one slice thick there is a speck the study
    rule judges."""
    ct, g = _block(1.25)
    ct[TOP, 19:22, 19:22] = 800.0
    assert not _compact(ct, g).any()


@pytest.mark.parametrize("slice_mm,pixel_mm,thick", [
    (3.0, 1.0, True), (2.0, 1.0, True), (1.9999, 1.0, True), (2.5, 0.8, True),
    (1.25, 0.6, False),         # the study's own slices, whatever the pixel
    (1.5, 0.7, False), (1.9, 0.5, False), (3.0, 1.6, False)])
def test_which_slices_are_thick(slice_mm, pixel_mm, thick):
    """2 mm or more and twice the pixel or more (a thousandth short counts)."""
    assert thick_slices(Geometry.create((10, 10, 10), (pixel_mm, pixel_mm, slice_mm))) is thick
