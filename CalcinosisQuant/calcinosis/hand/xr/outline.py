"""Steps 2-3 of the radiograph detector: a candidate's outline against the background
interpolated across it, and the dense core inside the soft-tissue nodule a deposit raises
(docs/methods/hand-detection.md, radiographs, steps 2-3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .background import directional_background
from .patches import Patch, grown_window

#: how far (pixels) an outline may grow beyond where it started
GROW_PX = 4


def _component(E: np.ndarray, seed: np.ndarray, level: float) -> np.ndarray | None:
    lab, _ = ndimage.label(E >= level)
    ids, cnt = np.unique(lab[seed], return_counts=True)
    cnt, ids = cnt[ids > 0], ids[ids > 0]
    if ids.size == 0:
        return None
    return lab == ids[np.argmax(cnt)]


@dataclass
class Outline:
    patch: Patch
    peak: float               # peak excess over the background
    theta: float              # interpolation direction (radians)
    ring_error: float


def outline_against_background(s: np.ndarray, start: Patch, seed_rc: tuple[int, int], fraction: float,
                               floor: float, allowed: np.ndarray | None, margin: int = 2,
                               iterations: int = 2, grow_limit: int = 4,
                               theta_hint: float | None = None) -> Outline | None:
    """Outline of one candidate: background interpolated across ``start`` (then across
    the outline grown by ``margin`` pixels), outline = the component of excess >=
    max(fraction x peak, floor) holding the seed; never more than ``grow_limit`` pixels
    beyond ``start``."""
    win = grown_window(start, grow_limit + margin + 6, s.shape)
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
        out = Outline(Patch(win[0].start, win[1].start, new), peak, theta, err)
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


def dense_core(s: np.ndarray, bump: Outline, fraction: float, floor: float,
               allowed: np.ndarray | None) -> tuple[Outline, dict] | None:
    """Step 3 of the module docstring: the deposit inside its soft-tissue nodule."""
    win = grown_window(bump.patch, 8, s.shape)
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
