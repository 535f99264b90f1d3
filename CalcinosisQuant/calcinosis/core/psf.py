"""A CT scanner's blur and what it does to a uniform sphere (issue 14): the point-spread
function of the acquisition phantom (:mod:`.acquisition_phantom`) and of the density fit
(:mod:`.partial_volume`).

In plane the reconstruction kernel blurs by a Gaussian of ``in_plane_fwhm_mm``; along the
patient the slice sensitivity profile is a box as wide as the slice thickness, its edges
softened by a Gaussian of ``slice_edge_fwhm_mm``.  :func:`blurred_sphere` draws a sphere on a
fine grid and blurs it so; the result is the sphere's image before sampling.
:func:`in_plane_fwhm_from_skin` measures the in-plane blur on the image itself (the kernel's
name says nothing portable about it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, special

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


#: the skin's edge: halfway between air and soft tissue (HU)
AIR_HU, TISSUE_HU = -1000.0, 0.0
#: an edge voxel is used where the in-plane gradient is this many times the one along the slices
IN_PLANE_GRADIENT_RATIO = 4.0
#: the edge spread function is binned at this step (mm) and read this far each side (mm)
ESF_STEP_MM, ESF_HALF_MM = 0.1, 4.0
MAX_EDGE_POINTS = 4000
#: the skin is read on this many slices spread over the volume
EDGE_SLICES = 16


def _body(mask2d: np.ndarray) -> np.ndarray:
    """The largest piece of a slice's tissue, holes filled: the body (or the hand) whose
    outline is the skin - not the table it lies on (a thin plate, not a step) nor the gas
    inside it."""
    lab, n = ndimage.label(mask2d)
    if n == 0:
        return mask2d
    biggest = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    return ndimage.binary_fill_holes(lab == biggest)


def in_plane_fwhm_from_skin(ct: np.ndarray, spacing_kji: np.ndarray, seed: int = 0) -> tuple[float, int]:
    """The in-plane blur (FWHM, mm) of a CT, from its skin edge (the outline of each slice's
    largest piece of tissue, :func:`_body`): where the air-tissue surface's normal lies in
    the slice plane, every voxel's value against its signed distance
    to the local 50% crossing (from up to :data:`MAX_EDGE_POINTS` edge points) is the edge
    spread function sampled at sub-pixel offsets (the slanted-edge method); a Gaussian-blurred
    step (an error function) fitted to it gives the FWHM.  Returns (FWHM mm, edge points used);
    (NaN, 0) without a usable edge (no air in the image)."""
    vol = np.asarray(ct)
    mid = 0.5 * (AIR_HU + TISSUE_HU)
    sp = np.asarray(spacing_kji, float)
    # up to EDGE_SLICES slices spread over the volume (and their neighbours, for the gradient
    # along the slices): the skin is everywhere, the blur the same on every slice
    n = vol.shape[0]
    ks = np.unique(np.linspace(1, n - 2, min(EDGE_SLICES, n - 2)).round().astype(int)) if n >= 3 \
        else np.arange(n)
    a = vol[ks].astype(np.float32)
    if n >= 3:
        gz_all = (vol[ks + 1].astype(np.float32) - vol[ks - 1].astype(np.float32)) / (2.0 * sp[0])
    else:
        gz_all = np.zeros(a.shape, np.float32)
    inside = np.stack([_body(sl > mid) for sl in a])
    edge = inside & ~ndimage.binary_erosion(inside, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool))
    if not edge.any():
        return float("nan"), 0
    kji = np.argwhere(edge)
    gy_all = ndimage.sobel(a, axis=1) / (4.0 * sp[1])
    gx_all = ndimage.sobel(a, axis=2) / (4.0 * sp[2])
    gz, gy, gx = (gi[tuple(kji.T)] for gi in (gz_all, gy_all, gx_all))
    gxy = np.hypot(gy, gx)
    ok = (gxy > IN_PLANE_GRADIENT_RATIO * np.abs(gz)) & (gxy > 0)
    # away from the volume's borders (a profile fits in the slice)
    reach = np.ceil(ESF_HALF_MM / sp[1:]).astype(int) + 2
    ok &= (kji[:, 1] >= reach[0]) & (kji[:, 1] < a.shape[1] - reach[0]) & (kji[:, 2] >= reach[1]) \
        & (kji[:, 2] < a.shape[2] - reach[1])
    if ok.sum() < 20:
        return float("nan"), 0
    kji, gy, gx, gxy = kji[ok], gy[ok], gx[ok], gxy[ok]
    pick = np.random.default_rng(seed).permutation(len(kji))[:MAX_EDGE_POINTS]
    kji, normal = kji[pick], np.stack([gy[pick], gx[pick]], axis=1) / gxy[pick, None]
    # the 50% crossing along each normal, from a finely interpolated profile (mm from the voxel)
    t = np.arange(-2.0, 2.0 + 1e-9, 0.05)
    pos = kji[:, None, 1:] + t[None, :, None] * normal[:, None, :] / sp[1:]
    prof = ndimage.map_coordinates(a, [np.repeat(kji[:, 0][:, None], len(t), 1).ravel(), pos[..., 0].ravel(),
                                       pos[..., 1].ravel()], order=1).reshape(len(kji), len(t))
    above = prof >= mid
    first = np.argmax(above, axis=1)
    good = above.any(axis=1) & (first > 0)
    i0 = np.clip(first - 1, 0, len(t) - 2)
    rows = np.arange(len(kji))
    p0, p1 = prof[rows, i0], prof[rows, i0 + 1]
    cross = t[i0] + (mid - p0) / np.where(p1 != p0, p1 - p0, 1.0) * (t[1] - t[0])
    # every voxel of the slice near each crossing: its value against its distance along the normal
    offs = np.stack(np.meshgrid(np.arange(-reach[0], reach[0] + 1), np.arange(-reach[1], reach[1] + 1),
                                indexing="ij"), -1).reshape(-1, 2)
    pts = np.flatnonzero(good)
    if pts.size == 0:
        return float("nan"), 0
    off_mm = offs * sp[1:]                                           # (m, 2): row, column offsets in mm
    along = off_mm @ normal[pts].T - cross[pts]                      # (m, points)
    across = np.abs(off_mm @ np.stack([-normal[pts, 1], normal[pts, 0]]))
    use = (np.abs(along) <= ESF_HALF_MM) & (across <= 0.5 * max(sp[1], sp[2]))
    o, e = np.nonzero(use)
    d = along[o, e]
    v = a[kji[pts[e], 0], kji[pts[e], 1] + offs[o, 0], kji[pts[e], 2] + offs[o, 1]]
    bins = np.round(d / ESF_STEP_MM).astype(int)
    keep = np.abs(bins) <= int(ESF_HALF_MM / ESF_STEP_MM)
    centres = np.unique(bins[keep])
    esf = np.array([np.median(v[keep][bins[keep] == b]) for b in centres])
    x = centres * ESF_STEP_MM

    def model(x, lo, hi, x0, s):
        return lo + (hi - lo) * 0.5 * (1.0 + special.erf((x - x0) / (np.sqrt(2.0) * abs(s))))

    try:
        (lo, hi, x0, s), _ = optimize.curve_fit(model, x, esf, p0=(AIR_HU, TISSUE_HU, 0.0, 0.4), maxfev=5000)
    except RuntimeError:
        return float("nan"), 0
    return float(abs(s) / FWHM_TO_SIGMA), int(good.sum())


#: in-plane FWHM (mm) assumed when the image has no skin to measure it on and none is given
ASSUMED_IN_PLANE_FWHM_MM = 0.9


def scanner_psf_of(volume, in_plane_fwhm_mm: float | None = None) -> tuple[ScannerPSF, dict]:
    """The blur of a CT (:class:`~calcinosis.core.volume.Volume`, slices along array axis 0):
    the slice thickness from the DICOM header (Slice Thickness) or else the slice spacing;
    the in-plane FWHM as given, or measured on the skin (:func:`in_plane_fwhm_from_skin`), or
    else :data:`ASSUMED_IN_PLANE_FWHM_MM`.  Returns the PSF and where each number came from
    (for provenance)."""
    spacing_kji = np.array([volume.geometry.spacing_along_array_axis(a) for a in range(3)])
    record: dict = {}
    header = (volume.meta or {}).get("dicom", {}) or {}
    try:
        thickness = float(header.get("SliceThickness"))
    except (TypeError, ValueError):
        thickness = float("nan")
    if np.isfinite(thickness) and thickness > 0:
        record["slice_thickness_source"] = "SliceThickness (0018,0050)"
    else:
        thickness = float(spacing_kji[0])
        record["slice_thickness_source"] = "slice spacing (no Slice Thickness in the header)"
    if in_plane_fwhm_mm is not None:
        if not (in_plane_fwhm_mm > 0):
            raise ValueError(f"in-plane FWHM {in_plane_fwhm_mm!r}: must be positive (mm)")
        fwhm, record["in_plane_fwhm_source"] = float(in_plane_fwhm_mm), "user"
    else:
        fwhm, used = in_plane_fwhm_from_skin(volume.array, spacing_kji)
        if np.isfinite(fwhm) and fwhm > 0:
            record["in_plane_fwhm_source"] = f"measured on the skin ({used} edge points)"
        else:
            fwhm = ASSUMED_IN_PLANE_FWHM_MM
            record["in_plane_fwhm_source"] = "assumed (no skin edge in the image to measure it on)"
    record.update({"slice_thickness_mm": round(thickness, 4), "in_plane_fwhm_mm": round(fwhm, 4)})
    return ScannerPSF(fwhm, thickness), record
