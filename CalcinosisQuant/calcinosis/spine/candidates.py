"""Calcification candidates near the spine.

Within the box around the spine (see :mod:`.vertebrae`):

1. voxels at or above the threshold (HU, a recorded parameter);
2. minus the vertebrae themselves and every voxel within ``vertebra_margin_mm`` of them
   (always at least the 26 neighbours, which hold the partial-volume rim of cortical
   bone); minus ribs and other labelled bones (``bone_margin_mm``), organs (their voxels),
   and the aorta and other labelled vessels with ``vessel_margin_mm`` around them;
3. connected components (``face`` or ``full`` connectivity), then rejected, each with a
   recorded reason:

   * ``vessel`` - touches the zone excluded around a labelled vessel (a vessel-wall
     calcification protruding from the label), or, without an aorta label, lies within
     ``vessel_margin_mm`` of a contrast-filled tube found by shape (see
     :func:`aorta_like`);
   * ``vessel_lumen`` - is such a tube (enhanced aorta or iliac artery);
   * ``far`` - lies entirely further than ``search_margin_mm`` from every vertebra;
   * ``leaves_region`` - reaches beyond ``search_margin_mm``: a structure that continues
     away from the spine (rib, vessel, bowel, other bone), not a calcification; or is
     cut by the image's in-plane edge (it continues outside the field of view);
   * ``size`` - smaller than ``min_size_mm3``;
   * ``bone`` - bone the label map missed: the candidate continues, above the threshold,
     through the margin into labelled bone over at least ``bone_contact_mm2`` and a
     ``bone_contact_fraction`` of its voxels, or over five times ``bone_contact_mm2``
     (a process or rib head just outside a coarse label).  A calcification fused to bone
     that broadly is dropped too;
   * ``study_rule`` - fails the rule of the study (switchable): present on at least
     ``study_min_slices`` contiguous axial slices *and* seen in another plane, defined
     as: in at least one sagittal or coronal plane of the grid the candidate's
     cross-section holds a 2 x 2 block of voxels (two contiguous axial slices by two
     neighbouring voxels in that plane), so that the reformat shows it across slices
     as a blob, not as a one-voxel streak.

Distances to the vertebrae come from a Euclidean distance map on a coarse copy of the
box (cells of about 2.5 mm), accurate to about 2 mm, enough for a 25 mm margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from calcinosis.core.geometry import AXIS_S, Geometry
from calcinosis.core.lesions import LesionParams, LesionSet, label_components, label_sparse_components, longest_slice_runs
from calcinosis.core.progress import Progress, report
from calcinosis.core.volume import Volume

from .vertebrae import CAT_AORTA, CAT_BONE, CAT_ORGAN, CAT_RIB, CAT_VESSEL, SpineLabels

REJECT_REASONS = ("vessel", "vessel_lumen", "far", "leaves_region", "size", "bone", "study_rule")


@dataclass
class CandidateResult:
    lesions: LesionSet                  # on the box grid
    rejected: dict[str, int]
    aorta_by_shape: int = 0             # tubes taken for the aorta/iliac lumen (no label)
    notes: list[str] = field(default_factory=list)


def label_dtype(n: int):
    """The smallest unsigned type that holds label values 0..n."""
    return np.uint8 if n < 256 else (np.uint16 if n < 65536 else np.uint32)


def neighbour_offsets(geometry: Geometry, radius_mm: float) -> np.ndarray:
    """(k, j, i) offsets within ``radius_mm`` (ellipsoid in index space), always
    including the 26 neighbours."""
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])
    n = np.maximum(np.ceil(radius_mm / sp).astype(int), 1)
    grids = np.meshgrid(*[np.arange(-m, m + 1) for m in n], indexing="ij")
    off = np.stack([g.ravel() for g in grids], axis=1)
    d = np.sqrt(((off * sp) ** 2).sum(axis=1))
    keep = (d <= radius_mm + 1e-6) | (np.abs(off).max(axis=1) <= 1)
    off = off[keep]
    return off[np.any(off != 0, axis=1)]


def near(flat: np.ndarray, mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For voxels (flat indices into ``mask``'s array), whether any voxel at the given
    offsets is in ``mask``.  Offsets are applied to flat indices (clamped to the array):
    at the array's edge a neighbour may wrap to the next row, which the box's room
    around the spine makes harmless."""
    shape = mask.shape
    out = np.zeros(flat.size, dtype=bool)
    if flat.size == 0 or not mask.any():
        return out
    m = mask.ravel()
    steps = offsets @ np.array([shape[1] * shape[2], shape[2], 1])
    for st in np.unique(steps):
        out |= np.take(m, flat + st, mode="clip")
    return out


class CoarseDistance:
    """Distance (mm) to a mask, looked up for any voxel, on a coarse copy of the grid
    (block maximum): the Euclidean distance between coarse cell centres, found with a
    k-d tree of the mask's cells for just the cells looked up (a distance map of the
    whole coarse grid costs more than all the look-ups of a case)."""

    def __init__(self, flat: np.ndarray, shape: tuple[int, int, int], geometry: Geometry, cell_mm: float = 2.5):
        """``flat``: flat indices of the mask's voxels in an array of ``shape``."""
        sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])
        self.f = np.maximum(np.round(cell_mm / sp).astype(int), 1)
        self.coarse_shape = tuple(-(-s // f) for s, f in zip(shape, self.f))
        coarse = np.zeros(self.coarse_shape, dtype=bool)
        k, j, i = np.unravel_index(flat, shape)
        coarse[k // self.f[0], j // self.f[1], i // self.f[2]] = True
        self.cell = sp * self.f
        self.coarse = coarse
        cells = np.argwhere(coarse)
        self.tree = cKDTree(cells * self.cell) if cells.size else None
        self.shape = shape
        #: half the coarse cell diagonal: how far the lookup may be off
        self.error_mm = float(np.linalg.norm(self.cell) / 2)

    def lookup(self, flat: np.ndarray, beyond_mm: float = np.inf, method: str = "auto") -> np.ndarray:
        """Distances of the voxels ``flat``; with the k-d tree, those further than
        ``beyond_mm`` are ``inf`` (a bounded search is much faster for voxels far from the
        mask).  ``method``: 'tree', 'map' (a distance map of the whole coarse grid, cheaper
        when many cells are looked up; exact distances everywhere) or 'auto'."""
        if self.tree is None:
            return np.full(np.shape(flat), np.inf, np.float32)
        k, j, i = np.unravel_index(flat, self.shape)
        code = np.ravel_multi_index((k // self.f[0], j // self.f[1], i // self.f[2]), self.coarse_shape)
        cells, inverse = np.unique(code, return_inverse=True)
        if method == "map" or (method == "auto" and cells.size * 200 > self.coarse.size):
            # many cells: one distance map of the coarse grid is cheaper (same distances)
            dist = ndimage.distance_transform_edt(~self.coarse, sampling=self.cell).ravel()[cells]
        else:
            dist, _ = self.tree.query(np.stack(np.unravel_index(cells, self.coarse_shape), axis=1) * self.cell,
                                      distance_upper_bound=beyond_mm)
        return dist.astype(np.float32)[inverse.reshape(-1)]


def _component_reduce(lab: np.ndarray, values: np.ndarray, n: int, how: str) -> np.ndarray:
    out = np.full(n + 1, -np.inf if how == "max" else np.inf)
    (np.maximum if how == "max" else np.minimum).at(out, lab, values)
    return out[1:]


def aorta_like(lab: np.ndarray, idx: np.ndarray, n: int, geometry: Geometry, box_shape, hu: np.ndarray,
               min_length_mm: float = 40.0, area_range_mm2: tuple[float, float] = (55.0, 1500.0),
               max_mean_hu: float = 500.0) -> np.ndarray:
    """Components that look like a contrast-filled vessel: long along S (>= 40 mm),
    a cross-section on each axial slice of a vessel's size (median 55-1500 mm²,
    about 8-44 mm across) and a lumen's density (mean < 500 HU: not cortical bone)."""
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    ax = geometry.axial_axis
    s_idx = np.unravel_index(idx, box_shape)[ax]
    counts = np.bincount(lab, minlength=n + 1)[1:]
    big = np.flatnonzero(counts * geometry.voxel_volume_mm3 >= 1500.0) + 1
    if big.size == 0:
        return out
    px = geometry.cross_section_area_mm2(ax) * abs(geometry.direction_of_array_axis(ax) @ AXIS_S)
    step = geometry.spacing_along_array_axis(ax) * abs(geometry.direction_of_array_axis(ax) @ AXIS_S)
    sel = np.isin(lab, big)
    L, S = lab[sel].astype(np.int64), s_idx[sel].astype(np.int64)
    mean_hu = np.bincount(L, weights=hu[sel], minlength=n + 1) / np.maximum(np.bincount(L, minlength=n + 1), 1)
    # voxels per (component, slice), grouped by component: one sort for all components
    stride = int(S.max()) + 1
    keys, per_slice = np.unique(L * stride + S, return_counts=True)
    comp = keys // stride
    starts = np.flatnonzero(np.r_[True, comp[1:] != comp[:-1]])
    ends = np.r_[starts[1:], comp.size]
    for a, b in zip(starts, ends):
        c = int(comp[a])
        slices = keys[a:b] % stride
        length = (slices.max() - slices.min() + 1) * step
        area = float(np.median(per_slice[a:b])) * px
        if length >= min_length_mm and area_range_mm2[0] <= area <= area_range_mm2[1] and mean_hu[c] < max_mean_hu:
            out[c - 1] = True
    return out


class Margins(NamedTuple):
    """What :func:`margin_tests` keeps of the voxels above the threshold."""

    idx: np.ndarray        # kept voxels (sorted flat indices into the box)
    touch: np.ndarray      # per kept voxel: touches the zone excluded around a vessel
    contact: np.ndarray    # per kept voxel: face-adjacent to the above-threshold margin around bone
    mask: np.ndarray       # the kept voxels as a box mask


def margin_tests(idx: np.ndarray, lab: SpineLabels, vertebra_margin_mm: float, bone_margin_mm: float,
                 vessel_margin_mm: float) -> Margins:
    """Step 2 of the module docstring for the voxels ``idx`` above the threshold (sorted
    flat box indices, outside every labelled structure):

    * dropped: within ``vertebra_margin_mm`` of a vertebra or ``bone_margin_mm`` of other
      labelled bone, or within ``vessel_margin_mm`` of a labelled vessel ("the zone");
    * ``touch``: a kept voxel within one more voxel (the largest spacing) of the zone;
    * ``contact``: a kept voxel face-adjacent to a dropped voxel that is not in that
      shell around the zone - bone continuing, above the threshold, beyond its label.

    Distances are between voxel centres in mm (offsets within an ellipsoid in index
    space, always the 26 neighbours).  Computed sparsely, where each answer decides:
    most voxels above the threshold are the rim of the bones, and only those bordering a
    kept voxel need the vessel tests."""
    g = lab.box_geometry
    shape = lab.box.shape
    vert_mask = lab.vert > 0
    bone_mask = (lab.category == CAT_RIB) | (lab.category == CAT_BONE)
    if bone_margin_mm == vertebra_margin_mm:
        near_bone = near(idx, vert_mask | bone_mask, neighbour_offsets(g, vertebra_margin_mm))
    else:
        near_bone = near(idx, vert_mask, neighbour_offsets(g, vertebra_margin_mm))
        near_bone |= near(idx, bone_mask, neighbour_offsets(g, bone_margin_mm))
    vessel_mask = (lab.category == CAT_AORTA) | (lab.category == CAT_VESSEL)
    has_vessel = bool(vessel_mask.any())
    # in_zone: within vessel_margin_mm of a vessel (dropped); shell: beyond that but within
    # one more voxel (a candidate there touches the zone).  Tested only where the answer
    # matters: voxels not already dropped next to bone, and (below) the dropped voxels
    # that border a kept one - most voxels above the threshold are the rim of the bones.
    in_zone = np.zeros(idx.size, dtype=bool)
    shell = np.zeros(idx.size, dtype=bool)
    if has_vessel:
        off_zone = neighbour_offsets(g, vessel_margin_mm)
        off_reach = neighbour_offsets(g, vessel_margin_mm + max(g.spacing))

        def vessel_tests(sel: np.ndarray) -> None:
            zone = near(idx[sel], vessel_mask, off_zone)
            in_zone[sel] = zone
            shell[sel] = near(idx[sel], vessel_mask, off_reach) & ~zone

        vessel_tests(np.flatnonzero(~near_bone))
    drop = near_bone | in_zone
    kept = ~drop
    mask = np.zeros(shape, dtype=bool)
    mask.ravel()[idx[kept]] = True
    face = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    if has_vessel:
        # dropped voxels next to bone that border a kept voxel (a superset): their vessel
        # shell decides whether they count as bone rim for the contact test below
        border = near_bone & (near(idx, mask, face) | (idx == 0) | (idx == mask.size - 1))  # ends: clamped look-ups
        vessel_tests(np.flatnonzero(border))
    # above-threshold voxels of the margin around bone (outside the vessel shell): bone
    # continuing beyond its label
    bone_rim = np.zeros(shape, dtype=bool)
    bone_rim.ravel()[idx[drop & ~shell]] = True
    idx, touch = idx[kept], shell[kept]
    contact = near(idx, bone_rim, face)
    return Margins(idx, touch, contact, mask)


def find_candidates(volume: Volume, lab: SpineLabels, threshold_hu: float = 130.0, min_size_mm3: float = 1.0,
                    connectivity: str = "face", study_rule: bool = True, study_min_slices: int = 2,
                    search_margin_mm: float = 25.0, vertebra_margin_mm: float = 1.0, bone_margin_mm: float = 1.0,
                    vessel_margin_mm: float = 3.0, detect_aorta: bool = True, bone_contact_mm2: float = 6.0,
                    bone_contact_fraction: float = 0.25, ct_box: np.ndarray | None = None,
                    progress: Progress | None = None) -> CandidateResult:
    """Candidate calcifications (a :class:`LesionSet` on the box grid) and the count of
    components rejected for each reason (see the module docstring)."""
    g = lab.box_geometry
    shape = lab.box.shape
    ct = np.ascontiguousarray(volume.array[lab.box.slices]) if ct_box is None else ct_box
    report(progress, 0.0, "thresholding near the spine")
    # one pass over the box; the label tests only on the (few) voxels above the threshold
    idx = np.flatnonzero(ct >= threshold_hu)
    cat_excluded = np.zeros(256, dtype=bool)
    cat_excluded[[CAT_AORTA, CAT_VESSEL, CAT_RIB, CAT_BONE, CAT_ORGAN]] = True
    idx = idx[(lab.vert.ravel()[idx] == 0) & ~cat_excluded[lab.category.ravel()[idx]]]
    report(progress, 0.15, f"{idx.size} voxels above {threshold_hu:g} HU")
    idx, touch, contact, mask = margin_tests(idx, lab, vertebra_margin_mm, bone_margin_mm, vessel_margin_mm)
    report(progress, 0.35, "connected components")
    clab, n = _components(mask, idx, connectivity)
    rejected = {r: 0 for r in REJECT_REASONS}
    keep = np.ones(n, dtype=bool)
    reason = np.array([""] * n, dtype=object)

    def reject(sel: np.ndarray, why: str) -> None:
        new = sel & keep
        rejected[why] += int(new.sum())
        reason[new] = why
        keep[new] = False

    if n:
        # vessels
        touches = np.bincount(clab, weights=touch.astype(float), minlength=n + 1)[1:] > 0
        reject(touches, "vessel")
        hu = ct.ravel()[idx].astype(np.float64)
        aorta_by_shape = 0
        report(progress, 0.5, "distances to the vertebrae")
        vox = lab.vertebra_voxels()
        dist = CoarseDistance(np.concatenate(list(vox.values())) if vox else np.zeros(0, np.int64), shape, g)
        d = dist.lookup(idx, beyond_mm=search_margin_mm + dist.error_mm + 1.0)   # only compared with these
        dmin = _component_reduce(clab, d, n, "min")
        dmax = _component_reduce(clab, d, n, "max")
        if detect_aorta and not lab.has_aorta:
            tubes = aorta_like(clab, idx, n, g, shape, hu)
            tubes &= dmin <= search_margin_mm  # a tube next to the spine
            aorta_by_shape = int(tubes.sum())
            reject(tubes, "vessel_lumen")
            if tubes.any():
                tube_mask = np.zeros(shape, dtype=bool)
                tube_mask.ravel()[idx[tubes[clab - 1]]] = True
                small = keep[clab - 1]
                hit = np.zeros(idx.size, dtype=bool)
                hit[small] = near(idx[small], tube_mask, neighbour_offsets(g, vessel_margin_mm))
                reject(np.bincount(clab, weights=hit.astype(float), minlength=n + 1)[1:] > 0, "vessel")
        reject(dmin > search_margin_mm, "far")
        reject(dmax > search_margin_mm + dist.error_mm, "leaves_region")
        reject(_touches_fov_edge(idx, clab, n, lab, volume.geometry), "leaves_region")
        counts = np.bincount(clab, minlength=n + 1)[1:]
        reject(counts * g.voxel_volume_mm3 < min_size_mm3 * (1 - 1e-9), "size")
        if bone_contact_mm2 > 0:
            face_area = min(g.spacing[0] * g.spacing[1], g.spacing[1] * g.spacing[2], g.spacing[0] * g.spacing[2])
            touching = np.bincount(clab, weights=contact.astype(float), minlength=n + 1)[1:]
            area = touching * face_area
            reject((area >= bone_contact_mm2) & ((touching >= bone_contact_fraction * counts)
                                                 | (area >= 5 * bone_contact_mm2)), "bone")
        if study_rule:
            report(progress, 0.7, "study rule (2 slices, seen in another plane)")
            ok = study_rule_ok(mask, idx, clab, n, g, study_min_slices)
            reject(~ok, "study_rule")
    else:
        aorta_by_shape = 0
    report(progress, 0.9, f"{int(keep.sum())} candidates")
    params = LesionParams(threshold_hu, None, False, connectivity, float(min_size_mm3),
                          int(study_min_slices) if study_rule else 1, True)
    remap = np.zeros(n + 1, dtype=np.int64)
    remap[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    new_lab = remap[clab] if n else clab
    sel = new_lab > 0
    labels = np.zeros(shape, dtype=label_dtype(int(keep.sum())))
    labels.ravel()[idx[sel]] = new_lab[sel]
    lesions = LesionSet(labels, g, idx[sel], new_lab[sel], ["threshold"] * int(keep.sum()), params)
    res = CandidateResult(lesions, rejected, aorta_by_shape)
    return res


def _components(mask: np.ndarray, idx: np.ndarray, connectivity: str) -> tuple[np.ndarray, int]:
    """Connected components of ``mask`` (whose voxels are the sorted flat indices ``idx``),
    as the label of each voxel: from the voxels themselves when they are few in the box
    (the usual case: a few thousand voxels in tens of millions), else by labelling the box."""
    per_voxel = 3 if connectivity == "face" else 13      # neighbour look-ups per voxel
    if idx.size * per_voxel * 8 < mask.size:
        return label_sparse_components(idx, mask.shape, connectivity)
    comp, n = label_components(mask, connectivity)
    return comp.ravel()[idx].astype(np.int64), n


def _touches_fov_edge(idx: np.ndarray, clab: np.ndarray, n: int, lab: SpineLabels, full: Geometry) -> np.ndarray:
    """Components cut by the image's in-plane edge (the field of view): they continue
    outside the image and cannot be measured."""
    kji = np.unravel_index(idx, lab.box.shape)
    edge = np.zeros(idx.size, dtype=bool)
    for ax in range(3):
        if ax == full.axial_axis:
            continue
        pos = kji[ax] + lab.box.lo[ax]
        edge |= (pos == 0) | (pos == full.shape[ax] - 1)
    return np.bincount(clab, weights=edge.astype(float), minlength=n + 1)[1:] > 0


def study_rule_ok(mask: np.ndarray, idx: np.ndarray, clab: np.ndarray, n: int, g: Geometry,
                  min_slices: int) -> np.ndarray:
    """Per component: >= ``min_slices`` contiguous axial slices and a 2 x 2 block in a
    sagittal or coronal plane (see the module docstring)."""
    shape = mask.shape
    ax = g.axial_axis
    kji = np.unravel_index(idx, shape)
    _, _, runs = longest_slice_runs(clab, kji[ax], n)
    ok = runs >= min_slices
    m = mask.ravel()
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    block = np.zeros(idx.size, dtype=bool)
    coords = np.stack(kji, axis=1)
    for other in (a for a in range(3) if a != ax):
        # voxel + axial step, + in-plane step, + both: all inside (and inside the array)
        inside = (coords[:, ax] + 1 < shape[ax]) & (coords[:, other] + 1 < shape[other])
        f = idx[inside]
        s_ax, s_o = strides[ax], strides[other]
        b = m[f + s_ax] & m[f + s_o] & m[f + s_ax + s_o]
        block[np.flatnonzero(inside)[b]] = True
    has_block = np.bincount(clab, weights=block.astype(float), minlength=n + 1)[1:] > 0
    return ok & has_block
