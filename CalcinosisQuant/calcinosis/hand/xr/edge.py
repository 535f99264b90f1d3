"""Step 5 of the radiograph detector: the outline of a kept candidate redrawn on the
square-root edge of its shadow, from rays cast from its searched centre
(docs/methods/hand-detection.md, radiographs, step 5).  The ``EDGE_*`` constants are the
step's parameters (not user options: each is measured on rendered ellipsoids and
asserted in the tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .patches import Patch

#: rays cast from a candidate's centre to find the edge of its shadow, and their sampling (pixels)
EDGE_RAYS = 72
EDGE_STEP_PX = 0.25
#: the ridge of -d(image)/dr is measured against the slope this far (pixels) inside and outside it
EDGE_DETREND_PX = 2.0
#: where that ridge lies inside the edge of an ellipsoid's shadow on the analysis grid (its pixel
#: area and the detector's 1-pixel Gaussian smooth the square-root edge), pixels
EDGE_OFFSET_PX = 0.72
#: a ridge must reach this multiple of the image noise SD (about 3 x the ridge response's own noise)
EDGE_RIDGE_K = 0.6
#: a contour is an edge when this fraction of the rays has a ridge within EDGE_TOL_PX of it
EDGE_SUPPORT = 0.75
EDGE_TOL_PX = 1.0
#: a contour is centred on the origin of its rays when its ellipse's centre lies this close (pixels)
EDGE_CENTRE_TOL_PX = 1.5
#: rays are cast from at most this many points per candidate (a grid over its bump, then the
#: centres of the contours seen off-centre)
EDGE_MAX_STARTS = 40
#: a contour covering less than this fraction of the candidate's outline is texture inside it
EDGE_MIN_FRACTION = 0.1
#: a smaller contour concentric with the best supported one (centres within this fraction of its
#: radius, at most EDGE_INNER_MAX of its area, support >= EDGE_INNER_SUPPORT) is the deposit
#: inside the soft tissue it raises
EDGE_CONCENTRIC = 0.25
EDGE_INNER_MAX = 0.6
EDGE_INNER_SUPPORT = 0.75
#: a peak of the histogram of ridge radii (bins of 0.5 pixel, smoothed) starts a contour when it
#: holds this fraction of the rays
EDGE_PEAK_FRACTION = 0.06
#: rays reach this far (mm) beyond the candidate's bump (step 2), which a large deposit over
#: bone can overflow
EDGE_REACH_MM = 2.0


def ray_profiles(S: np.ndarray, cy: float, cx: float, r_max: float, n_rays: int = EDGE_RAYS,
                 step: float = EDGE_STEP_PX, coef: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image values along ``n_rays`` rays from (cy, cx), every ``step`` pixels up to
    ``r_max`` (cubic spline; ``coef``: its coefficients, if already computed).  Returns
    (ray angles, radii, profiles (radius, ray))."""
    th = np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False)
    rs = np.arange(0.0, max(r_max, 2.0), step)
    if coef is None:
        coef = ndimage.spline_filter(np.asarray(S, np.float64), order=3)
    py = cy + rs[:, None] * np.sin(th)[None, :]
    px = cx + rs[:, None] * np.cos(th)[None, :]
    P = ndimage.map_coordinates(coef, [py.ravel(), px.ravel()], order=3, prefilter=False,
                                mode="nearest").reshape(py.shape)
    return th, rs, P


def edge_ridges(P: np.ndarray, rs: np.ndarray, noise_sd: float, step: float = EDGE_STEP_PX,
                r_min: float = 1.0) -> np.ndarray:
    """Where the profiles (radius, ray) fall off an edge: local maxima along the ray of
    the detrended slope R = g(r) - (g(r - k) + g(r + k)) / 2, g = -dP/dr, k =
    ``EDGE_DETREND_PX`` (a smooth slope such as a soft-tissue dome's gives R ~ 0, the
    square-root edge of a dense body a sharp peak), averaged over three neighbouring
    rays, above ``EDGE_RIDGE_K`` x the noise, where the image falls (g > 0)."""
    g = -np.gradient(P, step, axis=0)
    k = max(int(round(EDGE_DETREND_PX / step)), 1)
    gp = np.pad(g, ((k, k), (0, 0)), mode="edge")
    R = g - 0.5 * (gp[:-2 * k] + gp[2 * k:])
    R = (np.roll(R, 1, axis=1) + R + np.roll(R, -1, axis=1)) / 3.0
    lm = np.zeros(R.shape, bool)
    lm[1:-1] = (R[1:-1] > R[:-2]) & (R[1:-1] >= R[2:]) & (R[1:-1] >= EDGE_RIDGE_K * noise_sd) & (g[1:-1] > 0)
    lm[rs < r_min] = False
    return lm


def fit_conic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Least-squares ellipse through points: (centre (x, y), A) with (p - c)' A (p - c) = 1,
    or None when the best conic is not an ellipse."""
    if x.size < 5:
        return None
    mx, my = float(x.mean()), float(y.mean())
    u, v = x - mx, y - my
    D = np.empty((u.size, 5))
    D[:, 0], D[:, 1], D[:, 2], D[:, 3], D[:, 4] = u * u, u * v, v * v, u, v
    M = D.T @ D
    try:
        c = np.linalg.solve(M + np.eye(5) * 1e-12 * np.trace(M), D.sum(axis=0))
    except np.linalg.LinAlgError:
        return None
    A = np.array([[c[0], c[1] / 2.0], [c[1] / 2.0, c[2]]])
    if A[0, 0] <= 0 or np.linalg.det(A) <= 0:
        return None
    x0 = -0.5 * np.linalg.solve(A, c[3:])
    k = 1.0 + x0 @ A @ x0
    if k <= 0:
        return None
    return np.array([mx, my]) + x0, A / k


def ellipse_radii(centre: np.ndarray, A: np.ndarray, cy: float, cx: float, th: np.ndarray) -> np.ndarray:
    """Distance from (cy, cx) along each direction ``th`` to the ellipse (nan if none)."""
    c_, s_ = np.cos(th), np.sin(th)
    ox, oy = cx - centre[0], cy - centre[1]
    a = A[0, 0] * c_ * c_ + 2.0 * A[0, 1] * c_ * s_ + A[1, 1] * s_ * s_
    b = 2.0 * (c_ * (A[0, 0] * ox + A[0, 1] * oy) + s_ * (A[1, 0] * ox + A[1, 1] * oy))
    c = A[0, 0] * ox * ox + 2.0 * A[0, 1] * ox * oy + A[1, 1] * oy * oy - 1.0
    disc = b * b - 4.0 * a * c
    with np.errstate(invalid="ignore"):
        return np.where(disc >= 0, (-b + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a), np.nan)


def snap_contour(th: np.ndarray, rs: np.ndarray, lm: np.ndarray, cy: float, cx: float, ellipse,
                 first_tol: float = 0.25, iterations: int = 5):
    """Refine an ellipse on the edge ridges: on each ray the ridge nearest to it (within
    ``first_tol`` x its radius the first time, then within max(EDGE_TOL_PX, 10%)), the
    ellipse refitted to them.  Returns (radius per ray - the ridge where one lies within
    EDGE_TOL_PX of the ellipse, else the ellipse -, ellipse, support = fraction of rays
    with such a ridge) or None."""
    f = ellipse
    radius = None
    big = np.float64(1e9)
    cols = np.arange(th.size)
    last = None
    for it in range(iterations):
        re = ellipse_radii(f[0], f[1], cy, cx, th)
        if not np.all(np.isfinite(re)):
            return None
        tol = np.maximum(EDGE_TOL_PX, (first_tol if it == 0 else 0.1) * re)
        d = np.where(lm, np.abs(rs[:, None] - re[None, :]), big)
        i = np.argmin(d, axis=0)
        ok = d[i, cols] <= tol
        if ok.sum() < 8:
            return None
        pick = np.where(ok, i, -1)
        if last is not None and np.array_equal(pick, last):
            break                   # the same ridges again: the same ellipse
        last = pick
        radius = np.where(ok, rs[i], np.nan)
        f2 = fit_conic(cx + radius[ok] * np.cos(th[ok]), cy + radius[ok] * np.sin(th[ok]))
        if f2 is None:
            return None
        f = f2
    re = ellipse_radii(f[0], f[1], cy, cx, th)
    if not np.all(np.isfinite(re)):
        return None
    near = np.isfinite(radius) & (np.abs(radius - re) <= EDGE_TOL_PX)
    return np.where(near, radius, re), f, float(near.mean())


def edge_hypotheses(S: np.ndarray, cy: float, cx: float, r_max: float, noise_sd: float,
                    coef: np.ndarray | None = None, skip_support: float = 0.0) -> list[tuple]:
    """Every closed contour the edge ridges support around (cy, cx): one per peak of the
    histogram of ridge radii, snapped to the ridges (:func:`snap_contour`); a peak within
    the radii of a contour already snapped with at least ``skip_support`` is that contour
    (with 0, any contour hides it; a higher value keeps a poorly supported snap of noise
    ridges from hiding a deposit's edge at the same radii).  Returns
    [(angles, radii of the edge per angle, ellipse (centre (x, y), A), support)]."""
    th, rs, P = ray_profiles(S, cy, cx, r_max, coef=coef)
    lm = edge_ridges(P, rs, noise_sd)
    ii, _ = np.nonzero(lm)
    if ii.size < 8:
        return []
    h = np.bincount((rs[ii] / 0.5).astype(int), minlength=int(rs[-1] / 0.5) + 2).astype(float)
    hs = ndimage.gaussian_filter1d(h, 1.0)
    peaks = np.flatnonzero((hs[1:-1] > hs[:-2]) & (hs[1:-1] >= hs[2:]) & (hs[1:-1] >= EDGE_PEAK_FRACTION * th.size)) + 1
    out = []
    for p in peaks:
        r0 = p * 0.5 + 0.25
        if any(o[3] >= skip_support and float(o[1].min()) - 0.5 <= r0 <= float(o[1].max()) + 0.5 for o in out):
            continue            # within the radii of a contour already snapped: the same contour
        got = snap_contour(th, rs, lm, cy, cx, (np.array([cx, cy]), np.eye(2) / r0 ** 2))
        if got is not None:
            out.append((th,) + got)
    return out


def edge_contour(S: np.ndarray, cy: float, cx: float, r_max: float, noise_sd: float):
    """The edge around (cy, cx) seen from there alone: the innermost contour of
    :func:`edge_hypotheses` with ``EDGE_SUPPORT``, else the best supported one.  Returns
    (angles, radii of the edge per angle, ellipse (centre (x, y), A), support) or None."""
    best = None
    for th, r, f, support in edge_hypotheses(S, cy, cx, r_max, noise_sd):
        area = float(np.sum(r * np.roll(r, -1)))
        key = (0, area) if support >= EDGE_SUPPORT else (1, -support)
        if best is None or key < best[0]:
            best = (key, th, r, f, support)
    return None if best is None else best[1:]


@dataclass
class EdgeContour:
    """A closed edge contour centred on the origin of its rays (window coordinates)."""

    y: float
    x: float
    th: np.ndarray
    r: np.ndarray             # edge radius per ray (ridge, before EDGE_OFFSET_PX)
    ellipse: tuple
    support: float

    @property
    def area_px(self) -> float:
        rb = self.r + EDGE_OFFSET_PX
        return float(0.5 * np.sum(rb * np.roll(rb, -1)) * np.sin(2.0 * np.pi / self.th.size))

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.ellipse[0][1], self.ellipse[0][0]])      # (row, col)

    def mask(self, shape) -> Patch:
        """The pixels inside the contour moved out by EDGE_OFFSET_PX (clipped to ``shape``)."""
        rb = self.r + EDGE_OFFSET_PX
        R = float(rb.max()) + 1.0
        r0, c0 = max(int(np.floor(self.y - R)), 0), max(int(np.floor(self.x - R)), 0)
        r1, c1 = min(int(np.ceil(self.y + R)) + 1, shape[0]), min(int(np.ceil(self.x + R)) + 1, shape[1])
        Y, X = np.mgrid[r0:max(r1, r0), c0:max(c1, c0)].astype(float)
        ang = np.mod(np.arctan2(Y - self.y, X - self.x), 2.0 * np.pi)
        bound = np.interp(ang, np.r_[self.th, 2.0 * np.pi], np.r_[rb, rb[0]])
        return Patch(r0, c0, np.hypot(Y - self.y, X - self.x) <= bound)


def centred_contours(S: np.ndarray, starts: list[tuple[float, float]], r_max: float, noise_sd: float,
                     max_starts: int = EDGE_MAX_STARTS, min_support: float | None = None) -> list[EdgeContour]:
    """Rays are cast from each start (window coordinates); a contour whose ellipse is
    centred within ``EDGE_CENTRE_TOL_PX`` of the start is kept (with ``EDGE_SUPPORT``), one
    centred elsewhere (with at least half the rays' support, or the best of its start's)
    adds its centre to the starts (a contour seen off-centre is recast from its own
    centre), up to ``max_starts`` starts in all.  ``min_support`` (a one-click outline's):
    contours are kept and followed at that support, and only such contours hide a peak of
    the ridge radii (:func:`edge_hypotheses`)."""
    queue = [tuple(map(float, p)) for p in starts]
    coef = ndimage.spline_filter(np.asarray(S, np.float64), order=3)
    done: list[tuple[float, float]] = []
    out: list[EdgeContour] = []
    while queue and len(done) < max_starts:
        y, x = queue.pop(0)
        if not (0 <= y < S.shape[0] and 0 <= x < S.shape[1]) \
                or any(abs(y - v) < 0.75 and abs(x - u) < 0.75 for v, u in done):
            continue
        done.append((y, x))
        hyps = edge_hypotheses(S, y, x, r_max, noise_sd, coef, 0.0 if min_support is None else min_support)
        for th, r, f, support in hyps:
            ncx, ncy = f[0]
            if np.hypot(ncy - y, ncx - x) <= EDGE_CENTRE_TOL_PX:
                if support >= (EDGE_SUPPORT if min_support is None else min_support):
                    out.append(EdgeContour(y, x, th, r, f, support))
            elif (support >= min_support if min_support is not None
                  else support >= 0.5 or support >= max((h[3] for h in hyps), default=0.0)):
                queue.insert(0, (float(ncy), float(ncx)))     # followed first
    return out


def choose_contour(contours: list[EdgeContour], outline: np.ndarray | None) -> EdgeContour | None:
    """The deposit's edge among centred contours (step 5 of the module docstring): with an
    outline (the candidate's, step 3, window coordinates) a contour must share a quarter of
    the smaller of the two with it and cover at least ``EDGE_MIN_FRACTION`` of it.  The best
    supported contour is taken (ties: the smaller - a deposit off-centre in its swelling is
    as well supported as the swelling, seen from its own centre); then a smaller contour
    with ``EDGE_INNER_SUPPORT`` concentric inside it (centres within ``EDGE_CONCENTRIC`` x
    its radius, at most ``EDGE_INNER_MAX`` of its area) is the deposit, and the larger the
    soft tissue it raises."""
    ok = []
    for c in contours:
        if outline is not None:
            m = c.mask(outline.shape)
            inter = float(outline[m.window][m.local].sum())
            n_out = float(outline.sum())
            if inter < 0.25 * min(m.count(), n_out) or c.area_px < EDGE_MIN_FRACTION * n_out:
                continue
        ok.append(c)
    if not ok:
        return None
    top = max(ok, key=lambda c: (c.support, -c.area_px))
    inner = [c for c in ok if c.area_px <= EDGE_INNER_MAX * top.area_px and c.support >= EDGE_INNER_SUPPORT
             and np.hypot(*(c.centre - top.centre)) <= EDGE_CONCENTRIC * np.sqrt(c.area_px / np.pi)]
    if inner:
        return max(inner, key=lambda c: (c.support, -c.area_px))
    return top


def edge_outline(s: np.ndarray, cy: float, cx: float, r_max: float, noise_sd: float,
                 allowed: np.ndarray | None, outline: Patch | None = None,
                 search: Patch | None = None) -> tuple[Patch, dict] | None:
    """Step 5: the candidate's outline from the edge of its shadow.  Rays are cast from
    (cy, cx) and from a grid over ``search`` (the candidate's bump; about
    ``EDGE_MAX_STARTS`` / 2 points), contours are recast from their own centres
    (:func:`centred_contours`) and the deposit's is chosen (:func:`choose_contour`)."""
    R = int(np.ceil(r_max)) + 4
    lo_r, lo_c, hi_r, hi_c = cy, cx, cy, cx
    if search is not None:
        lo_r, lo_c = min(lo_r, search.r0), min(lo_c, search.c0)
        hi_r, hi_c = max(hi_r, search.r0 + search.local.shape[0]), max(hi_c, search.c0 + search.local.shape[1])
    r0, c0 = max(int(lo_r) - R, 0), max(int(lo_c) - R, 0)
    win = (slice(r0, min(int(hi_r) + R + 1, s.shape[0])), slice(c0, min(int(hi_c) + R + 1, s.shape[1])))
    S = s[win]
    starts = [(cy - r0, cx - c0)]
    if search is not None:
        ys, xs = search.coords()
        step = max(2.0, float(np.sqrt(ys.size / (EDGE_MAX_STARTS / 2.0))))
        gy = np.arange(ys.min(), ys.max() + 1, step)
        gx = np.arange(xs.min(), xs.max() + 1, step)
        cells = np.stack(np.meshgrid(gy, gx, indexing="ij"), -1).reshape(-1, 2)
        inside = search.full(s.shape)[np.round(cells[:, 0]).astype(int), np.round(cells[:, 1]).astype(int)]
        starts += [(float(a) - r0, float(b) - c0) for a, b in cells[inside]]
    contours = centred_contours(S, starts, r_max, noise_sd)
    om = None if outline is None else outline.on(win, S.shape)
    best = choose_contour(contours, om)
    if best is None:
        return None
    m = best.mask(S.shape)
    inside = m.full(S.shape)
    if allowed is not None:
        inside &= allowed[win]
    if inside.sum() < 3:
        return None
    return Patch(r0, c0, inside).trimmed(), {"edge_support": best.support, "edge_contours": len(contours)}


def edge_step(s: np.ndarray, patch: Patch, bump: Patch, noise_sd: float, allowed: np.ndarray | None,
              taken: np.ndarray, pixel_mm: float, max_px: float, details: dict) -> Patch:
    """Step 5 for one kept candidate (outline ``patch``, bump of step 2 ``bump``): the
    edge outline when one is found with ``EDGE_SUPPORT``, else ``patch``."""
    ys, xs = patch.coords()
    cy, cx = float(ys.mean()), float(xs.mean())
    by, bx = bump.coords()
    r_ext = float(np.sqrt(((by - cy) ** 2 + (bx - cx) ** 2).max()))
    r_max = min(r_ext + EDGE_REACH_MM / pixel_mm, max_px / 2.0 + 4.0)
    edge = edge_outline(s, cy, cx, r_max, noise_sd, allowed, outline=patch, search=bump)
    if edge is not None:
        ep = Patch(edge[0].r0, edge[0].c0, edge[0].local & ~taken[edge[0].window]).trimmed()
        details.update(edge[1])
        if ep.count() >= 3 and edge[1]["edge_support"] >= EDGE_SUPPORT:
            details["threshold_outline_area_mm2"] = float(patch.count() * pixel_mm ** 2)
            return ep
    return patch
