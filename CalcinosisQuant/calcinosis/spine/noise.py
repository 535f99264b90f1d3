"""The CT's noise around the spine, and how far a candidate stands above its surroundings.

A fixed 130 HU threshold means different things on a quiet abdomen (noise ~10 HU) and
on the shoulders or an obese patient (40-60 HU): there it picks up noise clusters that
span two slices.  And inside an enhanced vessel or organ (blood 110-400 HU) it cuts the
lumen into fragments.  A calcification is a dense body: it stands above the tissue
around it by many times the noise.  Two measurements, both recorded:

* :func:`noise_by_slice` - the noise (HU, one standard deviation) on every axial slice
  of the box: on sampled slices, the median of the local standard deviation in 5 x 5
  voxel windows over soft tissue (windows whose mean lies in -20…110 HU: muscle, organs,
  not fat, air or bone), interpolated between them and smoothed along the spine
  (a running median over three sampled slices).  Structure edges raise a few windows'
  spread; the median ignores them.
* :func:`local_contrast` - per candidate, its peak minus the median of the tissue around
  it: the voxels below the threshold within ``shell_mm`` of it (labelled bone left out).
  A candidate is kept when this contrast reaches ``noise_multiple`` times the noise of
  its slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from calcinosis.core.geometry import Geometry

SOFT_TISSUE_HU = (-20.0, 110.0)


def noise_by_slice(ct: np.ndarray, geometry: Geometry, every_mm: float = 10.0, window: int = 5) -> np.ndarray:
    """Noise (HU) per slice along the box's axial axis (see the module docstring);
    NaN everywhere when no slice holds enough soft tissue."""
    ax = geometry.axial_axis
    n = ct.shape[ax]
    step = max(1, int(round(every_mm / geometry.spacing_along_array_axis(ax))))
    picks = np.unique(np.r_[np.arange(0, n, step), n - 1])
    est = np.full(picks.size, np.nan)
    for t, k in enumerate(picks):
        s = np.take(ct, int(k), axis=ax).astype(np.float32)
        if min(s.shape) < window:
            continue
        m = ndimage.uniform_filter(s, window)
        m2 = ndimage.uniform_filter(s * s, window)
        sd = np.sqrt(np.maximum(m2 - m * m, 0.0))
        sel = (m > SOFT_TISSUE_HU[0]) & (m < SOFT_TISSUE_HU[1])
        if sel.sum() >= 200:
            est[t] = float(np.median(sd[sel]))
    ok = np.isfinite(est)
    if not ok.any():
        return np.full(n, np.nan)
    est, picks = est[ok], picks[ok]
    if est.size >= 3:
        padded = np.r_[est[0], est, est[-1]]
        est = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    return np.interp(np.arange(n), picks, est)


def local_contrast(ct: np.ndarray, idx: np.ndarray, clab: np.ndarray, n: int, which: np.ndarray,
                   threshold_hu: float, excluded: np.ndarray, geometry: Geometry,
                   shell_mm: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per component (``which``: those to measure): peak HU, the median HU of the tissue
    around it (below the threshold, within ``shell_mm``, not in ``excluded``) and its
    axial slice range's first index.  Unmeasured components get NaN."""
    shape = ct.shape
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])
    r = np.maximum(np.round(shell_mm / sp).astype(int), 1)
    grids = np.meshgrid(*[np.arange(-m, m + 1) for m in r], indexing="ij")
    ball = (sum(((g * s) / shell_mm) ** 2 for g, s in zip(grids, sp)) <= 1.0 + 1e-9)
    peak = np.full(n, np.nan)
    background = np.full(n, np.nan)
    kji = np.stack(np.unravel_index(idx, shape), axis=1)
    flat_ct = ct.ravel()
    for c in np.flatnonzero(which) + 1:
        sel = np.flatnonzero(clab == c)
        p = kji[sel]
        lo = np.maximum(p.min(axis=0) - r, 0)
        hi = np.minimum(p.max(axis=0) + r + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        m = np.zeros(tuple(hi - lo), dtype=bool)
        q = p - lo
        m[q[:, 0], q[:, 1], q[:, 2]] = True
        shell = ndimage.binary_dilation(m, structure=ball) & ~m
        sub = ct[box]
        shell &= (sub < threshold_hu) & ~excluded[box]
        peak[c - 1] = float(flat_ct[idx[sel]].max())
        if shell.sum() >= 4:
            background[c - 1] = float(np.median(sub[shell]))
    return peak, background, kji


def slice_noise_of_components(noise: np.ndarray, kji: np.ndarray, clab: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Per component, the largest noise over the slices it spans."""
    if n == 0 or kji.size == 0:
        return np.zeros(n)
    out = np.full(n + 1, -np.inf)
    np.maximum.at(out, clab, noise[kji[:, axis]])
    return out[1:]
