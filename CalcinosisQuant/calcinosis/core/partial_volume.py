"""What a lesion holds beyond its threshold outline: measures that see through the scanner's
blur (issue 14, docs/methods/ct-volume.md).

A threshold outline counts the partial-volume rim a blurred deposit spreads around it, and
how wide that rim is depends on the slice thickness and the reconstruction kernel.  Blur
moves a deposit's excess over its surroundings but does not change its integral, so per
lesion:

* ``background_hu`` - the median of a shell around the lesion (``margin_mm`` to
  ``margin_mm + shell_mm`` from its outline, other lesions' surroundings left out);
* ``excess_hu_mm3`` - the integral of (value - background) over the lesion and
  ``margin_mm`` around it: the true excess x the true volume, whatever the acquisition
  (the basis of a calcium mass, given a calibration);
* ``peak_hu`` - the lesion's densest voxel;
* ``excess_volume_mm3`` - ``excess_hu_mm3 / (peak_hu - background_hu)``: the volume when
  the peak is the deposit's true density (a lesion larger than the blur), too large when
  blur lowered the peak;
* ``half_maximum_volume_mm3`` - the voxels within the margin at or above half-way from the
  background to the peak;
* given the acquisition's blur (:class:`~.psf.ScannerPSF`): ``density_hu`` - the mean of
  the lesion's core (deeper inside its half-maximum outline than the blur reaches) when it
  has one, else fitted (:func:`fit_sphere_density`: the blurred sphere that keeps the
  integrated excess and best explains the voxels; ``density_fitted``) - and ``volume_mm3``
  = excess / (density - background).

Functional: image, label array and geometry in; one row per lesion out.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, optimize

from .geometry import Geometry
from .psf import ScannerPSF, blurred_sphere

#: integrated beyond the outline (mm): the scanner's blur reaches about this far at 3 mm slices
DEFAULT_MARGIN_MM = 3.0
#: the background's shell, beyond the margin (mm)
DEFAULT_SHELL_MM = 2.0
#: a lesion's core: its voxels deeper inside its half-maximum outline than the blur
#: reaches; with at least this many the density is their mean, else it is fitted
MIN_CORE_VOXELS = 8
#: the densest a deposit can be over its background (HU): bounds the fitted density
MAX_DENSITY_HU = 3000.0
#: the grid the model sphere is blurred on (mm)
MODEL_GRID_MM = 0.15


def lesion_excess(image: np.ndarray, labels: np.ndarray, n: int, geometry: Geometry,
                  margin_mm: float = DEFAULT_MARGIN_MM, shell_mm: float = DEFAULT_SHELL_MM,
                  psf: ScannerPSF | None = None) -> dict[str, np.ndarray]:
    """Per lesion 1..``n`` of ``labels`` (array[k, j, i], same grid as ``image``): the
    measures of the module's text, as arrays of length ``n`` (NaN for a lesion whose shell
    holds no voxel).  Given the acquisition's ``psf``, also ``density_hu`` and
    ``volume_mm3`` = excess / (density - background): the density is the mean of the
    lesion's core where it has one (:data:`MIN_CORE_VOXELS` deeper than the blur reaches),
    else fitted (:func:`fit_sphere_density`; ``density_fitted`` says which).  The slices are
    array axis 0 (``k``): the psf's slice profile is applied along it."""
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])   # (k, j, i)
    vox = float(np.prod(sp))
    out = {k: np.full(n, np.nan) for k in ("background_hu", "peak_hu", "excess_hu_mm3", "excess_volume_mm3",
                                            "half_maximum_volume_mm3", "density_hu", "volume_mm3")}
    out["density_fitted"] = np.zeros(n, bool)
    blur_reach = None if psf is None else psf.reach_mm
    reach = np.ceil((margin_mm + shell_mm) / sp).astype(int) + 1
    objects = ndimage.find_objects(labels, max_label=n)
    # every lesion's surroundings, to keep each lesion's integral and shell off the others
    for c, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        lo = np.maximum([s.start for s in sl] - reach, 0)
        hi = np.minimum([s.stop for s in sl] + reach, labels.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        lab = labels[box]
        img = image[box].astype(np.float64)
        own = lab == c
        d_own = ndimage.distance_transform_edt(~own, sampling=sp)
        others = (lab > 0) & ~own
        d_other = ndimage.distance_transform_edt(~others, sampling=sp) if others.any() else np.full(lab.shape, np.inf)
        mine = d_own < d_other                     # nearer this lesion than any other
        region = mine & (d_own <= margin_mm)
        shell = mine & (d_own > margin_mm) & (d_own <= margin_mm + shell_mm) & (d_other > margin_mm)
        if not shell.any():
            continue
        b = float(np.median(img[shell]))
        peak = float(img[own].max())
        excess = float((img[region] - b).sum() * vox)
        out["background_hu"][c - 1] = b
        out["peak_hu"][c - 1] = peak
        out["excess_hu_mm3"][c - 1] = excess
        if peak > b:
            out["excess_volume_mm3"][c - 1] = excess / (peak - b)
            out["half_maximum_volume_mm3"][c - 1] = float(np.count_nonzero(region & (img >= b + 0.5 * (peak - b))) * vox)
        if psf is None or not (peak > b and excess > 0):
            continue
        # the core: deeper inside the half-maximum outline than the blur reaches (in units of
        # the reach along each axis), where the image is the deposit's own density
        half = own & (img >= b + 0.5 * (peak - b))
        # (a voxel centre's distance to the nearest centre outside, less half the coarsest
        # voxel: the outline lies between the two centres)
        units = sp / blur_reach
        depth = ndimage.distance_transform_edt(np.pad(half, 1), sampling=units)[1:-1, 1:-1, 1:-1]
        core = half & (depth - 0.5 * float(units.max()) >= 1.0)
        if np.count_nonzero(core) >= MIN_CORE_VOXELS:
            density = float(img[core].mean()) - b
        else:
            pts = np.argwhere(region) * sp
            vals = img[region] - b
            w = np.clip(vals, 0.0, None)
            start = (pts * w[:, None]).sum(axis=0) / w.sum()
            # the peak's noise can lift it over the density: the search reaches 3 noise SDs lower
            noise = 1.4826 * float(np.median(np.abs(img[shell] - b)))
            lowest_peak = max(peak - b - 3.0 * noise, 0.25 * (peak - b))
            density, _ = fit_sphere_density(vals, pts, excess, lowest_peak, start, psf)
            out["density_fitted"][c - 1] = True
        out["density_hu"][c - 1] = b + density
        out["volume_mm3"][c - 1] = excess / density
    return out


def fit_sphere_density(values: np.ndarray, points_mm: np.ndarray, excess_hu_mm3: float, peak_excess_hu: float,
                       start_mm: np.ndarray, psf: ScannerPSF, grid_mm: float = MODEL_GRID_MM) -> tuple[float, float]:
    """The density over the background (HU) and radius (mm) of the blurred sphere that
    explains a lesion's voxels: ``values`` (value - background) at ``points_mm`` (z, y, x),
    its integrated excess and peak.  The sphere keeps the integrated excess (density x
    volume = ``excess_hu_mm3``, which blur conserves), so one number is searched, the
    radius, between that of excess / ``peak_excess_hu`` (the peak is at most the density;
    give the lowest the peak could be with the noise) and that of :data:`MAX_DENSITY_HU`.
    For each radius the centre is ``start_mm`` in plane (the excess-weighted centroid:
    fine sampling) and searched along the slices (axis 0: coarse sampling moves the
    centroid); the radius with the least squared difference wins."""
    def volume_radius(v):
        return float((3.0 * max(v, 1e-9) / (4.0 * np.pi)) ** (1.0 / 3.0))

    r_hi = volume_radius(excess_hu_mm3 / max(peak_excess_hu, 1e-6))
    r_lo = min(volume_radius(excess_hu_mm3 / MAX_DENSITY_HU), r_hi)
    z_reach = 0.75 * psf.slice_mm + 0.5
    half = r_hi + psf.reach_mm + 2.0 * grid_mm       # the model sphere's image; 0 beyond (mode "constant")

    def fit_at(r):
        density = excess_hu_mm3 / (4.0 / 3.0 * np.pi * r ** 3)
        grid, first = blurred_sphere(r, 1.0, np.zeros(3), psf, half, grid_mm)

        def sse(z):
            c = np.array([z, start_mm[1], start_mm[2]])
            idx = ((points_mm - c - first) / grid_mm).T
            model = density * ndimage.map_coordinates(grid, idx, order=1, mode="constant")
            return float(np.sum((values - model) ** 2))

        # in plane the excess-weighted centroid is the centre (fine sampling); along the
        # slices it is not (coarse sampling): searched within a slice and a half
        best = optimize.minimize_scalar(sse, bounds=(start_mm[0] - z_reach, start_mm[0] + z_reach), method="bounded",
                                        options={"xatol": 0.01})
        return best.fun, density

    if r_hi - r_lo < 0.02:
        return excess_hu_mm3 / (4.0 / 3.0 * np.pi * r_hi ** 3), r_hi
    res = optimize.minimize_scalar(lambda r: fit_at(r)[0], bounds=(r_lo, r_hi), method="bounded",
                                   options={"xatol": 0.01})
    r = float(res.x)
    return fit_at(r)[1], r
