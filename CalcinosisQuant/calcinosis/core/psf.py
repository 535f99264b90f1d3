"""A CT scanner's blur and what it does to a uniform sphere (issue 14): the point-spread
function of the acquisition phantom (:mod:`.acquisition_phantom`) and of the density fit
(:mod:`.partial_volume`).

In plane the reconstruction kernel blurs by a Gaussian of ``in_plane_fwhm_mm``; along the
patient the slice sensitivity profile is a box as wide as the slice thickness, its edges
softened by a Gaussian of ``slice_edge_fwhm_mm``.  :func:`blurred_sphere` draws a sphere on a
fine grid and blurs it so; the result is the sphere's image before sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: the slice sensitivity profile's edges (FWHM of the Gaussian over the box, mm)
SLICE_EDGE_FWHM_MM = 0.4


@dataclass(frozen=True)
class ScannerPSF:
    """In-plane Gaussian (FWHM, mm) and slice thickness (mm) of an acquisition."""

    in_plane_fwhm_mm: float
    slice_mm: float
    slice_edge_fwhm_mm: float = SLICE_EDGE_FWHM_MM

    def __post_init__(self):
        if not (self.in_plane_fwhm_mm > 0 and self.slice_mm > 0 and self.slice_edge_fwhm_mm >= 0):
            raise ValueError("the point-spread function's widths must be positive")

    @property
    def reach_mm(self) -> np.ndarray:
        """How far (z, y, x; mm) the blur carries a sphere's excess beyond it (4 SD, half a slice)."""
        s_xy = self.in_plane_fwhm_mm * FWHM_TO_SIGMA
        s_z = self.slice_edge_fwhm_mm * FWHM_TO_SIGMA
        return np.array([4.0 * s_z + self.slice_mm / 2.0, 4.0 * s_xy, 4.0 * s_xy])


def blurred_sphere(radius_mm: float, value: float, offset_mm: np.ndarray, psf: ScannerPSF, half_box_mm: np.ndarray,
                   fine_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """A sphere of ``value`` (over 0) centred ``offset_mm`` (z, y, x) from the centre of a box
    ``half_box_mm`` wide each side, drawn on a grid of ``fine_mm`` and blurred by ``psf``.
    Returns (the grid's values, axes (z, y, x); the mm position of its first point relative
    to the box's centre, where a value is read as that of a point, not of a cell)."""
    n = np.ceil(np.asarray(half_box_mm, float) / fine_mm).astype(int)
    axes = [(np.arange(-n[a], n[a] + 1) * fine_mm) for a in range(3)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    # the share of each grid cell inside the sphere, as a ramp one cell wide across its surface:
    # the drawn volume follows the radius smoothly (a fit moves the radius by hundredths of a mm)
    dist = np.sqrt((z - offset_mm[0]) ** 2 + (y - offset_mm[1]) ** 2 + (x - offset_mm[2]) ** 2)
    grid = (np.clip(0.5 - (dist - radius_mm) / fine_mm, 0.0, 1.0) * value).astype(np.float32)
    s_xy = psf.in_plane_fwhm_mm * FWHM_TO_SIGMA / fine_mm
    s_z = psf.slice_edge_fwhm_mm * FWHM_TO_SIGMA / fine_mm
    grid = ndimage.gaussian_filter(grid, (s_z, s_xy, s_xy), mode="constant", truncate=4.0)
    width = max(int(round(psf.slice_mm / fine_mm)), 1)
    grid = ndimage.uniform_filter1d(grid, width, axis=0, mode="constant")
    first = np.array([a[0] for a in axes])
    if width % 2 == 0:      # an even box at index i is centred on i - 0.5: read it half a step on
        first[0] -= 0.5 * fine_mm
    return grid, first
