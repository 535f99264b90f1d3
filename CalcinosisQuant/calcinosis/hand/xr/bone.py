"""Step 4 of the radiograph detector: bone is not calcinosis - the digits' axes from the
landmarks (:class:`BoneModel`), the mirror-symmetry and carpus tests, and the reasons a
candidate is dropped (docs/methods/hand-detection.md, radiographs, step 4)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from calcinosis.core.geometry import Geometry

from .patches import Patch, disk_patch

REASON_ELONGATED = "elongated (cortex seen edge-on or an end plate)"
REASON_SYMMETRIC = "mirror-symmetric about the digit's axis (bone end, tuft or shaft)"
REASON_CARPAL = "at the carpus, not wider or brighter than the carpal bones"
#: the 90th percentile of the difference of two pixels' noise is 1.28 x sqrt(2) x their SD; a
#: symmetric structure leaves only that, and a deposit must clear twice it
MIRROR_NOISE_FACTOR = 2.0 * 1.28 * np.sqrt(2.0)


class BoneModel:
    """The digits' axes (from landmarks, on the analysis grid) for the symmetry and
    carpus tests of step 4."""

    def __init__(self, rays_px: list[np.ndarray], pixel_mm: float):
        self.rays = [np.asarray(r, float) for r in rays_px if len(r) >= 2]   # (n, 2) (row, col), base first
        self.px = pixel_mm

    @classmethod
    def from_landmarks(cls, landmarks, geometry: Geometry, k: int, pixel_mm: float) -> "BoneModel | None":
        from ..assign import build_rays
        from ..landmarks import check_against_image
        if landmarks is None or not getattr(landmarks, "points", None):
            return None
        landmarks, _ = check_against_image(landmarks, geometry)   # points placed on another image: dropped
        if not landmarks.points:
            return None
        rays, _ = build_rays(landmarks, geometry)
        out = []
        for r in rays:
            ijk = geometry.ras_to_ijk(np.asarray(r.points, float))
            out.append(np.stack([(ijk[:, 1] + 0.5) / k - 0.5, (ijk[:, 0] + 0.5) / k - 0.5], axis=1))
        return cls(out, pixel_mm) if out else None

    def nearest(self, p: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray, float] | None:
        """For a point (row, col): (distance in mm to the nearest axis polyline, position
        along that axis in mm from its base - negative proximal to the base, beyond its
        length distal to the tip -, start and unit direction of the nearest segment,
        the axis length in mm)."""
        best = None
        for P in self.rays:
            arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(P, axis=0), axis=1))]
            last = len(P) - 2
            for k in range(len(P) - 1):
                a, b = P[k], P[k + 1]
                L = float(np.linalg.norm(b - a))
                if L == 0:
                    continue
                u = (b - a) / L
                t = float((p - a) @ u)
                tc = min(max(t, 0.0), L)
                d = float(np.linalg.norm(p - (a + tc * u)))
                # the position along the axis extends beyond the base and the tip
                along = arc[k] + (t if (k == 0 and t < 0) or (k == last and t > L) else tc)
                if best is None or d < best[0]:
                    best = (d, along, a, u, float(arc[-1]))
        if best is None:
            return None
        d, along, a, u, length = best
        return d * self.px, along * self.px, a, u, length * self.px

    def mirror_excess(self, s: np.ndarray, patch: "Patch") -> float:
        """90th percentile over the candidate of (image - image mirrored about the nearest
        digit axis), in image units."""
        ys, xs = patch.coords()
        c = np.array([ys.mean(), xs.mean()])
        nb = self.nearest(c)
        if nb is None:
            return float("inf")
        _, _, a, u, _ = nb
        n = np.array([-u[1], u[0]])
        pts = np.stack([ys, xs], axis=1).astype(float)
        off = (pts - a) @ n
        mir = pts - 2.0 * off[:, None] * n[None, :]
        v = s[ys, xs]
        vm = ndimage.map_coordinates(s, [mir[:, 0], mir[:, 1]], order=1, mode="nearest")
        return float(np.percentile(v - vm, 90))


def symmetric_seed(bones: BoneModel, s: np.ndarray, r: int, c: int, rad: float, contrast: float, s_noise: float,
                    params) -> bool:
    """Cheap version of the symmetry test on the seed's own disk, before any outline is
    drawn (half the final test's margins: only clearly symmetric seeds are skipped)."""
    nb = bones.nearest(np.array([float(r), float(c)]))
    if nb is None:
        return False
    d_mm, along_mm, _, _, length_mm = nb
    if along_mm < params.xr_carpal_margin_mm or d_mm > params.xr_axis_reach_mm \
            or along_mm > length_mm + params.xr_axis_reach_mm:
        return False
    excess = bones.mirror_excess(s, disk_patch(r, c, max(rad, 1.5), s.shape))
    return excess < 0.5 * max(params.xr_mirror_min * contrast, MIRROR_NOISE_FACTOR * s_noise)


def bone_verdict(bones: BoneModel | None, smoothed: np.ndarray, patch: Patch, bump: Patch, peak: float,
                 aspect: float, smoothed_noise_sd: float, pixel_mm: float, params,
                 details: dict) -> tuple[str | None, bool]:
    """Step 4 for one outlined candidate: (why it is bone - None if it is not -, whether it
    lies at the carpus).  Writes the measures it used into ``details``."""
    if aspect > params.xr_max_aspect:
        return REASON_ELONGATED, False
    if bones is None:
        return None, False
    ys, xs = patch.coords()
    nearest = bones.nearest(np.array([ys.mean(), xs.mean()]))
    if nearest is None:
        return None, False
    distance_mm, along_mm, _, _, length_mm = nearest
    if along_mm < params.xr_carpal_margin_mm and distance_mm <= params.xr_carpal_reach_mm:
        eq = 2.0 * np.sqrt(bump.count() / np.pi) * pixel_mm
        details["equivalent_diameter_mm"] = float(eq)
        return (REASON_CARPAL if eq < params.xr_carpal_min_mm else None), True
    if distance_mm <= params.xr_axis_reach_mm and along_mm <= length_mm + params.xr_axis_reach_mm:
        excess = bones.mirror_excess(smoothed, patch)
        details["mirror_ratio"] = excess / max(peak, 1e-9)
        if excess < max(params.xr_mirror_min * peak, MIRROR_NOISE_FACTOR * smoothed_noise_sd):
            return REASON_SYMMETRIC, False
    return None, False


def carpal_contrast_level(candidates, params) -> float | None:
    """At the carpus a deposit must also stand out of the carpal bones: brighter than
    ``xr_carpal_contrast`` x the median contrast of everything examined there (mostly bone).
    Marks the carpal candidates below that level; returns the level (None: nothing there)."""
    peaks = [c.peak for c in candidates if c.carpal]
    if not peaks:
        return None
    level = params.xr_carpal_contrast * float(np.median(peaks))
    for c in candidates:
        if c.carpal and c.reason is None and c.peak < level:
            c.reason = REASON_CARPAL
    return level
