"""One-click outlines: the reader points at a deposit, this draws it.

:func:`outline_at_point` takes an image (array + explicit :class:`Geometry`), a point in RAS
and the modality, and returns the outline of the one deposit at that point as a
:class:`ClickOutline` (a mask on a box of the image grid, its area in mm² on a radiograph or
volume in mm³ on CT/MRI, its centroid in RAS).  The same rules as the detector
(:mod:`calcinosis.hand.detect`), started from the point instead of a search:

* **radiograph** - the strongest blob near the point seeds steps 2 and 3 of the radiograph
  detector (:mod:`calcinosis.hand.xr`: outline against the background interpolated across
  it, the dense core inside its soft-tissue nodule); then step 5, the edge of its shadow,
  from the point: rays are cast from it and from a grid over the candidate, and of the closed
  edge contours the point lies in, the best supported and best centred on the point is the
  deposit's (or a well supported one concentric inside it, within a nodule's thickness).
  The bone tests of step 4 and the confidence of step 6 are not applied (the reader says it
  is a deposit);
* **CT** - the connected region at or above the threshold (130 HU by default) holding the
  point (or the nearest such voxel within :data:`SNAP_MM`), bone (a dense cortex around
  marrow, :func:`~calcinosis.hand.detect.find_bone_ct`) removed, redrawn half-way between
  its local background and its plateau as the detector draws it;
* **MRI** - the signal void at the point: the dark region holding the darkest voxel near the
  point, at or below ``mri_void_fraction`` x the signal of what surrounds it (the level at
  which it joins the rest of the image within :data:`MRI_REACH_MM`); then as the detector
  within a drawn region: the region is the void grown by :data:`MRI_MARGIN_MM`, the
  threshold ``mri_void_fraction`` x the median of its outer layer, the outline half-way.

Used by the Segment Editor effect *Calcinosis* (``SegmentEditorCalcinosisLib``) and by
``calcinosis hand IMAGE --seeds points.mrk.json``.  Slicer-free (numpy, scipy).

Errors are one line naming the point: :class:`NothingFound` when there is no deposit at the
point (the command line warns and goes on with the next point), :class:`InputError` for a
point outside the image or an image the modality cannot be (2D CT, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry

from .detect import _ball, _spacing_kji, _structure, numbered_lesion_set   # the detectors' own helpers
from .params import DEFAULT_CT_THRESHOLD_HU, DetectParams

#: how far (mm) from the point a deposit's voxel may be and still be the one pointed at (a
#: click lands on a pixel next to a small deposit as easily as on it)
SNAP_MM = 1.5
#: radiograph: the seed is the strongest blob response of the smoothed image within this
#: distance (mm) of the point (the detector's seeds are blob maxima too)
XR_SNAP_MM = 1.0
#: CT: the outline is searched in a box reaching this far (mm) from the point, twice as far
#: when the deposit reaches the box's edge, up to :data:`CT_MAX_REACH_MM`
CT_REACH_MM = 16.0
CT_MAX_REACH_MM = 64.0
#: MRI: a signal void reaching farther than this (mm) from the point is not one deposit (it
#: runs into cortex, a tendon or air, all dark on MRI)
MRI_REACH_MM = 15.0
#: MRI: the void is then outlined as the detector outlines it inside a region a reader draws,
#: the void grown by this margin (mm; the hand phantom's reader draws 1.5 mm around a lesion)
MRI_MARGIN_MM = 2.0

#: radiograph (step 5 from the point): a closed edge contour is the deposit's when this fraction
#: of the rays cast from its centre has an edge ridge on it (the detector asks EDGE_SUPPORT =
#: 0.75 of a contour it found by itself; here the reader has said where the deposit is) ...
CLICK_EDGE_SUPPORT = 0.5
#: ... the point lies within this fraction of the contour's radius from its centre (at least
#: CLICK_CENTRE_MIN_MM) ...
CLICK_CENTRE_FRACTION = 1.0
CLICK_CENTRE_MIN_MM = 0.5
#: ... and this fraction of its pixels lies within the candidate's bump (step 2) widened by
#: EDGE_REACH_MM (a contour much larger than the bump is a bone's or the finger's).  Among
#: them the best is the one with the highest support minus CLICK_OFFCENTRE_WEIGHT x (distance
#: of its centre from the point / its radius): click the middle of a deposit
CLICK_IN_BUMP = 0.9
CLICK_OFFCENTRE_WEIGHT = 0.75
#: a smaller contour concentric inside the best one is the deposit inside the soft tissue it
#: raises (the detector's step 5 rule) only when that tissue is a layer at most this thick
#: (mm; 1.5 x the detector's NODULE_MM): a contour far inside a large deposit is a bone's edge
#: or texture seen through it
CLICK_NODULE_MM = 3.0

MODALITY_WORDS = {"XR": "radiograph", "CT": "CT", "MR": "MRI"}


class NothingFound(InputError):
    """No deposit at the point (one line naming the point)."""


@dataclass
class ClickOutline:
    """The outline of the deposit at one point.

    ``mask`` lies on ``box`` (slices of the image array ``[k, j, i]``); ``size`` is its area
    in mm² (2D) or volume in mm³ (3D), ``centroid_ras`` the centre of its pixels/voxels."""

    point_ras: np.ndarray
    label: str
    modality: str
    geometry: Geometry
    box: tuple[slice, slice, slice]
    mask: np.ndarray
    size: float
    centroid_ras: np.ndarray
    method: str
    details: dict = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return "mm2" if self.geometry.is_2d else "mm3"

    @property
    def size_column(self) -> str:
        return "area_mm2" if self.geometry.is_2d else "volume_mm3"

    def full_mask(self) -> np.ndarray:
        """The mask on the whole image grid."""
        out = np.zeros(self.geometry.shape, bool)
        out[self.box] = self.mask
        return out

    def flat_indices(self) -> np.ndarray:
        """Sorted flat indices (whole grid) of the outline's voxels."""
        kk, jj, ii = np.nonzero(self.mask)
        return np.sort(np.ravel_multi_index((kk + self.box[0].start, jj + self.box[1].start, ii + self.box[2].start),
                                            self.geometry.shape))

    def extent_ijk(self) -> tuple[int, int, int, int, int, int]:
        """(i0, i1, j0, j1, k0, k1) of the box (inclusive), as VTK image extents count."""
        k, j, i = self.box
        return i.start, i.stop - 1, j.start, j.stop - 1, k.start, k.stop - 1

    def measurement(self) -> dict:
        """One row: the point, the size (unit in the column name), the centroid (RAS mm)."""
        row = {"label": self.label, "modality": self.modality, "method": self.method,
               "point_r_mm": float(self.point_ras[0]), "point_a_mm": float(self.point_ras[1]),
               "point_s_mm": float(self.point_ras[2]), self.size_column: float(self.size)}
        row.update({f"centroid_{a}_mm": float(v) for a, v in zip("ras", self.centroid_ras)})
        return row


def describe_point(point_ras, label: str | None = None) -> str:
    """How messages name a point: ``point 'd3' (R 12.0, A -40.2, S 3.5 mm)``."""
    p = np.asarray(point_ras, float)
    where = f"(R {p[0]:.1f}, A {p[1]:.1f}, S {p[2]:.1f} mm)"
    return f"point {label!r} {where}" if label else f"point {where}"


def normalise_click_modality(modality: str) -> str:
    m = str(modality or "").strip().upper()
    m = {"MRI": "MR", "CR": "XR", "DX": "XR", "RADIOGRAPH": "XR"}.get(m, m)
    if m not in ("XR", "CT", "MR"):
        raise InputError(f"modality: expected XR, CT or MRI, got {modality!r}")
    return m


# ---------------------------------------------------------------------- entry point
def outline_at_point(image: np.ndarray, geometry: Geometry, point_ras, modality: str,
                     params: DetectParams = DetectParams(), label: str | None = None,
                     exclude: np.ndarray | None = None) -> ClickOutline:
    """The outline of the deposit at ``point_ras`` (RAS mm) on ``image`` (``[k, j, i]``, or
    ``[j, i]`` for a radiograph) placed by ``geometry``; ``modality`` 'XR', 'CT' or 'MR'.
    ``params``: the detector's (threshold, connectivity, outline rule, bone removal ...).
    ``exclude``: voxels never taken (another deposit already outlined).  ``label`` names
    the point in messages.  Raises :class:`NothingFound` or :class:`InputError`."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape != geometry.shape:
        raise InputError(f"image array {arr.shape} does not match its geometry {geometry.shape}")
    m = normalise_click_modality(modality)
    params.validate()
    p = np.asarray(point_ras, float).reshape(3)
    name = describe_point(p, label)
    if not np.all(np.isfinite(p)):
        raise InputError(f"{name}: not a position")
    if m == "XR" and not geometry.is_2d:
        raise InputError(f"{name}: a 3D image ({geometry.size_ijk[2]} slices) cannot be a radiograph")
    if m in ("CT", "MR") and geometry.is_2d:
        raise InputError(f"{name}: a 2D image cannot be a{'n' if m == 'MR' else ''} {MODALITY_WORDS[m]}")
    if not bool(geometry.contains_ras(p)[0]):
        raise InputError(f"{name} lies outside the image{_distance_outside(geometry, p)}")
    ijk = geometry.ras_to_ijk(p)
    kji = np.clip(np.round(ijk[::-1]).astype(int), 0, np.asarray(geometry.shape) - 1)
    if m == "XR":
        box, mask, method, details = _outline_xr(arr[0], geometry, ijk, params, name, exclude)
    elif m == "CT":
        box, mask, method, details = _outline_ct(arr, geometry, kji, params, name, exclude)
    else:
        box, mask, method, details = _outline_mr(arr, geometry, kji, params, name, exclude)
    box, mask = _trim(box, mask)
    if mask is None:
        raise NothingFound(f"{name}: no {MODALITY_WORDS[m]} deposit found there")
    unit = geometry.pixel_area_mm2 if geometry.is_2d else geometry.voxel_volume_mm3
    kk, jj, ii = np.nonzero(mask)
    centre_kji = np.array([kk.mean() + box[0].start, jj.mean() + box[1].start, ii.mean() + box[2].start])
    return ClickOutline(p, label or "", m, geometry, box, mask, float(mask.sum()) * unit,
                        geometry.kji_to_ras(centre_kji), method, details)


def _distance_outside(geometry: Geometry, p: np.ndarray) -> str:
    ijk = geometry.ras_to_ijk(p)
    lo, hi = -0.5, np.asarray(geometry.size_ijk) - 0.5
    beyond = np.maximum(np.maximum(lo - ijk, ijk - hi), 0.0) * np.asarray(geometry.spacing)
    if geometry.is_2d:
        beyond[2] = 0.0
    return f" ({float(np.linalg.norm(beyond)):.1f} mm beyond its edge)"


def _trim(box, mask):
    if mask is None or not mask.any():
        return box, None
    sl = ndimage.find_objects(mask.astype(np.uint8))[0]
    new = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sl))
    return new, mask[sl].copy()


def _box_around(centre_kji, half_vox, shape) -> tuple[slice, slice, slice]:
    return tuple(slice(max(int(c) - int(h), 0), min(int(c) + int(h) + 1, n))
                 for c, h, n in zip(centre_kji, half_vox, shape))


def _sub_geometry(geometry: Geometry, box) -> Geometry:
    off = np.array([box[2].start, box[1].start, box[0].start], float)
    size = (box[2].stop - box[2].start, box[1].stop - box[1].start, box[0].stop - box[0].start)
    return Geometry.create(size, geometry.spacing, geometry.ijk_to_ras(off), geometry.direction)


def _touches_border(mask: np.ndarray, box, shape) -> bool:
    """Does the mask reach a face of its box that is not the image's own edge?"""
    for axis in range(3):
        if mask.shape[axis] <= 1:
            continue
        lo = [slice(None)] * 3
        lo[axis] = 0
        hi = [slice(None)] * 3
        hi[axis] = -1
        if box[axis].start > 0 and mask[tuple(lo)].any():
            return True
        if box[axis].stop < shape[axis] and mask[tuple(hi)].any():
            return True
    return False


def _nearest_in(mask: np.ndarray, seed: tuple, spacing_kji: np.ndarray, reach_mm: float) -> tuple | None:
    """The voxel of ``mask`` nearest to ``seed`` (within ``reach_mm``), or None."""
    if mask[seed]:
        return seed
    r = np.ceil(reach_mm / spacing_kji).astype(int)
    win = tuple(slice(max(s - n, 0), min(s + n + 1, m)) for s, n, m in zip(seed, r, mask.shape))
    sub = mask[win]
    if not sub.any():
        return None
    pts = np.argwhere(sub)
    d = np.linalg.norm((pts + [w.start for w in win] - np.asarray(seed)) * spacing_kji, axis=1)
    k = int(np.argmin(d))
    if d[k] > reach_mm + 1e-9:
        return None
    return tuple(int(v) for v in pts[k] + [w.start for w in win])


def _grow_mm(mask: np.ndarray, spacing_kji: np.ndarray, mm: float) -> np.ndarray:
    """The mask grown by ``mm`` (physical distance, anisotropic voxels)."""
    return ndimage.binary_dilation(mask, structure=_ball(spacing_kji, mm))


# ---------------------------------------------------------------------- radiograph
def _outline_xr(img: np.ndarray, geometry: Geometry, ijk: np.ndarray, params: DetectParams, name: str,
                exclude: np.ndarray | None):
    """Steps 2, 3 and 5 of the radiograph detector seeded at the point, on a window of the
    analysis grid around it."""
    from . import xr as xd
    from .xr.candidates import NoiseModel, outline_candidate
    from .xr.edge import EDGE_REACH_MM, centred_contours
    from .xr.seeds import Seed, blobness, ring_contrast

    sx, sy = float(geometry.spacing[0]), float(geometry.spacing[1])
    pix = float(np.sqrt(sx * sy))
    k = max(1, int(np.floor(xd.ANALYSIS_SPACING_MM / pix + 0.25)))
    apx = pix * k
    reach_mm = params.xr_max_lesion_mm / 2.0 + xd.NODULE_MM + 2.0 * 2.0 + 4.0
    half = int(np.ceil(reach_mm / pix / k)) * k
    col, row = float(ijk[0]), float(ijk[1])
    r0 = max((int(round(row)) - half) // k * k, 0)
    c0 = max((int(round(col)) - half) // k * k, 0)
    r1 = min(int(round(row)) + half + k, img.shape[0])
    c1 = min(int(round(col)) + half + k, img.shape[1])
    crop = np.asarray(img[r0:r1, c0:c1], np.float64)
    a = xd.block_mean(crop, k)
    smoothed = ndimage.gaussian_filter(np.asarray(a, np.float32), 1.0)
    # the noise is measured where the image varies (collimated or blank areas would make it 0)
    varies = ndimage.maximum_filter(a, 3) > ndimage.minimum_filter(a, 3)
    noise = NoiseModel.of(a, params, params.threshold, tissue=varies if varies.sum() > 100 else None)
    ar, ac = (row - r0) / k, (col - c0) / k
    # the seed: the strongest blob response near the point (where the detector would seed)
    blob, scale = blobness(smoothed, apx)
    reach = XR_SNAP_MM / apx
    rr, cc = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    near = (rr - ar) ** 2 + (cc - ac) ** 2 <= reach * reach
    if not near.any():
        raise NothingFound(f"{name}: too close to the image's edge to outline")
    cand = np.where(near, blob, -np.inf)
    sr, sc = np.unravel_index(int(np.argmax(cand)), cand.shape)
    if not blob[sr, sc] > 0:
        raise NothingFound(f"{name}: nothing brighter than its surroundings there (no radiograph deposit)")
    seed = Seed(float(blob[sr, sc]), int(sr), int(sc), float(scale[sr, sc]))
    contrast, ring_px = ring_contrast(smoothed, seed, apx)
    allowed = None
    exc_a = None
    if exclude is not None:
        exc = np.asarray(exclude)[0] if np.asarray(exclude).ndim == 3 else np.asarray(exclude)
        exc_a = xd.block_mean(exc[r0:r1, c0:c1].astype(np.float32), k) >= 0.5
        allowed = ~exc_a
    taken = np.zeros(a.shape, bool) if exc_a is None else exc_a.copy()
    outlined = outline_candidate(smoothed, seed, ring_px, noise, apx, params, allowed, taken)
    if outlined is None:
        raise NothingFound(f"{name}: no radiograph deposit there (nothing stands {noise.contrast_threshold:.0f} image "
                           f"units above the background around it, or it is wider than "
                           f"{params.xr_max_lesion_mm:g} mm)")
    bump, final, details = outlined
    patch = final.patch
    max_px = params.xr_max_lesion_mm / apx
    before = patch.count()
    # step 5 from the point: rays from it and from a grid over the bump, contours recast from
    # their own centres; the deposit's edge is a contour around the point
    ys, xs = patch.coords()
    by, bx = bump.patch.coords()
    cy, cx = float(ys.mean()), float(xs.mean())
    r_ext = float(np.sqrt(((by - cy) ** 2 + (bx - cx) ** 2).max()))
    r_max = min(r_ext + EDGE_REACH_MM / apx, max_px / 2.0 + 4.0)
    contours = centred_contours(smoothed, [(ar, ac), (float(sr), float(sc))] + grid_starts(bump.patch), r_max,
                                noise.sigma, min_support=CLICK_EDGE_SUPPORT)
    # centred on the point, and within the bump widened by the rays' reach (a contour much
    # larger than the bump is a bone's or the finger's, not the deposit's)
    reach_px = max(int(round(EDGE_REACH_MM / apx)), 1)
    zone = ndimage.binary_dilation(bump.patch.full(a.shape), iterations=reach_px)
    around = []
    for c in contours:
        cm = c.mask(a.shape)
        if _centred_on(c, ar, ac, apx) and zone[cm.window][cm.local].mean() >= CLICK_IN_BUMP:
            around.append(c)
    best = choose_click_contour(around, apx, (ar, ac))
    method = "background outline"
    if best is not None:
        edge = best.mask(a.shape)
        if allowed is not None:
            edge.local &= allowed[edge.window]
        edge = edge.trimmed()
        if edge.count() >= 3:
            details.update({"edge_support": best.support, "edge_contours": len(contours),
                            "threshold_outline_area_mm2": float(patch.count() * apx ** 2)})
            patch, method = edge, "edge"
    m = patch.full(a.shape)
    full = np.repeat(np.repeat(m, k, axis=0), k, axis=1)[:crop.shape[0], :crop.shape[1]]
    if exclude is not None:
        exc = np.asarray(exclude)[0] if np.asarray(exclude).ndim == 3 else np.asarray(exclude)
        full &= ~exc[r0:r1, c0:c1].astype(bool)
    if params.boundary == "threshold" and params.threshold is not None:
        full &= crop >= params.threshold
    details = {k_: (float(v) if isinstance(v, (float, np.floating)) else v) for k_, v in details.items()}
    details.update({"seed_rc": [int(sr * k + r0), int(sc * k + c0)], "peak_contrast": float(final.peak),
                    "noise_sd_estimate": float(noise.sigma), "threshold_used": float(noise.contrast_threshold),
                    "ring_contrast": float(contrast), "analysis_pixel_mm": apx,
                    "outline_pixels_before_edge": int(before)})
    return (slice(0, 1), slice(r0, r1), slice(c0, c1)), full[None], method, details


# ---------------------------------------------------------------------- CT
def _outline_ct(hu: np.ndarray, geometry: Geometry, kji: np.ndarray, params: DetectParams, name: str,
                exclude: np.ndarray | None):
    from .detect import find_bone_ct, refine_edges

    thr = DEFAULT_CT_THRESHOLD_HU if params.threshold is None else float(params.threshold)
    params = replace(params, threshold=thr)
    sp = _spacing_kji(geometry)
    struct = _structure(params.connectivity, False)
    reach = CT_REACH_MM
    while True:
        box = _box_around(kji, np.ceil(reach / sp), hu.shape)
        sub = hu[box]
        seed = tuple(int(c - b.start) for c, b in zip(kji, box))
        cand = sub >= thr
        if exclude is not None:
            cand &= ~np.asarray(exclude)[box].astype(bool)
        at = _nearest_in(cand, seed, sp, SNAP_MM)
        if at is None:
            raise NothingFound(f"{name}: no voxel at or above {thr:g} HU within {SNAP_MM:g} mm (no CT deposit there)")
        lab, _ = ndimage.label(cand, structure=struct)
        comp = lab == lab[at]
        del lab
        subgeom = _sub_geometry(geometry, box)
        bone = np.zeros(sub.shape, bool)
        if params.exclude_bone:
            bone = find_bone_ct(sub, subgeom, comp, params)
        lesion = comp & ~bone
        pieces, n = ndimage.label(lesion, structure=struct)
        if bone[at] or n == 0:
            near = _nearest_in(lesion, seed, sp, SNAP_MM)
            if near is None:
                raise NothingFound(f"{name}: lies on bone (a cortex around marrow), not on a deposit; no deposit "
                                   f"within {SNAP_MM:g} mm")
            at = near
        piece = pieces == pieces[at]
        if not _touches_border(piece, box, hu.shape) or reach >= CT_MAX_REACH_MM:
            break
        reach *= 2.0
    if _touches_border(piece, box, hu.shape):
        raise NothingFound(f"{name}: the region at or above {thr:g} HU there reaches farther than "
                           f"{CT_MAX_REACH_MM:g} mm and holds no marrow (a bone not recognised, or contrast?); "
                           "outline it by hand")
    groups = [np.flatnonzero(piece.ravel())]
    if params.boundary == "half-max":
        forbidden = bone if exclude is None else (bone | np.asarray(exclude)[box].astype(bool))
        groups = refine_edges(sub, subgeom, groups, forbidden, params.edge_fraction, below=False,
                              connectivity=params.connectivity)
    mask = np.zeros(sub.shape, bool)
    mask.reshape(-1)[groups[0]] = True
    touches = False
    if bone.any():
        touches = bool((ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(3, 1)) & bone).any())
        if touches and params.bone_sliver_mm > 0:
            dist = ndimage.distance_transform_edt(~bone, sampling=sp)
            if float(dist[mask].max()) <= params.bone_sliver_mm:
                raise NothingFound(f"{name}: only the partial-volume edge of a bone there (never farther than "
                                   f"{params.bone_sliver_mm:g} mm from it), not a deposit")
    details = {"threshold_used": thr, "threshold_unit": "HU", "touches_bone": touches,
               "search_reach_mm": reach, "bone_removed": bool(params.exclude_bone)}
    return box, mask, "threshold, bone removed" if params.exclude_bone else "threshold", details


# ---------------------------------------------------------------------- MRI
def _outline_mr(img: np.ndarray, geometry: Geometry, kji: np.ndarray, params: DetectParams, name: str,
                exclude: np.ndarray | None):
    from .detect import refine_edges

    sp = _spacing_kji(geometry)
    struct = _structure(params.connectivity, False)
    box = _box_around(kji, np.ceil((MRI_REACH_MM + 3 * sp.max()) / sp), img.shape)
    sub = np.asarray(img[box], np.float64)
    seed = tuple(int(c - b.start) for c, b in zip(kji, box))
    kk, jj, ii = np.meshgrid(*[(np.arange(b.stop - b.start) - s) * h for b, s, h in zip(box, seed, sp)],
                             indexing="ij")
    ball = kk * kk + jj * jj + ii * ii <= MRI_REACH_MM ** 2
    if exclude is not None:
        ball &= ~np.asarray(exclude)[box].astype(bool)
    # the darkest voxel near the point (after a light smoothing: Rician noise) starts the void
    sm = ndimage.gaussian_filter(sub, 0.5 * sp.min() / sp)
    r = np.ceil(SNAP_MM / sp).astype(int)
    win = tuple(slice(max(s - n, 0), min(s + n + 1, m)) for s, n, m in zip(seed, r, sub.shape))
    local = np.where(ball[win], sm[win], np.inf)
    at = tuple(int(v) + w.start for v, w in zip(np.unravel_index(int(np.argmin(local)), local.shape), win))
    one = ndimage.generate_binary_structure(3, 1)
    rim = ball & ~ndimage.binary_erosion(ball, structure=one)

    def component(level: float) -> np.ndarray:
        lab, _ = ndimage.label((sm <= level) & ball, structure=struct)
        return lab == lab[at]

    # the surroundings' level: the lowest signal at which the dark region holding the point
    # joins the rest of the image (reaches MRI_REACH_MM) - the saddle between the void and what
    # lies around it, whatever lies farther (fat, marrow)
    lo, hi = float(sm[at]), float(sm[ball].max())
    if component(hi)[rim].any():
        for _ in range(16):
            mid = 0.5 * (lo + hi)
            if component(mid)[rim].any():
                hi = mid
            else:
                lo = mid
    surroundings = hi
    thr = params.threshold if params.threshold is not None else params.mri_void_fraction * surroundings
    if not sm[at] <= thr:
        context = float(np.median(sm[ball]))
        if sm[at] <= params.mri_void_fraction * context:
            raise NothingFound(f"{name}: the dark region there runs into other dark structures within "
                               f"{MRI_REACH_MM:g} mm (cortex, a tendon or air are dark on MRI too); outline it "
                               "by hand or draw a region")
        raise NothingFound(f"{name}: no signal void there (signal {sm[at]:.0f} against {surroundings:.0f} around it)")
    region = component(thr)
    if region[rim].any():
        raise NothingFound(f"{name}: the dark region there reaches farther than {MRI_REACH_MM:g} mm (cortex, a "
                           "tendon or air are dark too); outline it by hand or draw a region")
    # then as the detector within a region a reader draws: the void grown by MRI_MARGIN_MM, the
    # threshold from the median of that region's outer layer, the outline half-way
    zone = _grow_mm(region, sp, MRI_MARGIN_MM) & ball
    if params.threshold is None:
        from .detect import region_border_median
        border = region_border_median(sub, zone)
        thr = params.mri_void_fraction * border
        lab, _ = ndimage.label((sub <= thr) & zone, structure=struct)
        ids = np.unique(lab[region & (lab > 0)])
        if ids.size:
            region = np.isin(lab, ids)
    groups = [np.flatnonzero(region.ravel())]
    if params.boundary == "half-max":
        groups = refine_edges(sub, _sub_geometry(geometry, box), groups, ~zone, params.edge_fraction, below=True,
                              connectivity=params.connectivity)
    mask = np.zeros(sub.shape, bool)
    mask.reshape(-1)[groups[0]] = True
    return box, mask, "signal void", {"threshold_used": float(thr), "threshold_unit": "image units",
                                      "surroundings_signal": surroundings, "reach_mm": MRI_REACH_MM}


def _centred_on(contour, r: float, c: float, pixel_mm: float) -> bool:
    """Does the point (r, c) lie within ``CLICK_CENTRE_FRACTION`` of the contour's radius (at
    least ``CLICK_CENTRE_MIN_MM``) of its centre?"""
    radius = float(np.sqrt(contour.area_px / np.pi))
    d = float(np.hypot(*(contour.centre - [r, c])))
    return d <= max(CLICK_CENTRE_FRACTION * radius, CLICK_CENTRE_MIN_MM / pixel_mm)


def _score(c, point) -> float:
    """A contour's support less ``CLICK_OFFCENTRE_WEIGHT`` x the point's distance from its
    centre in units of its radius (the reader clicks the middle of the deposit)."""
    radius = max(float(np.sqrt(c.area_px / np.pi)), 1.0)
    return c.support - CLICK_OFFCENTRE_WEIGHT * float(np.hypot(*(c.centre - point))) / radius


def choose_click_contour(contours: list, pixel_mm: float, point):
    """The deposit's edge among the contours around the point (analysis grid ``point``): the
    best by :func:`_score` (support, less the point's distance from its centre; ties: the
    smaller), or a smaller concentric one inside it with ``CLICK_EDGE_SUPPORT`` and at most
    ``CLICK_NODULE_MM`` of soft tissue between the two (the detector's rule,
    :func:`~calcinosis.hand.xr.edge.choose_contour`, with the nodule's thickness bounded)."""
    from .xr.edge import EDGE_CONCENTRIC, EDGE_INNER_MAX

    if not contours:
        return None
    top = max(contours, key=lambda c: (_score(c, point), -c.area_px))
    r_top = np.sqrt(top.area_px / np.pi)
    inner = []
    for c in contours:
        r = np.sqrt(c.area_px / np.pi)
        if c.area_px <= EDGE_INNER_MAX * top.area_px and c.support >= CLICK_EDGE_SUPPORT \
                and np.hypot(*(c.centre - top.centre)) <= EDGE_CONCENTRIC * r \
                and (r_top - r) * pixel_mm <= CLICK_NODULE_MM:
            inner.append(c)
    if inner:
        return max(inner, key=lambda c: (_score(c, point), -c.area_px))
    return top


def grid_starts(patch, n: int = 20) -> list[tuple[float, float]]:
    """About ``n`` points on a regular grid over a patch (analysis grid coordinates)."""
    ys, xs = patch.coords()
    step = max(2.0, float(np.sqrt(ys.size / float(n))))
    gy = np.arange(ys.min(), ys.max() + 1, step)
    gx = np.arange(xs.min(), xs.max() + 1, step)
    cells = np.stack(np.meshgrid(gy, gx, indexing="ij"), -1).reshape(-1, 2)
    m = patch.local
    inside = m[np.clip(np.round(cells[:, 0]).astype(int) - patch.r0, 0, m.shape[0] - 1),
               np.clip(np.round(cells[:, 1]).astype(int) - patch.c0, 0, m.shape[1] - 1)]
    return [(float(a), float(b)) for a, b in cells[inside]]


# ---------------------------------------------------------------------- one outline per point
def point_labels(points: list) -> list[str]:
    """Each point's label, or ``seed N`` (its place in the file) when it has none."""
    return [str(lab).strip() or f"seed {n}" for n, (lab, _) in enumerate(points, start=1)]


def detect_at_points(volume, modality: str, points: list, params: DetectParams = DetectParams(),
                     exclude: np.ndarray | None = None, landmarks=None, source: str = "seeds",
                     progress=None):
    """One deposit outlined per point (``[(label, RAS or None)]``, as
    :func:`calcinosis.core.pointlists.read_point_list` returns them) - the lesions of
    ``calcinosis hand --seeds`` - as a :class:`~calcinosis.hand.detect.Detection` numbered in
    the points' order (lesion 1 = the first point that gave an outline; its
    ``source_segment`` is ``seed <label>``).  A point that gives no outline (nothing there,
    outside the image, inside an earlier point's outline, below ``min_size``) is left out
    with a warning naming it; unplaced points too.  On radiographs the landmarks are
    completed by the hand model's and returned as the detection's (as
    :func:`~calcinosis.hand.detect.detect_xr` does); on CT and MRI none are returned (as
    their detectors), the caller keeps its own."""
    from calcinosis.core.lesions import longest_slice_runs
    from calcinosis.core.progress import report

    from .detect import Detection

    m = normalise_click_modality(modality)
    params.validate()
    geom = volume.geometry
    labels = point_labels(points)
    warnings: list[str] = []
    taken = np.zeros(geom.shape, bool)
    if exclude is not None:
        taken |= np.asarray(exclude, bool)
    outlines: list[ClickOutline] = []
    records = []
    size_unit = "mm2" if geom.is_2d else "mm3"
    for n, ((_, ras), label) in enumerate(zip(points, labels)):
        report(progress, n / max(len(points), 1), f"outlining point {n + 1} of {len(points)}")
        record = {"label": label, "point_ras_mm": None if ras is None else [round(float(v), 4) for v in ras],
                  "lesion_id": None}
        records.append(record)
        if ras is None:
            record["skipped"] = "not placed"
            warnings.append(f"{source}: point {label!r} is not placed: skipped")
            continue
        name = describe_point(ras, label)
        ijk = geom.ras_to_ijk(np.asarray(ras, float))
        kji = np.clip(np.round(ijk[::-1]).astype(int), 0, np.asarray(geom.shape) - 1)
        if bool(geom.contains_ras(ras)[0]) and taken[tuple(kji)] and (exclude is None or not exclude[tuple(kji)]):
            owner = next((o.label for o in outlines if o.full_mask()[tuple(kji)]), None)
            record["skipped"] = f"inside the outline of {owner!r}"
            warnings.append(f"{source}: {name} lies inside the outline of point {owner!r} (the same deposit): skipped")
            continue
        try:
            o = outline_at_point(volume.array, geom, ras, m, params, label, exclude=taken if taken.any() else None)
        except InputError as e:
            record["skipped"] = str(e)
            warnings.append(f"{source}: {e}; no lesion for it")
            continue
        if o.size < params.min_size * (1 - 1e-9):
            record["skipped"] = f"{o.size:.3g} {size_unit}, below the minimum size"
            warnings.append(f"{source}: {name}: its outline is {o.size:.3g} {size_unit}, below --min-size "
                            f"{params.min_size:g}: left out")
            continue
        if params.min_slices > 1 and not geom.is_2d:
            flat = o.flat_indices()
            sl_idx = np.unravel_index(flat, geom.shape)[geom.axial_axis]
            _, _, runs = longest_slice_runs(np.ones(flat.size, np.int64), sl_idx, 1)
            if runs[0] < params.min_slices:
                record["skipped"] = f"on {int(runs[0])} contiguous slices"
                warnings.append(f"{source}: {name}: its outline spans {int(runs[0])} contiguous axial slices, fewer "
                                f"than --min-slices {params.min_slices}: left out")
                continue
        taken[o.box] |= o.mask
        outlines.append(o)
        record.update({"lesion_id": len(outlines), "method": o.method, o.size_column: round(float(o.size), 4),
                       "centroid_ras_mm": [round(float(v), 4) for v in o.centroid_ras]})
    lesions = lesion_set(outlines, geom, params, [f"seed {o.label}" for o in outlines])
    n = lesions.n
    parameters = params.to_dict()
    parameters.update({"method": f"one outline per point of the {source} file (calcinosis.hand.click), not the "
                                 "automatic search",
                       "min_size_unit": size_unit, "seeds": records,
                       "click": {"snap_mm": SNAP_MM, "radiograph_snap_mm": XR_SNAP_MM,
                                 "ct_reach_mm": CT_REACH_MM, "ct_max_reach_mm": CT_MAX_REACH_MM,
                                 "mri_reach_mm": MRI_REACH_MM, "mri_margin_mm": MRI_MARGIN_MM,
                                 "edge_support": CLICK_EDGE_SUPPORT, "centre_fraction": CLICK_CENTRE_FRACTION,
                                 "in_bump": CLICK_IN_BUMP, "offcentre_weight": CLICK_OFFCENTRE_WEIGHT,
                                 "nodule_mm": CLICK_NODULE_MM}})
    if m == "CT" and parameters.get("threshold") is None:
        parameters["threshold"] = DEFAULT_CT_THRESHOLD_HU
    touches = None
    if m == "CT":
        touches = np.array([bool(o.details.get("touches_bone")) for o in outlines], bool)
    if not outlines:
        warnings.append(f"{source}: no point gave an outline: no lesions")
    report(progress, 1.0, f"{n} outlines")
    # the landmarks are completed by the hand model in the pipeline (handmodel_ct.automatic_landmarks)
    return Detection(lesions, m, parameters, None, touches, warnings)


def lesion_set(outlines: list[ClickOutline], geometry: Geometry, params: DetectParams = DetectParams(),
               sources: list[str] | None = None):
    """A :class:`~calcinosis.core.lesions.LesionSet` of non-overlapping outlines, numbered in
    their order (lesion 1 = the first outline)."""
    from calcinosis.core.lesions import LesionParams

    below = bool(outlines) and outlines[0].modality == "MR"
    lp = LesionParams(params.threshold, None, below, params.connectivity, float(params.min_size),
                      int(params.min_slices), True)
    names = list(sources) if sources is not None else [f"click {o.label}".strip() for o in outlines]
    return numbered_lesion_set([o.flat_indices() for o in outlines], names, geometry, lp)


# ---------------------------------------------------------------------- naming (the Segment Editor effect)
def outline_assignment(outline: ClickOutline, landmarks=None, params=None, laterality: str | None = None) -> dict:
    """Side, digit, zone and kind of an outlined deposit, as ``calcinosis hand`` assigns a
    lesion (:func:`~calcinosis.hand.assign.assign_lesions`; without landmarks: side from the
    laterality or ``unknown``, digit ``unassigned``)."""
    from .assign import AssignParams, assign_lesions

    lesions = lesion_set([outline], outline.geometry)
    a = assign_lesions(lesions, np.asarray(outline.centroid_ras, float)[None], landmarks,
                       params if params is not None else AssignParams(), laterality)
    return {"side": a.side[0], "digit": a.digit[0], "zone": a.zone[0], "kind": a.kind[0]}


def next_lesion_number(names) -> int:
    """1 + the largest lesion number leading a segment name (``3 R index PIP periarticular``
    -> 3), 1 when none does."""
    numbers = [int(n.split()[0]) for n in names if n and n.split() and n.split()[0].isdigit()]
    return max(numbers, default=0) + 1


def segment_label(number: int, assignment: dict | None = None) -> tuple[str, tuple[float, float, float]]:
    """(name, colour) of a lesion segment as the CalcinosisQuant module names and colours its
    lesions (``3 R index PIP periarticular``, one hue per digit)."""
    from types import SimpleNamespace

    from .pipeline import segment_colors, segment_names

    row = {"lesion_id": int(number), "side": "unknown", "digit": "unassigned", "zone": None, "kind": None}
    row.update(assignment or {})
    table = SimpleNamespace(rows=[row])
    return segment_names(table)[0], segment_colors(table)[0]
