"""Candidate lesions on hand images: CT (bone found and removed), radiograph (against the
local background, :mod:`calcinosis.hand.xr`) and MRI (signal voids inside a region the user
draws), and each lesion's outline (half-way between its local background and its plateau,
or the plain threshold mask).

How each detector works is described once, in ``docs/methods/hand-detection.md``; the
parameters are :class:`~calcinosis.hand.params.DetectParams`.

Every detector returns a :class:`Detection` whose :class:`~calcinosis.core.lesions.LesionSet`
is an ordinary lesion label image: the Slicer panel turns it into a segmentation the user
reviews and edits, and the command line writes it as ``lesions.seg.nrrd``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from calcinosis.core import image_io, memo
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.lesions import LesionParams, LesionSet, longest_slice_runs
from calcinosis.core.progress import Progress, report
from calcinosis.core.volume import Volume

from .handmodel import build_hand_model, complete_landmarks, model_landmarks
from .params import BOUNDARIES, DEFAULT_CT_THRESHOLD_HU, XR_PARAMS, DetectParams  # noqa: F401 (re-exported)


@dataclass
class Detection:
    """Lesions found on one image, and what the detector knows about them."""

    lesions: LesionSet
    modality: str
    parameters: dict
    bone_mask: np.ndarray | None = None      # CT: voxels taken for bone (for review / overlays)
    touches_bone: np.ndarray | None = None   # per lesion (index id-1): shares a face with bone
    warnings: list[str] = field(default_factory=list)
    landmarks: object = None                 # radiograph: the landmarks used (placed + automatic)
    hand_model: object = None                # radiograph: the hand model (handmodel.HandModel2D)
    confidence: np.ndarray | None = None     # radiograph: per lesion (index id-1), step 6's confidence (0-1)


# ---------------------------------------------------------------------- shared helpers
def _structure(connectivity: str, is_2d: bool) -> np.ndarray:
    s = ndimage.generate_binary_structure(3, 1 if connectivity == "face" else 3)
    if is_2d:
        s[0] = False
        s[2] = False
    return s


def _ball(spacing_kji: np.ndarray, radius_mm: float, is_2d: bool = False) -> np.ndarray:
    r = np.maximum(np.floor(radius_mm / spacing_kji + 1e-9).astype(int), 0)
    if is_2d:
        r[0] = 0
    zz, yy, xx = np.meshgrid(*[np.arange(-n, n + 1) for n in r], indexing="ij")
    d2 = (zz * spacing_kji[0]) ** 2 + (yy * spacing_kji[1]) ** 2 + (xx * spacing_kji[2]) ** 2
    return d2 <= radius_mm ** 2 + 1e-9


def _pad_to(small: np.ndarray, shape) -> np.ndarray:
    """Centre a structuring element in a larger (odd-sized) one."""
    shape = tuple(max(a, b) for a, b in zip(small.shape, shape))
    out = np.zeros(shape, bool)
    sl = tuple(slice((n - m) // 2, (n - m) // 2 + m) for n, m in zip(shape, small.shape))
    out[sl] = small
    return out


def _spacing_kji(geometry: Geometry) -> np.ndarray:
    return np.asarray(geometry.spacing[::-1], dtype=float)


def _grow_box(sl: tuple[slice, ...], pad: tuple[int, int, int], shape) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(sl, pad, shape))


def _crop_flat(sl: tuple[slice, ...], shape, local_mask: np.ndarray) -> np.ndarray:
    """Flat indices (full array) of the True voxels of a mask on a crop."""
    kk, jj, ii = np.nonzero(local_mask)
    return np.ravel_multi_index((kk + sl[0].start, jj + sl[1].start, ii + sl[2].start), shape)


def build_lesion_set(groups: list[np.ndarray], sources: list[str], geometry: Geometry, params: DetectParams,
                     notes: list[str] | None = None) -> LesionSet:
    """A :class:`LesionSet` from per-lesion flat voxel indices (non-overlapping), applying
    the minimum size (mm³/mm²) and the contiguous-slice rule; ids ordered by position
    (first voxel), so the same image always gives the same numbering."""
    unit = geometry.pixel_area_mm2 if geometry.is_2d else geometry.voxel_volume_mm3
    keep = []
    for g, s in zip(groups, sources):
        if g.size == 0 or g.size * unit < params.min_size * (1 - 1e-9):
            continue
        keep.append((int(g.min()), g, s))
    notes = list(notes or [])
    if params.min_slices > 1 and not geometry.is_2d and keep:
        axis = geometry.axial_axis
        filtered = []
        for first, g, s in keep:
            sl_idx = np.unravel_index(g, geometry.shape)[axis]
            _, _, runs = longest_slice_runs(np.ones(g.size, np.int64), sl_idx, 1)
            if runs[0] >= params.min_slices:
                filtered.append((first, g, s))
        keep = filtered
    keep.sort(key=lambda t: t[0])
    lp = LesionParams(params.threshold, None, False, params.connectivity, float(params.min_size),
                      int(params.min_slices), True)
    return numbered_lesion_set([g for _, g, _ in keep], [src for _, _, src in keep], geometry, lp, notes)


def numbered_lesion_set(groups: list[np.ndarray], sources: list[str], geometry: Geometry, params: LesionParams,
                        notes: list[str] | None = None) -> LesionSet:
    """A :class:`LesionSet` of non-overlapping lesions given as flat voxel indices, lesion k
    being ``groups[k - 1]``."""
    n = len(groups)
    dtype = np.uint8 if n < 255 else (np.uint16 if n < 65535 else np.int32)
    labels = np.zeros(geometry.shape, dtype=dtype)
    flat = labels.reshape(-1)
    idx_parts, lab_parts = [], []
    for new_id, g in enumerate(groups, start=1):
        g = np.sort(g)
        flat[g] = new_id
        idx_parts.append(g)
        lab_parts.append(np.full(g.size, new_id, dtype=np.int64))
    if idx_parts:
        idx = np.concatenate(idx_parts)
        lab = np.concatenate(lab_parts)
        order = np.argsort(idx, kind="stable")
        idx, lab = idx[order], lab[order]
    else:
        idx = np.zeros(0, np.int64)
        lab = np.zeros(0, np.int64)
    return LesionSet(labels, geometry, idx.astype(np.int64), lab, list(sources), params, list(notes or []))


def _components(mask: np.ndarray, connectivity: str, is_2d: bool):
    lab, n = ndimage.label(mask, structure=_structure(connectivity, is_2d))
    return lab, n


# ---------------------------------------------------------------------- CT
def _planar_structures() -> list[np.ndarray]:
    out = []
    for ax in range(3):
        st = np.zeros((3, 3, 3), bool)
        idx = [slice(None)] * 3
        idx[ax] = 1
        st[tuple(idx)] = ndimage.generate_binary_structure(2, 1)
        out.append(st)
    return out


_PLANAR = _planar_structures()


def label_candidates(mask: np.ndarray, connectivity: str) -> tuple[np.ndarray, int]:
    """Connected components of a 3D mask with SimpleITK (multi-threaded): (uint32 labels, count)."""
    import SimpleITK as sitk
    img = sitk.GetImageFromArray(np.ascontiguousarray(mask).view(np.uint8))
    f = sitk.ConnectedComponentImageFilter()
    f.SetFullyConnected(connectivity == "full")
    out = f.Execute(img)
    return image_io.array_from_sitk(out), int(f.GetObjectCount())


def _marrow(dense: np.ndarray, h: np.ndarray, params: DetectParams, vox: float) -> np.ndarray | None:
    """Marrow cavities of one component: regions enclosed by its dense voxels (in 3D, or
    else in cross-section), big enough and much less dense than the shell around them."""
    face = ndimage.generate_binary_structure(3, 1)
    for attempt in ("3d", "planar"):
        if attempt == "3d":
            cavity = ndimage.binary_fill_holes(dense) & ~dense
        else:  # a cavity open at a thin bone end is still enclosed in cross-section
            cavity = np.zeros(dense.shape, bool)
            for planar in _PLANAR:
                cavity |= ndimage.binary_fill_holes(dense, structure=planar) & ~dense
        if not cavity.any():
            continue
        cav_lab, n_cav = ndimage.label(cavity, structure=face)
        cav_size = np.bincount(cav_lab.ravel())[1:] * vox
        # noise holes inside a lesion whose density is near the cortical level are not marrow
        ring_lab = ndimage.grey_dilation(cav_lab, footprint=face) * (dense & (cav_lab == 0))
        ids = np.arange(1, n_cav + 1)
        inside_mean = np.asarray(ndimage.mean(h, cav_lab, ids))
        ring_mean = np.asarray(ndimage.mean(h, ring_lab, ids))
        good = ids[(cav_size >= params.min_marrow_mm3) & (ring_mean - inside_mean >= params.marrow_contrast_hu)]
        if good.size:
            return np.isin(cav_lab, good)
    return None


def find_bone_ct(hu: np.ndarray, geometry: Geometry, candidate: np.ndarray, params: DetectParams,
                 comp_labels: np.ndarray | None = None, n_comp: int | None = None,
                 progress: Progress | None = None, objects: list | None = None) -> np.ndarray:
    """Bone voxels among the candidate voxels (see module docstring), as a mask on the grid."""
    if comp_labels is None:
        comp_labels, n_comp = label_candidates(candidate, params.connectivity)
    sp = _spacing_kji(geometry)
    vox = geometry.voxel_volume_mm3
    bone = np.zeros(hu.shape, dtype=bool)
    objs = objects if objects is not None else ndimage.find_objects(comp_labels)
    min_vox = params.min_bone_mm3 / vox
    big = [(k + 1, sl) for k, sl in enumerate(objs) if sl is not None
           and np.prod([s.stop - s.start for s in sl]) >= min_vox]
    rim_ball = _ball(sp, params.rim_mm) | ndimage.generate_binary_structure(3, 1)  # at least one voxel each way
    full = np.ones((3, 3, 3), bool)
    for count, (lab_id, sl) in enumerate(big):
        report(progress, count / max(len(big), 1), "finding bone")
        sl = _grow_box(sl, (1, 1, 1), hu.shape)
        comp = comp_labels[sl] == lab_id
        if comp.sum() < min_vox:
            continue
        h = hu[sl]
        dense = comp & (h >= params.cortical_hu)
        if not dense.any():
            continue
        marrow = _marrow(dense, h, params, vox)
        if marrow is None:
            continue
        # dense voxels connected to the marrow (its cortex), not dense lesions beside it
        dense_lab, _ = ndimage.label(dense, structure=full)
        touching = np.unique(dense_lab[ndimage.binary_dilation(marrow, structure=full) & dense])
        touching = touching[touching > 0]
        shell = np.isin(dense_lab, touching)
        dist = ndimage.distance_transform_edt(~marrow, sampling=sp)
        core = marrow | (shell & (dist <= params.cortex_max_mm))
        rim = ndimage.binary_dilation(core, structure=rim_ball) & comp & ~dense
        bone[sl] |= (core | rim) & comp
    return bone


def _drop_bone_slivers(groups: list[np.ndarray], sources: list[str], bone: np.ndarray, geometry: Geometry,
                       sliver_mm: float) -> tuple[list[np.ndarray], list[str]]:
    """Drop candidates lying against bone that never get farther than ``sliver_mm`` from
    it: the partial-volume edge of a bone, not a deposit (a real deposit touching bone
    reaches beyond that; one thinner than it cannot be told from bone in the image)."""
    if sliver_mm <= 0:
        return groups, sources
    sp = _spacing_kji(geometry)
    shape = bone.shape
    flat = bone.reshape(-1)
    pad = tuple(int(v) for v in np.ceil(sliver_mm / sp) + 2)
    keep_g, keep_s = [], []
    for g, src in zip(groups, sources):
        kji = np.unravel_index(g, shape)
        near = np.zeros(g.size, bool)
        for axis in range(3):
            for step in (-1, 1):
                nb = list(kji)
                nb[axis] = kji[axis] + step
                ok = (nb[axis] >= 0) & (nb[axis] < shape[axis])
                near |= ok & flat[np.ravel_multi_index(tuple(np.where(ok, c, 0) for c in nb), shape)]
        if not near.any():
            keep_g.append(g)
            keep_s.append(src)
            continue
        sl = _grow_box(tuple(slice(int(c.min()), int(c.max()) + 1) for c in kji), pad, shape)
        dist = ndimage.distance_transform_edt(~bone[sl], sampling=sp)
        local = tuple(c - s_.start for c, s_ in zip(kji, sl))
        if dist[local].max() > sliver_mm:
            keep_g.append(g)
            keep_s.append(src)
    return keep_g, keep_s


def _bounding_box(mask: np.ndarray, pad: tuple[int, int, int]) -> tuple[slice, slice, slice] | None:
    pk = np.flatnonzero(mask.any(axis=(1, 2)))
    if pk.size == 0:
        return None
    pj = np.flatnonzero(mask.any(axis=(0, 2)))
    pi = np.flatnonzero(mask.any(axis=(0, 1)))
    return _grow_box((slice(pk[0], pk[-1] + 1), slice(pj[0], pj[-1] + 1), slice(pi[0], pi[-1] + 1)), pad, mask.shape)


def _sub_geometry(geometry: Geometry, box: tuple[slice, slice, slice]) -> Geometry:
    off = np.array([box[2].start, box[1].start, box[0].start], float)
    size = (box[2].stop - box[2].start, box[1].stop - box[1].start, box[0].stop - box[0].start)
    return Geometry.create(size, geometry.spacing, geometry.ijk_to_ras(off), geometry.direction)


def _to_full(groups: list[np.ndarray], box: tuple[slice, slice, slice], local_shape, full_shape) -> list[np.ndarray]:
    out = []
    for g in groups:
        kk, jj, ii = np.unravel_index(g, local_shape)
        out.append(np.ravel_multi_index((kk + box[0].start, jj + box[1].start, ii + box[2].start), full_shape))
    return out


def detect_ct(volume: Volume, params: DetectParams, region: np.ndarray | None = None,
              exclude: np.ndarray | None = None, progress: Progress | None = None) -> Detection:
    params = replace(params, threshold=DEFAULT_CT_THRESHOLD_HU if params.threshold is None else params.threshold)
    params.validate()
    if volume.is_2d:
        raise InputError("CT detection needs a 3D image; this image is 2D (a radiograph? use --modality xr)")
    geom = volume.geometry
    report(progress, 0.0, "thresholding")
    cand_full = volume.array >= params.threshold
    if region is not None:
        cand_full &= region.astype(bool, copy=False)
    if exclude is not None:
        cand_full &= ~exclude.astype(bool, copy=False)
    # everything below happens inside the candidates' bounding box (plus room for outlines)
    sp = _spacing_kji(geom)
    pad = tuple(int(v) for v in np.ceil(4.0 / sp) + 1)
    box = _bounding_box(cand_full, pad)
    bone_full = np.zeros(geom.shape, bool) if params.exclude_bone else None
    if box is None:
        lesions = build_lesion_set([], [], geom, params)
        return Detection(lesions, "CT", _ct_param_dict(params), bone_full, np.zeros(0, bool))
    hu = volume.array[box]
    cand = cand_full[box]
    del cand_full
    sub = _sub_geometry(geom, box)
    comp, n = label_candidates(cand, params.connectivity)
    objs = ndimage.find_objects(comp)
    report(progress, 0.15, f"{n} candidate components")
    bone = np.zeros(hu.shape, bool)
    if params.exclude_bone and n:
        bone = find_bone_ct(hu, sub, cand, params, comp, n, progress.sub(0.15, 0.6) if progress else None, objs)
    report(progress, 0.6, "separating lesions from bone")
    groups, sources = _lesion_groups_after_bone(comp, n, bone, params, sub, objs)
    del comp
    if params.boundary == "half-max":
        report(progress, 0.75, f"drawing {len(groups)} lesion outlines")
        groups = refine_edges(hu, sub, groups, bone, params.edge_fraction, below=False,
                              connectivity=params.connectivity)
    if params.exclude_bone and bone.any():
        groups, sources = _drop_bone_slivers(groups, sources, bone, sub, params.bone_sliver_mm)
    groups = _to_full(groups, box, hu.shape, geom.shape)
    if bone_full is not None:
        bone_full[box] = bone
    lesions = build_lesion_set(groups, sources, geom, params)
    touches = _touches(lesions, bone_full)
    det = Detection(lesions, "CT", _ct_param_dict(params), bone_full, touches)
    report(progress, 1.0, f"{lesions.n} lesions")
    return det


def _ct_param_dict(params: DetectParams) -> dict:
    d = params.to_dict()
    for k in XR_PARAMS + ("mri_void_fraction",):
        d.pop(k)
    d["threshold_unit"] = "HU"
    d["min_size_unit"] = "mm3"
    return d


def _lesion_groups_after_bone(comp: np.ndarray, n: int, bone: np.ndarray, params: DetectParams,
                              geom: Geometry, objs: list | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Flat voxel indices of each lesion: candidate components minus bone, split again
    where bone removal left separate pieces."""
    idx = np.flatnonzero(comp)
    lab = comp.reshape(-1)[idx]
    is_bone = bone.reshape(-1)[idx]
    idx, lab = idx[~is_bone], lab[~is_bone]
    if idx.size == 0:
        return [], []
    order = np.argsort(lab, kind="stable")
    idx, lab = idx[order], lab[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], lab.size]
    touched = set(np.unique(comp[bone]).tolist()) if bone.any() else set()
    touched.discard(0)
    objs = objs if objs is not None else ndimage.find_objects(comp)
    struct = _structure(params.connectivity, geom.is_2d)
    groups, sources = [], []
    for a, b in zip(starts, ends):
        L = int(lab[a])
        g = idx[a:b]
        if L not in touched:
            groups.append(g)
            sources.append("threshold")
            continue
        sl = objs[L - 1]
        local = np.zeros([s.stop - s.start for s in sl], bool)
        kk, jj, ii = np.unravel_index(g, comp.shape)
        local[kk - sl[0].start, jj - sl[1].start, ii - sl[2].start] = True
        sub, m = ndimage.label(local, structure=struct)
        for q in range(1, m + 1):
            groups.append(_crop_flat(sl, comp.shape, sub == q))
            sources.append("threshold")
    return groups, sources


def _touches(lesions: LesionSet, bone: np.ndarray | None) -> np.ndarray:
    """Per lesion: does one of its voxels share a face with bone?"""
    out = np.zeros(lesions.n, dtype=bool)
    if bone is None or lesions.n == 0:
        return out
    shape = bone.shape
    flat = bone.reshape(-1)
    kji = np.unravel_index(lesions.voxel_index, shape)
    hit = np.zeros(lesions.voxel_index.size, dtype=bool)
    for axis in range(3):
        for step in (-1, 1):
            nb = list(kji)
            nb[axis] = kji[axis] + step
            ok = (nb[axis] >= 0) & (nb[axis] < shape[axis])
            idx = np.ravel_multi_index(tuple(np.where(ok, c, 0) for c in nb), shape)
            hit |= ok & flat[idx]
    out[np.unique(lesions.voxel_label[hit]) - 1] = True
    return out


# ---------------------------------------------------------------------- edges (half-max)
def refine_edges(image: np.ndarray, geometry: Geometry, groups: list[np.ndarray], forbidden: np.ndarray | None,
                 fraction: float, below: bool, limit: np.ndarray | None = None, connectivity: str = "face",
                 grow_mm: float | None = None) -> list[np.ndarray]:
    """Redraw each lesion at ``fraction`` of the way from its local background to its
    plateau (see module docstring).  ``forbidden`` voxels (bone) are never taken;
    lesions never take each other's voxels; growth is limited to ``grow_mm`` (default
    two voxels) around the detected lesion."""
    if not groups:
        return []
    is_2d = geometry.is_2d
    sp = _spacing_kji(geometry)
    shape = image.shape
    owner = np.zeros(shape, dtype=np.int32)
    flat_owner = owner.reshape(-1)
    for n, g in enumerate(groups, start=1):
        flat_owner[g] = n
    step = sp[1:].min() if is_2d else sp.min()
    grow = 2.0 * step if grow_mm is None else grow_mm
    pad_vox = np.ceil((grow + 4 * step) / sp).astype(int)
    if is_2d:
        pad_vox[0] = 0
    grow_ball = _ball(sp, grow, is_2d)
    # the shell for the background skips the lesion's own partial-volume layer: at least
    # one voxel along every axis (thick MRI slices), and reaches two voxels beyond that
    one = ndimage.generate_binary_structure(3, 1)
    if is_2d:
        one[0] = False
        one[2] = False
    b1 = _ball(sp, 1.01 * step, is_2d)
    inner_ball = _pad_to(b1, one.shape) | _pad_to(one, b1.shape)
    outer_r = max(3.01 * step, 2.01 * (sp[1:].max() if is_2d else sp.max()))
    outer_ball = _ball(sp, outer_r, is_2d)
    struct = _structure(connectivity, is_2d)
    out = []
    flat_img = image.reshape(-1)
    for n, g in enumerate(groups, start=1):
        kk, jj, ii = np.unravel_index(g, shape)
        sl = _grow_box((slice(kk.min(), kk.max() + 1), slice(jj.min(), jj.max() + 1), slice(ii.min(), ii.max() + 1)),
                       tuple(int(p) for p in pad_vox), shape)
        own = owner[sl]
        mine = own == n
        img = image[sl].astype(np.float64)
        blocked = (own != 0) & ~mine
        if forbidden is not None:
            blocked |= forbidden[sl]
        shell = ndimage.binary_dilation(mine, structure=outer_ball) & ~ndimage.binary_dilation(mine, structure=inner_ball)
        shell &= ~blocked
        if shell.sum() < 4:
            out.append(g)
            continue
        vals = flat_img[g].astype(np.float64)
        bg = float(np.median(img[shell]))
        if below:
            k = max(1, int(np.ceil(0.1 * vals.size)))
            plateau = float(np.mean(np.partition(vals, k - 1)[:k]))
            if plateau >= bg:
                out.append(g)
                continue
            t = bg - fraction * (bg - plateau)
            cand = img <= t
        else:
            k = max(1, int(np.ceil(0.1 * vals.size)))
            plateau = float(np.mean(np.partition(vals, vals.size - k)[vals.size - k:]))
            if plateau <= bg:
                out.append(g)
                continue
            t = bg + fraction * (plateau - bg)
            cand = img >= t
        cand &= ndimage.binary_dilation(mine, structure=grow_ball) & ~blocked
        if limit is not None:
            cand &= limit[sl]
        lab, m = ndimage.label(cand, structure=struct)
        if m == 0:
            out.append(g)
            continue
        keep_ids = np.unique(lab[mine & cand])
        keep_ids = keep_ids[keep_ids > 0]
        if keep_ids.size == 0:
            # the lesion's own voxels all fall below its edge level (tiny lesion): keep the detection
            out.append(g)
            continue
        new = np.isin(lab, keep_ids)
        own[mine] = 0          # later lesions see this one's new outline, not its old one
        own[new] = n
        out.append(_crop_flat(sl, shape, new))
    return out


# ---------------------------------------------------------------------- radiograph
def detect_xr(volume: Volume, params: DetectParams, region: np.ndarray | None = None,
              exclude: np.ndarray | None = None, progress: Progress | None = None,
              landmarks=None) -> Detection:
    """Radiograph deposits (see :mod:`calcinosis.hand.xr`).  ``landmarks`` (a
    :class:`~.landmarks.HandLandmarks`, optional) enables the bone-symmetry and carpus tests."""
    from . import xr as xd
    params.validate()
    if not volume.is_2d:
        raise InputError(f"radiograph detection needs a 2D image; this image has {volume.geometry.size_ijk[2]} slices "
                         "(a CT or MRI? use --modality ct or mri)")
    if params.boundary == "threshold" and params.threshold is None:
        raise InputError("--boundary threshold on a radiograph needs --threshold (image units)")
    geom = volume.geometry
    img = volume.array[0]
    sx, sy = float(geom.spacing[0]), float(geom.spacing[1])
    warnings = []
    if abs(sx - sy) > 0.02 * max(sx, sy):
        warnings.append(f"radiograph pixels are not square ({sx:g} x {sy:g} mm): detection uses their mean size")
    pix = float(np.sqrt(sx * sy))
    k = max(1, int(np.floor(xd.ANALYSIS_SPACING_MM / pix + 0.25)))
    apx = pix * k
    report(progress, 0.0, "preparing the image")
    a_img = xd.block_mean(img, k)
    reg2 = region[0].astype(bool) if region is not None else None
    exc2 = exclude[0].astype(bool) if exclude is not None else None
    a_reg = xd.block_mean(reg2.astype(np.float32), k) >= 0.5 if reg2 is not None else None
    a_exc = xd.block_mean(exc2.astype(np.float32), k) >= 0.5 if exc2 is not None else None
    # the hand model and the candidates do not depend on the minimum size: the readings of one
    # image that differ only in it share them (calcinosis.core.memo, batch runs)
    def hand_and_candidates():
        stage_warnings = []
        search_exclude = a_exc
        report(progress, 0.01, "finding the hand and its bones")
        model = build_hand_model(img, pix)
        stage_warnings += model.warnings
        used, side, side_source, side_warnings = complete_landmarks(
            landmarks, model, volume.meta.get("laterality"), lambda side: model_landmarks(model, geom, side))
        stage_warnings += side_warnings
        bones = xd.BoneModel.from_landmarks(used, geom, k, apx)
        # candidates lie in the hand (markers, text, collimation and the air are not searched); the
        # noise is measured in its soft tissue
        def on_analysis_grid(mask: np.ndarray, cover: float) -> np.ndarray:
            """A model-grid mask on the analysis grid: blocks covered more than ``cover``."""
            return xd.block_mean(model.upsample(mask, img.shape).astype(np.float32), k) > cover

        # a hand was found: the search stays in it; else (a part of one, a test object) wherever
        # there is tissue
        hand_a = on_analysis_grid(model.hand & model.tissue if model.digits else model.tissue, 0.499)
        if not model.digits:
            stage_warnings.append("radiograph: without the hand's outline the search covers wherever the image has "
                                  "signal (markers and text included)")
        bone_a = on_analysis_grid(model.bone, 0.0)
        soft_a = hand_a & ~ndimage.binary_dilation(bone_a, iterations=2)
        if hand_a.any():
            outside = ~ndimage.binary_dilation(hand_a, iterations=max(int(round(HAND_MARGIN_MM / apx)), 1))
            search_exclude = outside if search_exclude is None else (search_exclude | outside)
        # inside a region the user drew, the user has pointed at the deposits: the landmark bone
        # tests (symmetry, carpus, sesamoid sites, joint lines) are not applied there
        # the confidence cut (step 6) is not applied inside a region the user drew either
        # no image under the collimation and blanks: their nearest image continued there
        # (xr.background.fill_blank) - a bone cut by the collimator must not end in a black wall
        a_search = xd.fill_blank(a_img, on_analysis_grid(~model.tissue, 0.0))
        cands, info = xd.find_candidates(a_search, apx, params, a_reg, search_exclude, bones if reg2 is None else None,
                                         params.threshold, progress.sub(0.05, 0.95) if progress else None,
                                         tissue=soft_a if soft_a.sum() > 100 else None,
                                         min_confidence=params.xr_min_confidence if reg2 is None else 0.0)
        return model, used, side, side_source, bones, cands, info, stage_warnings

    def key():
        d = params.to_dict()
        d.pop("min_size")
        return (memo.array_key(img), repr(geom), repr(sorted(d.items())), memo.array_key(reg2), memo.array_key(exc2),
                repr(landmarks), volume.meta.get("laterality"))

    model, used, side, side_source, bones, cands, info, stage_warnings = memo.remember(
        "hand-xr-candidates", key, hand_and_candidates)
    warnings += stage_warnings
    groups, sources, confidences = [], [], []
    full_shape = img.shape
    for c in cands:
        if c.reason is not None:
            continue
        m = np.repeat(np.repeat(c.patch.full(a_img.shape), k, axis=0), k, axis=1)[:full_shape[0], :full_shape[1]]
        if reg2 is not None:
            m &= reg2
        if exc2 is not None:
            m &= ~exc2
        if params.boundary == "threshold":
            m &= img >= params.threshold
        if m.any():
            groups.append(np.flatnonzero(m.ravel()))
            sources.append("radiograph")
            confidences.append(c.confidence)
    lesions = build_lesion_set(groups, sources, geom, params)
    confidence = np.full(lesions.n, np.nan)
    flat_labels = lesions.labels.reshape(-1)
    for g, conf in zip(groups, confidences):
        lesion_id = int(flat_labels[g.min()])      # 0: dropped by the minimum size
        if lesion_id:
            confidence[lesion_id - 1] = conf
    rejected: dict = {}
    for c in cands:
        if c.reason is not None:
            rejected[c.reason] = rejected.get(c.reason, 0) + 1
    d = params.to_dict()
    for key in ("cortical_hu", "min_bone_mm3", "min_marrow_mm3", "marrow_contrast_hu", "cortex_max_mm", "rim_mm",
                "exclude_bone", "edge_fraction", "bone_sliver_mm", "mri_void_fraction"):
        d.pop(key)
    d.update({"threshold_unit": "image units (minimum peak contrast above the local background)",
              "threshold_used": info["threshold_used"], "noise_sd_estimate": info["noise_sd_estimate"],
              "min_size_unit": "mm2", "analysis_pixel_mm": round(apx, 6), "blob_scales_mm": list(xd.SEED_SCALES_MM),
              "bone_model": ("none" if bones is None else
                             "landmarks" if reg2 is None else "landmarks (not applied inside the drawn region)"),
              "hand_model": {"found": bool(model.hand.any()), "digits": [d.name for d in model.digits],
                             "side": side, "side_source": side_source,
                             "automatic_landmarks": sorted(k_.label for k_ in used.automatic) if used is not None else [],
                             "hand_area_mm2": round(float(model.hand.sum()) * model.pixel_mm ** 2, 1)},
              "min_confidence_applied": params.xr_min_confidence if reg2 is None else 0.0,
              "seeds": info["n_seeds"], "seeds_skipped": info["seeds_skipped"],
              "candidates_examined": len(cands), "candidates_rejected": rejected,
              "carpal_contrast_level": info["carpal_contrast_level"]})
    det = Detection(lesions, "XR", d, warnings=warnings, landmarks=used, hand_model=model, confidence=confidence)
    if bones is None and reg2 is None:
        det.warnings.append("radiograph searched without landmarks: bone ends, tufts and carpal bones cannot be told "
                            "from deposits (the symmetry and carpus tests need the digits' axes); review the "
                            "segmentation, give --landmarks or draw a region")
    if reg2 is None:
        det.warnings.append("radiograph searched without a region: deposits superimposed on a joint or a tuft, or small "
                            "ones over the carpal bones, can be missed and a bone end can remain; review the "
                            "segmentation (or draw a region around the lesions)")
    report(progress, 1.0, f"{lesions.n} lesions")
    return det


#: candidates are searched in the hand found on the image, widened by this margin (mm)
HAND_MARGIN_MM = 1.0


# ---------------------------------------------------------------------- MRI
def region_border_median(image: np.ndarray, region: np.ndarray) -> float:
    """Median signal on the region's outer layer (its voxels with a neighbour outside)."""
    inner = ndimage.binary_erosion(region, structure=ndimage.generate_binary_structure(3, 1), border_value=0)
    border = region & ~inner
    if not border.any():
        border = region
    return float(np.median(image[border]))


def detect_mri(volume: Volume, params: DetectParams, region: np.ndarray | None,
               exclude: np.ndarray | None = None, progress: Progress | None = None) -> Detection:
    """MRI signal voids inside the region the user drew (see module docstring)."""
    params.validate()
    if volume.is_2d:
        raise InputError("MRI detection needs a 3D image; this image is 2D (a radiograph? use --modality xr)")
    if region is None:
        raise InputError("MRI: draw a region around the lesions first (a segment in Slicer, --roi SEG on the command "
                         "line): calcinosis is dark on MRI, like cortical bone, tendons and air, so it is only "
                         "searched where you point")
    reg = region.astype(bool, copy=False)
    if not reg.any():
        raise InputError("MRI: the region is empty; draw it around the lesions")
    img = volume.array
    geom = volume.geometry
    report(progress, 0.0, "thresholding inside the region")
    border = region_border_median(img, reg)
    thr = params.threshold if params.threshold is not None else params.mri_void_fraction * border
    cand = (img <= thr) & reg
    if exclude is not None:
        cand &= ~exclude.astype(bool, copy=False)
    lab, n = _components(cand, params.connectivity, False)
    groups = []
    if n:
        idx = np.flatnonzero(lab)
        l = lab.reshape(-1)[idx]
        order = np.argsort(l, kind="stable")
        idx, l = idx[order], l[order]
        starts = np.flatnonzero(np.r_[True, l[1:] != l[:-1]])
        groups = np.split(idx, starts[1:])
    report(progress, 0.5, f"{len(groups)} candidate voids")
    if params.boundary == "half-max" and groups:
        blocked = ~reg if exclude is None else (~reg | exclude.astype(bool))
        groups = refine_edges(img, geom, groups, blocked, params.edge_fraction, below=True,
                              connectivity=params.connectivity)
    lesions = build_lesion_set(groups, ["mri void"] * len(groups), geom, params)
    d = params.to_dict()
    for k in ("cortical_hu", "min_bone_mm3", "min_marrow_mm3", "marrow_contrast_hu", "cortex_max_mm", "rim_mm",
              "exclude_bone") + XR_PARAMS:
        d.pop(k)
    d.update({"threshold_unit": "image units (voxels at or below are candidates)", "threshold_used": thr,
              "region_border_median": border, "min_size_unit": "mm3", "region_voxels": int(reg.sum())})
    det = Detection(lesions, "MR", d)
    report(progress, 1.0, f"{lesions.n} lesions")
    return det


def detect(volume: Volume, modality: str, params: DetectParams, region: np.ndarray | None = None,
           exclude: np.ndarray | None = None, progress: Progress | None = None, landmarks=None) -> Detection:
    """Dispatch on modality ('CT', 'MR', 'XR'); ``landmarks`` are used by the radiograph detector."""
    m = (modality or "").upper()
    if m == "CT":
        return detect_ct(volume, params, region, exclude, progress)
    if m in ("MR", "MRI"):
        return detect_mri(volume, params, region, exclude, progress)
    if m in ("XR", "CR", "DX"):
        return detect_xr(volume, params, region, exclude, progress, landmarks)
    raise InputError(f"--modality: expected xr, ct or mri, got {modality!r}")
