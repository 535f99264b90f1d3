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
REASON_SESAMOID = "a sesamoid (compact, at a sesamoid's site beside a metacarpal head)"
REASON_JOINT = "spans a joint line without an edge of its own (the joint's two bone ends)"
#: a candidate without an edge outline (step 5) that reaches this far (mm) past a joint's line on
#: both sides - beyond the joint space (1-1.5 mm wide in an adult's finger and MCP joints) into
#: both bone ends - within JOINT_SPAN_ACROSS_MM of the digit's axis (inside the narrowest bone
#: end, a distal phalanx's base about 8 mm wide) is the joint's bright region: two bone ends,
#: their subchondral plates, a sesamoid, the capsule's soft tissue.  A deposit over a joint has
#: its own edge, which step 5 finds.  The joints tested are the MCP and the ones distal to it
#: (an axis's base, the CMC, is estimated for the fingers, and the carpus has its own test)
JOINT_SPAN_MM = 1.5
JOINT_SPAN_ACROSS_MM = 4.0
#: where the sesamoids of the hand lie on a PA radiograph: beside the metacarpal head, palmar to
#: it, so projected over the head's margins or just beyond them, proximal to the MCP joint line.
#: (digit, sides): the thumb has two (radial and ulnar), the index one on its radial side and the
#: little finger one on its ulnar side (constant in the thumb, present in most hands at the index
#: and little finger; the other digits' are rare)
SESAMOID_SITES = (("thumb", ("radial", "ulnar")), ("index", ("radial",)), ("little", ("ulnar",)))
#: the digit whose MCP tells a digit's radial side from its ulnar side
SESAMOID_NEIGHBOUR = {"thumb": "index", "index": "middle", "little": "ring"}
#: the site's window about the MCP landmark (mm): along the digit's axis (negative: proximal,
#: over the metacarpal head) and across it, on the site's side
SESAMOID_ALONG_MM = (-7.0, 1.5)
SESAMOID_ACROSS_MM = (1.5, 9.0)
#: a sesamoid's size (equivalent diameter of the candidate's outline, mm): the thumb's are 4-8 mm
#: long, the index's and little finger's 2-4 mm; the outline takes in the bone's blur around it.
#: A candidate at a site but of another size is not taken for its sesamoid (a small deposit at
#: the thumb's MCP is kept)
SESAMOID_DIAMETER_MM = {"thumb": (3.5, 8.5), "index": (1.5, 5.0), "little": (1.5, 5.0)}
#: a landmark's axis - automatic, or placed by a reader, whose click is a millimetre off as
#: easily - may lie this far (mm) across the bone's own, and this many degrees off it: the
#: mirror test then searches the axis within these bounds, fitted on the
#: bone around the candidate (a box this long along the axis and wide across it, mm, the
#: candidate itself and a margin left out: the soft-tissue nodule a deposit raises, which is
#: symmetric about the deposit, not about the bone)
AXIS_SEARCH_MM = 1.2
AXIS_SEARCH_STEP_MM = 0.1
AXIS_SEARCH_DEG = (-6.0, -3.0, 0.0, 3.0, 6.0)
#: the search is refined around the coarse grid's best: turns within AXIS_REFINE_DEG of it
#: every AXIS_REFINE_DEG_STEP, shifts within one coarse step every AXIS_REFINE_STEP_MM
AXIS_REFINE_DEG = 2.0
AXIS_REFINE_DEG_STEP = 0.5
AXIS_REFINE_STEP_MM = 0.025
AXIS_FIT_BOX_MM = (8.0, 12.0)
AXIS_FIT_MARGIN_MM = 2.0
#: the 90th percentile of the difference of two pixels' noise is 1.28 x sqrt(2) x their SD; a
#: symmetric structure leaves only that, and a deposit must clear twice it
MIRROR_NOISE_FACTOR = 2.0 * 1.28 * np.sqrt(2.0)


class BoneModel:
    """The digits' axes (from landmarks, on the analysis grid) for the symmetry and
    carpus tests of step 4."""

    def __init__(self, rays_px: list[np.ndarray], pixel_mm: float, digits: list[str] | None = None,
                 mcp_index: list[int] | None = None):
        keep = [k for k, r in enumerate(rays_px) if len(r) >= 2]
        self.rays = [np.asarray(rays_px[k], float) for k in keep]   # (n, 2) (row, col), base first
        self.px = pixel_mm
        #: per ray: its digit's name ('' unknown) and the index of its MCP point (-1 unknown)
        self.digits = [digits[k] if digits is not None else "" for k in keep]
        self.mcp = [mcp_index[k] if mcp_index is not None else -1 for k in keep]

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
        out, digits, mcp = [], [], []
        for r in rays:
            ijk = geometry.ras_to_ijk(np.asarray(r.points, float))
            out.append(np.stack([(ijk[:, 1] + 0.5) / k - 0.5, (ijk[:, 0] + 0.5) / k - 0.5], axis=1))
            digits.append(r.digit)
            mcp.append(list(r.names).index("MCP") if "MCP" in r.names else -1)
        return cls(out, pixel_mm, digits, mcp) if out else None

    def _ray_of(self, digit: str) -> int | None:
        return self.digits.index(digit) if digit in self.digits else None

    def _axes_at(self, n_ray: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (row, col) along ray ``n_ray``'s axis at its inner point ``j`` - from
        the point before to the point after - and across it."""
        P = self.rays[n_ray]
        u = P[j + 1] - P[j - 1]
        u = u / max(float(np.linalg.norm(u)), 1e-9)
        return u, np.array([-u[1], u[0]])

    def sesamoid_site(self, p: np.ndarray) -> str | None:
        """The sesamoid site (``'thumb MCP radial'``, ...) whose window (SESAMOID_ALONG_MM,
        SESAMOID_ACROSS_MM about the MCP landmark, on the site's side) holds the point (row,
        col), or None.  A digit's sides are told by its neighbour's MCP (the thumb's and the
        index's radial side faces away from the index and the middle finger, the little
        finger's ulnar side away from the ring finger); the thumb's two sites need no
        neighbour (its side is then not named).  Needs the digits' names (landmarks)."""
        for digit, sides in SESAMOID_SITES:
            n_ray = self._ray_of(digit)
            if n_ray is None or not 0 < self.mcp[n_ray] < len(self.rays[n_ray]) - 1:
                continue
            P, m = self.rays[n_ray], self.mcp[n_ray]
            u, n = self._axes_at(n_ray, m)
            rel = p - P[m]
            along, across = float(rel @ u) * self.px, float(rel @ n) * self.px
            if not (SESAMOID_ALONG_MM[0] <= along <= SESAMOID_ALONG_MM[1]
                    and SESAMOID_ACROSS_MM[0] <= abs(across) <= SESAMOID_ACROSS_MM[1]):
                continue
            neighbour = self._ray_of(SESAMOID_NEIGHBOUR[digit])
            if neighbour is None or not 0 <= self.mcp[neighbour] < len(self.rays[neighbour]):
                if digit == "thumb":
                    return "thumb MCP"
                continue
            away = (across > 0) != (float((self.rays[neighbour][self.mcp[neighbour]] - P[m]) @ n) > 0)
            away_side = "ulnar" if digit == "little" else "radial"
            side = away_side if away else ("radial" if away_side == "ulnar" else "ulnar")
            if side in sides:
                return f"{digit} MCP {side}"
        return None

    def joint_name(self, n_ray: int, j: int) -> str:
        """``'index PIP'``: the digit and the joint of point ``j`` of its axis (from the
        MCP: the thumb's IP, a finger's PIP and DIP; ``'joint j'`` where the MCP is unknown)."""
        digit = self.digits[n_ray] or f"digit {n_ray}"
        m = self.mcp[n_ray]
        distal = ("MCP", "IP") if digit == "thumb" else ("MCP", "PIP", "DIP")
        return f"{digit} {distal[j - m]}" if m >= 0 and 0 <= j - m < len(distal) else f"{digit} joint {j}"

    def spanned_joint(self, ys: np.ndarray, xs: np.ndarray) -> str | None:
        """The joint (:meth:`joint_name`) whose line the pixels (rows ``ys``, columns ``xs``)
        span: some of them JOINT_SPAN_MM or more past it on each side, within
        JOINT_SPAN_ACROSS_MM of the axis; None if none.  The joints are an axis's inner
        points (not its base, the CMC, nor its tip); the line is across the axis there,
        whose direction is that from the point before to the point after."""
        p = np.stack([np.asarray(ys, float), np.asarray(xs, float)], axis=1)
        for n_ray, P in enumerate(self.rays):
            for j in range(1, len(P) - 1):
                u, n = self._axes_at(n_ray, j)
                rel = p - P[j]
                along = (rel @ u) * self.px
                near = np.abs(rel @ n) * self.px <= JOINT_SPAN_ACROSS_MM
                if np.any(near & (along <= -JOINT_SPAN_MM)) and np.any(near & (along >= JOINT_SPAN_MM)):
                    return self.joint_name(n_ray, j)
        return None

    def nearest(self, p: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray, float] | None:
        """For a point (row, col): (distance in mm to the nearest axis polyline, position
        along that axis in mm from its base - negative proximal to the base, beyond its
        length distal to the tip -, start and unit direction of the nearest segment,
        the axis length in mm)."""
        got = self._nearest(p)
        return None if got is None else got[:5]

    def _nearest(self, p: np.ndarray):
        """:meth:`nearest` and the index of the ray."""
        best = None
        for n_ray, P in enumerate(self.rays):
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
                    best = (d, along, a, u, float(arc[-1]), n_ray)
        if best is None:
            return None
        d, along, a, u, length, n_ray = best
        return d * self.px, along * self.px, a, u, length * self.px, n_ray

    def fitted_axis(self, s: np.ndarray, patch: "Patch", a: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The axis near a candidate as the bone around it has it: the shift (within
        AXIS_SEARCH_MM) and turn (AXIS_SEARCH_DEG) of the axis (a, u) about which the bone in
        a box around the candidate (the candidate and a margin left out) is most nearly its
        own mirror image.  Landmarks, automatic or placed, may lie a few tenths of a
        millimetre off the bone's axis, which is enough to make a bone end look asymmetric."""
        ys, xs = patch.coords()
        c = np.array([ys.mean(), xs.mean()])
        half_along, half_across = (v / 2.0 / self.px for v in AXIS_FIT_BOX_MM)
        n = np.array([-u[1], u[0]])
        foot = a + float((c - a) @ u) * u                      # the axis point beside the candidate
        r = int(np.ceil(np.hypot(half_along, half_across))) + 1
        r0, c0 = max(int(foot[0]) - r, 0), max(int(foot[1]) - r, 0)
        r1, c1 = min(int(foot[0]) + r + 1, s.shape[0]), min(int(foot[1]) + r + 1, s.shape[1])
        yy, xx = np.mgrid[r0:r1, c0:c1]
        pts = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(float)
        rel = pts - foot
        box = (np.abs(rel @ u) <= half_along) & (np.abs(rel @ n) <= half_across)
        cand = np.zeros(s.shape, bool)
        cand[ys, xs] = True
        cand = ndimage.binary_dilation(cand[r0:r1, c0:c1],
                                       iterations=max(int(round(AXIS_FIT_MARGIN_MM / self.px)), 1)).ravel()
        pts = pts[box & ~cand]
        if len(pts) < 20:
            return a, u
        v = s[pts[:, 0].astype(int), pts[:, 1].astype(int)]

        def search(degrees, shifts_mm):
            best = (np.inf, a, u, 0.0, 0.0)
            for deg in degrees:
                t = np.radians(deg)
                ut = np.array([u[0] * np.cos(t) - u[1] * np.sin(t), u[0] * np.sin(t) + u[1] * np.cos(t)])
                nt = np.array([-ut[1], ut[0]])
                for sh in shifts_mm:
                    at = foot + sh / self.px * n
                    off = (pts - at) @ nt
                    mir = pts - 2.0 * off[:, None] * nt[None, :]
                    vm = ndimage.map_coordinates(s, [mir[:, 0], mir[:, 1]], order=1, mode="nearest")
                    err = float(np.mean(np.abs(v - vm)))
                    if err < best[0]:
                        best = (err, at, ut, float(deg), float(sh))
            return best

        # coarse, then fine around the best: at a bone end's steep edges a tenth of a
        # millimetre or a few degrees off the bone's own axis leaves an asymmetry of 15-20% of
        # a candidate's peak (the mirror test's margin is 12%)
        _, _, _, deg0, sh0 = search(AXIS_SEARCH_DEG, np.arange(-AXIS_SEARCH_MM, AXIS_SEARCH_MM + 1e-9,
                                                             AXIS_SEARCH_STEP_MM))
        fine_deg = deg0 + np.arange(-AXIS_REFINE_DEG, AXIS_REFINE_DEG + 1e-9, AXIS_REFINE_DEG_STEP)
        fine_mm = sh0 + np.arange(-AXIS_SEARCH_STEP_MM, AXIS_SEARCH_STEP_MM + 1e-9, AXIS_REFINE_STEP_MM)
        _, at, ut, _, _ = search(fine_deg, fine_mm)
        return at, ut

    def mirror_excess(self, s: np.ndarray, patch: "Patch", fit_axis: bool = False) -> float:
        """90th percentile over the candidate of (image - image mirrored about the nearest
        digit axis), in image units.  ``fit_axis``: the axis is first fitted to the bone
        around the candidate (:meth:`fitted_axis`)."""
        ys, xs = patch.coords()
        c = np.array([ys.mean(), xs.mean()])
        nb = self._nearest(c)
        if nb is None:
            return float("inf")
        _, _, a, u, _, n_ray = nb
        if fit_axis:
            a, u = self.fitted_axis(s, patch, a, u)
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
    centre = np.array([ys.mean(), xs.mean()])
    nearest = bones.nearest(centre)
    if nearest is None:
        return None, False
    distance_mm, along_mm, _, _, length_mm = nearest
    if along_mm < params.xr_carpal_margin_mm and distance_mm <= params.xr_carpal_reach_mm:
        eq = 2.0 * np.sqrt(bump.count() / np.pi) * pixel_mm
        details["equivalent_diameter_mm"] = float(eq)
        return (REASON_CARPAL if eq < params.xr_carpal_min_mm else None), True
    site = bones.sesamoid_site(centre)
    if site is not None:
        eq = 2.0 * np.sqrt(patch.count() / np.pi) * pixel_mm
        lo, hi = SESAMOID_DIAMETER_MM[site.split()[0]]
        details["sesamoid_site"] = site
        if lo <= eq <= hi:
            return REASON_SESAMOID, False
    if distance_mm <= params.xr_axis_reach_mm and along_mm <= length_mm + params.xr_axis_reach_mm:
        excess = bones.mirror_excess(smoothed, patch, fit_axis=True)
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
