"""Radiograph candidate detection: calcific deposits against a background that follows
bones, skin edges and soft-tissue swellings (numpy/scipy only).

A PA hand radiograph is a projection: under a deposit lie bone shafts, bone ends, the
edge of the finger and the soft-tissue nodule the deposit raises.  The detector
works in five steps (the parameters of steps 1-4 are in :class:`~.detect.DetectParams` and
recorded; those of step 5 are module constants ``EDGE_*``):

1. **Seeds.**  The image (lightly smoothed, on an analysis grid of about 0.2 mm) minus
   its *line-opening background* - the maximum over 36 orientations of grey-level
   openings with line segments ``xr_background_mm`` long: bones and skin edges are long
   in one direction and survive such an opening, a deposit is compact in every direction
   and does not - is searched for bright blobs (scale-normalised Hessian, both
   curvatures negative; on a 0.4 mm grid), and so is the image itself (a deposit on the
   slope of a finger edge is hidden from the opening by the slope, not from the Hessian).
   A seed needs a blob response of ``SEED_BLOB_FRACTION`` of the contrast threshold and
   half the threshold against a ring around it; with landmarks, seeds clearly symmetric
   about a digit's axis (step 4 with half its margins) are skipped.
2. **Outline against a directional background.**  Around each seed the background
   under the candidate is interpolated linearly across it, along the direction that
   best predicts a ring of known pixels just outside it (cross-validation over 12
   directions): a deposit over a shaft, a cortex or a bone end is interpolated along
   that structure, one at the finger edge along the edge.  The outline is where the
   excess over that background reaches ``xr_edge_fraction`` (0.2) of its peak (an
   ellipsoid's shadow keeps 1 - 0.2² = 96% of its area there: its chord falls to zero
   as the square root of the distance to its edge), redrawn twice with the
   background re-interpolated just outside the new outline.
3. **Dense core.**  A deposit in the skin raises a soft-tissue nodule around it, and
   the nodule's shadow is a second, wider dome.  The azimuthal profile of the excess
   (in the ellipse coordinates of the outline) is fitted with one dome and with two
   nested domes (each ``sqrt(1 - r²/R²)``, on a plane); the inner dome's extent (plus two
   pixels) starts the final outline, drawn again as in step 2.  No second candidate is
   seeded within ``NODULE_MM`` of a kept one (its nodule).
4. **Bone is not calcinosis.**  Candidates whose core is elongated (aspect ratio >
   ``xr_max_aspect``: cortex seen edge-on, end plates) are dropped.  With landmarks,
   the digits' axes are known: a bone end, a tuft or a shaft is mirror-symmetric about
   its digit's axis and a deposit beside it is not, so a candidate within
   ``xr_axis_reach_mm`` of an axis whose excess over its mirror image is below
   ``xr_mirror_min`` of its peak (or below twice the noise) is dropped; at the carpus
   (proximal to the digits' bases + ``xr_carpal_margin_mm``) only candidates wider than
   a carpal bone (``xr_carpal_min_mm``) and brighter than ``xr_carpal_contrast`` x the
   median of everything examined there are kept.  Without landmarks these tests cannot
   run (a warning says so) and every compact bright candidate is returned.
5. **Edge outline.**  The area of steps 2-3 depends on the background under the
   candidate, and a deposit's own soft-tissue nodule or a bone end under it biases it
   (tens of percent, up to several times the area).  A dense body's shadow, however, ends
   with a square-root edge (its chord falls as sqrt(distance to the edge): infinite slope),
   which a soft-tissue swelling around it does not have at the same place.  The outline of
   a kept candidate is therefore redrawn on that edge, using the image only.  Rays (72,
   sampled every 0.25 pixel, cubic spline of the smoothed image) are cast from a point;
   along each ray the slope g = -dI/dr is detrended (R = g(r) - (g(r-2 px) + g(r+2 px)) / 2:
   a smooth slope such as the nodule's dome or a bone's shoulder gives R ~ 0, a sharp edge a
   peak), averaged over three neighbouring rays, and its local maxima above
   ``EDGE_RIDGE_K`` x the noise are the edge points (ridges).  Each peak of the histogram of
   ridge radii starts a closed contour, snapped to the ridges (on each ray the ridge nearest
   to an ellipse, the ellipse refitted until the same ridges are picked, at most five
   times); a contour's *support* is the fraction of rays with a ridge within
   ``EDGE_TOL_PX`` of it.  Rays see a closed edge best from its own centre (from elsewhere
   they cross it obliquely, or from outside, only its far side), and the centre of the
   candidate's outline is often not the deposit's (a faint deposit inside a bright nodule,
   a deposit beside a bone end), so the *centre is searched*: rays are cast from the
   outline's centre and from a grid over the candidate's bump (about
   ``EDGE_MAX_STARTS`` / 2 points), a contour whose ellipse is centred within
   ``EDGE_CENTRE_TOL_PX`` of its rays' origin is kept (when its support reaches
   ``EDGE_SUPPORT``, 0.75), and one centred elsewhere is recast from its own centre
   (``EDGE_MAX_STARTS`` origins in all).  Among the centred contours that share a quarter of
   the smaller of the two with the candidate's outline and cover ``EDGE_MIN_FRACTION`` of it
   (smaller rings are texture inside it), the best supported is taken (ties: the smaller:
   a deposit off-centre in its swelling is, from its own centre, as well supported as the
   swelling), unless a smaller contour concentric with it (centres within
   ``EDGE_CONCENTRIC`` x its radius, at most ``EDGE_INNER_MAX`` of its area, support >=
   ``EDGE_INNER_SUPPORT``) lies inside: that is the deposit and the larger the soft tissue
   it raises.  The outline follows the ridges where they lie on
   the contour (the ellipse elsewhere) and is moved out by ``EDGE_OFFSET_PX``: the
   detector's smoothing (1-pixel Gaussian over the pixel's own area) puts the steepest
   point of a square-root edge 0.72 pixel inside it (measured on rendered ellipsoids,
   asserted in the tests).  When no contour qualifies (bone edges crossing the deposit, a
   deposit fainter than the edge of its nodule), the outline of step 3 is kept;
   ``edge_support`` is recorded either way.

What a single projection cannot tell is listed in the README (hand section): deposits
superimposed on the middle of a joint or a tuft (as symmetric as the bone), small deposits
over the carpal bones, the edge of a faint deposit inside a bright soft-tissue nodule,
and the edge of a deposit crossed by the edges of the bones under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from calcinosis.core.geometry import Geometry
from calcinosis.core.progress import Progress, report

#: blob scales (mm) searched for seeds
SEED_SCALES_MM = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
#: analysis pixel (mm): finer images are averaged down to about this size
ANALYSIS_SPACING_MM = 0.2
N_OPENING_ANGLES = 36
N_FILL_ANGLES = 12
#: a seed's blob response (scale-normalised curvature, image units) must reach this fraction of
#: the contrast threshold: weaker curvature is a crease of the soft tissue or of a bone outline
SEED_BLOB_FRACTION = 0.4
#: soft tissue a deposit raises around it (mm): no second candidate is seeded that close
NODULE_MM = 2.0
#: how far (pixels) an outline may grow beyond where it started
GROW_PX = 4


# ---------------------------------------------------------------------- noise, smoothing
def noise_sigma(image2d: np.ndarray) -> float:
    """Pixel noise SD from horizontal neighbour differences (MAD, robust to edges)."""
    d = np.diff(np.asarray(image2d, dtype=np.float64), axis=1).ravel()
    if d.size < 10:
        return 0.0
    mad = np.median(np.abs(d - np.median(d)))
    return float(mad / 0.6745 / np.sqrt(2.0))


def block_mean(image2d: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks (the last partial row/column blocks are averaged too)."""
    if k <= 1:
        return np.asarray(image2d, np.float32)
    h, w = image2d.shape
    H, W = -(-h // k), -(-w // k)
    pad = np.pad(np.asarray(image2d, np.float64), ((0, H * k - h), (0, W * k - w)), mode="edge")
    return pad.reshape(H, k, W, k).mean(axis=(1, 3)).astype(np.float32)


# ---------------------------------------------------------------------- line openings
def _shear(a: np.ndarray, t: float, fill):
    """Shear column j by -round(j * t) rows so that the digital lines i = i0 + round(j t)
    (slope t, rows per column) become rows of the output.  Returns (output, rows, cols):
    ``output[rows, cols]`` is ``a``."""
    h, w = a.shape
    shift = np.round(np.arange(w) * t).astype(np.int64)
    smax = int(shift.max())
    rows = np.arange(h)[:, None] + (smax - shift)[None, :]
    cols = np.broadcast_to(np.arange(w)[None, :], (h, w))
    out = np.full((h + smax - int(shift.min()), w), fill, dtype=a.dtype)
    out[rows, cols] = a
    return out, rows, cols


def line_opening_background(image2d: np.ndarray, length_px: float, n_angles: int = N_OPENING_ANGLES) -> np.ndarray:
    """Maximum over ``n_angles`` orientations of the grey-level opening with a digital
    line segment ``length_px`` pixels long (physical length; lines are sheared rows, so
    pixel values are never interpolated).  Structures longer than the segment in some
    direction keep their value; compact bumps narrower than it in every direction are
    removed."""
    img = np.asarray(image2d, np.float32)
    big = np.float32(float(img.max()) + 1e6)
    out = np.full(img.shape, -np.inf, np.float32)
    for k in range(n_angles):
        ang = np.pi * k / n_angles - np.pi / 2
        c, s = np.cos(ang), np.sin(ang)
        if abs(c) >= abs(s):
            a, transpose, t = img, False, s / c
        else:
            a, transpose, t = img.T, True, c / s
        sheared, rows, cols = _shear(a, t, big)
        # odd length: the centred erosion and dilation windows are then each other's reflection
        n = 2 * (max(int(round(length_px / np.sqrt(1.0 + t * t))), 1) // 2) + 1
        e = ndimage.minimum_filter1d(sheared, n, axis=1, mode="constant", cval=big)
        e[e >= big] = -big
        o = ndimage.maximum_filter1d(e, n, axis=1, mode="constant", cval=-big)
        back = o[rows, cols]
        np.maximum(out, back.T if transpose else back, out=out)
    return out


# ---------------------------------------------------------------------- directional background
def directional_fill(S: np.ndarray, M: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Fill the pixels of mask ``M`` by linear interpolation along direction ``theta``
    (radians from the column axis toward the row axis) between the nearest pixels
    outside ``M`` on each side (digital lines).  Returns (filled image, ok) where ok is
    False for mask pixels that had known pixels on one side only."""
    c, s = np.cos(theta), np.sin(theta)
    if abs(c) >= abs(s):
        A, Mm, t, tr = S, M, s / c, False
    else:
        A, Mm, t, tr = S.T, M.T, c / s, True
    As, rows, cols = _shear(np.asarray(A, np.float64), t, np.nan)
    Ms, _, _ = _shear(np.asarray(Mm, bool), t, True)
    Ms |= np.isnan(As)
    ph, w = As.shape
    idx = np.broadcast_to(np.arange(w)[None, :], (ph, w))
    left = np.maximum.accumulate(np.where(~Ms, idx, -1), axis=1)
    right = np.minimum.accumulate(np.where(~Ms, idx, w)[:, ::-1], axis=1)[:, ::-1]
    rr = np.broadcast_to(np.arange(ph)[:, None], (ph, w))
    hasl, hasr = left >= 0, right < w
    vl = np.where(hasl, As[rr, np.clip(left, 0, w - 1)], np.nan)
    vr = np.where(hasr, As[rr, np.clip(right, 0, w - 1)], np.nan)
    dl, dr = idx - left, right - idx
    wl = dr / np.maximum(dl + dr, 1)
    est = np.where(hasl & hasr, wl * vl + (1 - wl) * vr, np.where(hasl, vl, vr))
    filled = np.where(Ms, est, As)[rows, cols]
    both = (hasl & hasr)[rows, cols]
    if tr:
        filled, both = filled.T, both.T
    out = np.asarray(S, np.float64).copy()
    Mb = np.asarray(M, bool)
    out[Mb] = filled[Mb]
    bad = np.isnan(out)
    if bad.any():   # a whole line inside the mask (window too small): the mean of the known pixels
        out[bad] = float(np.mean(S[~Mb])) if (~Mb).any() else 0.0
    return out, both | ~Mb


def directional_background(S: np.ndarray, M: np.ndarray, ring_px: int = 2, n_angles: int = N_FILL_ANGLES,
                           theta_hint: float | None = None) -> tuple[np.ndarray, float, float]:
    """Background under mask ``M``: :func:`directional_fill` along the direction that best
    predicts the ``ring_px``-wide ring of pixels just outside ``M`` when that ring is
    filled too (cross-validation over ``n_angles`` directions, or over ``theta_hint`` and
    its two neighbours).  Returns (background, direction, ring RMS error)."""
    M = np.asarray(M, bool)
    M2 = ndimage.binary_dilation(M, iterations=ring_px)
    ring = M2 & ~M
    best_err, best_theta = np.inf, 0.0 if theta_hint is None else theta_hint
    if theta_hint is None:
        thetas = [np.pi * k / n_angles for k in range(n_angles)]
    else:
        step = np.pi / n_angles
        thetas = [theta_hint - step, theta_hint, theta_hint + step]
    for th in thetas:
        bv, ok = directional_fill(S, M2, th)
        sel = ring & ok
        if sel.sum() < 0.5 * max(ring.sum(), 1):
            continue
        err = float(np.sqrt(np.mean((bv[sel] - S[sel]) ** 2)))
        if err < best_err:
            best_err, best_theta = err, th
    bg, _ = directional_fill(S, M, best_theta)
    return bg, best_theta, best_err


# ---------------------------------------------------------------------- blobs
def blobness(image2d: np.ndarray, pixel_mm: float, scales_mm=SEED_SCALES_MM) -> tuple[np.ndarray, np.ndarray]:
    """Scale-normalised bright-blob response sigma² x (-(larger Hessian eigenvalue)):
    positive only where the image curves down in every direction.  (response, scale mm).
    The Hessian is taken by finite differences of the Gaussian-smoothed image."""
    img = np.asarray(image2d, np.float32)
    best = np.zeros(img.shape, np.float32)
    best_scale = np.zeros(img.shape, np.float32)
    for s_mm in scales_mm:
        sig = s_mm / pixel_mm
        if sig < 0.5:
            continue
        g = ndimage.gaussian_filter(img, sig)
        gy, gx = np.gradient(g)
        hyy, hyx = np.gradient(gy)
        hxx = np.gradient(gx, axis=1)
        disc = np.sqrt(np.maximum((hxx - hyy) ** 2 / 4 + hyx * hyx, 0))
        r = (-(sig * sig) * ((hxx + hyy) / 2 + disc)).astype(np.float32)
        better = r > best
        best[better] = r[better]
        best_scale[better] = s_mm
    return best, best_scale


# ---------------------------------------------------------------------- patches and outlines
@dataclass
class Patch:
    """A mask on a window of the analysis grid: ``local`` placed at (``r0``, ``c0``)."""

    r0: int
    c0: int
    local: np.ndarray

    @property
    def window(self) -> tuple[slice, slice]:
        return slice(self.r0, self.r0 + self.local.shape[0]), slice(self.c0, self.c0 + self.local.shape[1])

    def trimmed(self) -> "Patch":
        ys = np.flatnonzero(self.local.any(axis=1))
        xs = np.flatnonzero(self.local.any(axis=0))
        if ys.size == 0:
            return Patch(self.r0, self.c0, np.zeros((0, 0), bool))
        return Patch(self.r0 + ys[0], self.c0 + xs[0], self.local[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1].copy())

    def count(self) -> int:
        return int(self.local.sum())

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        ys, xs = np.nonzero(self.local)
        return ys + self.r0, xs + self.c0

    def full(self, shape) -> np.ndarray:
        out = np.zeros(shape, bool)
        ys, xs = self.coords()
        out[ys, xs] = True
        return out

    def on(self, window: tuple[slice, slice], shape) -> np.ndarray:
        """This mask on another window (same grid)."""
        out = np.zeros(shape, bool)
        ys, xs = self.coords()
        ys, xs = ys - window[0].start, xs - window[1].start
        ok = (ys >= 0) & (ys < shape[0]) & (xs >= 0) & (xs < shape[1])
        out[ys[ok], xs[ok]] = True
        return out


def _grown_window(p: Patch, pad: int, shape) -> tuple[slice, slice]:
    return (slice(max(p.r0 - pad, 0), min(p.r0 + p.local.shape[0] + pad, shape[0])),
            slice(max(p.c0 - pad, 0), min(p.c0 + p.local.shape[1] + pad, shape[1])))


def _component(E: np.ndarray, seed: np.ndarray, level: float) -> np.ndarray | None:
    lab, _ = ndimage.label(E >= level)
    ids, cnt = np.unique(lab[seed], return_counts=True)
    cnt, ids = cnt[ids > 0], ids[ids > 0]
    if ids.size == 0:
        return None
    return lab == ids[np.argmax(cnt)]


@dataclass
class _Outline:
    patch: Patch
    peak: float               # peak excess over the background
    theta: float              # interpolation direction (radians)
    ring_error: float


def outline_against_background(s: np.ndarray, start: Patch, seed_rc: tuple[int, int], fraction: float,
                               floor: float, allowed: np.ndarray | None, margin: int = 2,
                               iterations: int = 2, grow_limit: int = 4,
                               theta_hint: float | None = None) -> _Outline | None:
    """Outline of one candidate: background interpolated across ``start`` (then across
    the outline grown by ``margin`` pixels), outline = the component of excess >=
    max(fraction x peak, floor) holding the seed; never more than ``grow_limit`` pixels
    beyond ``start``."""
    win = _grown_window(start, grow_limit + margin + 6, s.shape)
    S = s[win]
    shape = S.shape
    m = start.on(win, shape)
    limit = ndimage.binary_dilation(m, iterations=grow_limit)
    if allowed is not None:
        limit &= allowed[win]
    r0, c0 = seed_rc[0] - win[0].start, seed_rc[1] - win[1].start
    seed0 = np.zeros(shape, bool)
    if 0 <= r0 < shape[0] and 0 <= c0 < shape[1]:
        seed0[r0, c0] = True
    seed0 = ndimage.binary_dilation(seed0, iterations=2)
    out = None
    for it in range(iterations + 1):
        if not m.any():
            return None
        M = (m if it == 0 else ndimage.binary_dilation(m, iterations=margin)) & limit
        bg, theta, err = directional_background(S, M, theta_hint=theta_hint)
        theta_hint = theta     # the outline changes little from one pass to the next
        E = S - bg
        seed = seed0 & M
        if not seed.any():
            return None
        peak = float(E[seed].max())
        if peak <= floor:
            return None
        new = _component(E, seed, max(fraction * peak, floor))
        if new is None:
            return None
        new &= M
        out = _Outline(Patch(win[0].start, win[1].start, new), peak, theta, err)
        if np.array_equal(new, m):
            break
        m = new
    out.patch = out.patch.trimmed()
    return out


def _dome(x: np.ndarray, R: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(0.0, 1.0 - (x / R) ** 2))


def fit_nested_domes(rho: np.ndarray, values: np.ndarray, bin_width: float = 0.04) -> tuple[float, float, float]:
    """Fit an azimuthal profile (``rho``: normalised radius, 1 at the outline) with one
    dome ``P sqrt(1 - rho²/R²)`` on a plane and with two nested domes (R1 < R2).
    Returns (R one dome, R1 inner dome (nan if no two-dome fit), F statistic of the
    second dome)."""
    edges = np.arange(0.0, float(rho.max()) + bin_width, bin_width)
    idx = np.clip(np.digitize(rho, edges) - 1, 0, edges.size - 2)
    nb = edges.size - 1
    cnt = np.bincount(idx, minlength=nb)[:nb]
    tot = np.bincount(idx, weights=values, minlength=nb)[:nb]
    ok = cnt > 0
    x = (edges[:-1] + bin_width / 2)[ok]
    y = tot[ok] / cnt[ok]
    w = np.sqrt(cnt[ok]).astype(float)
    if x.size < 6:
        return float("nan"), float("nan"), 0.0
    grid = np.arange(0.2, float(x.max()), 0.03)
    if grid.size == 0:
        return float("nan"), float("nan"), 0.0
    one = np.ones_like(x)
    D = _dome(x[None, :], grid[:, None])                                  # (g, n)
    A1 = np.stack([np.broadcast_to(one, D.shape), np.broadcast_to(x, D.shape), D], axis=2) * w[None, :, None]
    yw = y * w
    c1, ssr1 = _batched_lstsq(A1, yw)
    ssr1[c1[:, 2] <= 0] = np.inf
    k1 = int(np.argmin(ssr1))
    i1, i2 = np.nonzero(grid[None, :] > 1.1 * grid[:, None])
    if i1.size == 0 or not np.isfinite(ssr1[k1]):
        return float(grid[k1]) if np.isfinite(ssr1[k1]) else float("nan"), float("nan"), 0.0
    D1, D2 = D[i1], D[i2]
    A2 = np.stack([np.broadcast_to(one, D1.shape), np.broadcast_to(x, D1.shape), D1, D2], axis=2) * w[None, :, None]
    c2, ssr2 = _batched_lstsq(A2, yw)
    ssr2[(c2[:, 2] <= 0) | (c2[:, 3] <= 0)] = np.inf
    k2 = int(np.argmin(ssr2))
    if not np.isfinite(ssr2[k2]):
        return float(grid[k1]), float("nan"), 0.0
    F = float((ssr1[k1] - ssr2[k2]) / max(ssr2[k2], 1e-12) * max(x.size - 5, 1))
    return float(grid[k1]), float(grid[i1[k2]]), F


def _batched_lstsq(A: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares for a batch of design matrices A (b, n, p) and one target y (n,)."""
    AtA = np.einsum("bnp,bnq->bpq", A, A)
    Aty = np.einsum("bnp,n->bp", A, y)
    AtA = AtA + np.eye(A.shape[2])[None] * 1e-9 * np.trace(AtA, axis1=1, axis2=2)[:, None, None]
    c = np.linalg.solve(AtA, Aty[..., None])[..., 0]
    r = np.einsum("bnp,bp->bn", A, c) - y[None, :]
    return c, np.einsum("bn,bn->b", r, r)


def dense_core(s: np.ndarray, bump: _Outline, fraction: float, floor: float,
               allowed: np.ndarray | None) -> tuple[_Outline, dict] | None:
    """Step 3 of the module docstring: the deposit inside its soft-tissue nodule."""
    win = _grown_window(bump.patch, 8, s.shape)
    S = s[win]
    cand = bump.patch.on(win, S.shape)
    ys, xs = np.nonzero(cand)
    if ys.size < 8:
        return None
    M = ndimage.binary_dilation(cand, iterations=2)
    if allowed is not None:
        M &= allowed[win]
    bg, theta0, _ = directional_background(S, M, theta_hint=bump.theta)
    E = S - bg
    cy, cx = ys.mean(), xs.mean()
    cov = np.cov(np.stack([ys - cy, xs - cx])) + np.eye(2) / 12.0
    Ci = np.linalg.inv(cov)
    Y, X = np.nonzero(M)
    dy, dx = Y - cy, X - cx
    rho = np.sqrt(np.maximum(Ci[0, 0] * dy * dy + 2 * Ci[0, 1] * dy * dx + Ci[1, 1] * dx * dx, 0) / 4.0)
    r_one, r_in, F = fit_nested_domes(rho, E[Y, X])
    radius = r_in if np.isfinite(r_in) else r_one
    if not np.isfinite(radius):
        return None
    inside = np.zeros(S.shape, bool)
    inside[Y[rho <= radius], X[rho <= radius]] = True
    inside[int(round(cy)), int(round(cx))] = True
    inside = ndimage.binary_dilation(inside, iterations=2)     # start just outside the dome's edge
    seed = (int(round(cy)) + win[0].start, int(round(cx)) + win[1].start)
    got = outline_against_background(s, Patch(win[0].start, win[1].start, inside), seed, fraction, floor, allowed,
                                     iterations=2, grow_limit=GROW_PX, theta_hint=theta0)
    if got is None:
        return None
    return got, {"core_radius_fraction": float(radius), "nodule_F": F}


# ---------------------------------------------------------------------- edge outline (step 5)
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
                    coef: np.ndarray | None = None) -> list[tuple]:
    """Every closed contour the edge ridges support around (cy, cx): one per peak of the
    histogram of ridge radii, snapped to the ridges (:func:`snap_contour`).  Returns
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
        if any(float(o[1].min()) - 0.5 <= r0 <= float(o[1].max()) + 0.5 for o in out):
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
                     max_starts: int = EDGE_MAX_STARTS) -> list[EdgeContour]:
    """Rays are cast from each start (window coordinates); a contour whose ellipse is
    centred within ``EDGE_CENTRE_TOL_PX`` of the start is kept, one centred elsewhere
    (with at least half the rays' support) adds its centre to the starts (a contour seen
    off-centre is recast from its own centre), up to ``max_starts`` starts in all."""
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
        hyps = edge_hypotheses(S, y, x, r_max, noise_sd, coef)
        for th, r, f, support in hyps:
            ncx, ncy = f[0]
            if np.hypot(ncy - y, ncx - x) <= EDGE_CENTRE_TOL_PX:
                if support >= EDGE_SUPPORT:
                    out.append(EdgeContour(y, x, th, r, f, support))
            elif support >= 0.5 or support >= max((h[3] for h in hyps), default=0.0):
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


# ---------------------------------------------------------------------- bone model (landmarks)
class BoneModel:
    """The digits' axes (from landmarks, on the analysis grid) for the symmetry and
    carpus tests of step 4."""

    def __init__(self, rays_px: list[np.ndarray], pixel_mm: float):
        self.rays = [np.asarray(r, float) for r in rays_px if len(r) >= 2]   # (n, 2) (row, col), base first
        self.px = pixel_mm

    @classmethod
    def from_landmarks(cls, landmarks, geometry: Geometry, k: int, pixel_mm: float) -> "BoneModel | None":
        from .assign import build_rays
        from .landmarks import check_against_image
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


# ---------------------------------------------------------------------- the detector
REASON_ELONGATED = "elongated (cortex seen edge-on or an end plate)"
REASON_SYMMETRIC = "mirror-symmetric about the digit's axis (bone end, tuft or shaft)"
REASON_CARPAL = "at the carpus, not wider or brighter than the carpal bones"

@dataclass
class XRCandidate:
    patch: Patch              # outline on the analysis grid
    peak: float               # peak excess over its background (image units)
    area_mm2: float
    aspect: float
    reason: str | None        # None: kept; else why it was dropped
    details: dict
    carpal: bool = False      # lies at the carpus (landmarks)


def _edge_radius(s: np.ndarray, r: int, c: int, r_max: float) -> float:
    """Radius (pixels) at which the azimuthal mean profile around (r, c) falls most steeply."""
    rs = np.arange(0.0, max(r_max, 3.0) + 1e-9, 0.5)
    py = r + rs[:, None] * _RING_SIN[None, ::2]
    px = c + rs[:, None] * _RING_COS[None, ::2]
    prof = ndimage.map_coordinates(s, [py.ravel(), px.ravel()], order=1, mode="nearest").reshape(py.shape).mean(axis=1)
    slope = np.gradient(ndimage.gaussian_filter1d(prof, 1.0), rs)
    ok = rs >= 1.5
    return float(rs[ok][np.argmin(slope[ok])])


_RING_SIN = np.sin(np.linspace(0, 2 * np.pi, 32, endpoint=False))
_RING_COS = np.cos(np.linspace(0, 2 * np.pi, 32, endpoint=False))


def _aspect(patch: Patch) -> float:
    ys, xs = np.nonzero(patch.local)
    if ys.size < 3:
        return 1.0
    cov = np.cov(np.stack([xs, ys]).astype(float)) + np.eye(2) / 12.0
    ev = np.sort(np.linalg.eigvalsh(cov))
    return float(np.sqrt(ev[1] / max(ev[0], 1e-12)))


def _symmetric_seed(bones: BoneModel, s: np.ndarray, r: int, c: int, rad: float, contrast: float, s_noise: float,
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
    excess = bones.mirror_excess(s, _disk_patch(r, c, max(rad, 1.5), s.shape))
    return excess < 0.5 * max(params.xr_mirror_min * contrast, 2.0 * 1.28 * np.sqrt(2.0) * s_noise)


def _disk_patch(r: float, c: float, rad: float, shape) -> Patch:
    R = int(np.ceil(rad)) + 1
    r0, c0 = max(int(r) - R, 0), max(int(c) - R, 0)
    r1, c1 = min(int(r) + R + 1, shape[0]), min(int(c) + R + 1, shape[1])
    yy, xx = np.mgrid[r0:r1, c0:c1]
    return Patch(r0, c0, (yy - r) ** 2 + (xx - c) ** 2 <= rad * rad)


def find_candidates(img: np.ndarray, pixel_mm: float, params, region: np.ndarray | None,
                    exclude: np.ndarray | None, bones: BoneModel | None, min_contrast: float | None,
                    progress: Progress | None = None) -> tuple[list[XRCandidate], dict]:
    """Steps 1-4 on the analysis grid.  Returns every candidate looked at (kept ones have
    ``reason`` None) and what was estimated (noise, contrast threshold)."""
    sigma = noise_sigma(img)
    s = ndimage.gaussian_filter(np.asarray(img, np.float32), 1.0)
    s_noise = sigma / (2.0 * np.sqrt(np.pi))          # noise SD after the 1-pixel Gaussian
    thr = min_contrast if min_contrast is not None else params.xr_noise_k * max(sigma, 1e-6)
    floor = 2.5 * s_noise
    allowed = None
    if region is not None:
        allowed = region.copy()
    if exclude is not None:
        allowed = ~exclude if allowed is None else (allowed & ~exclude)
    # seeds are looked for on a grid of about 0.4 mm (deposits >= 2 mm span 5 of its pixels)
    ks = 2 if pixel_mm < 0.3 else 1
    s_seed = s if ks == 1 else ndimage.gaussian_filter(block_mean(img, ks), 1.0)
    a_seed = None if allowed is None else (block_mean(allowed.astype(np.float32), ks) >= 0.5)
    report(progress, 0.05, "line-opening background")
    T = s_seed - line_opening_background(s_seed, params.xr_background_mm / (pixel_mm * ks))
    report(progress, 0.3, "looking for blobs")
    seeds = []
    # the top-hat on the coarse grid, the image itself on the analysis grid (small deposits)
    for base, kb, ab in ((T, ks, a_seed), (s, 1, allowed)):
        blob, scale = blobness(base, pixel_mm * kb)
        nb = float(np.median(np.abs(blob))) / 0.6745
        pk = (blob == ndimage.maximum_filter(blob, size=5 if kb == 1 else 3)) \
            & (blob > max(5.0 * nb, SEED_BLOB_FRACTION * thr))
        if ab is not None:
            pk &= ab
        for r, c in zip(*np.nonzero(pk)):
            if kb > 1:   # back on the analysis grid: the brightest pixel of the block
                r0, c0 = r * kb, c * kb
                blk = s[r0:r0 + kb, c0:c0 + kb]
                dr, dc = np.unravel_index(int(np.argmax(blk)), blk.shape)
                rr_, cc_ = r0 + dr, c0 + dc
            else:
                rr_, cc_ = r, c
            seeds.append((float(blob[r, c]), int(rr_), int(cc_), float(scale[r, c])))
    del T, s_seed
    seeds.sort(key=lambda t: (-t[0], t[1], t[2]))
    taken = np.zeros(s.shape, bool)
    tried = np.zeros(s.shape, bool)
    cands: list[XRCandidate] = []
    max_px = params.xr_max_lesion_mm / pixel_mm
    frac = params.xr_edge_fraction
    n_seeds = len(seeds)
    skipped = {"no contrast against the ring around the seed": 0, REASON_SYMMETRIC: 0}
    for n, (strength, r, c, scale_mm) in enumerate(seeds):
        if n % 25 == 0:
            report(progress, 0.4 + 0.55 * n / max(n_seeds, 1), f"outlining candidates ({n}/{n_seeds} seeds)")
        if taken[r, c] or tried[r, c]:
            continue
        tried[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3] = True
        # cheap test first: the centre against a ring at twice the blob radius (a bump on a
        # straight slope keeps its excess, a flat or sloping background has none)
        rr_ = max(2.0 * scale_mm * np.sqrt(2.0) / pixel_mm, 2.0)
        ring_v = ndimage.map_coordinates(s, [r + rr_ * _RING_SIN, c + rr_ * _RING_COS], order=1, mode="nearest")
        contrast = s[r, c] - float(ring_v.mean())
        if contrast < 0.5 * thr:
            skipped["no contrast against the ring around the seed"] += 1
            continue
        if bones is not None and _symmetric_seed(bones, s, r, c, rr_ / 2.0, contrast, s_noise, params):
            skipped[REASON_SYMMETRIC] += 1
            continue
        # start: a disk reaching beyond where the azimuthal mean profile falls most steeply
        # (the edge of the deposit or of the nodule around it)
        rad = 1.4 * _edge_radius(s, r, c, min(max_px / 2.0, 4.0 * rr_)) + 2.0
        start = _disk_patch(r, c, rad, s.shape)
        if allowed is not None:
            start.local &= allowed[start.window]
        bump = outline_against_background(s, start, (r, c), frac, floor, allowed, grow_limit=GROW_PX)
        if bump is None or bump.peak < thr or bump.patch.count() < 3:
            continue
        if max(bump.patch.local.shape) > max_px:
            continue
        if taken[bump.patch.window][bump.patch.local].mean() > 0.3:
            continue
        core = dense_core(s, bump, frac, floor, allowed)
        details = {"bump_area_mm2": float(bump.patch.count() * pixel_mm ** 2), "seed_blob": strength / thr}
        final = bump
        if core is not None and core[0].patch.count() >= 3 and core[0].peak >= thr:
            final = core[0]
            details.update(core[1])
        patch = Patch(final.patch.r0, final.patch.c0, final.patch.local & ~taken[final.patch.window]).trimmed()
        if patch.count() < 3:
            continue
        asp = _aspect(patch)
        reason = None
        carpal = False
        if asp > params.xr_max_aspect:
            reason = REASON_ELONGATED
        elif bones is not None:
            ys, xs = patch.coords()
            nb = bones.nearest(np.array([ys.mean(), xs.mean()]))
            if nb is not None:
                d_mm, along_mm, _, _, length_mm = nb
                if along_mm < params.xr_carpal_margin_mm and d_mm <= params.xr_carpal_reach_mm:
                    carpal = True
                    eq = 2.0 * np.sqrt(bump.patch.count() / np.pi) * pixel_mm
                    details["equivalent_diameter_mm"] = float(eq)
                    if eq < params.xr_carpal_min_mm:
                        reason = REASON_CARPAL
                elif d_mm <= params.xr_axis_reach_mm and along_mm <= length_mm + params.xr_axis_reach_mm:
                    excess = bones.mirror_excess(s, patch)
                    details["mirror_ratio"] = excess / max(final.peak, 1e-9)
                    # a symmetric structure leaves only noise: the 90th percentile of the difference
                    # of two pixels' noise is 1.28 x sqrt(2) x their SD, asked to clear 2x that
                    if excess < max(params.xr_mirror_min * final.peak, 2.0 * 1.28 * np.sqrt(2.0) * s_noise):
                        reason = REASON_SYMMETRIC
        threshold_patch = patch
        if reason is None:
            # step 5: the outline of a kept candidate is redrawn on the edge of its shadow
            patch = edge_step(s, patch, bump.patch, sigma, allowed, taken, pixel_mm, max_px, details)
        cands.append(XRCandidate(patch, final.peak, float(patch.count() * pixel_mm ** 2), asp, reason, details,
                                 carpal))
        taken[threshold_patch.window] |= threshold_patch.local
        if reason is None and bones is not None:
            # the soft-tissue nodule around a deposit seeds nothing more: its bump and a disk
            # reaching NODULE_MM beyond it (without landmarks a kept candidate may be a bone
            # end, which must not hide a deposit next to it)
            ys, xs = bump.patch.coords()
            rad_n = np.sqrt(bump.patch.count() / np.pi) + NODULE_MM / pixel_mm
            disk = _disk_patch(ys.mean(), xs.mean(), rad_n, s.shape)
            taken[disk.window] |= disk.local
            taken[patch.window] |= patch.local
        else:
            taken[patch.window] |= patch.local
    # at the carpus a deposit must also stand out of the carpal bones: brighter than
    # xr_carpal_contrast x the median contrast of everything examined there (mostly bone)
    carpal_peaks = [c.peak for c in cands if c.carpal]
    carpal_level = None
    if carpal_peaks:
        carpal_level = params.xr_carpal_contrast * float(np.median(carpal_peaks))
        for c in cands:
            if c.carpal and c.reason is None and c.peak < carpal_level:
                c.reason = REASON_CARPAL
    report(progress, 0.97, f"{sum(c.reason is None for c in cands)} candidates kept")
    return cands, {"noise_sd_estimate": sigma, "threshold_used": thr, "n_seeds": n_seeds,
                   "seeds_skipped": skipped, "carpal_contrast_level": carpal_level}


__all__ = ["noise_sigma", "block_mean", "line_opening_background", "directional_fill", "directional_background",
           "blobness", "Patch", "outline_against_background", "fit_nested_domes", "dense_core", "ray_profiles",
           "edge_ridges", "fit_conic", "ellipse_radii", "snap_contour", "edge_hypotheses", "edge_contour", "EdgeContour",
           "centred_contours", "choose_contour", "edge_outline", "edge_step", "BoneModel",
           "XRCandidate", "find_candidates", "SEED_SCALES_MM", "ANALYSIS_SPACING_MM"]
