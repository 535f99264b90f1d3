"""The same deposits imaged by different CT acquisitions (issue 14): slice thickness and
scanner blur, with exact ground truth.

A deposit is a uniform sphere of ``hu`` in a uniform background.  Each is drawn on a fine
grid (:data:`FINE_MM`), blurred as a scanner does (:mod:`.psf`: in plane by the
reconstruction kernel's Gaussian, :data:`KERNEL_FWHM_MM`; along the patient's axis by the
slice sensitivity profile) - and sampled at the acquisition's voxel centres, each deposit
at its own sub-voxel offset.  Blurring moves the excess over the background but never
creates or destroys it: the integral of (value - background) over the deposit's
surroundings is the true excess x the true volume in every acquisition.  That is what makes
the phantom's truth exact and what a scanner-independent measure can rely on.

Functional: deposits and an :class:`Acquisition` in; the image array, its geometry and the
truth table out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from .geometry import Geometry
from .psf import FWHM_TO_SIGMA, SLICE_EDGE_FWHM_MM, ScannerPSF, blurred_sphere
from .tables import Column, Table

#: in-plane point-spread function of three reconstruction kernels (FWHM, mm)
KERNEL_FWHM_MM = {"sharp": 0.6, "standard": 0.9, "soft": 1.3}
#: the fine grid the spheres are drawn on before blurring (mm)
FINE_MM = 0.1


@dataclass(frozen=True)
class Acquisition:
    """A CT acquisition: slice thickness (= slice spacing, mm), kernel, in-plane pixel (mm)."""

    slice_mm: float
    kernel: str = "standard"
    pixel_mm: float = 0.5

    def __post_init__(self):
        if self.kernel not in KERNEL_FWHM_MM:
            raise ValueError(f"kernel {self.kernel!r}: one of {', '.join(KERNEL_FWHM_MM)}")
        if not (self.slice_mm > 0 and self.pixel_mm > 0):
            raise ValueError("slice_mm and pixel_mm must be positive")

    @property
    def in_plane_sigma_mm(self) -> float:
        return KERNEL_FWHM_MM[self.kernel] * FWHM_TO_SIGMA

    @property
    def psf(self) -> ScannerPSF:
        return ScannerPSF(KERNEL_FWHM_MM[self.kernel], self.slice_mm)

    @property
    def name(self) -> str:
        return f"{self.slice_mm:g} mm {self.kernel}"


@dataclass(frozen=True)
class Deposit:
    diameter_mm: float
    hu: float

    @property
    def volume_mm3(self) -> float:
        return float(np.pi / 6.0 * self.diameter_mm ** 3)


TRUTH_COLUMNS = [
    Column("deposit_id", "int", "", "Deposit number"),
    Column("diameter_mm", "double", "mm", "True diameter"),
    Column("hu", "double", "HU", "True density of the deposit (before blur)"),
    Column("background_hu", "double", "HU", "Density around it"),
    Column("volume_mm3", "double", "mm3", "True volume (pi d^3 / 6)"),
    Column("excess_hu_mm3", "double", "HU*mm3", "True (hu - background_hu) x volume: what blur conserves"),
    Column("center_r_mm", "double", "mm", "True centre, R (RAS)"),
    Column("center_a_mm", "double", "mm", "True centre, A (RAS)"),
    Column("center_s_mm", "double", "mm", "True centre, S (RAS)"),
]


def acquire(deposits: Sequence[Deposit], acq: Acquisition, background_hu: float = 40.0, noise_sd: float = 0.0,
            seed: int = 0, gap_mm: float = 8.0) -> tuple[np.ndarray, Geometry, Table]:
    """``deposits`` in a row along R, each with a random sub-voxel offset (``seed``), imaged
    by ``acq``: (array[k, j, i] in HU, float32; its geometry, axial slices along S; truth)."""
    rng = np.random.default_rng(seed)
    p, t = acq.pixel_mm, acq.slice_mm
    # the blur's reach beyond a sphere, and a voxel to sample it
    reach = 4.0 * max(acq.in_plane_sigma_mm, SLICE_EDGE_FWHM_MM * FWHM_TO_SIGMA) + t / 2.0 + max(p, t)
    halves = [d.diameter_mm / 2.0 + reach for d in deposits]
    width_mm = sum(2 * h + gap_mm for h in halves) + gap_mm
    depth_mm = 2 * max(halves, default=1.0) + 2 * gap_mm
    size = (int(np.ceil(width_mm / p)), int(np.ceil(depth_mm / p)), int(np.ceil(depth_mm / t)))
    geometry = Geometry.create(size, (p, p, t), (0.0, 0.0, 0.0))
    arr = np.full((size[2], size[1], size[0]), background_hu, np.float32)
    truth = Table(TRUTH_COLUMNS, name="truth", description="Deposits of the acquisition phantom (analytic)")
    x_mm = gap_mm
    for n, (d, h) in enumerate(zip(deposits, halves), start=1):
        centre_x = x_mm + h
        x_mm += 2 * h + gap_mm
        # the sphere's centre, off the voxel grid by a random fraction of a voxel
        centre = np.array([depth_mm / 2.0, depth_mm / 2.0, centre_x]) + rng.uniform(-0.5, 0.5, 3) * np.array([t, p, p])
        box_centre = np.round(centre / FINE_MM) * FINE_MM
        fine, first = blurred_sphere(d.diameter_mm / 2.0, d.hu - background_hu, centre - box_centre, acq.psf,
                                     np.full(3, h), FINE_MM)
        step = np.array([t, p, p])
        lo = np.maximum(np.ceil((box_centre + first) / step).astype(int), 0)
        hi = np.minimum(np.floor((box_centre - first) / step).astype(int), np.array(arr.shape) - 1)
        voxels = np.stack(np.meshgrid(*[np.arange(lo[a], hi[a] + 1) for a in range(3)], indexing="ij"))
        fine_idx = [(voxels[a] * step[a] - (box_centre[a] + first[a])) / FINE_MM for a in range(3)]
        arr[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] += ndimage.map_coordinates(
            fine, fine_idx, order=1, mode="constant").astype(np.float32)
        ras = geometry.ijk_to_ras(np.array([centre[2] / p, centre[1] / p, centre[0] / t]))
        truth.append({"deposit_id": n, "diameter_mm": d.diameter_mm, "hu": d.hu, "background_hu": background_hu,
                      "volume_mm3": d.volume_mm3, "excess_hu_mm3": (d.hu - background_hu) * d.volume_mm3,
                      "center_r_mm": float(ras[0]), "center_a_mm": float(ras[1]), "center_s_mm": float(ras[2])})
    if noise_sd > 0:
        arr += rng.normal(0.0, noise_sd, arr.shape).astype(np.float32)
    return arr, geometry, truth
