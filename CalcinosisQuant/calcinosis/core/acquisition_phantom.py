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
from scipy import ndimage, special

from .geometry import Geometry
from .psf import FWHM_TO_SIGMA, SLICE_EDGE_FWHM_MM, ScannerPSF, blurred_sphere
from .tables import Column, Table

#: in-plane point-spread function of three reconstruction kernels (FWHM, mm)
KERNEL_FWHM_MM = {"sharp": 0.6, "standard": 0.9, "soft": 1.3}
#: the fine grid the spheres are drawn on before blurring (mm); deposits wider than
#: :data:`COARSER_ABOVE_MM` on :data:`COARSER_FINE_MM` (their surface's ramp keeps the drawn
#: volume; the blur is at least 0.25 mm SD, smooth on that grid)
FINE_MM = 0.1
COARSER_FINE_MM, COARSER_ABOVE_MM = 0.2, 6.0


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


#: air around the body of a phantom with a skin (mm each side, in plane), and its corners' radius
AIR_MM, BODY_CORNER_MM = 6.0, 8.0
AIR_HU = -1000.0


def acquire(deposits: Sequence[Deposit], acq: Acquisition, background_hu: float = 40.0, noise_sd: float = 0.0,
            seed: int = 0, gap_mm: float = 8.0, skin: bool = False) -> tuple[np.ndarray, Geometry, Table]:
    """``deposits`` in a row along R, each with a random sub-voxel offset (``seed``), imaged
    by ``acq``: (array[k, j, i] in HU, float32; its geometry, axial slices along S; truth).
    With ``skin`` the tissue is a body (a rounded box in plane, ``gap_mm`` beyond the
    deposits' blur, running through all slices) in :data:`AIR_MM` of air, its skin blurred by
    the kernel as the deposits are: what :func:`~calcinosis.core.psf.in_plane_fwhm_from_skin`
    reads the kernel's blur on."""
    rng = np.random.default_rng(seed)
    p, t = acq.pixel_mm, acq.slice_mm
    # the blur's reach beyond a sphere, and a voxel to sample it
    reach = 4.0 * max(acq.in_plane_sigma_mm, SLICE_EDGE_FWHM_MM * FWHM_TO_SIGMA) + t / 2.0 + max(p, t)
    halves = [d.diameter_mm / 2.0 + reach for d in deposits]
    air = AIR_MM if skin else 0.0
    width_mm = sum(2 * h + gap_mm for h in halves) + gap_mm + 2 * air
    depth_mm = 2 * max(halves, default=1.0) + 2 * gap_mm + 2 * air
    height_mm = 2 * max(halves, default=1.0) + 2 * gap_mm
    size = (int(np.ceil(width_mm / p)), int(np.ceil(depth_mm / p)), int(np.ceil(height_mm / t)))
    geometry = Geometry.create(size, (p, p, t), (0.0, 0.0, 0.0))
    arr = np.full((size[2], size[1], size[0]), background_hu, np.float32)
    if skin:   # the body's outline blurred by the kernel: exact for a straight skin, close on its corners
        y = (np.arange(size[1]) * p)[:, None]
        x = (np.arange(size[0]) * p)[None, :]
        half = np.array([(size[1] - 1) * p / 2.0 - air, (size[0] - 1) * p / 2.0 - air]) - BODY_CORNER_MM
        qy, qx = np.abs(y - (size[1] - 1) * p / 2.0) - half[0], np.abs(x - (size[0] - 1) * p / 2.0) - half[1]
        outside = np.hypot(np.maximum(qy, 0.0), np.maximum(qx, 0.0)) + np.minimum(np.maximum(qy, qx), 0.0) \
            - BODY_CORNER_MM
        body = 0.5 * special.erfc(outside / (np.sqrt(2.0) * acq.in_plane_sigma_mm))
        arr[:] = (AIR_HU + (background_hu - AIR_HU) * body).astype(np.float32)[None]
    truth = Table(TRUTH_COLUMNS, name="truth", description="Deposits of the acquisition phantom (analytic)")
    x_mm = gap_mm + air
    for n, (d, h) in enumerate(zip(deposits, halves), start=1):
        centre_x = x_mm + h
        x_mm += 2 * h + gap_mm
        # the sphere's centre, off the voxel grid by a random fraction of a voxel
        centre = np.array([height_mm / 2.0, depth_mm / 2.0, centre_x]) + rng.uniform(-0.5, 0.5, 3) * np.array([t, p, p])
        fine_mm = COARSER_FINE_MM if d.diameter_mm > COARSER_ABOVE_MM else FINE_MM
        box_centre = np.round(centre / fine_mm) * fine_mm
        fine, first = blurred_sphere(d.diameter_mm / 2.0, d.hu - background_hu, centre - box_centre, acq.psf,
                                     np.full(3, h), fine_mm)
        step = np.array([t, p, p])
        lo = np.maximum(np.ceil((box_centre + first) / step).astype(int), 0)
        hi = np.minimum(np.floor((box_centre - first) / step).astype(int), np.array(arr.shape) - 1)
        voxels = np.stack(np.meshgrid(*[np.arange(lo[a], hi[a] + 1) for a in range(3)], indexing="ij"))
        fine_idx = [(voxels[a] * step[a] - (box_centre[a] + first[a])) / fine_mm for a in range(3)]
        arr[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] += ndimage.map_coordinates(
            fine, fine_idx, order=1, mode="constant").astype(np.float32)
        ras = geometry.ijk_to_ras(np.array([centre[2] / p, centre[1] / p, centre[0] / t]))
        truth.append({"deposit_id": n, "diameter_mm": d.diameter_mm, "hu": d.hu, "background_hu": background_hu,
                      "volume_mm3": d.volume_mm3, "excess_hu_mm3": (d.hu - background_hu) * d.volume_mm3,
                      "center_r_mm": float(ras[0]), "center_a_mm": float(ras[1]), "center_s_mm": float(ras[2])})
    if noise_sd > 0:
        arr += rng.normal(0.0, noise_sd, arr.shape).astype(np.float32)
    return arr, geometry, truth
