"""Step 1 of the radiograph detector: seeds - bright blobs of the image and of its top-hat
(docs/methods/hand-detection.md, radiographs, step 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: blob scales (mm) searched for seeds
SEED_SCALES_MM = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
#: a seed's blob response (scale-normalised curvature, image units) must reach this fraction of
#: the contrast threshold: weaker curvature is a crease of the soft tissue or of a bone outline
SEED_BLOB_FRACTION = 0.4


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

RING_SIN = np.sin(np.linspace(0, 2 * np.pi, 32, endpoint=False))
RING_COS = np.cos(np.linspace(0, 2 * np.pi, 32, endpoint=False))


def edge_radius(s: np.ndarray, r: int, c: int, r_max: float) -> float:
    """Radius (pixels) at which the azimuthal mean profile around (r, c) falls most steeply."""
    rs = np.arange(0.0, max(r_max, 3.0) + 1e-9, 0.5)
    py = r + rs[:, None] * RING_SIN[None, ::2]
    px = c + rs[:, None] * RING_COS[None, ::2]
    prof = ndimage.map_coordinates(s, [py.ravel(), px.ravel()], order=1, mode="nearest").reshape(py.shape).mean(axis=1)
    slope = np.gradient(ndimage.gaussian_filter1d(prof, 1.0), rs)
    ok = rs >= 1.5
    return float(rs[ok][np.argmin(slope[ok])])


#: seeds are searched on a grid of about 0.4 mm (deposits >= 2 mm span 5 of its pixels): finer
#: analysis grids (below this pixel size, mm) are averaged 2 x 2 for the top-hat's seeds
SEED_GRID_FINE_MM = 0.3
#: a seed is a local maximum of the blob response over this many pixels (analysis grid / seed grid)
SEED_PEAK_WINDOW_PX = 5
SEED_PEAK_WINDOW_COARSE_PX = 3
#: ... above this multiple of the response's own noise (MAD)
SEED_NOISE_K = 5.0


@dataclass(frozen=True)
class Seed:
    """A local maximum of the blob response: where a candidate's outline starts."""
    strength: float           # blob response (image units)
    row: int                  # analysis grid
    col: int
    scale_mm: float           # blob scale with the strongest response


def find_seeds(image: np.ndarray, smoothed: np.ndarray, pixel_mm: float, background_mm: float,
               contrast_threshold: float, allowed: np.ndarray | None, progress=None) -> list[Seed]:
    """Step 1: bright blobs of the top-hat (the image minus its line-opening background, on a
    grid of about 0.4 mm) and of the smoothed image itself (small deposits on the slope of an
    edge), strongest first."""
    from calcinosis.core.progress import report

    from .background import block_mean, line_opening_background

    block = 2 if pixel_mm < SEED_GRID_FINE_MM else 1
    seed_image = smoothed if block == 1 else ndimage.gaussian_filter(block_mean(image, block), 1.0)
    seed_allowed = None if allowed is None else (block_mean(allowed.astype(np.float32), block) >= 0.5)
    report(progress, 0.05, "line-opening background")
    top_hat = seed_image - line_opening_background(seed_image, background_mm / (pixel_mm * block))
    report(progress, 0.3, "looking for blobs")
    seeds = []
    for base, grid_block, base_allowed in ((top_hat, block, seed_allowed), (smoothed, 1, allowed)):
        blob, scale = blobness(base, pixel_mm * grid_block)
        blob_noise = float(np.median(np.abs(blob))) / 0.6745
        window = SEED_PEAK_WINDOW_PX if grid_block == 1 else SEED_PEAK_WINDOW_COARSE_PX
        peaks = (blob == ndimage.maximum_filter(blob, size=window)) \
            & (blob > max(SEED_NOISE_K * blob_noise, SEED_BLOB_FRACTION * contrast_threshold))
        if base_allowed is not None:
            peaks &= base_allowed
        for r, c in zip(*np.nonzero(peaks)):
            if grid_block > 1:   # back on the analysis grid: the brightest pixel of the block
                r0, c0 = r * grid_block, c * grid_block
                cell = smoothed[r0:r0 + grid_block, c0:c0 + grid_block]
                dr, dc = np.unravel_index(int(np.argmax(cell)), cell.shape)
                row, col = r0 + dr, c0 + dc
            else:
                row, col = r, c
            seeds.append(Seed(float(blob[r, c]), int(row), int(col), float(scale[r, c])))
    seeds.sort(key=lambda t: (-t.strength, t.row, t.col))
    return seeds


def ring_contrast(smoothed: np.ndarray, seed: Seed, pixel_mm: float) -> tuple[float, float]:
    """The seed's centre against a ring at twice its blob radius (a bump on a straight slope
    keeps its excess, a flat or sloping background has none): (contrast, ring radius px)."""
    ring_px = max(2.0 * seed.scale_mm * np.sqrt(2.0) / pixel_mm, 2.0)
    r, c = seed.row, seed.col
    ring = ndimage.map_coordinates(smoothed, [r + ring_px * RING_SIN, c + ring_px * RING_COS], order=1,
                                   mode="nearest")
    return smoothed[r, c] - float(ring.mean()), ring_px
