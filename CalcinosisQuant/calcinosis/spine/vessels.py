"""Contrast-filled vessels recognised by shape and density, without a vessel label.

On a contrast-enhanced CT every large vessel's blood is 110-400 HU (aorta, inferior vena
cava, iliac arteries and veins, renal vessels, azygos): a 130 HU threshold selects whole
lumens, or, in the portal-venous phase, fragments of them.  A candidate is taken for part
of a vessel (:func:`in_enhanced_tube`) when the enhanced structure it belongs to is a
tube along the body:

1. around the candidate (``reach_mm`` along the spine, ``side_mm`` across), the CT is
   smoothed over 3 x 3 voxels in the axial plane (noise down by three) and the voxels
   from ``blood_hu`` up (blood, enhanced tissue, bone not labelled), not next to labelled
   bone, are joined into connected regions;
2. the region holding the candidate is a vessel when it runs at least ``min_length_mm``
   (20 mm) along the spine's axis (on the axial slices it crosses), its median cross-section on
   those slices is a vessel's (``area_mm2``: 7-1500 mm², 3-44 mm across: azygos to
   aorta), and it is blood, not bone: its median CT value is below ``max_median_hu`` and
   under ``max_dense_fraction`` of it reaches ``dense_hu`` (a rib or a process, cortex
   around marrow, would), and it is not the blurred shell around a labelled bone (70% of
   it within 2.5 mm of the label: the rim of a vertebral body runs along the spine with
   a vessel's cross-section; a lumen lies beside bone, not wrapped round it).

3. and the candidate is part of the lumen - its peak stands less than ``contrast_hu``
   (the noise test's margin) above the region's median - or small beside it (the region
   ``lumen_ratio`` times its size or more) and touching the lumen (:func:`lumen_gap_mm`:
   the lumen's core - the region less the candidate's own halo, eroded by a voxel -
   within the wall's :data:`WALL_MM` plus two voxels): a calcification in a vessel's wall
   is vascular, not spinal, and goes with the vessel.  A calcification joined to a
   region only through a thin bridge of blurred halos (the rim of a vertebral body that
   runs on to the vena cava) does not touch its lumen.  A linear ligament calcification
   with its partial-volume halo is a dense body about its region's size.  Renal veins
   join the inferior vena cava and go with it.  Discs, muscle and unenhanced blood
   (30-60 HU) stay below ``blood_hu`` after smoothing; an enhanced organ (kidney, liver)
   is wider than a vessel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from calcinosis.core.geometry import Geometry


#: The region of a candidate is first looked for this close (mm, along the spine / across).
NEAR_REACH_MM, NEAR_SIDE_MM = 15.0, 10.0


#: a region with this share of its voxels within SHELL_MM of labelled bone is that bone's rim
SHELL_FRACTION = 0.7
SHELL_MM = 2.5


#: a vessel's wall (mm): a calcification in it lies this close to the lumen (the aorta's
#: wall is about 2 mm thick, a vein's thinner)
WALL_MM = 2.0


def lumen_gap_mm(region: np.ndarray, q: np.ndarray, sp: np.ndarray, own_mm: float = 1.5) -> float:
    """How far (mm) the lumen's core lies from the candidate ``q`` (window indices): the
    region less the candidate and what lies within ``own_mm`` of it (its partial-volume
    halo), eroded by one voxel (a bridge of halos is one or two voxels thin, a lumen is
    not); inf where nothing is left."""
    cand = np.zeros(region.shape, dtype=bool)
    cand[q[:, 0], q[:, 1], q[:, 2]] = True
    d = ndimage.distance_transform_edt(~cand, sampling=sp)
    core = ndimage.binary_erosion(region & (d > own_mm))
    if not core.any():
        return float("inf")
    return float(d[core].min())


def shell_of_bone(region: np.ndarray, bone: np.ndarray, sp: np.ndarray) -> bool:
    """Whether an enhanced region is the partial-volume shell around labelled bone (most of
    it within :data:`SHELL_MM` of the label): a lumen lies beside bone, not wrapped round it."""
    if not bone.any():
        return False
    d = ndimage.distance_transform_edt(~bone, sampling=sp)
    return float(np.mean(d[region] <= SHELL_MM)) >= SHELL_FRACTION


def in_enhanced_tube(ct: np.ndarray, idx: np.ndarray, clab: np.ndarray, n: int, which: np.ndarray,
                     bone_label: np.ndarray, geometry: Geometry, contrast_hu: np.ndarray | None = None,
                     blood_hu: float = 100.0, dense_hu: float = 450.0, lumen_ratio: float = 10.0,
                     min_length_mm: float = 20.0, area_mm2: tuple[float, float] = (7.0, 1500.0),
                     max_median_hu: float = 330.0, max_dense_fraction: float = 0.08, reach_mm: float = 60.0,
                     side_mm: float = 30.0) -> tuple[np.ndarray, list[float]]:
    """Per component (``which``: those to test), whether it lies in an enhanced tube (see
    the module docstring), and the median CT value of every tube found (the blood's).
    ``bone_label``: the labelled bones on the box (growth stops there)."""
    out = np.zeros(n, dtype=bool)
    blood: list[float] = []
    shape = ct.shape
    ax = geometry.axial_axis
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])
    reach = np.ceil(np.where(np.arange(3) == ax, reach_mm, side_mm) / sp).astype(int)
    size = [3 if a != ax else 1 for a in range(3)]
    px = float(np.prod([sp[a] for a in range(3) if a != ax]))
    near = np.minimum(np.ceil(np.where(np.arange(3) == ax, NEAR_REACH_MM, NEAR_SIDE_MM) / sp).astype(int), reach)
    kji = np.stack(np.unravel_index(idx, shape), axis=1)

    def region_in(p: np.ndarray, r: np.ndarray):
        """The enhanced region holding the candidate, in a window ``r`` voxels around it:
        (window CT, region mask, candidate in the window, whether the region is complete:
        two voxels or more inside every face the array does not end at)."""
        lo = np.maximum(p.min(axis=0) - r, 0)
        hi = np.minimum(p.max(axis=0) + r + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        raw = ct[box].astype(np.float32)
        smooth = ndimage.uniform_filter(raw, size=size)
        # growth stops one voxel short of labelled bone; unlabelled bone (a rib, a
        # process) is grown with its cortex, which the dense fraction then reveals
        lab_box = bone_label[box]
        grow = (smooth >= blood_hu) & ~ndimage.binary_dilation(lab_box)
        q = p - lo
        grow[q[:, 0], q[:, 1], q[:, 2]] = True           # the candidate itself (it may be denser)
        regions, _ = ndimage.label(grow)
        ids = np.unique(regions[q[:, 0], q[:, 1], q[:, 2]])
        region = np.isin(regions, ids[ids > 0])
        where = np.argwhere(region)
        r_lo, r_hi = where.min(axis=0), where.max(axis=0)
        inner = ((r_lo >= 2) | (lo == 0)) & ((r_hi <= hi - lo - 3) | (hi == np.asarray(shape)))
        return raw, region, q, bool(np.all(inner)), lab_box

    for c in np.flatnonzero(which) + 1:
        p = kji[clab == c]
        # a small window first: a region well inside it is the region the whole window
        # would find (smoothing and growth agree away from a window's faces)
        raw, region, q, complete, lab_box = region_in(p, near)
        if not complete:
            raw, region, q, _, lab_box = region_in(p, reach)
        per_slice = region.sum(axis=tuple(a for a in range(3) if a != ax))
        slices = np.flatnonzero(per_slice)
        if slices.size == 0:
            continue
        length = (slices.max() - slices.min() + 1) * sp[ax]
        area = float(np.median(per_slice[slices])) * px
        if length < min_length_mm or not area_mm2[0] <= area <= area_mm2[1]:
            continue
        vals = raw[region]
        if not (float(np.median(vals)) < max_median_hu and float(np.mean(vals >= dense_hu)) < max_dense_fraction):
            continue
        if shell_of_bone(region, lab_box, sp):
            continue        # the blurred rim around a labelled bone, not a lumen
        blood.append(float(np.median(vals)))
        # part of the lumen (no denser than the blood around it), or a small thing on a
        # lumen many times its size and touching it (a wall calcification); not a dense
        # body of about the region's own size (a linear ligament calcification and its
        # partial-volume halo)
        peak = float(raw[q[:, 0], q[:, 1], q[:, 2]].max())
        faint = contrast_hu is not None and peak - float(np.median(vals)) < contrast_hu[c - 1]
        if faint:
            out[c - 1] = True
        elif region.sum() >= lumen_ratio * len(p):
            # a wall calcification touches the lumen: its core within the wall's thickness
            # (plus the voxel the core is eroded by and one of discretisation), not joined
            # to it only through the blurred halos of both
            out[c - 1] = lumen_gap_mm(region, q, sp) <= WALL_MM + 2.0 * float(sp.max())
    return out, blood
