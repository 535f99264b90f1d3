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


def identity(reason: str) -> RigidMotion:
    motion = RigidMotion(record={"method": "none", "reason": reason})
    motion.record.update(motion.as_record())
    return motion


def motion_from_record(record: dict) -> RigidMotion:
    """The motion a follow-up's provenance recorded (``parameters.registration``)."""
    try:
        return RigidMotion(np.asarray(record["matrix_ras"], float).reshape(3, 3),
                           np.asarray(record["offset_ras_mm"], float).reshape(3), dict(record))
    except (KeyError, TypeError, ValueError):
        raise InputError("the follow-up result's provenance holds no motion (parameters.registration.matrix_ras); "
                         "run calcinosis follow again") from None


def register_rigid(baseline, followup, progress: Progress | None = None) -> RigidMotion:
    """The rigid motion from ``followup`` to ``baseline`` (:class:`~calcinosis.core.volume.Volume`,
    3D, the same modality)."""
    import SimpleITK as sitk
    if baseline.is_2d or followup.is_2d:
        raise InputError("--registration rigid: radiographs (2D) are not registered yet; give --registration none "
                         "for radiographs taken in the same position")
    ct = str(baseline.modality or "").upper() == "CT"

    def prepared(volume):
        a = volume.array.astype(np.float32)
        if ct:
            a = np.clip(a, *CT_WINDOW_HU)
        return image_io.array_to_sitk(a, volume.geometry)

    fixed, moving = prepared(baseline), prepared(followup)
    report(progress, 0.05, "registering the follow-up to the baseline")
    start = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                              sitk.CenteredTransformInitializerFilter.MOMENTS)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING_FRACTION, SAMPLING_SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4, numberOfIterations=ITERATIONS,
                                                    relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_MM))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(start, inPlace=False)
    levels = {"n": 0}

    def on_level():
        levels["n"] += 1
        report(progress, 0.05 + 0.9 * levels["n"] / len(SHRINK_FACTORS), f"registration level {levels['n']}")

    method.AddCommand(sitk.sitkMultiResolutionIterationEvent, on_level)
    try:
        found = method.Execute(fixed, moving)
    except RuntimeError as e:
        raise InputError(f"registration failed ({str(e).strip().splitlines()[-1][:200]}); give --registration none "
                         "if the images are already aligned") from None
    # found: baseline LPS point -> follow-up LPS point; the motion is its inverse, in RAS
    composite = sitk.CompositeTransform(found)
    flat = composite.GetNthTransform(0) if composite.GetNumberOfTransforms() else found
    euler = sitk.Euler3DTransform(flat) if not isinstance(flat, sitk.Euler3DTransform) else flat
    a = np.array(euler.GetMatrix()).reshape(3, 3)
    c = np.array(euler.GetCenter())
    t = np.array(euler.GetTranslation())
    # y_lps = a (x_lps - c) + c + t  (baseline -> follow-up)
    m_ras = _FLIP @ a @ _FLIP
    o_ras = _FLIP @ (c + t - a @ c)
    inv = np.linalg.inv(m_ras)
    motion = RigidMotion(inv, -inv @ o_ras)
    motion.record = {"method": "rigid (Euler 3D), Mattes mutual information", "metric_value":
                     round(float(method.GetMetricValue()), 6), "iterations_last_level":
                     int(method.GetOptimizerIteration()), "stop": method.GetOptimizerStopConditionDescription()[:200],
                     "shrink_factors": list(SHRINK_FACTORS), "smoothing_mm": list(SMOOTHING_MM),
                     "sampling_fraction": SAMPLING_FRACTION, "sampling_seed": SAMPLING_SEED,
                     "ct_window_hu": list(CT_WINDOW_HU) if ct else None,
                     "rotation_deg": round(motion.rotation_deg, 4),
                     "translation_mm": [round(float(v), 4) for v in motion.offset], **motion.as_record()}
    report(progress, 1.0, "registered")
    return motion
