"""Are the level names right?  The ribs of this CT against the vertebra names.

A vertebra label map (or point list) can lie on bone everywhere and still name every
vertebra wrongly: one made for another scan, or moved by a whole number of vertebrae,
puts "L1" on T11.  The bone check of :mod:`.vertebrae` cannot see that, and every level
of the map would be off.  A radiologist counts from the last rib: ribs articulate with
T1-T12, not with the lumbar vertebrae.  This module finds, from the CT alone, which
vertebrae carry a rib, and compares the most caudal one with T12.

How a rib is found (no label is used, only the vertebra centres of the spine frame):

1. Bone is the CT at or above :data:`RIB_BONE_HU` in a box around the spine, on a grid
   max-pooled to about 1.4 mm (so a thin cortex survives the pooling).
2. The *core* is removed: everything within :data:`CORE_RADIUS_MM` of the line through
   the vertebral body centres (bodies, rib heads, pedicles), and the posterior mid-line
   band (laminae, spinous processes).
3. What remains falls into pieces (26-connected).  A piece that leaves the core
   (comes within :data:`ATTACH_MAX_MM` of the line), reaches at least
   :data:`RIB_REACH_MM` from it and has a cortex (its densest tenth at least
   :data:`RIB_CORTEX_HU`) is rib-like: lumbar transverse processes end about 55 mm from
   the body centre, ribs go on around the chest.
4. A vertebra carries a rib where a rib-like piece leaves the core at its height: at
   least :data:`RIB_EXIT_MM3` of it on one side within :data:`ATTACH_MAX_MM` of the
   line, at least :data:`ATTACH_BEHIND_MM` behind the body centre (rib necks and
   transverse processes; the aorta lies in front) and within :data:`ATTACH_SLAB` of the
   distance between vertebrae from the body centre, along the vertebra's axis (the
   costotransverse joint lies at its own vertebra's transverse process) - and the same
   piece reaches :data:`RIB_REACH_MM` on that side within :data:`RIB_REACH_HEIGHT` of
   that distance (a rib runs out from its own vertebra).  This is counted per vertebra
   and side, not per piece: ribs touch each other further out, and on a contrast CT the
   enhanced aorta, lying against the bodies and rib heads, joins them into one piece.
   (Found on the real contrast CT turned by 4 degrees: one rib per piece lost the ribs of
   T9 and T10, and the right names were refused as four vertebrae off.)

The last vertebra carrying a rib (the end of the run of rib-bearing vertebrae from the
head down; the ilium, after vertebrae without ribs, does not extend it) should be T12; T11 (eleven ribs, or a short
twelfth rib) and L1 (a lumbar rib) are anatomical variants.  Two or more vertebrae off
is not a variant but wrong names: an error, unless the check is switched off
(``rib_level_check``).  One off is a warning.  The check is only made where it can see:
the field of view must reach :data:`RIB_REACH_MM` beside the vertebra, and the CT must
show both a vertebra with a rib and one below the last rib.  The pelvis is never taken
for a rib: the ilium leaves the core at the sacro-iliac joints, below L5, and S1 and the
sacrum are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from calcinosis.core.volume import Volume

from .anatomy import VERTEBRAE, order_number

#: Bone for this check: cortex and dense marrow (HU).
RIB_BONE_HU = 200.0
#: Radius (mm) around the line through the body centres that holds bodies, rib heads and pedicles.
CORE_RADIUS_MM = 30.0
#: Half-width (mm) of the posterior mid-line band (laminae and spinous processes) also removed.
MIDLINE_HALF_WIDTH_MM = 18.0
#: A rib leaves the core: its innermost voxel lies within this distance (mm) of the line.
ATTACH_MAX_MM = 42.0
#: A rib reaches at least this far (mm) from the line; lumbar transverse processes end near 55 mm.
RIB_REACH_MM = 70.0
#: A rib leaves the core at least this far (mm) behind the body centre (local y): rib heads
#: and transverse processes lie behind it, the aorta and the vena cava in front.
ATTACH_BEHIND_MM = 8.0
#: A rib leaves the core in the middle of its vertebra's height: within this fraction of the
#: distance between vertebrae from the body centre, along the vertebra's axis.
ATTACH_SLAB = 0.35
#: ... with at least this much bone (mm3) there, on one side (a rib is about 10 x 5 mm across).
RIB_EXIT_MM3 = 40.0
#: ... and its piece reaches RIB_REACH_MM on that side within this many distances between
#: vertebrae of that height (ribs descend as they run out: within 0.8 on the real contrast
#: CT; the ilium, joined to L3 by the facet joints there, 1.2).
RIB_REACH_HEIGHT = 1.0
#: A rib has a cortex: the densest tenth of the piece is at least this (HU).  Enhanced blood and
#: renal cortex (up to about 300 HU on the pooled grid) are not bone.
RIB_CORTEX_HU = 450.0
#: Checked vertebrae: C7 to L3 (the ilium rises beside L4 and L5).
CHECKED_RANGE = ("C7", "L3")
#: Working grid: voxels are max-pooled to about this size (mm) in-plane and between slices
#: (a rib is about 10 mm thick; the maximum keeps its cortex).
POOL_TO_MM = (2.5, 1.5, 1.5)
#: The vertebra most caudal with a rib: T12, with T11 and L1 as anatomical variants.
LAST_RIB = "T12"


@dataclass
class RibCheck:
    """What the check saw: ``checked`` vertebrae (the field of view reaches a rib's length
    beside them), those among them with a rib, and the verdict."""

    checked: list[str] = field(default_factory=list)
    with_rib: list[str] = field(default_factory=list)
    last_rib: str | None = None
    offset: int | None = None          # vertebrae between the last rib and T12 (+: named too low)
    status: str = "not checked"
    reason: str = ""

    def to_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "last_rib_vertebra": self.last_rib,
                "offset_vertebrae": self.offset, "vertebrae_checked": list(self.checked),
                "vertebrae_with_rib": list(self.with_rib)}


#: The spine line is extended this far (mm) beyond the first and last vertebra.
AXIS_EXTEND_MM = 40.0


def _axis_samples(bodies: np.ndarray, us: np.ndarray, step_mm: float = 2.0,
                  extend_mm: float = AXIS_EXTEND_MM) -> np.ndarray:
    """Points along the line through the body centres, extended beyond the end vertebrae
    along their own cranial axes, every ``step_mm``."""
    pts = [bodies[0] + us[0] * extend_mm]
    pts += list(bodies)
    pts.append(bodies[-1] - us[-1] * extend_mm)
    pts = np.asarray(pts)
    out = []
    for p, q in zip(pts[:-1], pts[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(q - p) / step_mm)))
        out.append(p + (q - p) * (np.arange(n)[:, None] / n))
    out.append(pts[-1:])
    return np.concatenate(out)


def _max_pool(a: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Maximum over blocks of f[0] x f[1] x f[2] voxels (the last partial block dropped)."""
    dims = (np.asarray(a.shape) // f) * f
    out = None
    for dk in range(f[0]):
        for dj in range(f[1]):
            for di in range(f[2]):
                part = a[dk:dims[0]:f[0], dj:dims[1]:f[1], di:dims[2]:f[2]]
                out = part.copy() if out is None else np.maximum(out, part, out=out)
    return out


def _interp_axes(vectors: np.ndarray, arc_of_body: np.ndarray, arc: np.ndarray) -> np.ndarray:
    out = np.stack([np.interp(arc, arc_of_body, vectors[:, c]) for c in range(3)], axis=-1)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def rib_bearing_vertebrae(volume: Volume, names: list[str], bodies: np.ndarray, us: np.ndarray,
                          rs: np.ndarray, as_: np.ndarray) -> tuple[list[str], list[str]]:
    """(vertebrae checked, vertebrae with a rib) among ``names`` (cranio-caudal order, with
    their body centres and cranial / right / anterior axes, RAS)."""
    g = volume.geometry
    n = len(names)
    if n < 2:
        return [], []
    bodies = np.asarray(bodies, float)
    # arc length along the spine of each body centre (0 at the most cranial), and the
    # distance to the neighbours (the first and last: to their only one)
    gaps = np.linalg.norm(np.diff(bodies, axis=0), axis=1)
    arc_body = np.r_[0.0, np.cumsum(gaps)]
    spacing = (np.r_[gaps[0], gaps] + np.r_[gaps, gaps[-1]]) / 2
    # which vertebrae can be checked: the field of view reaches a rib's length beside them
    reach = RIB_REACH_MM + 5.0
    side_pts = np.concatenate([bodies + reach * rs, bodies - reach * rs])
    inside = g.contains_ras(side_pts).reshape(2, n).any(axis=0)
    checkable = [names[i] for i in range(n) if inside[i] and names[i] in VERTEBRAE
                 and order_number(CHECKED_RANGE[0]) <= order_number(names[i]) <= order_number(CHECKED_RANGE[1])]
    if not checkable:
        return [], []

    # the box of the CT around the spine (wide enough for the rib reach)
    span = RIB_REACH_MM + 12.0
    centres = np.concatenate([bodies, bodies[:1] + 45.0 * us[:1], bodies[-1:] - 45.0 * us[-1:]])
    rr = np.concatenate([rs, rs[:1], rs[-1:]])
    aa = np.concatenate([as_, as_[:1], as_[-1:]])
    ext = np.concatenate([centres + sx * rr + sy * aa for sx in (-span, span) for sy in (-span, span)])
    kji = g.ras_to_ijk(ext)[:, ::-1]
    shape = np.asarray(g.shape)
    k0 = np.clip(np.floor(kji.min(axis=0)).astype(int), 0, shape)
    k1 = np.clip(np.ceil(kji.max(axis=0)).astype(int) + 1, 0, shape)
    if np.any(k1 - k0 < 2):
        return [], []
    sub = volume.array[k0[0]:k1[0], k0[1]:k1[1], k0[2]:k1[2]]
    # max-pool fine axes (a rib's cortex survives, the grid gets small enough to label)
    sp_kji = np.array([g.spacing_along_array_axis(ax) for ax in range(3)])
    f = np.maximum(1, np.floor(np.asarray(POOL_TO_MM) / sp_kji + 1e-6)).astype(int)
    pooled = _max_pool(sub, f)
    bone = pooled >= RIB_BONE_HU
    idx = np.flatnonzero(bone)
    if idx.size == 0:
        return checkable, []
    kk = np.stack(np.unravel_index(idx, bone.shape), axis=1).astype(float)
    ras = g.kji_to_ras(kk * f + (f - 1) / 2.0 + k0)

    # nearest point of the spine line: radial distance, local x (right) / y (anterior)
    line = _axis_samples(bodies, us)
    line_arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))] - AXIS_EXTEND_MM
    line_u, line_r, line_a = (_interp_axes(np.asarray(v, float), arc_body, line_arc) for v in (us, rs, as_))
    from scipy.spatial import cKDTree
    _, near = cKDTree(line).query(ras, workers=-1)
    foot, u_at, r_at, a_at = line[near], line_u[near], line_r[near], line_a[near]
    d = ras - foot
    d -= np.sum(d * u_at, axis=1, keepdims=True) * u_at
    rho = np.linalg.norm(d, axis=1)
    x = np.sum(d * r_at, axis=1)
    y = np.sum(d * a_at, axis=1)
    core = (rho < CORE_RADIUS_MM) | ((np.abs(x) < MIDLINE_HALF_WIDTH_MM) & (y < 0))
    outside = np.zeros(bone.shape, bool)
    outside.ravel()[idx[~core]] = True
    comp, ncomp = ndimage.label(outside, structure=np.ones((3, 3, 3), bool))
    if ncomp == 0:
        return checkable, []
    keep = ~core
    cid = comp.ravel()[idx[keep]]
    rho_k, ras_k = rho[keep], ras[keep]
    labels = np.arange(1, ncomp + 1)
    rmin = ndimage.minimum(rho_k, cid, labels)
    rmax = ndimage.maximum(rho_k, cid, labels)
    hu_k, y_k = pooled.ravel()[idx[keep]], y[keep]
    cortex = np.zeros(ncomp + 1, bool)
    cortex[1:] = ndimage.labeled_comprehension(hu_k, cid, labels, lambda v: np.percentile(v, 90), float, 0.0) \
        >= RIB_CORTEX_HU
    rib_like = np.zeros(ncomp + 1, bool)
    rib_like[1:] = (rmin <= ATTACH_MAX_MM) & (rmax >= RIB_REACH_MM)
    rib_like &= cortex
    # where a rib leaves the core: the parts of rib-like pieces within ATTACH_MAX_MM of the
    # line and behind the body centre, at a vertebra's height (the middle of its slab, along
    # its own axis) - counted per vertebra and side, not per piece: ribs touch each other
    # further out, and on a contrast CT the enhanced aorta, lying against the bodies and
    # the rib heads, joins them all into one piece (its own parts lie in front)
    exiting = rib_like[cid] & (rho_k <= ATTACH_MAX_MM) & (y_k <= -ATTACH_BEHIND_MM)
    # ... and the piece reaches the rib's length on that side near that height (a rib
    # runs out from its own vertebra; the ilium, joined to the lumbar articular processes
    # by the facet joints, reaches out only far below them)
    far = rib_like[cid] & (rho_k >= RIB_REACH_MM)
    x_k = x[keep]
    with_rib: set[str] = set()
    if exiting.any() and far.any():
        def heights(points):
            return np.einsum("pvc,vc->pv", points[:, None, :] - bodies[None, :, :], us)
        h_exit = heights(ras_k[exiting])
        nearest = np.argmin(np.abs(h_exit), axis=1)
        central = np.abs(h_exit[np.arange(len(nearest)), nearest]) <= ATTACH_SLAB * spacing[nearest]
        side_exit, cid_exit = np.sign(x_k[exiting]), cid[exiting]
        h_far = np.abs(heights(ras_k[far]))
        side_far, cid_far = np.sign(x_k[far]), cid[far]
        voxel_mm3 = float(np.prod(f * sp_kji))
        for i in range(n):
            for sd in (-1.0, 1.0):
                reaching = np.unique(cid_far[(side_far == sd) & (h_far[:, i] <= RIB_REACH_HEIGHT * spacing[i])])
                sel = central & (nearest == i) & (side_exit == sd) & np.isin(cid_exit, reaching)
                if np.count_nonzero(sel) * voxel_mm3 >= RIB_EXIT_MM3:
                    with_rib.add(names[i])
    return checkable, [nm for nm in checkable if nm in with_rib]


def check_levels_against_ribs(volume: Volume, names: list[str], bodies: np.ndarray, us: np.ndarray,
                              rs: np.ndarray, as_: np.ndarray) -> RibCheck:
    """The verdict of :func:`rib_bearing_vertebrae` (see the module's description)."""
    checked, with_rib = rib_bearing_vertebrae(volume, names, bodies, us, rs, as_)
    out = RibCheck(checked=checked, with_rib=with_rib)
    if not checked:
        out.reason = "the field of view does not reach a rib's length beside any thoracic or lumbar vertebra"
        return out
    nums = {nm: order_number(nm) for nm in checked}
    t12 = order_number(LAST_RIB)
    if not with_rib:
        thoracic = [nm for nm in checked if nums[nm] <= t12 - 2]
        if len(thoracic) >= 2:
            out.status = "no ribs"
            out.reason = f"no rib at the vertebrae named {', '.join(thoracic)}"
            out.offset = -(int(t12 - max(nums[nm] for nm in thoracic)))
        else:
            out.reason = "no rib in the field of view"
        return out
    # the last rib is the end of the first run of vertebrae with ribs, from the head down (one
    # vertebra without a rib inside the run is a rib missed; bone further down after two or
    # more vertebrae without one - the ilium at the sacro-iliac joints - is not a rib)
    flags = [nm in with_rib for nm in checked]
    end = flags.index(True)
    while True:
        if end + 1 < len(flags) and flags[end + 1]:
            end += 1
        elif end + 2 < len(flags) and flags[end + 2]:
            end += 2
        else:
            break
    last = checked[end]
    below = checked[end + 1:]
    out.last_rib = last
    offset = int(round(nums[last] - t12))
    if not below and offset < 2:
        # the last rib may lie further down (a vertebra named L2 or lower with a rib is wrong either way)
        out.reason = f"the CT shows no vertebra below the last rib it sees ({last})"
        return out
    out.offset = offset
    out.status = "consistent" if out.offset == 0 else ("variant or one off" if abs(out.offset) == 1 else "shifted")
    return out
