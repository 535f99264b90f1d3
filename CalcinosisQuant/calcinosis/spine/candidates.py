"""Calcification candidates near the spine (the whole method, with every reason a
candidate is rejected: ``docs/methods/spine-map.md`` step 2).

Within the box around the spine (see :mod:`.vertebrae`):

1. voxels at or above the threshold (HU, a recorded parameter), outside the labelled
   bones, organs and vessels - and outside the zone the CT shows to be each bone's
   (:mod:`.bone`: the label's border fitted to the bone's edge and partial-volume rim;
   between two vertebrae, voxels denser than the end plates' edge explains are not in it;
   on thick slices, a compact body in the slice next to a bone denser than the bone across
   the slice boundary is not in it either: :func:`compact_on_thick_slices`) - and outside
   ``vessel_margin_mm`` around labelled vessels;
2. connected components (``face`` or ``full`` connectivity), then rejected, each with a
   recorded reason (:data:`REJECT_REASONS`), cheap tests first: ``vessel`` (touches the
   zone around a vessel label), ``vessel_lumen`` (a contrast-filled aorta-like tube at
   the threshold, no aorta label), ``far`` / ``leaves_region``, ``size``, ``bone`` (broad
   contact with or enclosure by labelled bone, a large body lying wholly against bone and
   on average no denser than cancellous bone, a piece of one bone's rim - never denser
   than that bone's cortex -, a hollow body: cortex around marrow, a body no denser than
   cancellous bone against or inside bone), ``study_rule``, ``noise`` (:mod:`.noise`: peak above the
   surroundings), ``lung``, ``vessel_shape`` (:mod:`.vessels`: an enhanced tube at the
   blood's density, or a calcification in its wall touching the lumen),
   ``blood_density`` (no denser than the measured blood).

Distances to the vertebrae come from a Euclidean distance map on a coarse copy of the
box (cells of about 2.5 mm), accurate to about 2 mm, enough for a 25 mm margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from calcinosis.core import memo, parallel
from calcinosis.core.geometry import AXIS_S, Geometry
from calcinosis.core.lesions import LesionParams, LesionSet, label_components, label_sparse_components, longest_slice_runs
from calcinosis.core.progress import Progress, report
from calcinosis.core.volume import Volume

from . import bone, noise as noise_mod, vessels
from .vertebrae import CAT_AORTA, CAT_BONE, CAT_ORGAN, CAT_RIB, CAT_VESSEL, SpineLabels

REJECT_REASONS = ("vessel", "vessel_lumen", "vessel_shape", "blood_density", "far", "leaves_region", "size", "bone",
                  "study_rule", "noise", "lung")
#: a candidate with this share of its surface voxels against bone is enclosed by it (marrow)
ENCLOSED_FRACTION = 0.8
#: a candidate's surroundings below this are aerated lung
LUNG_HU = -400.0
#: blood at or above this is enhanced (unenhanced blood is 30-60 HU)
ENHANCED_BLOOD_HU = 110.0


def blood_hu(ct: np.ndarray, lab: SpineLabels) -> float | None:
    """The blood's CT value: the median inside the labelled aorta (None without one)."""
    cat = lab.category
    parts = parallel.over_slabs(lambda a, b: ct[a:b][cat[a:b] == CAT_AORTA], ct.shape[0], 8,
                                plane=int(np.prod(ct.shape[1:])))
    vals = np.concatenate(parts) if parts else np.zeros(0)
    return float(np.median(vals)) if vals.size >= 50 else None


@dataclass
class CandidateResult:
    lesions: LesionSet                  # on the box grid
    rejected: dict[str, int]
    aorta_by_shape: int = 0             # tubes taken for the aorta/iliac lumen (no label)
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)   # label surfaces, noise, effective rules (provenance)
    #: (voxels, their component, each component's rejection reason or ''): why a voxel
    #: above the threshold is not a calcification
    explain: tuple | None = field(default=None, repr=False)
    #: per lesion (label - 1): kept only as filling the space between two vertebrae's end
    #: plates (a piece of one bone's rim otherwise) - valid in a disc, not behind the canal
    disc_fill_only: np.ndarray | None = None


def positions_mm(flat: np.ndarray, shape, sp: np.ndarray) -> np.ndarray:
    """Flat box indices -> positions (mm along the box's array axes, ``sp`` their spacing)."""
    return np.stack(np.unravel_index(flat, shape), axis=1) * sp


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
    return near_values(flat, mask.view(np.uint8), np.array([False, True]), offsets)


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
            dist, _ = self.tree.query(positions_mm(cells, self.coarse_shape, self.cell),
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


def near_values(flat: np.ndarray, values: np.ndarray, lut: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """:func:`near` for the voxels of ``values`` (an integer box array) whose value ``lut``
    marks - without building their mask."""
    shape = values.shape
    out = np.zeros(flat.size, dtype=bool)
    if flat.size == 0 or not lut.any():
        return out
    v = values.ravel()
    steps = offsets @ np.array([shape[1] * shape[2], shape[2], 1])
    for st in np.unique(steps):
        out |= lut[np.take(v, flat + st, mode="clip")]
    return out


def margin_tests(idx: np.ndarray, lab: SpineLabels, vertebra_margin_mm: float,
                 bone_margin_mm: float, vessel_margin_mm: float, vessels: bool = True,
                 near_bone: np.ndarray | None = None) -> Margins:
    """Step 2 of the module docstring for the voxels ``idx`` above the threshold (sorted
    flat box indices, outside every labelled structure):

    * dropped: within ``vertebra_margin_mm`` of a vertebra or ``bone_margin_mm`` of other
      labelled bone (or, given ``near_bone``, the voxels it marks: the zone fitted to the
      CT, :func:`bone_zone`), or within ``vessel_margin_mm`` of a labelled vessel ("the
      zone");
    * ``touch``: a kept voxel within one more voxel (the largest spacing) of the zone;
    * ``contact``: a kept voxel face-adjacent to a dropped voxel that is not in that
      shell around the zone - bone continuing, above the threshold, beyond its label.

    Distances are between voxel centres in mm (offsets within an ellipsoid in index
    space, always the 26 neighbours).  Computed sparsely, where each answer decides:
    most voxels above the threshold are the rim of the bones, and only those bordering a
    kept voxel need the vessel tests."""
    g = lab.box_geometry
    shape = lab.box.shape
    if near_bone is None:
        near_bone = near(idx, lab.vert > 0, neighbour_offsets(g, vertebra_margin_mm))
        bone_mask = (lab.category == CAT_RIB) | (lab.category == CAT_BONE)
        if bone_mask.any():
            todo = np.flatnonzero(~near_bone)
            near_bone[todo] = near(idx[todo], bone_mask, neighbour_offsets(g, bone_margin_mm))
    # the labelled vessels, looked up in the category array itself (no mask of the box)
    vessel_code = np.zeros(256, dtype=bool)
    vessel_code[[CAT_AORTA, CAT_VESSEL]] = True
    has_vessel = vessels and parallel.any_where(lab.category, lambda c: (c == CAT_AORTA) | (c == CAT_VESSEL))
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
            zone = near_values(idx[sel], lab.category, vessel_code, off_zone)
            in_zone[sel] = zone
            shell[sel] = near_values(idx[sel], lab.category, vessel_code, off_reach) & ~zone

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


@dataclass(frozen=True)
class CandidateOptions:
    """The candidate search's settings (the :class:`~.params.SpineParams` of the same
    names; see there and the module docstring)."""

    threshold_hu: float = 130.0
    min_size_mm3: float = 1.0
    min_voxels: int = 2
    connectivity: str = "face"
    study_rule: bool = True
    study_min_slices: int = 2
    study_slice_mm: float = 1.25
    search_margin_mm: float = 25.0
    vertebra_margin_mm: float = 0.5
    bone_margin_mm: float = 0.5
    label_shift_limit_mm: float = 3.0
    bone_hollow_margin_hu: float = 30.0
    bone_rim_protrusion_mm: float = 1.4
    bone_contact_mm2: float = 30.0
    bone_contact_fraction: float = 0.25
    vessel_margin_mm: float = 3.0
    detect_vessels: bool = True
    vessel_blood_hu: float = 100.0
    noise_multiple: float = 5.0

    @staticmethod
    def from_params(p) -> "CandidateOptions":
        return CandidateOptions(**{f: getattr(p, f) for f in CandidateOptions.__dataclass_fields__
                                   if hasattr(p, f)}, detect_vessels=p.detect_aorta)


def effective_min_slices(opts: CandidateOptions, slice_mm: float) -> int:
    """Contiguous axial slices asked for on this CT: the study's rule (``study_min_slices``
    slices of ``study_slice_mm``) as the same calcification size.  A calcification of
    cranio-caudal extent E, wherever it lies along the slices, holds the centres of at least
    n slices of thickness t with probability min(max(E / t - n + 1, 0), 1): half the time at
    E = (n - 1/2) t.  The study's 2 slices of 1.25 mm see half of the calcifications of
    1.875 mm; on other slices the number whose half-way extent is nearest that: 4 slices of
    0.47-0.62 mm, 3 of 0.625-0.93 mm, 2 of 0.94-1.87 mm (1.25 mm: the study's 2), 1 from
    1.875 mm (2, 2.5, 3 mm).  Half-way between two numbers (within a thousandth of a slice,
    as spacings from DICOM positions are) the fewer: a calcification is lost less often,
    and the noise rule (its peak above the surrounding tissue) is there for a speck.  Asking
    for the same minimal span instead ((n - 1) t = 1.25 mm) asked for two slices of 2 mm -
    half of the calcifications of 3 mm - and lost 1-5 of each hard phantom's on 2 mm slices.
    The same holds for any ``study_min_slices``: one of 1.25 mm asks for two below 0.625 mm."""
    half_way = (int(opts.study_min_slices) - 0.5) * float(opts.study_slice_mm)    # 1.875 mm
    # the nearest whole number to half_way / t + 1/2, the fewer within a thousandth of half-way
    return max(1, int(np.ceil(half_way / float(slice_mm) - 1e-3)))


def label_structures(lab: SpineLabels) -> list[tuple[str, np.ndarray]]:
    """The labelled bones as (name, flat box indices): each vertebra, the ribs, other bone."""
    out = [(name, flat) for name, flat in lab.vertebra_voxels().items()]
    cat = np.ascontiguousarray(lab.category)
    plane = int(np.prod(cat.shape[1:]))

    def slab(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        c = cat[a:b]
        flat = np.flatnonzero((c == CAT_RIB) | (c == CAT_BONE))
        return flat + a * plane, c.ravel()[flat]

    # one pass over the box for both, slab by slab on every core (sorted: slabs in order)
    parts = parallel.over_slabs(slab, cat.shape[0], 8, plane=plane)
    flat = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    codes = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.uint8)
    for code, name in ((CAT_RIB, "ribs"), (CAT_BONE, "other bone")):
        mine = flat[codes == code]
        if mine.size:
            out.append((name, mine))
    return out


#: a voxel within this of two vertebrae's borders lies in the space between them (a disc of
#: up to about twice this, a facet joint)
DISC_REACH_MM = 3.0
#: two vertebrae's borders lie across a disc when the line between them is within 53
#: degrees of the cranio-caudal axis: end plates tilt up to about 40 degrees (lordosis at
#: L5-S1); the line across a facet joint's space is horizontal at lumbar levels and within
#: about 30 degrees of it at thoracic ones
END_PLATE_MIN_COS = 0.6
#: how many nearest border voxels :func:`between_vertebrae` looks at (a 3 mm ball holds
#: about 30 of one flat border at 1 mm voxels)
BETWEEN_NEIGHBOURS = 96


#: a bone's rim is never denser than its cortex: voxels this many noise SD above the local
#: cortical peak are something else against the bone (see :func:`denser_than_cortex`)
CORTEX_EXCESS_SIGMA = 3.0


def cranio_caudal(g: Geometry) -> np.ndarray:
    """The patient's S direction as a unit vector along the array axes (k, j, i) of ``g``,
    in the coordinates of :func:`positions_mm`."""
    return np.array([g.direction_of_array_axis(k)[2] for k in range(3)])


def between_vertebrae(points_mm: np.ndarray, surfaces: bone.BoneSurfaces, n_vertebrae: int,
                      reach_mm: float = DISC_REACH_MM, axis: np.ndarray | None = None,
                      min_cos: float = END_PLATE_MIN_COS) -> np.ndarray:
    """Per point (mm along the box's array axes): whether the borders of two different
    vertebrae lie within ``reach_mm`` of it - with ``axis`` (a unit vector in the same
    coordinates, the patient's cranio-caudal one), only where the nearest border voxels of
    the two lie across the point along it (the line between them within
    ``acos(min_cos)`` of the axis): end plates across a disc, not two articular processes
    across a facet joint's space."""
    out = np.zeros(len(points_mm), dtype=bool)
    if surfaces.tree is None or len(points_mm) == 0:
        return out
    # the border voxels within reach, nearest first (enough of them for two bones' borders)
    # (inclusive, as query_ball_point: the k-d query's bound is strict)
    d, i = surfaces.tree.query(points_mm, k=min(BETWEEN_NEIGHBOURS, len(surfaces.points)),
                               distance_upper_bound=reach_mm + 1e-6, workers=2)
    d, i = d.reshape(len(points_mm), -1), i.reshape(len(points_mm), -1)
    ok = np.isfinite(d)
    st = np.where(ok, surfaces.structure[np.minimum(i, len(surfaces.points) - 1)], 0).astype(np.int64)
    st[st > n_vertebrae] = 0                            # ribs, other bone: not a vertebra
    first = np.argmax(st > 0, axis=1)                   # the nearest vertebra border voxel
    rows = np.arange(len(points_mm))
    s1 = st[rows, first]
    other = (st > 0) & (st != s1[:, None])
    has2 = (s1 > 0) & other.any(axis=1)
    # where the nearest ones are all one bone's and there are more within reach: all of them
    full = ~has2 & ok[:, -1]
    if full.any():
        for r in np.flatnonzero(full):
            near = np.asarray(surfaces.tree.query_ball_point(points_mm[r], reach_mm), dtype=np.int64)
            sn = surfaces.structure[near].astype(np.int64)
            dn = np.linalg.norm(surfaces.points[near] - points_mm[r], axis=1)
            sel = (sn <= n_vertebrae) & (sn != s1[r])
            if s1[r] > 0 and sel.any():
                j = int(np.argmin(np.where(sel, dn, np.inf)))
                i[r, -1], other[r, -1] = near[j], True        # the other vertebra's nearest
                has2[r] = True
    if axis is None:
        return has2
    second = np.argmax(other, axis=1)
    r = rows[has2]
    v = surfaces.points[i[r, second[r]]] - surfaces.points[i[r, first[r]]]
    n = np.linalg.norm(v, axis=1)
    out[r] = np.abs(v @ np.asarray(axis, float)) >= min_cos * np.maximum(n, 1e-9)
    return out


def bone_zone(outside: np.ndarray, inside: np.ndarray, surfaces: bone.BoneSurfaces, lab: SpineLabels,
              vertebra_margin_mm: float, bone_margin_mm: float, hu: np.ndarray | None = None,
              min_excess_hu: np.ndarray | None = None,
              tolerance_mm: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which voxels above the threshold are bone (see :mod:`.bone`):

    * ``outside`` (flat box indices outside every bone label) -> in the zone: within the
      radius fitted at the nearest label border voxel (the margin plus the local surface
      shift, or the reach of the partial-volume rim, whichever is larger) - unless, given
      their CT values ``hu``, they lie between two vertebrae's end plates (across the
      point along the cranio-caudal axis, :func:`between_vertebrae`) and are denser than
      the nearest bone's own edge explains there by ``min_excess_hu``
      (per voxel; :meth:`.bone.BoneSurfaces.expected_hu`, looked up ``tolerance_mm``
      nearer the bone): a calcification filling a thin disc, not the end plates' rims
      (not tested at a single bone: where its label is a voxel short, its cortex is as
      dense as a calcification beyond the median edge);
    * ``inside`` (flat indices inside bone labels) -> those *not* bone: where the label
      reaches beyond the bone (negative shift) by more than the margin, the outer part.

    Returns (in-zone flags for ``outside``, the ``inside`` voxels that are not bone, the
    flags for ``outside`` of those within the zone's radius freed as denser than its edge,
    the nearest border voxel of each of ``outside`` - an index into ``surfaces``, valid for
    those within the zone's radius)."""
    g = lab.box_geometry
    shape = lab.box.shape
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    n_vert = len(lab.names)
    margin = np.where(surfaces.structure <= n_vert, vertebra_margin_mm, bone_margin_mm)
    radius = margin + surfaces.shift_mm                         # per border voxel
    pos = positions_mm(outside, shape, sp)
    upper = float(radius.max()) + 1e-6 if radius.size else 0.0
    d, b = surfaces.nearest(pos, max(upper, 0.0))
    in_zone = np.isfinite(d) & (d <= radius[b] + 1e-6) if radius.size else np.zeros(outside.size, bool)
    dense = np.zeros(outside.size, dtype=bool)
    if hu is not None and in_zone.any():
        z = np.flatnonzero(in_zone)
        expected = surfaces.expected_hu(d[z], b[z], tolerance_mm)
        ok = np.isfinite(expected)
        z = z[ok][hu[z[ok]] > expected[ok] + min_excess_hu[z[ok]]]
        # across a disc: the two vertebrae's end plates above and below (a piece of one
        # articular process's cortex the label missed, across a facet joint's space from
        # the other vertebra's process, is as dense as a calcification beyond its edge)
        dense[z[between_vertebrae(pos[z], surfaces, n_vert, DISC_REACH_MM, axis=cranio_caudal(g))]] = True
        in_zone &= ~dense
    over = np.flatnonzero(radius < 0)
    if over.size == 0 or inside.size == 0:
        return in_zone, np.zeros(0, np.int64), dense, b
    tree = cKDTree(surfaces.points[over])
    pin = positions_mm(inside, shape, sp)
    di, bi = tree.query(pin, distance_upper_bound=float(-radius[over].min()) + 1e-6)
    hit = np.isfinite(di)
    free = np.zeros(inside.size, dtype=bool)
    free[hit] = di[hit] < -radius[over][bi[hit]]
    return in_zone, inside[free], dense, b


#: thick slices: an axial spacing of this much (mm) or more ...
THICK_SLICE_MM = 2.0
#: ... and at least this many times the in-plane one (a thousandth less, for spacings from
#: DICOM positions)
THICK_SLICE_RATIO = 2.0
#: the in-plane ring around a voxel that tells a compact body from a bone's surface cut by
#: the slice (mm from the voxel, in its slice): a body up to 5 mm across lies inside it
PEAK_RING_MM = (2.5, 4.5)
#: a compact body stands above the ring's upper tenth by this share of its height above the
#: tissue beyond the bone (a bone's end cut by the slice is a plateau: its ring is as dense)
PEAK_SHARE = 0.5
#: the body around such a core: the voxels of the zone within this of it, in its slice (mm)
PEAK_BODY_MM = 1.5
#: the core must be denser than every voxel across the slice boundaries within this of it
#: in-plane (mm): the ring's inner radius, so the bone under the whole body is looked at
ACROSS_MM = PEAK_RING_MM[0]
#: zone voxels looked at per pass (each gathers a ring of up to ~200 values)
PEAK_CHUNK = 20000


def thick_slices(g: Geometry) -> bool:
    """Whether the axial spacing is :data:`THICK_SLICE_MM` or more and
    :data:`THICK_SLICE_RATIO` times the in-plane one or more (both a thousandth short
    counts): never the study's 1.25 mm slices, whatever the pixel."""
    sp = [g.spacing_along_array_axis(a) for a in range(3)]
    axial, pixel = sp[g.axial_axis], max(sp[a] for a in range(3) if a != g.axial_axis)
    return axial >= THICK_SLICE_MM * (1 - 1e-3) and axial >= THICK_SLICE_RATIO * pixel * (1 - 1e-3)


def compact_on_thick_slices(zone: np.ndarray, ct: np.ndarray, g: Geometry, low_hu: np.ndarray,
                            min_excess_hu: np.ndarray, threshold_hu: float) -> np.ndarray:
    """Which voxels of the bone's zone (flat box indices ``zone``) are a compact body in the
    slice next to a bone, on thick slices (:func:`thick_slices`; elsewhere none): a
    calcification on a process or an end plate that fills one slice.  Its core: a voxel at
    or above ``threshold_hu`` that stands above the upper tenth of its in-plane ring
    (:data:`PEAK_RING_MM`) by ``min_excess_hu`` (per voxel: the noise margin) and by
    :data:`PEAK_SHARE` of its height above ``low_hu`` (the tissue beyond the nearest bone),
    and is denser, by ``min_excess_hu``, than every voxel across the slice boundaries within
    :data:`ACROSS_MM` - a bone's end partial-volumed into the next slice is a fraction of the
    bone, never denser than the bone across; with it the zone's voxels within
    :data:`PEAK_BODY_MM` of a core in its slice.  What the box does not hold counts against
    a core: a ring that leaves it, a slice boundary at its first or last slice (the bone
    across may lie beyond the scan)."""
    out = np.zeros(zone.size, dtype=bool)
    if zone.size == 0 or not thick_slices(g):
        return out
    ax = g.axial_axis
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    plane = [a for a in range(3) if a != ax]
    shape = np.array(ct.shape)
    w = np.ceil(PEAK_RING_MM[1] / sp[plane]).astype(int)
    u, v = np.meshgrid(np.arange(-w[0], w[0] + 1), np.arange(-w[1], w[1] + 1), indexing="ij")
    dist = np.hypot(u * sp[plane[0]], v * sp[plane[1]])

    def offsets(sel: np.ndarray, along: int = 0) -> np.ndarray:
        o = np.zeros((int(sel.sum()), 3), np.int64)
        o[:, plane[0]], o[:, plane[1]], o[:, ax] = u[sel], v[sel], along
        return o

    ring_off = offsets((dist >= PEAK_RING_MM[0]) & (dist <= PEAK_RING_MM[1]))
    foot = dist <= ACROSS_MM
    below, above = offsets(foot, -1), offsets(foot, 1)

    def gather(kji: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CT values at the offsets from the voxels ``kji`` (+inf outside the box), and per
        voxel whether all lie inside it."""
        pts = kji[:, None, :] + off[None, :, :]
        inside = np.all((pts >= 0) & (pts < shape), axis=2)
        pts = np.clip(pts, 0, shape - 1)
        vals = np.where(inside, ct[pts[..., 0], pts[..., 1], pts[..., 2]].astype(np.float64), np.inf)
        return vals, inside.all(axis=1)

    core = np.zeros(zone.size, dtype=bool)
    for start in range(0, zone.size, PEAK_CHUNK):
        part = np.arange(start, min(start + PEAK_CHUNK, zone.size))
        kji = np.stack(np.unravel_index(zone[part], ct.shape), axis=1)
        hu = ct.ravel()[zone[part]].astype(np.float64)
        across = np.maximum(gather(kji, below)[0].max(axis=1), gather(kji, above)[0].max(axis=1))
        ok = (hu >= threshold_hu) & (hu - across >= min_excess_hu[part])
        # the ring (a sort per voxel) only for those denser than the bone across
        part, kji, hu = part[ok], kji[ok], hu[ok]
        ring, whole = gather(kji, ring_off)
        top = np.full(part.size, np.inf)                               # a ring that leaves the box
        top[whole] = np.percentile(ring[whole], 90, axis=1) if whole.any() else top[whole]
        core[part] = hu - top >= np.maximum(min_excess_hu[part], PEAK_SHARE * (hu - low_hu[part]))
    if not core.any():
        return out
    mask = np.zeros(ct.shape, dtype=bool)
    mask.ravel()[zone[core]] = True
    body = np.expand_dims(dist <= PEAK_BODY_MM, ax)
    return ndimage.binary_dilation(mask, structure=body).ravel()[zone]


def attached_rim(idx: np.ndarray, clab: np.ndarray, dropped: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """The dropped voxels (the partial-volume rim of bone) face-adjacent to a candidate,
    with that candidate's label: the rim a calcification shares with the bone it touches.
    Not measured, but counted by the study rule (a calcification filling a 3 mm disc
    keeps its slices against the end plates)."""
    if dropped.size == 0 or idx.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    rim, owner = [], []
    size = int(np.prod(shape))
    for st in np.r_[strides, -strides]:
        nb = dropped + st
        ok = (nb >= 0) & (nb < size)
        pos = np.searchsorted(idx, nb[ok])
        pos = np.minimum(pos, idx.size - 1)
        hit = idx[pos] == nb[ok]
        rim.append(dropped[ok][hit])
        owner.append(clab[pos[hit]])
    rim_all, owner_all = np.concatenate(rim), np.concatenate(owner)
    rim_u, first = np.unique(rim_all, return_index=True)
    return rim_u, owner_all[first]


def protrusion_mm(idx: np.ndarray, surfaces: bone.BoneSurfaces, lab: SpineLabels, vertebra_margin_mm: float,
                  bone_margin_mm: float, upper_mm: float = 50.0) -> np.ndarray:
    """Per voxel: how far (mm) beyond the zone fitted to the nearest labelled bone it lies
    (inf beyond ``upper_mm`` from every bone)."""
    g = lab.box_geometry
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    d, b = surfaces.nearest(positions_mm(idx, lab.box.shape, sp), upper_mm)
    if surfaces.tree is None:
        return d
    margin = np.where(surfaces.structure[b] <= len(lab.names), vertebra_margin_mm, bone_margin_mm)
    return np.where(np.isfinite(d), d - (margin + surfaces.shift_mm[b]), np.inf)


def denser_than_cortex(points_mm: np.ndarray, hu: np.ndarray, surfaces: bone.BoneSurfaces, sigma: np.ndarray,
                       multiple: float, reach_mm: float) -> np.ndarray:
    """Per voxel (positions in mm along the box's axes): denser, by ``multiple`` x the
    noise ``sigma``, than the cortex of every bone near it gets there (the upper fifth of
    the local cortical peaks, :attr:`.bone.BoneSurfaces.cortex_hu`, over the border
    voxels within the nearest one's distance plus ``reach_mm``: where a label is short,
    the nearest border may be another, less dense bone's).  The partial-volume rim of a
    bone cannot be: it is the cortex blurred, never denser than the cortex itself."""
    out = np.zeros(hu.size, dtype=bool)
    if surfaces.cortex_hu is None or surfaces.tree is None or hu.size == 0:
        return out
    d, _ = surfaces.nearest(points_mm, np.inf)
    near = bone.Groups.from_lists(surfaces.tree.query_ball_point(points_mm, d + reach_mm))
    lens = np.bincount(near.gid, minlength=near.n)
    ok = lens > 0
    if not ok.any():
        return out
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])[ok]
    densest = np.fmax.reduceat(surfaces.cortex_hu[near.members], starts)     # NaN only where all are
    out[ok] = np.nan_to_num(hu[ok] - densest, nan=-np.inf) > multiple * sigma[ok]
    return out


#: a rod: its longest principal axis this many times its second
ROD_RATIO = 3.0


#: a labelled voxel this much (HU; or 3 noise SD, if more) denser than the densest cortex
#: near it is not bone (:func:`swallowed_by_label`)
SWALLOWED_EXCESS_HU = 150.0
#: the zone's voxels within this of a swallowed core are its dome (mm): half the largest
#: calcification a label grown by its imprecision covers
SWALLOWED_DOME_MM = 2.5


def swallowed_by_label(inside: np.ndarray, structure: np.ndarray, ct: np.ndarray, surfaces: bone.BoneSurfaces,
                       noise_hu: np.ndarray, g: Geometry, reach_mm: float, n_vertebrae: int) -> np.ndarray:
    """The labelled voxels (flat box indices ``inside``, each of bone surface structure
    ``structure``, 0 for ribs and other bone) denser than the densest cortex of
    the bones near them (:func:`denser_than_cortex`) by :data:`SWALLOWED_EXCESS_HU` or 3
    noise SD, two face-adjacent at least, where a single bone is near (between two
    vertebrae's end plates the disc rule of :func:`bone_zone` decides): a calcification's
    core a label grown over it holds (a bone's cortex is never denser than itself; a bone
    island lies deeper than ``reach_mm`` from the border)."""
    if surfaces.cortex_hu is None or surfaces.tree is None or inside.size == 0:
        return np.zeros(0, np.int64)
    finite = np.isfinite(surfaces.cortex_hu)
    if not finite.any():
        return np.zeros(0, np.int64)
    # first the densest each structure's cortex gets anywhere (cheap: no look-up per voxel)
    floor = np.full(int(surfaces.structure.max()) + 1, np.inf)
    np.minimum.at(floor, surfaces.structure[finite], surfaces.cortex_hu[finite])
    lowest = float(surfaces.cortex_hu[finite].min())
    floor[0] = lowest                                  # ribs and other bone: the lowest
    floor[~np.isfinite(floor)] = lowest
    st = np.minimum(structure, len(floor) - 1)
    hu = ct.ravel()[inside]
    cand = inside[hu > floor[st] + SWALLOWED_EXCESS_HU]
    if cand.size == 0:
        return cand
    shape = ct.shape
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    pos = positions_mm(cand, shape, sp)
    d, b = surfaces.nearest(pos, reach_mm)
    # near the border, and denser than the nearest border voxel's cortex (cheap) first
    near_border = np.isfinite(d)
    near_border[near_border] = np.nan_to_num(
        ct.ravel()[cand[near_border]] - surfaces.cortex_hu[b[near_border]], nan=-np.inf) > SWALLOWED_EXCESS_HU
    cand, pos = cand[near_border], pos[near_border]
    if cand.size == 0:
        return cand
    # (between two vertebrae's end plates the disc rule decides: bone_zone)
    single = ~between_vertebrae(pos, surfaces, n_vertebrae, DISC_REACH_MM, axis=cranio_caudal(g))
    cand, pos = cand[single], pos[single]
    sigma = np.maximum(noise_hu[np.unravel_index(cand, shape)[g.axial_axis]], SWALLOWED_EXCESS_HU / 3.0)
    over = denser_than_cortex(pos, ct.ravel()[cand].astype(np.float64), surfaces, sigma, 3.0, reach_mm)
    cand = cand[over]
    # a core, not a voxel: each with a face neighbour of its own kind
    if cand.size:
        mask = np.zeros(shape, dtype=bool)
        mask.ravel()[cand] = True
        owner, hit = _face_neighbours(cand, np.arange(cand.size), mask, shape)
        cand = cand[np.unique(owner)] if owner.size else cand[:0]
    return cand


def rod_shaped(idx: np.ndarray, clab: np.ndarray, n: int, which: np.ndarray, sp: np.ndarray,
               shape: tuple[int, int, int], ratio: float = ROD_RATIO) -> np.ndarray:
    """Per component (``which``: those to test): a thin rod - the square root of the largest
    eigenvalue of its voxel positions' covariance (mm) at least ``ratio`` times the
    second's (a vessel segment; the table's principal axes are 4 x these)."""
    out = np.zeros(n, dtype=bool)
    for c in np.flatnonzero(which) + 1:
        p = positions_mm(idx[clab == c], shape, sp)
        if len(p) < 4:
            continue
        ev = np.sort(np.linalg.eigvalsh(np.cov(p.T)))[::-1]
        out[c - 1] = ev[0] >= ratio ** 2 * max(ev[1], 1e-9)
    return out


def bone_rim(protrusion: np.ndarray, clab: np.ndarray, n: int, which: np.ndarray, min_mm: float,
             touch_mm: float) -> np.ndarray:
    """Per component (``which``: those to test): a piece of a bone's partial-volume rim left
    outside its zone where the label is locally short - it touches the zone (a voxel
    within ``touch_mm`` of it) and fewer than two of its voxels lie ``min_mm`` or more
    beyond it.  A calcification of 2 mm or more standing on the bone protrudes further."""
    if n == 0:
        return np.zeros(0, dtype=bool)
    touches = np.bincount(clab, weights=(protrusion <= touch_mm).astype(float), minlength=n + 1)[1:] > 0
    out_far = np.bincount(clab, weights=(protrusion >= min_mm).astype(float), minlength=n + 1)[1:]
    return which & touches & (out_far < 2)


def swallowed_dome(core: np.ndarray, zone: np.ndarray, ct: np.ndarray, surfaces: bone.BoneSurfaces,
                   min_excess_hu: np.ndarray, g: Geometry, n_vertebrae: int) -> np.ndarray:
    """Which of the zone's voxels (flat box indices ``zone``) are the dome of a swallowed
    core (:func:`swallowed_by_label`, flat indices ``core``) beyond the label: within
    :data:`SWALLOWED_DOME_MM` of it, denser than the bone's edge explains there by
    ``min_excess_hu`` (per voxel), and at a single bone (not between two end plates)."""
    shape = ct.shape
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    out = np.zeros(zone.size, dtype=bool)
    pz = positions_mm(zone, shape, sp)
    dz, _ = cKDTree(positions_mm(core, shape, sp)).query(pz, distance_upper_bound=SWALLOWED_DOME_MM)
    near_core = np.flatnonzero(np.isfinite(dz))
    if near_core.size == 0:
        return out
    pz = pz[near_core]
    db, bb = surfaces.nearest(pz, np.inf)
    excess = ct.ravel()[zone[near_core]] - surfaces.expected_hu(db, bb) - min_excess_hu[near_core]
    out[near_core] = (np.nan_to_num(excess, nan=-np.inf) > 0) & ~between_vertebrae(
        pz, surfaces, n_vertebrae, DISC_REACH_MM, axis=cranio_caudal(g))
    return out


#: share of a component's voxels face-adjacent to bone for it to lie wholly against bone: one
#: that large (``bone.ATTACHED_BODY_MIN_MM3``) and on average no denser than cancellous bone
#: is a slice of a bone the label missed, even between two bones (docs/methods step 2)
WHOLLY_AGAINST_FRACTION = 0.9
#: a component touches a bone when at least this many of the bone's voxels are face-
#: adjacent to it: a single one is a corner where a process's tip comes near another bone
MIN_CONTACT_VOXELS = 2


def _touched_pairs(owner: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """The (component, structure) pairs with at least :data:`MIN_CONTACT_VOXELS` contacts."""
    pairs, counts = np.unique(np.stack([owner, structure], axis=1), axis=0, return_counts=True)
    return pairs[counts >= MIN_CONTACT_VOXELS]


def held_between_bones(rim: np.ndarray, rim_owner: np.ndarray, n: int, surfaces: bone.BoneSurfaces,
                       shape: tuple[int, int, int], g: Geometry, n_vertebrae: int) -> tuple[np.ndarray, np.ndarray]:
    """Per component: whether the bone rim it touches belongs to two bones or more (the
    nearest labelled structure of each rim voxel, :data:`MIN_CONTACT_VOXELS` of each), and
    whether two of them are vertebrae (a disc space)."""
    if rim.size == 0 or surfaces.tree is None:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    _, b = surfaces.nearest(positions_mm(rim, shape, sp), np.inf)
    pairs = _touched_pairs(rim_owner, surfaces.structure[b])
    counts = np.bincount(pairs[:, 0], minlength=n + 1)[1:]
    vert = pairs[pairs[:, 1] <= n_vertebrae]
    return counts >= 2, np.bincount(vert[:, 0], minlength=n + 1)[1:] >= 2


def _face_neighbours(flat: np.ndarray, owner: np.ndarray, mask: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """The voxels of ``mask`` face-adjacent to the voxels ``flat`` (flat box indices), each
    with the ``owner`` of the voxel it touches (repeats where several touch it)."""
    kji = np.stack(np.unravel_index(flat, shape), axis=1)
    owners, hits = [], []
    for axis in range(3):
        for step in (-1, 1):
            nb = kji.copy()
            nb[:, axis] += step
            ok = (nb[:, axis] >= 0) & (nb[:, axis] < shape[axis])
            f = np.ravel_multi_index(tuple(nb[ok].T), shape)
            hit = mask.ravel()[f]
            owners.append(owner[ok][hit])
            hits.append(f[hit])
    return np.concatenate(owners), np.concatenate(hits)


def vertebrae_touched(idx: np.ndarray, clab: np.ndarray, n: int, which: np.ndarray, bone_mask: np.ndarray,
                      vert: np.ndarray, structure_of_code: np.ndarray, surfaces: bone.BoneSurfaces, g: Geometry,
                      n_vertebrae: int) -> np.ndarray:
    """Per component (``which``: those to test, else 0): how many vertebrae it touches -
    the vertebra of each bone voxel (``bone_mask``: labelled bone above the threshold, the
    rim just outside it) face-adjacent to one of its voxels, :data:`MIN_CONTACT_VOXELS` of
    each: its label (``vert``'s value, read as a structure of ``surfaces`` through
    ``structure_of_code``), else the vertebra of the nearest labelled border."""
    out = np.zeros(n, dtype=np.int64)
    sel = np.flatnonzero(which[clab - 1]) if n else np.zeros(0, np.int64)
    if sel.size == 0 or surfaces.tree is None:
        return out
    shape = bone_mask.shape
    owner, flat = _face_neighbours(idx[sel], clab[sel], bone_mask, shape)
    if flat.size == 0:
        return out
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    st = structure_of_code[vert.ravel()[flat]]
    free = st == 0
    if free.any():
        _, b = surfaces.nearest(positions_mm(flat[free], shape, sp), np.inf)
        st[free] = surfaces.structure[b]
    ok = (st > 0) & (st <= n_vertebrae)
    pairs = _touched_pairs(owner[ok], st[ok])
    return np.bincount(pairs[:, 0], minlength=n + 1)[1:] if pairs.size else out


def noise_and_surfaces(ct: np.ndarray, lab: SpineLabels, opts: CandidateOptions | None = None
                       ) -> tuple[np.ndarray, bone.BoneSurfaces]:
    """The first step of :func:`find_candidates` on the box's CT ``ct``: the noise (HU SD per
    axial slice, NaN where not measured) and the bone surfaces fitted to the CT
    (:func:`.bone.fit_bone_surfaces`; most of the search's time, on every core)."""
    o = opts or CandidateOptions()
    g = lab.box_geometry
    noise = noise_mod.noise_by_slice(ct, g)
    # the partial-volume rim of bone reaches the threshold where noise lets it (1.5 SD;
    # the rarer voxels beyond are single specks the study rule rejects)
    floor = float(o.threshold_hu) - 1.5 * np.nan_to_num(noise, nan=0.0)
    structures = label_structures(lab)
    # the same for readings of one CT at one threshold (batch runs, calcinosis.core.memo)
    surfaces = memo.remember(
        "spine-bone-surfaces",
        lambda: (memo.array_key(ct), repr(g), tuple((name, memo.array_key(flat)) for name, flat in structures),
                 o.vertebra_margin_mm, o.label_shift_limit_mm, memo.array_key(np.asarray(floor))),
        lambda: bone.fit_bone_surfaces(ct, structures, g, o.vertebra_margin_mm, o.label_shift_limit_mm, floor))
    return noise, surfaces


def find_candidates(volume: Volume, lab: SpineLabels, opts: CandidateOptions | None = None,
                    ct_box: np.ndarray | None = None, progress: Progress | None = None,
                    fitted: tuple[np.ndarray, bone.BoneSurfaces] | None = None) -> CandidateResult:
    """Candidate calcifications (a :class:`LesionSet` on the box grid) and the count of
    components rejected for each reason (see the module docstring).  ``fitted``: what
    :func:`noise_and_surfaces` gave for this CT box, labels and options (computed here
    without it)."""
    o = opts or CandidateOptions()
    g = lab.box_geometry
    shape = lab.box.shape
    sp_box = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    ct = parallel.copy_window(volume.array, lab.box.slices) if ct_box is None else ct_box
    threshold_hu = float(o.threshold_hu)
    if fitted is None:
        report(progress, 0.0, "bone surfaces from the CT")
        fitted = noise_and_surfaces(ct, lab, o)
    noise, surfaces = fitted
    noise_hu = np.nan_to_num(noise, nan=0.0)     # per axial slice (0 where not measured)
    # lab.vert's values -> the structure numbers of the bone surfaces (vertebrae present)
    structure_of_code = np.zeros(len(lab.names) + 1, dtype=np.int64)
    for k, name in enumerate(lab.vertebra_voxels()):
        structure_of_code[lab.names.index(name) + 1] = k + 1
    report(progress, 0.1, "thresholding near the spine")
    # one pass over the box; the label tests only on the (few) voxels above the threshold
    above = parallel.flatnonzero_where(ct, lambda c: c >= threshold_hu)
    cat_excluded = np.zeros(256, dtype=bool)
    cat_excluded[[CAT_AORTA, CAT_VESSEL, CAT_RIB, CAT_BONE, CAT_ORGAN]] = True
    in_bone = (lab.vert.ravel()[above] > 0) | np.isin(lab.category.ravel()[above], (CAT_RIB, CAT_BONE))
    idx = above[(lab.vert.ravel()[above] == 0) & ~cat_excluded[lab.category.ravel()[above]]]
    sigma = noise_hu[np.unravel_index(idx, shape)[g.axial_axis]]
    in_zone, freed, dense, nearest_border = bone_zone(
        idx, above[in_bone], surfaces, lab, o.vertebra_margin_mm, o.bone_margin_mm,
        hu=ct.ravel()[idx].astype(np.float64), min_excess_hu=o.noise_multiple * sigma)
    # on thick slices: a compact body in the slice next to a bone, denser than the bone
    # across the slice boundary - a calcification filling one slice, not the bone's end
    compact_voxel = np.zeros(idx.size, dtype=bool)
    if thick_slices(g):
        z = np.flatnonzero(in_zone)
        low = (np.nan_to_num(surfaces.low_hu[nearest_border[z]], nan=0.0) if surfaces.low_hu is not None
               else np.zeros(z.size))
        compact_voxel[z] = compact_on_thick_slices(idx[z], ct, g, low, o.noise_multiple * sigma[z], threshold_hu)
        in_zone &= ~compact_voxel
    # label voxels far denser than the bone's cortex near them: a calcification the label
    # swallowed (its dense core inside, its dome in the zone), not bone
    inside = above[in_bone]
    swallowed = swallowed_by_label(inside, structure_of_code[lab.vert.ravel()[inside]], ct, surfaces, noise_hu, g,
                                   o.label_shift_limit_mm, len(lab.names))
    if swallowed.size:
        freed = np.union1d(freed, swallowed)
        # ... and its dome beyond the label, in the bone's zone, with it
        z = np.flatnonzero(in_zone)
        in_zone[z[swallowed_dome(swallowed, idx[z], ct, surfaces, o.noise_multiple * sigma[z], g,
                                 len(lab.names))]] = False
    if freed.size:      # label voxels beyond the bone: candidates, never in the zone
        idx = np.concatenate([idx, freed])
        in_zone = np.concatenate([in_zone, np.zeros(freed.size, bool)])
        dense = np.concatenate([dense, np.zeros(freed.size, bool)])
        compact_voxel = np.concatenate([compact_voxel, np.zeros(freed.size, bool)])
        order = np.argsort(idx, kind="stable")
        idx, in_zone, dense, compact_voxel = idx[order], in_zone[order], dense[order], compact_voxel[order]
    report(progress, 0.15, f"{idx.size} voxels above {threshold_hu:g} HU")
    m = margin_tests(idx, lab, o.vertebra_margin_mm, o.bone_margin_mm, o.vessel_margin_mm, near_bone=in_zone)
    dense = np.isin(m.idx, idx[dense], assume_unique=True)     # per kept voxel
    compact_voxel = np.isin(m.idx, idx[compact_voxel], assume_unique=True)
    dropped = np.setdiff1d(idx, m.idx, assume_unique=True)
    idx, touch, mask = m.idx, m.touch, m.mask
    report(progress, 0.35, "connected components")
    clab, n = _components(mask, idx, o.connectivity)
    rejected = {r: 0 for r in REJECT_REASONS}
    keep = np.ones(n, dtype=bool)
    aorta_by_shape = 0
    stats: dict = {"label_surfaces": surfaces.fits}

    why_not = np.array([""] * n, dtype=object)

    def reject(sel: np.ndarray, why: str, rule: str = "") -> None:
        """``why``: the recorded reason; ``rule``: which test (kept in ``explain`` only)."""
        new = sel & keep
        rejected[why] += int(new.sum())
        keep[new] = False
        why_not[new] = f"{why}:{rule}" if rule else why

    min_slices = effective_min_slices(o, g.spacing_along_array_axis(g.axial_axis))
    min_size = max(float(o.min_size_mm3), int(o.min_voxels) * g.voxel_volume_mm3)
    # the labelled bones, read window by window (the tests below look at one candidate's
    # surroundings at a time)
    bone_label = lab.mask_of((CAT_RIB, CAT_BONE))
    if n:
        touches = np.bincount(clab, weights=touch.astype(float), minlength=n + 1)[1:] > 0
        reject(touches, "vessel")
        hu = ct.ravel()[idx].astype(np.float64)
        report(progress, 0.5, "distances to the vertebrae")
        vox = lab.vertebra_voxels()
        dist = CoarseDistance(np.concatenate(list(vox.values())) if vox else np.zeros(0, np.int64), shape, g)
        d = dist.lookup(idx, beyond_mm=o.search_margin_mm + dist.error_mm + 1.0)   # only compared with these
        dmin = _component_reduce(clab, d, n, "min")
        dmax = _component_reduce(clab, d, n, "max")
        blood = blood_hu(ct, lab)
        if o.detect_vessels and not lab.has_aorta:
            tubes = aorta_like(clab, idx, n, g, shape, hu)
            if tubes.any() and blood is None:
                blood = float(np.median(hu[tubes[clab - 1]]))
            tubes &= dmin <= o.search_margin_mm  # a tube next to the spine
            aorta_by_shape = int(tubes.sum())
            reject(tubes, "vessel_lumen")
            if tubes.any():
                tube_mask = np.zeros(shape, dtype=bool)
                tube_mask.ravel()[idx[tubes[clab - 1]]] = True
                small = keep[clab - 1]
                hit = np.zeros(idx.size, dtype=bool)
                hit[small] = near(idx[small], tube_mask, neighbour_offsets(g, o.vessel_margin_mm))
                reject(np.bincount(clab, weights=hit.astype(float), minlength=n + 1)[1:] > 0, "vessel")
        reject(dmin > o.search_margin_mm, "far")
        reject(dmax > o.search_margin_mm + dist.error_mm, "leaves_region")
        reject(_touches_fov_edge(idx, clab, n, lab, volume.geometry), "leaves_region")
        counts = np.bincount(clab, minlength=n + 1)[1:]
        reject(counts * g.voxel_volume_mm3 < min_size * (1 - 1e-9), "size")
        report(progress, 0.6, "bone or calcification")
        rim, rim_owner = attached_rim(idx, clab, dropped, shape)
        # held between two bones (a thin disc's end plates, a costotransverse joint): a
        # calcification filling the space, not one bone's rim
        between, in_disc = held_between_bones(rim, rim_owner, n, surfaces, shape, g, len(lab.names))
        held = between.copy()
        big_enough = np.bincount(clab, minlength=n + 1)[1:] * g.voxel_volume_mm3 >= 8.0   # 2 mm across at least
        # denser than the end plates' edges explain, between two vertebrae: a calcification
        # filling a thin disc (its rim shared with the end plates is not bone's alone)
        fills_disc = (np.bincount(clab, weights=dense.astype(float), minlength=n + 1)[1:] >= 2) & big_enough
        # touching the bone of two vertebrae (labelled or its rim) with voxels between their
        # end plates, not held by two rims: where a label reaches past its end plate into a
        # thin disc, the zone ends inside the label and leaves no rim on that side - a
        # calcification filling the disc as well (not on thick slices: there a disc is a
        # slice or two, which the end plates' own partial volume fills, and a piece of one
        # bone cut by a slice touches both)
        spans = big_enough & keep & ~between & ~in_disc & ~fills_disc & (not thick_slices(g))
        # bone to touch: the labelled voxels the CT shows dense, not those the label holds
        # beyond the bone (freed: candidates; nor its soft tissue - a label grown past the
        # cortex would otherwise make a calcification it swallowed "touch" bone all round),
        # and the bone's rim just outside the label (dropped)
        solid = np.zeros(shape, dtype=bool)
        solid.ravel()[above[in_bone]] = True
        solid.ravel()[freed] = False
        solid.ravel()[dropped] = True
        if fills_disc.any() or spans.any():
            touched = vertebrae_touched(idx, clab, n, fills_disc | spans, solid, lab.vert, structure_of_code,
                                        surfaces, g, len(lab.names))
            # ... touching both: a piece of one process's cortex the label missed, its tip
            # across a gap from the next vertebra, touches its own bone only
            fills_disc &= touched >= 2
            spans &= touched >= 2
            sel = np.flatnonzero(spans[clab - 1])
            across = np.zeros(idx.size, dtype=bool)
            across[sel] = between_vertebrae(positions_mm(idx[sel], shape, sp_box), surfaces, len(lab.names),
                                            DISC_REACH_MM, axis=cranio_caudal(g))
            spans &= np.bincount(clab, weights=across.astype(float), minlength=n + 1)[1:] >= MIN_CONTACT_VOXELS
        between |= fills_disc | spans
        in_disc |= fills_disc | spans
        between &= big_enough
        in_disc &= big_enough
        # per component: its voxels face-adjacent to bone (labelled bone above the threshold,
        # of any bone, or the rim just outside a label)
        face = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
        against = near(idx, solid, face)
        touching = np.bincount(clab, weights=against.astype(float), minlength=n + 1)[1:]
        # continuing into labelled bone broadly: bone the label missed (a rib head, a
        # process) whose marrow the CT's voxels cannot show
        exempt_contact = np.zeros(n, dtype=bool)   # kept from these rules only as filling a disc
        if o.bone_contact_mm2 > 0:
            face_area = min(g.spacing[0] * g.spacing[1], g.spacing[1] * g.spacing[2], g.spacing[0] * g.spacing[2])
            # (not a calcification filling a disc between two vertebrae's end plates)
            contact = (touching * face_area >= o.bone_contact_mm2) & (touching >= o.bone_contact_fraction * counts)
            exempt_contact |= contact & in_disc & keep
            reject(contact & ~in_disc, "bone", "contact")
            # enclosed by bone (most of its surface against it): marrow the label missed
            surface = near_values(idx, mask.view(np.uint8), np.array([True, False]), face)   # a face on something else
            outer = np.bincount(clab, weights=surface.astype(float), minlength=n + 1)[1:]
            enclosed = (touching >= ENCLOSED_FRACTION * np.maximum(outer, 1)) & (touching * face_area >= o.bone_contact_mm2)
            exempt_contact |= enclosed & in_disc & keep
            reject(enclosed & ~in_disc, "bone", "enclosed")
        # lying wholly against bone, large, and on average no denser than cancellous bone: a
        # slice of a bone the label missed, even between two bones (partial volume cannot
        # make a calcification that large that faint on average)
        mean_hu = np.bincount(clab, weights=hu, minlength=n + 1)[1:] / np.maximum(counts, 1)
        wholly = ((touching >= WHOLLY_AGAINST_FRACTION * counts)
                  & (counts * g.voxel_volume_mm3 >= bone.ATTACHED_BODY_MIN_MM3)
                  & (mean_hu < bone.CANCELLOUS_MAX_HU))
        reject(wholly, "bone", "wholly")
        prot = protrusion_mm(idx, surfaces, lab, o.vertebra_margin_mm, o.bone_margin_mm)
        # a compact body filling the slice next to a bone (thick slices) is not its rim
        compact_body = np.bincount(clab, weights=compact_voxel.astype(float), minlength=n + 1)[1:] >= 2
        # a piece of rim is never denser than the bone's cortex: tested on the voxels of
        # the components the rim rule would take
        rim_like = bone_rim(prot, clab, n, keep & ~between & ~compact_body, o.bone_rim_protrusion_mm,
                            float(max(g.spacing)))
        # kept from that rule, or the contact rules, only as filling a disc space (not
        # held by two bones' rims)
        disc_fill_only = bone_rim(prot, clab, n, keep & (fills_disc | spans) & ~held, o.bone_rim_protrusion_mm,
                                  float(max(g.spacing))) | (exempt_contact & (fills_disc | spans) & ~held & keep)
        test = np.flatnonzero(rim_like[clab - 1])
        over = np.zeros(idx.size, dtype=bool)
        over[test] = denser_than_cortex(
            positions_mm(idx[test], shape, sp_box), hu[test], surfaces,
            noise_hu[np.unravel_index(idx[test], shape)[g.axial_axis]],
            CORTEX_EXCESS_SIGMA, o.label_shift_limit_mm)
        beyond_cortex = np.bincount(clab, weights=over.astype(float), minlength=n + 1)[1:] >= 2
        reject(rim_like & ~beyond_cortex, "bone", "rim")
        # the rim shared with bone counts for the study rule only for those: a fragment
        # of one bone's rim must not pass the rule on its own rim
        shared = between[rim_owner - 1] if rim.size else np.zeros(0, bool)
        rim, rim_owner = rim[shared], rim_owner[shared]
        # bone is cortex around marrow wherever it is: against a labelled bone (an
        # osteophyte, a spur) or not labelled at all (a rib, a process, the pelvis)
        # (not one holding a core far denser than the cortex near it: no bone does)
        cored = np.bincount(clab, weights=np.isin(idx, swallowed).astype(float), minlength=n + 1)[1:] >= 2
        reject(bone.hollow(ct, idx, clab, n, bone_label, threshold_hu, g, keep & ~cored,
                           margin_hu=o.bone_hollow_margin_hu), "bone", "hollow")
        # no denser than cancellous bone and against bone, or enclosed in bone: bone's own
        # trabecular edge or marrow, whatever the labels say (ribs, processes, the pelvis)
        # ... a large one continuing into bone counts as against it whatever its ring: a
        # process the label missed (eroded labels lose thin processes whole)
        attached = (touching >= MIN_CONTACT_VOXELS) & (counts * g.voxel_volume_mm3 >= bone.ATTACHED_BODY_MIN_MM3)
        reject(bone.cancellous(ct, idx, clab, n, g, keep, attached=attached), "bone", "cancellous")
        if o.study_rule:
            report(progress, 0.7, "study rule (contiguous slices, seen in another plane)")
            ok = study_rule_ok(mask, idx, clab, n, g, min_slices, rim, rim_owner)
            reject(~ok, "study_rule")
        report(progress, 0.8, "contrast against the surroundings")
        excluded = lab.mask_of((CAT_RIB, CAT_BONE, CAT_AORTA, CAT_VESSEL))
        peak, background, kji = noise_mod.local_contrast(ct, idx, clab, n, keep, threshold_hu, excluded, g)
        sigma = noise_mod.slice_noise_of_components(noise, kji, clab, n, g.axial_axis)
        measured = keep & np.isfinite(background) & np.isfinite(sigma)
        low = np.zeros(n, dtype=bool)
        low[measured] = (peak - background)[measured] < o.noise_multiple * sigma[measured]
        reject(low, "noise")
        # surrounded by aerated lung: a pulmonary vessel or nodule, not the spine's
        reject(keep & np.isfinite(background) & (background < LUNG_HU), "lung")
        if o.detect_vessels:
            report(progress, 0.9, "contrast-filled vessels")
            tube, tube_blood = vessels.in_enhanced_tube(ct, idx, clab, n, keep, bone_label, g,
                                                        o.noise_multiple * sigma, blood_hu=o.vessel_blood_hu)
            reject(tube, "vessel_shape")
            if blood is None and len(tube_blood) >= 2:
                blood = float(np.median(tube_blood))
        # on an enhanced scan, no denser than blood: a vessel's cross-section
        if blood is not None and blood >= ENHANCED_BLOOD_HU:
            faint = np.zeros(n, dtype=bool)
            faint[measured] = peak[measured] < blood + o.noise_multiple * sigma[measured]
            reject(faint, "blood_density")
            # a thin rod at the blood's density on average, its brightest voxel within twice
            # the noise margin of it: a segment of a small enhanced vessel (intercostal,
            # lumbar) partial-volumed, with a noisy bright spot - not a calcification
            rod = keep & measured
            rod[rod] = (mean_hu[rod] < blood + o.noise_multiple * sigma[rod]) & (
                peak[rod] < blood + 2 * o.noise_multiple * sigma[rod])
            rod &= rod_shaped(idx, clab, n, rod, sp_box, shape)
            reject(rod, "blood_density", "rod")
    stats.update(noise_summary(noise, o, threshold_hu, min_slices, min_size))
    stats["blood_hu"] = None if n == 0 or blood is None else round(float(blood), 1)
    report(progress, 0.95, f"{int(keep.sum())} candidates")
    params = LesionParams(threshold_hu, None, False, o.connectivity, float(min_size),
                          int(min_slices) if o.study_rule else 1, True)
    remap = np.zeros(n + 1, dtype=np.int64)
    remap[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    new_lab = remap[clab] if n else clab
    sel = new_lab > 0
    labels = np.zeros(shape, dtype=label_dtype(int(keep.sum())))
    labels.ravel()[idx[sel]] = new_lab[sel]
    lesions = LesionSet(labels, g, idx[sel], new_lab[sel], ["threshold"] * int(keep.sum()), params)
    return CandidateResult(lesions, rejected, aorta_by_shape, stats=stats, explain=(idx, clab, why_not),
                           disc_fill_only=disc_fill_only[keep] if n else np.zeros(0, bool))


def noise_summary(noise: np.ndarray, o: CandidateOptions, threshold_hu: float, min_slices: int,
                  min_size: float) -> dict:
    """What the provenance records of the noise and the effective rules."""
    ok = np.isfinite(noise)
    med = float(np.median(noise[ok])) if ok.any() else None
    return {
        "noise_hu": {"median": None if med is None else round(med, 1),
                     "min": round(float(noise[ok].min()), 1) if ok.any() else None,
                     "max": round(float(noise[ok].max()), 1) if ok.any() else None,
                     "method": "median local SD (5x5 voxels) over soft tissue, per axial slice"},
        "noise_multiple": o.noise_multiple,
        "effective_threshold_hu": {
            "threshold_hu": threshold_hu,
            "peak_above_surroundings_hu_median_slice": None if med is None else round(o.noise_multiple * med, 1),
            "peak_above_surroundings_hu_noisiest_slice": (round(o.noise_multiple * float(noise[ok].max()), 1)
                                                          if ok.any() else None)},
        "study_rule_slices": int(min_slices),
        "min_size_mm3_effective": round(float(min_size), 3),
    }


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
                  min_slices: int, rim: np.ndarray | None = None, rim_owner: np.ndarray | None = None) -> np.ndarray:
    """Per component: >= ``min_slices`` contiguous axial slices and a 2 x 2 block in a
    sagittal or coronal plane - or, when one slice is asked for (thick slices), in the
    axial plane (see the module docstring).  ``rim``/``rim_owner``: bone-rim voxels
    counted with the candidate they touch."""
    shape = mask.shape
    ax = g.axial_axis
    if rim is not None and rim.size:
        mask = mask.copy()
        mask.ravel()[rim] = True
        order = np.argsort(np.r_[idx, rim], kind="stable")
        idx = np.r_[idx, rim][order]
        clab = np.r_[clab, rim_owner][order]
    kji = np.unravel_index(idx, shape)
    _, _, runs = longest_slice_runs(clab, kji[ax], n)
    ok = runs >= min_slices
    m = mask.ravel()
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    block = np.zeros(idx.size, dtype=bool)
    coords = np.stack(kji, axis=1)
    planes = [(ax, o) for o in range(3) if o != ax] if min_slices > 1 else [tuple(a for a in range(3) if a != ax)]
    for first, other in planes:
        # voxel + a step along both axes of the plane, + both: all inside (and inside the array)
        inside = (coords[:, first] + 1 < shape[first]) & (coords[:, other] + 1 < shape[other])
        f = idx[inside]
        s_ax, s_o = strides[first], strides[other]
        b = m[f + s_ax] & m[f + s_o] & m[f + s_ax + s_o]
        block[np.flatnonzero(inside)[b]] = True
    has_block = np.bincount(clab, weights=block.astype(float), minlength=n + 1)[1:] > 0
    return ok & has_block
