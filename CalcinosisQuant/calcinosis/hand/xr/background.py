"""Backgrounds of the radiograph detector: the pixel noise, the line-opening background of
step 1 (bones and skin edges are long in one direction, a deposit is compact in all) and the
directional background of step 2 (interpolated across a candidate along the structure under
it).  docs/methods/hand-detection.md, radiographs, steps 1-2."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: orientations of the line openings (step 1) and of the directional fills (step 2)
N_OPENING_ANGLES = 36
N_FILL_ANGLES = 12

#: the noise's differences are kept within this many SD of their median (3: a normal
#: distribution keeps 99.7%, and its SD within is 0.9866 of the whole)
NOISE_CLIP_SD = 3.0
NOISE_CLIP_CORRECTION = 0.9866
NOISE_CLIP_ITERATIONS = 5


def noise_sigma(image2d: np.ndarray, where: np.ndarray | None = None) -> float:
    """Pixel noise SD from each pixel's difference to the mean of its left and right
    neighbours (a straight slope cancels; SD of that difference = 1.5^0.5 x the noise SD),
    over the pixels whose three are all in ``where`` (the tissue: never collimated or blank
    areas, whose differences are 0 and would make the noise 0).  Robustly, edges being rare:
    the SD of the differences within 3 SD of their median, iterated from the interquartile
    range (and corrected for the clipping).  Not the median absolute deviation: on 8- or
    12-bit images the differences take a few values and their median jumps between them,
    moving the estimate by 20% for nothing (the real normal hand turned by 5 degrees: 2.27 ->
    1.82, and every candidate's confidence rose with it)."""
    a = np.asarray(image2d, dtype=np.float64)
    d = a[:, 1:-1] - 0.5 * (a[:, :-2] + a[:, 2:])
    if where is not None:
        w = np.asarray(where, bool)
        d = d[w[:, 1:-1] & w[:, :-2] & w[:, 2:]]
    d = d.ravel()
    if d.size < 10:
        return 0.0
    q1, med, q3 = np.percentile(d, [25, 50, 75])
    s = (q3 - q1) / 1.349
    if s <= 0:
        s = float(np.std(d))
    for _ in range(NOISE_CLIP_ITERATIONS):
        kept = d[np.abs(d - med) <= NOISE_CLIP_SD * s]
        if kept.size < 10:
            break
        s = float(np.std(kept)) / NOISE_CLIP_CORRECTION
    return float(s / np.sqrt(1.5))


def fill_blank(image2d: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """``image2d`` with its ``blank`` pixels (collimation, burnt-in blanks: no image there)
    given the value of the nearest pixel with an image, so that the backgrounds see a bone
    cut by the collimator continue instead of ending in a black wall (which would make its
    last centimetre a bright bump against them).  Candidates are never searched there."""
    a = np.asarray(image2d, np.float32)
    blank = np.asarray(blank, bool)
    if not blank.any() or blank.all():
        return a
    nearest = ndimage.distance_transform_edt(blank, return_distances=False, return_indices=True)
    return a[tuple(nearest)]


def block_mean(image2d: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks (the last partial row/column blocks are averaged too)."""
    if k <= 1:
        return np.asarray(image2d, np.float32)
    h, w = image2d.shape
    H, W = -(-h // k), -(-w // k)
    pad = np.pad(np.asarray(image2d, np.float64), ((0, H * k - h), (0, W * k - w)), mode="edge")
    return pad.reshape(H, k, W, k).mean(axis=(1, 3)).astype(np.float32)


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
