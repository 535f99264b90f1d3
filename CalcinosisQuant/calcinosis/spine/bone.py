"""Where the bone's surface really is, and whether a dense body touching it is bone.

A label map tells where each vertebra and rib is, not where its surface lies: model
outputs (TotalSegmentator, SPINEPS) are off by a voxel or two, and a vertebra mask made
from points follows a threshold.  Two questions are answered from the CT itself:

* :func:`fit_bone_surfaces` - how far beyond each border voxel of a label the bone (and
  the partial-volume rim of its cortex) reaches: the CT is sampled along the outward
  normal at up to 2,500 border voxels per structure (trilinear, every 0.25 mm from -4 to
  +5 mm); the surface is where a profile falls, past its cortical peak, half-way to the
  lowest value beyond (the 50% point of a blurred edge); the rim reaches where it falls
  below the threshold less 1.5 noise SD, never past that lowest point (between two bones
  each rim reaches half-way).  The local values are medians over 10 mm of surface, so a
  calcification against the bone moves a few samples, not the zone.
* the bone's own edge (:meth:`BoneSurfaces.expected_hu`), from the same profiles: the local
  medians (48 nearest profiles) of the 50% point, the cortical peak and the value beyond,
  and the bone's edge shape (:func:`edge_shape`) - what the bone alone puts at a voxel near
  it, so that a voxel denser than that is something else (a calcification filling a thin
  disc between two end plates: :mod:`.candidates`); and the upper fifth of the local
  cortical peaks (``cortex_hu``), the densest the cortex gets there: a piece of the
  bone's partial-volume rim is never denser, a calcification against it may be.
* :func:`hollow` - bone or calcification, for a dense body: bone is a cortex around
  marrow, so its innermost voxels are *less* dense than its densest layer; a
  calcification is a solid dense body, densest at its core.  An outgrowth of the bone
  (osteophyte, end-plate spur, an unlabelled process) is hollow; a calcification against
  the cortex is not.

The functions work on the box arrays of :mod:`.vertebrae` (``[k, j, i]``) with the box
geometry; distances in mm along the array axes (the grid's axes are orthonormal, so a
frame scaled by the spacing is a physical frame).
"""

from __future__ import annotations

import itertools

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from calcinosis.core import memo, parallel
from calcinosis.core.geometry import Geometry

#: the profile's sample positions along the outward normal (mm from the border voxels)
PROFILE_MM = np.arange(-4.0, 5.0 + 1e-9, 0.25)
#: the edge model's local medians are taken over this many nearest samples
MODEL_SAMPLES = 48
#: the local cortex's densest: this percentile of the peaks of the profiles within 10 mm
#: (the upper fifth: a calcification against the bone raises a few of them, about 4% for
#: one 4 mm across; a label's staircase or a thinner stretch of cortex lowers some)
CORTEX_PERCENTILE = 80.0
#: where the bone's edge shape is known: mm beyond its 50% point (see :func:`edge_shape`)
EDGE_T_MM = np.arange(-1.0, 5.0 + 1e-9, 0.25)


@dataclass
class BoneSurfaces:
    """Every labelled bone's border voxels with the local shift of the CT's bone surface
    beyond them (see :func:`fit_bone_surfaces`); positions in mm along the box's array
    axes."""

    points: np.ndarray        # (m, 3) border voxel centres (mm)
    flat: np.ndarray          # (m,) their flat box indices
    structure: np.ndarray     # (m,) structure number (see ``names``)
    shift_mm: np.ndarray      # (m,) local surface shift, bounded
    names: list[str]          # structure number - 1 -> name ('T8', 'ribs', 'other bone')
    fits: dict                # name -> what was fitted (provenance)
    tree: cKDTree | None
    #: per border voxel, the local medians of its edge (:func:`fit_bone_surfaces`): the 50%
    #: point (mm from the border voxel along the normal), the cortical peak and the value
    #: beyond (HU)
    edge_mm: np.ndarray | None = None
    peak_hu: np.ndarray | None = None
    low_hu: np.ndarray | None = None
    #: per structure number (row 0 unused): the edge's shape on :data:`EDGE_T_MM`
    shape: np.ndarray | None = None
    #: per border voxel, the densest the local cortex gets: the :data:`CORTEX_PERCENTILE`
    #: of the cortical peaks of the profiles within 10 mm (HU)
    cortex_hu: np.ndarray | None = None

    def expected_hu(self, d_mm: np.ndarray, b: np.ndarray, tolerance_mm: float = 0.5) -> np.ndarray:
        """What the bone's own edge explains at ``d_mm`` from its border voxel ``b``: the
        local peak falling to the local value beyond, along the
        shape of this bone's edge, taken ``tolerance_mm`` nearer the bone (the profile is
        steep at the surface: the lookup errs towards bone).  NaN where no edge was fitted."""
        if self.shape is None or len(b) == 0:
            return np.full(len(b), np.nan)
        t = np.asarray(d_mm, float) - self.edge_mm[b] - tolerance_mm
        pos = np.nan_to_num(np.clip((t - EDGE_T_MM[0]) / (EDGE_T_MM[1] - EDGE_T_MM[0]), 0, len(EDGE_T_MM) - 1))
        i0 = np.minimum(np.floor(pos).astype(int), len(EDGE_T_MM) - 2)
        f = pos - i0
        rows = self.shape[self.structure[b]]
        k = np.arange(len(b))
        frac = (1 - f) * rows[k, i0] + f * rows[k, i0 + 1]
        return self.low_hu[b] + (self.peak_hu[b] - self.low_hu[b]) * frac

    def nearest(self, points_mm: np.ndarray, upper_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Distance (mm, inf beyond ``upper_mm``) and index of the nearest border voxel."""
        if self.tree is None or len(points_mm) == 0:
            return np.full(len(points_mm), np.inf), np.zeros(len(points_mm), np.int64)
        d, i = self.tree.query(points_mm, distance_upper_bound=upper_mm, workers=2)
        return d, np.minimum(i, max(len(self.points) - 1, 0))


def _profiles(ct: np.ndarray, mask: np.ndarray, lo: np.ndarray, border: np.ndarray, sp: np.ndarray,
              window_mm: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """CT profiles along the outward normals at border voxels (crop coordinates) -> (the
    profiles (k, len(PROFILE_MM)), which border voxels had a normal)."""
    w = np.maximum(np.round(window_mm / sp).astype(int), 1)
    grids = np.meshgrid(*[np.arange(-m, m + 1) for m in w], indexing="ij")
    off = np.stack([g.ravel() for g in grids], axis=1)
    off = off[((off * sp) ** 2).sum(axis=1) <= window_mm ** 2 + 1e-9]
    # the sum of the offsets (mm) to the label's voxels in the window: one gather on the
    # mask padded by the window (outside the crop: not the label) and one product
    padded = np.pad(mask, [(m, m) for m in w])
    strides = np.array([padded.shape[1] * padded.shape[2], padded.shape[2], 1])
    hits = padded.ravel()[((border + w) @ strides)[:, None] + (off @ strides)[None, :]]
    inward = hits.astype(np.float64) @ (off * sp)
    norm = np.linalg.norm(inward, axis=1)
    ok = norm > 1e-6
    normal = -inward[ok] / norm[ok, None]
    pts = (border[ok] + lo)[:, None, :].astype(float) + PROFILE_MM[None, :, None] * normal[:, None, :] / sp
    vals = ndimage.map_coordinates(ct, pts.reshape(-1, 3).T, output=np.float32, order=1, mode="nearest",
                                   prefilter=False)
    return vals.reshape(int(ok.sum()), -1), ok


def peak_and_low(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per profile: the cortical peak (its sample index and value, searched up to +3 mm)
    and the lowest value beyond it (HU)."""
    n, m = profiles.shape
    search = PROFILE_MM <= 3.0
    ip = np.argmax(np.where(search[None, :], profiles, -np.inf), axis=1)
    peak = profiles[np.arange(n), ip]
    beyond = np.arange(m)[None, :] > ip[:, None]
    low = np.min(np.where(beyond, profiles, np.inf), axis=1)
    return ip, peak, low


def edge_shape(profiles: np.ndarray, edge: np.ndarray, peak: np.ndarray, low: np.ndarray) -> np.ndarray:
    """The shape of one bone's edge: the median over its profiles (those with an edge) of
    (value - low) / (peak - low) at :data:`EDGE_T_MM` beyond each profile's 50% point, made
    non-increasing outwards and bounded to [0, 1] (where two bones meet, the profile rises
    again towards the next one: that is the other bone's edge, not this one's); 1 inside
    the 50% point (what errs towards bone)."""
    ok = np.isfinite(edge) & (peak - low > 1e-6)
    if ok.sum() < 20:
        return np.full(len(EDGE_T_MM), np.nan)
    p, e = profiles[ok], edge[ok]
    step = PROFILE_MM[1] - PROFILE_MM[0]
    pos = np.clip((e[:, None] + EDGE_T_MM[None, :] - PROFILE_MM[0]) / step, 0, len(PROFILE_MM) - 1)
    i0 = np.minimum(np.floor(pos).astype(int), len(PROFILE_MM) - 2)
    f = pos - i0
    vals = (1 - f) * np.take_along_axis(p, i0, axis=1) + f * np.take_along_axis(p, i0 + 1, axis=1)
    norm = np.median((vals - low[ok, None]) / (peak[ok] - low[ok])[:, None], axis=0)
    out = np.ones(len(EDGE_T_MM))          # inside the 50% point: as dense as the peak
    out_side = EDGE_T_MM >= 0
    out[out_side] = np.minimum.accumulate(norm[out_side])
    return np.clip(out, 0.0, 1.0)


def edge_positions(profiles: np.ndarray, floor_hu: np.ndarray | float | None = None,
                   min_step_hu: float = 100.0, levels: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per profile: where it falls, past its cortical peak (searched up to +3 mm), half-way
    to the lowest value beyond the peak (the tissue outside, or the middle of a thin disc
    before the next end plate); and where it then falls below ``floor_hu`` (per profile:
    the threshold less a multiple of the noise - beyond it no voxel of the bone's
    partial-volume rim reaches the threshold), at most the lowest point beyond the peak
    (between two bones, each rim reaches half-way).  mm; NaN where there is no edge.
    ``levels``: :func:`peak_and_low` of these profiles, when the caller has it."""
    if profiles.size == 0:
        return np.zeros(0), np.zeros(0)
    n, m = profiles.shape
    cols = np.arange(m)[None, :]
    ip, peak, low = peak_and_low(profiles) if levels is None else levels
    rows = np.arange(n)
    beyond = cols > ip[:, None]
    half = 0.5 * (peak + low)
    after = (profiles < half[:, None]) & beyond
    has = after.any(axis=1) & (peak - low >= min_step_hu)
    j = np.where(has, np.argmax(after, axis=1), 1)
    v0, v1 = profiles[rows, j - 1], profiles[rows, j]
    t0, t1 = PROFILE_MM[j - 1], PROFILE_MM[j]
    frac = np.where(v0 != v1, (v0 - half) / np.where(v0 != v1, v0 - v1, 1.0), 1.0)
    edge = np.where(has, t0 + frac * (t1 - t0), np.nan)
    if floor_hu is None:
        return edge, np.full(n, np.nan)
    floor = np.broadcast_to(np.asarray(floor_hu, float), (n,))
    below = (profiles < floor[:, None]) & (cols >= j[:, None])
    k = np.argmax(below, axis=1)
    # never past the lowest point beyond the peak: there the next bone's rim begins
    lowest = np.argmin(np.where(beyond, profiles, np.inf), axis=1)
    rim = np.where(below.any(axis=1), PROFILE_MM[np.minimum(k, lowest)], PROFILE_MM[lowest])
    return edge, np.where(has, rim, np.nan)


@dataclass
class Groups:
    """Groups of indices as two flat arrays: ``members[t]`` belongs to group ``gid[t]``
    (``n`` groups, some perhaps empty)."""

    gid: np.ndarray
    members: np.ndarray
    n: int

    @staticmethod
    def from_lists(groups) -> "Groups":
        lens = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
        members = np.fromiter(itertools.chain.from_iterable(groups), dtype=np.int64, count=int(lens.sum()))
        return Groups(np.repeat(np.arange(len(groups), dtype=np.int64), lens), members, len(groups))

    @staticmethod
    def within(points: cKDTree, tree: cKDTree, radius: float) -> "Groups":
        """For every point of ``points``, the indices of ``tree``'s points within ``radius``
        (inclusive, as ``query_ball_point``), without a Python list per point."""
        pairs = points.sparse_distance_matrix(tree, radius, output_type="ndarray")
        return Groups(pairs["i"].astype(np.int64), pairs["j"].astype(np.int64), points.n)


def _group_sorted(values: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every group's values in ascending order, one after the other, in one sort (the
    elements ordered by (group, rank of the value)) -> (the values, each group's start,
    each group's length).  ``groups``: :class:`Groups` or a list of index lists."""
    g = groups if isinstance(groups, Groups) else Groups.from_lists(groups)
    lens = np.bincount(g.gid, minlength=g.n).astype(np.int64)
    if lens.sum() == 0:
        return np.zeros(0), np.zeros(g.n, np.int64), lens
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    order = np.sort(g.gid * len(values) + rank[g.members]) % len(values)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return np.sort(values)[order], starts, lens


def group_medians(values: np.ndarray, groups, min_count: int = 1, fill: float = np.nan) -> np.ndarray:
    """``np.median(values[g])`` for every index list ``g`` of ``groups`` (:class:`Groups`
    or lists; ``fill`` where a group has fewer than ``min_count``), in one sort instead
    of a median per group."""
    sorted_vals, starts, lens = _group_sorted(values, groups)
    out = np.full(len(lens), float(fill))
    ok = lens >= max(min_count, 1)
    lo = starts[ok] + (lens[ok] - 1) // 2
    hi = starts[ok] + lens[ok] // 2
    out[ok] = (sorted_vals[lo] + sorted_vals[hi]) / 2
    return out


def group_quantiles(values: np.ndarray, groups, q: float, min_count: int = 1, fill: float = np.nan) -> np.ndarray:
    """The ``q`` quantile (0-1, nearest rank: the value of rank round(q (n - 1))) of
    ``values[g]`` for every index list ``g`` of ``groups`` (``fill`` where a group has
    fewer than ``min_count``)."""
    sorted_vals, starts, lens = _group_sorted(values, groups)
    out = np.full(len(lens), float(fill))
    ok = lens >= max(min_count, 1)
    out[ok] = sorted_vals[starts[ok] + np.round(q * (lens[ok] - 1)).astype(np.int64)]
    return out


def outer_layer(mask: np.ndarray) -> np.ndarray:
    """The voxels of a 3-D ``mask`` with a face neighbour outside it (the array's edge is
    outside): ``mask & ~binary_erosion(mask, border_value=0)``, by six shifted ANDs (a tenth
    of the time on a vertebra's box)."""
    inner = mask.copy()
    for a in range(3):
        lo_face = [slice(None)] * 3
        hi_face = [slice(None)] * 3
        lo_face[a], hi_face[a] = 0, -1
        inner[tuple(lo_face)] = False
        inner[tuple(hi_face)] = False
        up = [slice(None)] * 3
        down = [slice(None)] * 3
        up[a], down[a] = slice(1, None), slice(None, -1)
        inner[tuple(up)] &= mask[tuple(down)]
        inner[tuple(down)] &= mask[tuple(up)]
    return mask & ~inner


def fit_bone_surfaces(ct: np.ndarray, structures: list[tuple[str, np.ndarray]], geometry: Geometry,
                      margin_mm: float = 1.0, limit_mm: float = 3.0, floor_hu: np.ndarray | float | None = None,
                      n_samples: int = 2500, smooth_mm: float = 10.0, seed: int = 0) -> BoneSurfaces:
    """For each structure (name, flat box indices of its label): its border voxels and
    how far beyond each the bone reaches, from the CT.  At sampled border voxels
    (:func:`edge_positions`): the surface's shift (edge position less half a voxel, what
    an exact label gives) and the reach of the partial-volume rim (where the profile
    falls below ``floor_hu``: per axial slice of the box, or one value).  The zone's
    radius there is the larger of shift + ``margin_mm`` and that reach; the median over
    the samples within ``smooth_mm`` (a calcification against the bone moves a few
    samples' edges out, not the median), bounded by ``limit_mm`` (+ the margin); a
    border voxel takes its nearest sample's value (``BoneSurfaces.shift_mm`` holds the
    radius less ``margin_mm``)."""
    shape = ct.shape
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])
    exact = 0.5 * float(np.mean(sp[[a for a in range(3) if a != geometry.axial_axis]]))
    rng = np.random.default_rng(seed)
    reach = np.ceil(6.0 / sp).astype(int) + 2

    def borders(flat: np.ndarray):
        """(crop origin, crop mask, border voxels in the crop) of one structure, or None."""
        if flat.size < 27:
            return None
        kji = np.stack(np.unravel_index(flat, shape), axis=1)
        lo = np.maximum(kji.min(axis=0) - reach, 0)
        hi = np.minimum(kji.max(axis=0) + reach + 1, shape)
        mask = np.zeros(tuple(hi - lo), dtype=bool)
        loc = kji - lo
        mask[loc[:, 0], loc[:, 1], loc[:, 2]] = True
        border = np.stack(np.unravel_index(np.flatnonzero(outer_layer(mask)), mask.shape), axis=1)
        return None if border.size == 0 else (lo, mask, border)

    def sample(item):
        """The CT's profiles across one structure's surface at its sampled border voxels (what
        does not depend on the threshold: kept for the readings of one CT, calcinosis.core.memo)."""
        (lo, mask, border), pick = item
        prof, ok = _profiles(ct, mask, lo, border[pick], sp)
        return lo, border, pick, prof, ok

    def fit(sampled):
        """The zone of one structure: (border points mm, their flat indices, shifts, fit record)."""
        lo, border, pick, prof, ok = sampled
        sample_kji = border[pick][ok] + lo
        sample_pos = sample_kji * sp
        floor = None if floor_hu is None else (np.asarray(floor_hu, float)[sample_kji[:, geometry.axial_axis]]
                                               if np.ndim(floor_hu) else float(floor_hu))
        levels = peak_and_low(prof) if len(prof) else (None, np.zeros(0), np.zeros(0))
        _, peak, low = levels
        raw_edge, rim = edge_positions(prof, floor, levels=levels)
        edge = raw_edge - exact
        radius = np.fmax(edge + margin_mm, rim) - margin_mm         # as a shift
        good = np.isfinite(radius)
        whole = float(np.median(radius[good])) if good.sum() >= 20 else 0.0
        local = np.full(len(sample_pos), whole)
        # the edge model: the 50% point, peak and value beyond, as local medians (below)
        model = np.full((len(sample_pos), 4), np.nan)
        sample_tree = cKDTree(sample_pos) if len(sample_pos) else None
        if good.sum() >= 20:
            # median over every good sample within smooth_mm
            e = radius[good]
            tree = cKDTree(sample_pos[good])
            groups = Groups.within(sample_tree, tree, smooth_mm)
            local = group_medians(e, groups, min_count=5, fill=whole)
            # the edge model: medians over the MODEL_SAMPLES nearest good samples (a gather
            # and one median per column: far cheaper than the groups within smooth_mm)
            k = int(min(MODEL_SAMPLES, good.sum()))
            _, near = tree.query(sample_pos, k=k)
            near = np.asarray(near).reshape(len(sample_pos), k)
            for col, v in enumerate((raw_edge[good], peak[good], low[good])):
                model[:, col] = np.median(v[near], axis=1)
            # the densest the cortex gets here: over the samples within smooth_mm (so that
            # a calcification against the bone covers a small share of them however
            # densely the surface is sampled)
            model[:, 3] = group_quantiles(peak[good], groups, CORTEX_PERCENTILE / 100.0, min_count=5)
        local = np.clip(local, -limit_mm, limit_mm)
        pos = (border + lo) * sp
        if sample_tree is not None:
            _, nearest = sample_tree.query(pos)
            shift = local[nearest]
            model = model[nearest]
        else:
            shift = np.zeros(len(pos))
            model = np.full((len(pos), 4), np.nan)
        shape_row = edge_shape(prof, raw_edge, peak, low) if len(prof) else np.full(len(EDGE_T_MM), np.nan)
        record = {"surface_shift_mm": round(float(np.clip(np.median(edge[np.isfinite(edge)]), -limit_mm,
                                                          limit_mm)), 2) if good.sum() >= 20 else None,
                  "zone_mm_median": round(float(np.clip(whole, -limit_mm, limit_mm) + margin_mm), 2),
                  "local_shift_mm_range": [round(float(local.min()), 2), round(float(local.max()), 2)]
                  if len(local) else None,
                  "edge_samples": int(good.sum())}
        return pos, np.ravel_multi_index(tuple((border + lo).T), shape), shift, record, model, shape_row

    # borders and fits one structure per thread; the samples drawn in the structures' order
    # (the same samples whatever the number of threads)
    names = [name for name, _ in structures]

    def sample_all():
        found = parallel.parallel_map(borders, [flat for _, flat in structures])
        todo, numbers = [], []
        for number, b in enumerate(found, start=1):
            if b is not None:
                todo.append((b, np.sort(rng.choice(len(b[2]), min(n_samples, len(b[2])), replace=False))))
                numbers.append(number)
        return numbers, parallel.parallel_map(sample, todo)

    numbers, sampled = memo.remember(
        "spine-bone-profiles", lambda: (memo.array_key(ct), tuple((name, memo.array_key(flat)) for name, flat in structures),
                                        repr(geometry), n_samples, seed), sample_all)
    pts_all, flat_all, struct_all, shift_all, model_all, fits = [], [], [], [], [], {}
    shapes = np.full((len(names) + 1, len(EDGE_T_MM)), np.nan)
    for number, (pos, flat, shift, record, model, shape_row) in zip(numbers, parallel.parallel_map(fit, sampled)):
        pts_all.append(pos)
        flat_all.append(flat)
        struct_all.append(np.full(len(pos), number, np.int32))
        shift_all.append(shift)
        model_all.append(model)
        shapes[number] = shape_row
        fits[names[number - 1]] = record
    if not pts_all:
        return BoneSurfaces(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0), names,
                            fits, None)
    P = np.concatenate(pts_all)
    M = np.concatenate(model_all)
    return BoneSurfaces(P, np.concatenate(flat_all), np.concatenate(struct_all), np.concatenate(shift_all), names,
                        fits, cKDTree(P), M[:, 0], M[:, 1], M[:, 2], shapes, M[:, 3])


def hollow(ct: np.ndarray, idx: np.ndarray, clab: np.ndarray, n: int, bone_label: np.ndarray, threshold_hu: float,
           geometry: Geometry, which: np.ndarray, min_core: int = 3, margin_hu: float = 30.0) -> np.ndarray:
    """Per component (``which``: the components to test), whether it is bone - a cortex
    over marrow: its innermost voxels are less dense, by ``margin_hu``, than its densest
    layer.  Layers are one voxel deep (the smallest spacing), by depth from the soft
    tissue: the labelled bone (``bone_label``) and every voxel at or above the threshold
    count as inside, so a calcification's face against the cortex is deep (and dense),
    and an outgrowth's marrow, continuous with the vertebra's, is its core.  The outer
    layer is partial volume: low in both.  A calcification is densest at its core.
    Components without ``min_core`` voxels more than 1.5 voxels deep are not hollow
    (nothing tells a thin spur from a calcification by density)."""
    out = np.zeros(n, dtype=bool)
    shape = ct.shape
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])
    step = float(np.min(sp))
    pad = np.ceil(6.0 / sp).astype(int) + 1
    kji = np.stack(np.unravel_index(idx, shape), axis=1)
    for c in np.flatnonzero(which) + 1:
        sel = np.flatnonzero(clab == c)
        if sel.size < min_core * 3:
            continue
        p = kji[sel]
        lo = np.maximum(p.min(axis=0) - pad, 0)
        hi = np.minimum(p.max(axis=0) + pad + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub = ct[box]
        m = (sub >= threshold_hu) | bone_label[box]
        q = p - lo
        m[q[:, 0], q[:, 1], q[:, 2]] = True
        depth = ndimage.distance_transform_edt(m, sampling=sp)[q[:, 0], q[:, 1], q[:, 2]]
        if depth.max() < 1.5 * step:
            continue
        hu = sub[q[:, 0], q[:, 1], q[:, 2]].astype(np.float64)
        core = depth >= depth.max() - 0.75 * step
        if core.sum() < min_core:
            core = depth >= np.sort(depth)[-min_core]
        layer = np.floor(depth / step).astype(int)
        inner = ~core
        if not inner.any():
            continue
        means = [hu[inner & (layer == k)].mean() for k in np.unique(layer[inner])
                 if np.count_nonzero(inner & (layer == k)) >= min_core]
        if means:
            out[c - 1] = float(np.mean(hu[core])) < max(means) - margin_hu
    return out


#: cancellous bone (trabeculae and marrow) reaches about this CT value; a calcification
#: against bone that stands out from it is denser (the phantoms' faintest, 2-3 mm ones against
#: bone, peak above 530 HU)
CANCELLOUS_MAX_HU = 450.0
#: bone density in a candidate's surroundings (cancellous bone and cortex; soft tissue and
#: enhanced blood stay below)
BONE_DENSITY_HU = 200.0
#: share of the in-plane ring around a candidate at bone density: lying against bone ...
AGAINST_BONE_FRACTION = 0.2
#: ... and enclosed in it
IN_BONE_FRACTION = 0.6
#: share of the voxels just above and below a candidate (the neighbouring slices) at bone
#: density: lying on bone along the slices' axis
ON_BONE_FRACTION = 0.5
#: a body at least this large (mm3: a ball 4.6 mm across) is seen at its own density in its
#: densest voxel on slices up to 3 mm; one that is still no denser than cancellous bone and
#: continues into a labelled bone (:func:`cancellous`, ``attached``) is that bone's process
#: the label missed (a label eroded by a voxel loses thin processes whole), not a
#: calcification.  Smaller bodies can be faint by partial volume alone (the hard phantoms'
#: costotransverse calcifications on 2.5-3 mm slices: 5-21 mm3, peaks 260-424 HU).
ATTACHED_BODY_MIN_MM3 = 50.0
#: ... and one at least this large (mm3: a ball 10 mm across), continuing into a labelled bone,
#: whose voxels are on average no denser than cancellous bone is bone whatever its peak (a
#: process's cortex partial-volumed peaks above :data:`CANCELLOUS_MAX_HU`): most of its voxels
#: show its own density even on 3 mm slices, and calcinosis that large (hydroxyapatite, the
#: study's pseudo-tumoral deposits) is far denser than trabecular bone (100-400 HU)
TRABECULAR_BODY_MIN_MM3 = 500.0


def cancellous(ct: np.ndarray, idx: np.ndarray, clab: np.ndarray, n: int, geometry: Geometry,
               which: np.ndarray, ring_voxels: int = 2, attached: np.ndarray | None = None) -> np.ndarray:
    """Per component (``which``: those to test), whether the CT shows it to be a piece of
    bone rather than a calcification, from its density against its in-plane surroundings
    (the ring ``ring_voxels`` wide around it on its own slices; no label needed - ribs,
    processes and the pelvis a label map or point list misses included):

    * no denser than cancellous bone (peak below :data:`CANCELLOUS_MAX_HU`) while lying
      against bone - at least :data:`AGAINST_BONE_FRACTION` of the ring at bone density;
      or, for a body one slice thick, that fraction of the voxels facing it in 3D, or
      :data:`ON_BONE_FRACTION` of those just above or just below it (on thick slices a
      bone's end is partial-volumed into the next slice: a faint copy of the bone lying
      on it, soft tissue around it in its own slice; seen on the real contrast CT
      resampled by half a slice; a body two slices thick or more reaches beyond such a
      copy, and a faint calcification filling a thin disc keeps its in-plane ring) -: the
      trabecular edge of a bone, cut obliquely or partial-volumed;
    * enclosed in bone (at least :data:`IN_BONE_FRACTION` of the ring at bone density) and
      not much denser than it (peak below twice the ring's 90th percentile): marrow.

    ``attached`` (per component, optional): it continues into a labelled bone and is at
    least :data:`ATTACHED_BODY_MIN_MM3` large (the caller decides) - then it counts as
    lying against bone whatever its ring: a process the label missed sticks out into soft
    tissue, so its ring is soft tissue but for its root; and, at least
    :data:`TRABECULAR_BODY_MIN_MM3` large with a mean below :data:`CANCELLOUS_MAX_HU`, it is
    bone whatever its peak.

    A calcification against bone is denser than cancellous bone, and one in soft tissue has
    soft tissue around most of it."""
    out = np.zeros(n, dtype=bool)
    shape = ct.shape
    axial = geometry.axial_axis
    plane = np.zeros((3, 3, 3), dtype=bool)
    centre = [slice(None)] * 3
    centre[axial] = 1
    plane[tuple(centre)] = ndimage.generate_binary_structure(2, 1)
    steps = []                        # one voxel up and down the slices' axis
    for d in (0, 2):
        st = np.zeros((3, 3, 3), dtype=bool)
        at = [1, 1, 1]
        at[axial] = d
        st[tuple(at)] = True
        steps.append(st)
    pad = np.full(3, ring_voxels + 1)
    pad[axial] = 1
    kji = np.stack(np.unravel_index(idx, shape), axis=1)
    order = np.argsort(clab, kind="stable")
    bounds = np.searchsorted(clab[order], np.arange(1, n + 2))
    for c in np.flatnonzero(which) + 1:
        sel = order[bounds[c - 1]:bounds[c]]
        if sel.size == 0:
            continue
        p = kji[sel]
        lo = np.maximum(p.min(axis=0) - pad, 0)
        hi = np.minimum(p.max(axis=0) + pad + 1, shape)
        sub = ct[tuple(slice(a, b) for a, b in zip(lo, hi))]
        q = p - lo
        m = np.zeros(sub.shape, dtype=bool)
        m[q[:, 0], q[:, 1], q[:, 2]] = True
        ring = ndimage.binary_dilation(m, plane, iterations=ring_voxels) & ~m
        if not ring.any():
            continue
        around = sub[ring].astype(np.float64)
        peak = float(sub[m].max())
        bony = float(np.mean(around >= BONE_DENSITY_HU))
        joined = attached is not None and bool(attached[c - 1])
        against = bony >= AGAINST_BONE_FRACTION or joined
        if not against and peak < CANCELLOUS_MAX_HU and p[:, axial].min() == p[:, axial].max():
            # one slice thick: the voxels just above and below it (the neighbouring slices),
            # and every voxel facing it in 3D - lying on a bone along the slices' axis
            ends = [ndimage.binary_dilation(m, st) & ~m for st in steps]
            on = max(float(np.mean(sub[e] >= BONE_DENSITY_HU)) if e.any() else 0.0 for e in ends)
            shell = ndimage.binary_dilation(m) & ~m
            against = (on >= ON_BONE_FRACTION
                       or float(np.mean(sub[shell] >= BONE_DENSITY_HU)) >= AGAINST_BONE_FRACTION)
        # a large body continuing into labelled bone, on average no denser than cancellous
        # bone: a process (its cortex may peak above that) or an outgrowth the label missed
        trabecular = (joined and sel.size * geometry.voxel_volume_mm3 >= TRABECULAR_BODY_MIN_MM3
                      and float(sub[m].mean()) < CANCELLOUS_MAX_HU)
        out[c - 1] = trabecular or ((peak < CANCELLOUS_MAX_HU and against)
                      or (bony >= IN_BONE_FRACTION and peak < 2.0 * float(np.percentile(around, 90))))
    return out
