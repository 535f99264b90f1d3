"""The rigid motion that carries the follow-up image onto the baseline's (SimpleITK).

Mattes mutual information (the two scans' intensities need not agree: another kVp, kernel or
contrast), a rigid (Euler) transform started from the images' centres of mass, a
regular-step gradient descent over two resolutions (4 and 2 x the voxel; smoothed 2 and 1
mm: the full resolution added 0.02 mm and twice the time on the hand phantom), a fixed random sample of the voxels (the seed fixed: the same images give the same
motion).  CT is clipped to soft tissue and bone (-200 to 1,500 HU) first, so that neither
air nor the densest voxels steer it.

A :class:`RigidMotion` maps follow-up RAS points to baseline RAS points and back, and
resamples a follow-up label map onto the baseline's grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calcinosis.core import image_io
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.progress import Progress, report

#: CT intensities the registration sees (HU)
CT_WINDOW_HU = (-200.0, 1500.0)
SHRINK_FACTORS = (4, 2)
SMOOTHING_MM = (2.0, 1.0)
SAMPLING_FRACTION = 0.05
SAMPLING_SEED = 20261207
ITERATIONS = 200
_FLIP = np.diag([-1.0, -1.0, 1.0])      # RAS <-> LPS


@dataclass
class RigidMotion:
    """``matrix`` and ``offset`` (RAS, mm): a follow-up point q is at ``matrix @ q + offset``
    in the baseline.  ``record``: how it was found (for provenance)."""

    matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    record: dict = field(default_factory=dict)

    def to_baseline(self, ras: np.ndarray) -> np.ndarray:
        return np.atleast_2d(np.asarray(ras, float)) @ self.matrix.T + self.offset

    @property
    def rotation_deg(self) -> float:
        c = (np.trace(self.matrix) - 1.0) / 2.0
        return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))

    def as_record(self) -> dict:
        """The motion itself, for provenance (enough to rebuild it: :func:`motion_from_record`)."""
        return {"matrix_ras": [[round(float(v), 9) for v in row] for row in self.matrix],
                "offset_ras_mm": [round(float(v), 6) for v in self.offset]}

    def to_followup(self, ras: np.ndarray) -> np.ndarray:
        """Baseline RAS points -> follow-up RAS points (the inverse motion)."""
        return (np.atleast_2d(np.asarray(ras, float)) - self.offset) @ np.linalg.inv(self.matrix).T

    def sitk_transform(self):
        """The ITK transform of a resampling onto the baseline: baseline LPS point -> follow-up
        LPS point (the inverse motion, in LPS)."""
        import SimpleITK as sitk
        inv = np.linalg.inv(self.matrix)
        m_lps = _FLIP @ inv @ _FLIP
        o_lps = _FLIP @ (-inv @ self.offset)
        t = sitk.AffineTransform(3)
        t.SetMatrix(tuple(float(v) for v in m_lps.ravel()))
        t.SetTranslation(tuple(float(v) for v in o_lps))
        return t

    def resample_labels(self, labels: np.ndarray, geometry: Geometry, onto: Geometry) -> np.ndarray:
        """A follow-up label map (on ``geometry``) on the baseline grid ``onto`` (nearest)."""
        import SimpleITK as sitk
        moving = image_io.array_to_sitk(labels, geometry)
        reference = image_io.array_to_sitk(np.zeros(onto.shape, np.uint8), onto)
        out = sitk.Resample(moving, reference, self.sitk_transform(), sitk.sitkNearestNeighbor, 0,
                            moving.GetPixelID())
        return sitk.GetArrayFromImage(out)


def labels_on_grid(labels: np.ndarray, geometry: Geometry, onto: Geometry) -> np.ndarray:
    """A label map (on ``geometry``) on the grid ``onto``: itself when the grids are the same,
    else resampled where it lies (nearest; a spine result's grid is the spine's box only)."""
    if geometry.same_grid(onto):
        return labels
    return RigidMotion().resample_labels(labels, geometry, onto)


def identity(reason: str) -> RigidMotion:
    motion = RigidMotion(record={"method": "none", "reason": reason})
    motion.record.update(motion.as_record())
    return motion


def mapping_from_record(record: dict) -> "PiecewiseMotion":
    """The global and local motions a follow-up's provenance recorded."""
    motion = motion_from_record(record)
    local = [motion_from_record(r) for r in record.get("local") or []]
    anchors = [r["anchor_ras_mm"] for r in record.get("local") or []]
    return PiecewiseMotion(motion, np.array(anchors, float).reshape(-1, 3), local)


def motion_from_record(record: dict) -> RigidMotion:
    """The motion a follow-up's provenance recorded (``parameters.registration``)."""
    try:
        return RigidMotion(np.asarray(record["matrix_ras"], float).reshape(3, 3),
                           np.asarray(record["offset_ras_mm"], float).reshape(3), dict(record))
    except (KeyError, TypeError, ValueError):
        raise InputError("the follow-up result's provenance holds no motion (parameters.registration.matrix_ras); "
                         "run calcinosis follow again") from None


#: the global registration sees at most this many voxels (a whole-body CT is averaged in blocks
#: down to it first) and samples at most MAX_SAMPLES of them per level
MAX_VOXELS, MAX_SAMPLES = 8_000_000, 60_000


def _coarse(image):
    """``image`` averaged in blocks (the same factor along each axis) to at most
    :data:`MAX_VOXELS` voxels."""
    import SimpleITK as sitk
    n = image.GetNumberOfPixels()
    if n <= MAX_VOXELS:
        return image
    f = int(np.ceil((n / MAX_VOXELS) ** (1.0 / 3.0)))
    return sitk.BinShrink(image, [f] * image.GetDimension())


def _mi_method(start, sampling: float, shrink_factors, smoothing_mm, learning_rate: float = 2.0,
               iterations: int = ITERATIONS, mask=None):
    """A SimpleITK rigid registration: Mattes mutual information (32 bins) on a fixed random
    sample of the voxels (:data:`SAMPLING_SEED`), regular-step gradient descent with scales
    from the physical shift, the given resolutions, started from ``start``."""
    import SimpleITK as sitk
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(float(sampling), SAMPLING_SEED)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=learning_rate, minStep=1e-4,
                                                    numberOfIterations=iterations, relaxationFactor=0.5,
                                                    gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(smoothing_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(start, inPlace=False)
    return method


def _windowed(a: np.ndarray, ct: bool) -> np.ndarray:
    """The voxels as registration sees them: float, a CT clipped to :data:`CT_WINDOW_HU`."""
    a = a.astype(np.float32)
    return np.clip(a, *CT_WINDOW_HU) if ct else a


def _prepared(volume, ct: bool):
    return image_io.array_to_sitk(_windowed(volume.array, ct), volume.geometry)


def _box_around(geometry, centre_ras, half_mm: float):
    """(index box, its geometry) of the voxels within ``half_mm`` of ``centre_ras`` along each
    axis; None when fewer than 8 voxels of it along an axis lie in the image."""
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])
    centre = np.round(geometry.ras_to_ijk(np.asarray(centre_ras, float)[None])[0]).astype(int)[::-1]
    half = np.ceil(half_mm / sp).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, np.array(geometry.shape))
    if np.any(hi - lo < 8):
        return None
    origin = geometry.ijk_to_ras(np.array([[lo[2], lo[1], lo[0]]], float))[0]
    sub = type(geometry).create((hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]), geometry.spacing, origin,
                                geometry.direction)
    return tuple(slice(a, b) for a, b in zip(lo, hi)), sub


def _euler_parts(found, dimension: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix, centre, translation) of the Euler transform a registration found (it returns
    it wrapped in a composite): baseline point x -> follow-up point a (x - c) + c + t."""
    import SimpleITK as sitk
    kind = sitk.Euler3DTransform if dimension == 3 else sitk.Euler2DTransform
    composite = sitk.CompositeTransform(found)
    flat = composite.GetNthTransform(0) if composite.GetNumberOfTransforms() else found
    euler = flat if isinstance(flat, kind) else kind(flat)
    return (np.array(euler.GetMatrix()).reshape(dimension, dimension), np.array(euler.GetCenter()),
            np.array(euler.GetTranslation()))


def _execute(method, fixed, moving, what: str):
    """``method.Execute``; a failure as one line naming the way out."""
    try:
        return method.Execute(fixed, moving)
    except RuntimeError as e:
        raise InputError(f"registration failed ({str(e).strip().splitlines()[-1][:200]}); give --registration none "
                         f"if the {what} are already aligned") from None


def _motion_of(found) -> RigidMotion:
    """A SimpleITK rigid transform (baseline LPS point -> follow-up LPS point) as the motion
    (follow-up RAS -> baseline RAS): its inverse, in RAS."""
    a, c, t = _euler_parts(found, 3)
    # y_lps = a (x_lps - c) + c + t  (baseline -> follow-up)
    m_ras = _FLIP @ a @ _FLIP
    o_ras = _FLIP @ (c + t - a @ c)
    inv = np.linalg.inv(m_ras)
    return RigidMotion(inv, -inv @ o_ras)


def _euler_of(motion: RigidMotion, centre_ras: np.ndarray):
    """The motion's resampling transform (baseline LPS -> follow-up LPS) as an Euler 3D
    transform centred at ``centre_ras``: a start for a local registration."""
    import SimpleITK as sitk
    inv = np.linalg.inv(motion.matrix)
    a = _FLIP @ inv @ _FLIP
    b = _FLIP @ (-inv @ motion.offset)
    c = _FLIP @ np.asarray(centre_ras, float)
    e = sitk.Euler3DTransform()
    e.SetCenter(tuple(float(v) for v in c))
    e.SetMatrix(tuple(float(v) for v in a.ravel()), 1e-5)
    e.SetTranslation(tuple(float(v) for v in (b + a @ c - c)))
    return e


#: local refinement (issue 14: "per bone where the fingers moved, per vertebra"): the box
#: around each baseline lesion registered on its own (half width, mm), what a local motion may
#: differ from the global one before it is refused (mm at the lesion, degrees), the lesions
#: themselves masked out of it (they changed) with this margin (mm)
LOCAL_HALF_MM = 12.0
LOCAL_MAX_SHIFT_MM, LOCAL_MAX_ROTATION_DEG = 12.0, 35.0
LOCAL_LESION_MARGIN_MM = 1.0
LOCAL_SAMPLING_FRACTION = 0.3
#: a point is carried by a local motion that brings it this near (mm) to the motion's anchor: two
#: boxes' reach - a calcification between two vertebral bodies lies ~20 mm from each
LOCAL_REACH_MM = 2.0 * LOCAL_HALF_MM
#: a local motion found for an anchor is tried as the start of the next anchors within this (mm)
CHAIN_MM = 45.0


def refine_locally(baseline, followup, motion: RigidMotion, anchors_ras: np.ndarray, baseline_lesions: np.ndarray,
                   progress: Progress | None = None, chain_keys: list | None = None) -> list[RigidMotion | None]:
    """A rigid motion per anchor (a baseline lesion's centroid): the box of
    :data:`LOCAL_HALF_MM` around it in the baseline - its bone and soft tissue, its lesions
    masked out - registered to the follow-up (cropped around where the start puts it), started from ``motion`` and from the motion found
    for the nearest anchor done before it with the same ``chain_keys`` value (a finger, its
    digit, moves as a chain: the anchors nearest the image's bone mass first).  Kept when it fits the
    box better than ``motion`` does and stays within :data:`LOCAL_MAX_SHIFT_MM` and
    :data:`LOCAL_MAX_ROTATION_DEG` of it; else None (the global motion holds there)."""
    ct = str(baseline.modality or "").upper() == "CT"
    g = baseline.geometry
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    anchors_ras = np.atleast_2d(np.asarray(anchors_ras, float))
    out: list[RigidMotion | None] = [None] * len(anchors_ras)
    # a finger moves as a chain: the anchors nearest the body of the image first, each started
    # also from the motion found for the nearest anchor done before it (within CHAIN_MM)
    order = np.argsort(np.linalg.norm(anchors_ras - _mass_centre(baseline, ct), axis=1), kind="stable")
    for n, k in enumerate(order):
        anchor = anchors_ras[k]
        report(progress, n / max(len(anchors_ras), 1), f"local registration {n + 1} of {len(anchors_ras)}")
        starts = [motion]
        done = [j for j in order[:n] if out[j] is not None
                and (chain_keys is None or (chain_keys[k] is not None and chain_keys[j] == chain_keys[k]))]
        if done:
            d = np.linalg.norm(anchors_ras[done] - anchor, axis=1)
            near = out[done[int(np.argmin(d))]]
            gap = float(np.linalg.norm(near.to_followup(anchor[None]) - motion.to_followup(anchor[None])))
            if d.min() <= CHAIN_MM and gap > 1.0:
                starts.append(near)
        out[k] = _refine_one(baseline, followup, motion, starts, anchor, baseline_lesions, g, sp, ct)
    report(progress, 1.0, "local registration done")
    return out


def _crop(volume, centre_ras, half_mm: float, ct: bool):
    """The voxels of ``volume`` within ``half_mm`` of ``centre_ras`` along each axis (an index
    box), as a SimpleITK image; None when the box misses the image."""
    boxed = _box_around(volume.geometry, centre_ras, half_mm)
    if boxed is None:
        return None
    box, sub_geom = boxed
    return image_io.array_to_sitk(_windowed(volume.array[box], ct), sub_geom)


def _mass_centre(volume, ct: bool) -> np.ndarray:
    """Where the image's bone (CT: over 300 HU) or signal lies, on average (RAS)."""
    a = volume.array[::4, ::4, ::4].astype(np.float32)
    w = (a > 300.0).astype(np.float32) if ct else np.clip(a - np.percentile(a, 50), 0, None)
    if not w.any():
        w = np.ones_like(a)
    kji = np.argwhere(w > 0)
    c = (kji * w[w > 0][:, None]).sum(0) / w[w > 0].sum() * 4
    return volume.geometry.ijk_to_ras(c[::-1][None])[0]


def _refine_one(baseline, followup, motion: RigidMotion, starts: list, anchor: np.ndarray, baseline_lesions, g, sp,
                ct: bool) -> RigidMotion | None:
    """The local motion at one anchor from the best of ``starts`` (the global motion first;
    see :func:`refine_locally`)."""
    from scipy import ndimage
    boxed = _box_around(g, anchor, LOCAL_HALF_MM)
    if boxed is None:
        return None
    box, sub_geom = boxed
    fixed = image_io.array_to_sitk(_windowed(baseline.array[box], ct), sub_geom)
    lesion = baseline_lesions[box] > 0
    if lesion.any():
        lesion = ndimage.distance_transform_edt(~lesion, sampling=sp) <= LOCAL_LESION_MARGIN_MM
    mask = image_io.array_to_sitk((~lesion).astype(np.uint8), sub_geom)
    global_fit, best = None, None
    for n, start_motion in enumerate(starts):
        # the follow-up around where this start puts the anchor: enough for the motion to find
        moving = _crop(followup, start_motion.to_followup(anchor[None])[0], LOCAL_HALF_MM + LOCAL_MAX_SHIFT_MM + 4.0, ct)
        if moving is None:
            continue
        found = _register_box(fixed, moving, mask, _euler_of(start_motion, anchor))
        if found is None:
            continue
        before, after, local = found
        if n == 0:
            global_fit = before          # how well the global motion fits the box
        # how far the motion found moved the anchor from where its start put it
        moved = float(np.linalg.norm(local.to_followup(anchor[None]) - start_motion.to_followup(anchor[None])))
        if moved <= LOCAL_MAX_SHIFT_MM and (best is None or after < best[0]):
            best = (after, local)
    if best is None or global_fit is None:
        return None
    after, local = best
    shift = float(np.linalg.norm(local.to_baseline(motion.to_followup(anchor[None]))[0] - anchor))
    relative = RigidMotion(local.matrix @ np.linalg.inv(motion.matrix))
    if not (after < global_fit) or relative.rotation_deg > LOCAL_MAX_ROTATION_DEG:
        return None
    local.record = {"anchor_ras_mm": [round(float(v), 3) for v in anchor], "shift_from_global_mm": round(shift, 3),
                    "rotation_from_global_deg": round(relative.rotation_deg, 3),
                    "metric_global": round(float(global_fit), 6), "metric_local": round(float(after), 6),
                    **local.as_record()}
    return local


def _register_box(fixed, moving, mask, start):
    """(metric at the start, metric found, the motion found) of one local registration, or None."""
    method = _mi_method(start, LOCAL_SAMPLING_FRACTION, (2, 1), (1.0, 0.0), learning_rate=1.0, iterations=150,
                        mask=mask)
    try:
        before = method.MetricEvaluate(fixed, moving)
        found = method.Execute(fixed, moving)
        return before, method.GetMetricValue(), _motion_of(found)
    except RuntimeError:
        return None


#: radiographs: resolutions (x the pixel) and smoothing (mm) of the in-plane registration
PLANE_SHRINK_FACTORS, PLANE_SMOOTHING_MM = (8, 4, 2), (2.0, 1.0, 0.5)


def _plane_image(volume):
    """A radiograph as a 2D SimpleITK image in its own plane: x along the columns, y along the
    rows, in mm, from the first pixel."""
    import SimpleITK as sitk
    g = volume.geometry
    img = sitk.GetImageFromArray(volume.array[0].astype(np.float32))
    img.SetSpacing((float(g.spacing[0]), float(g.spacing[1])))
    return img


def register_radiographs(baseline, followup, progress: Progress | None = None) -> RigidMotion:
    """The in-plane rigid motion (turn and shift on the detector) of a follow-up radiograph onto
    the baseline's: Euler 2D, Mattes mutual information, started at the images' centres of
    mass, three resolutions; as a motion of RAS points (the image planes' own axes)."""
    import SimpleITK as sitk
    fixed, moving = _plane_image(baseline), _plane_image(followup)
    report(progress, 0.05, "registering the follow-up radiograph to the baseline")
    start = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler2DTransform(),
                                              sitk.CenteredTransformInitializerFilter.MOMENTS)
    finest = fixed.GetNumberOfPixels() / float(PLANE_SHRINK_FACTORS[-1] ** 2)
    method = _mi_method(start, min(0.2, MAX_SAMPLES / finest), PLANE_SHRINK_FACTORS, PLANE_SMOOTHING_MM)
    a, c, t = _euler_parts(_execute(method, fixed, moving, "radiographs"), 2)
    # baseline plane point x -> follow-up plane point a (x - c) + c + t; the motion is its inverse
    ainv = np.linalg.inv(a)
    b2 = c - ainv @ (c + t)
    r3 = np.eye(3)
    r3[:2, :2] = ainv
    gb, gf = baseline.geometry, followup.geometry
    db, df = gb.direction, gf.direction
    ob, of = np.asarray(gb.origin_ras, float), np.asarray(gf.origin_ras, float)
    matrix = db @ r3 @ df.T
    offset = ob + db @ np.r_[b2, 0.0] - matrix @ of
    motion = RigidMotion(matrix, offset)
    motion.record = {"method": "rigid in the detector's plane (Euler 2D), Mattes mutual information",
                     "metric_value": round(float(method.GetMetricValue()), 6),
                     "stop": method.GetOptimizerStopConditionDescription()[:200],
                     "shrink_factors": list(PLANE_SHRINK_FACTORS), "smoothing_mm": list(PLANE_SMOOTHING_MM),
                     "sampling_seed": SAMPLING_SEED, "rotation_deg": round(motion.rotation_deg, 4),
                     "translation_mm": [round(float(v), 4) for v in motion.offset], **motion.as_record()}
    report(progress, 1.0, "registered")
    return motion


#: the most values a piecewise mapping holds at once (points x anchors x 3 doubles: 64 MB)
CHUNK_VALUES = 8_000_000


class PiecewiseMotion:
    """The global motion, and near each anchor (a baseline lesion, a bone of a finger) its
    local motion: a follow-up point is carried by the local motion that brings it nearest to
    that motion's own anchor, when within :data:`LOCAL_REACH_MM`; elsewhere by the global one."""

    def __init__(self, motion: RigidMotion, anchors_ras: np.ndarray, local: list):
        self.motion = motion
        keep = [k for k, m in enumerate(local) if m is not None]
        self.anchors = np.atleast_2d(np.asarray(anchors_ras, float))[keep] if keep else np.zeros((0, 3))
        self.local = [local[k] for k in keep]

    def to_baseline(self, ras: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(np.asarray(ras, float))
        p = self.motion.to_baseline(q)
        if not self.local or not len(q):
            return p
        # each local motion carries the point somewhere: the one that carries it nearest to its own
        # anchor (within its box) holds there - not the one nearest to where the global motion puts it,
        # which a finger bent further than a box misses.  In chunks: (anchors x points x 3) at once
        # would hold gigabytes for a large deposit's supersampled voxels
        step = max(1, CHUNK_VALUES // (3 * len(self.local)))
        for lo in range(0, len(q), step):
            chunk = q[lo:lo + step]
            mapped = np.stack([m.to_baseline(chunk) for m in self.local])          # (anchors, points, 3)
            d = np.linalg.norm(mapped - self.anchors[:, None, :], axis=2)
            near = np.argmin(d, axis=0)
            within = d[near, np.arange(len(chunk))] <= LOCAL_REACH_MM
            p[lo + np.flatnonzero(within)] = mapped[near[within], np.flatnonzero(within)]
        return p

    def carry_labels(self, labels: np.ndarray, geometry, onto, supersample: int = 2) -> np.ndarray:
        """A follow-up label map on the baseline grid ``onto``: every lesion voxel, split into
        ``supersample``³ points, carried to the baseline voxel it lands in."""
        out = np.zeros(onto.shape, labels.dtype)
        idx = np.flatnonzero(labels)
        if idx.size == 0:
            return out
        kji = np.stack(np.unravel_index(idx, labels.shape), axis=1).astype(float)
        offs = (np.arange(supersample) + 0.5) / supersample - 0.5
        sub = np.stack(np.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3)
        pts = (kji[:, None, :] + sub[None, :, :]).reshape(-1, 3)
        values = np.repeat(labels.ravel()[idx], len(sub))
        ras = geometry.ijk_to_ras(pts[:, ::-1])
        target = np.round(onto.ras_to_ijk(self.to_baseline(ras))).astype(int)[:, ::-1]
        inside = np.all((target >= 0) & (target < np.array(onto.shape)), axis=1)
        out[tuple(target[inside].T)] = values[inside]
        return out

    @property
    def record(self) -> dict:
        return {"local_motions": len(self.local), "local": [m.record for m in self.local]}

    def to_followup(self, ras: np.ndarray) -> np.ndarray:
        """Baseline points to the follow-up (by the local motion of the nearest anchor within
        reach, else the global)."""
        p = np.atleast_2d(np.asarray(ras, float))
        q = self.motion.to_followup(p)
        if not self.local or not len(p):
            return q
        near = np.empty(len(p), int)
        within = np.empty(len(p), bool)
        step = max(1, CHUNK_VALUES // len(self.local))
        for lo in range(0, len(p), step):
            d = np.linalg.norm(p[lo:lo + step, None, :] - self.anchors[None, :, :], axis=2)
            near[lo:lo + step] = np.argmin(d, axis=1)
            within[lo:lo + step] = d[np.arange(len(d)), near[lo:lo + step]] <= LOCAL_REACH_MM
        for k in np.unique(near[within]):
            rows = within & (near == k)
            q[rows] = self.local[k].to_followup(p[rows])
        return q


def register_rigid(baseline, followup, progress: Progress | None = None) -> RigidMotion:
    """The rigid motion from ``followup`` to ``baseline`` (:class:`~calcinosis.core.volume.Volume`,
    3D, the same modality)."""
    import SimpleITK as sitk
    if baseline.is_2d != followup.is_2d:
        raise InputError("baseline and follow-up images: one is a radiograph (2D), the other 3D")
    if baseline.is_2d:
        return register_radiographs(baseline, followup, progress)
    ct = str(baseline.modality or "").upper() == "CT"
    fixed, moving = _coarse(_prepared(baseline, ct)), _coarse(_prepared(followup, ct))
    report(progress, 0.05, "registering the follow-up to the baseline")
    start = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                              sitk.CenteredTransformInitializerFilter.MOMENTS)
    finest = fixed.GetNumberOfPixels() / float(SHRINK_FACTORS[-1] ** 3)
    method = _mi_method(start, min(SAMPLING_FRACTION, MAX_SAMPLES / finest), SHRINK_FACTORS, SMOOTHING_MM)
    levels = {"n": 0}

    def on_level():
        levels["n"] += 1
        report(progress, 0.05 + 0.9 * levels["n"] / len(SHRINK_FACTORS), f"registration level {levels['n']}")

    method.AddCommand(sitk.sitkMultiResolutionIterationEvent, on_level)
    motion = _motion_of(_execute(method, fixed, moving, "images"))
    motion.record = {"method": "rigid (Euler 3D), Mattes mutual information", "metric_value":
                     round(float(method.GetMetricValue()), 6), "iterations_last_level":
                     int(method.GetOptimizerIteration()), "stop": method.GetOptimizerStopConditionDescription()[:200],
                     "shrink_factors": list(SHRINK_FACTORS), "smoothing_mm": list(SMOOTHING_MM),
                     "sampling_fraction": round(method.GetMetricSamplingPercentagePerLevel()[-1], 6)
                     if hasattr(method, "GetMetricSamplingPercentagePerLevel") else SAMPLING_FRACTION,
                     "sampling_seed": SAMPLING_SEED, "voxels_seen": int(fixed.GetNumberOfPixels()),
                     "ct_window_hu": list(CT_WINDOW_HU) if ct else None,
                     "rotation_deg": round(motion.rotation_deg, 4),
                     "translation_mm": [round(float(v), 4) for v in motion.offset], **motion.as_record()}
    report(progress, 1.0, "registered")
    return motion
