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
from .progress import Progress, report
from .psf import ScannerPSF, blurred_sphere
from .tables import Column, Table

#: integrated beyond the outline (mm): the scanner's blur reaches about this far at 3 mm slices
DEFAULT_MARGIN_MM = 3.0
#: the background's shell, beyond the margin (mm)
DEFAULT_SHELL_MM = 1.0
#: a lesion's core: its voxels deeper inside its half-maximum outline than the blur
#: reaches; with at least this many the density is their mean, else it is fitted
MIN_CORE_VOXELS = 8
#: a lesion longer than this along an image axis is not measured (mm): no deposit is; a bone or
#: a vessel at the threshold is, and the distance maps of its box would take minutes and
#: gigabytes (a whole contrast CT at 130 HU: 570 s and 8 GB before this bound)
MAX_EXTENT_MM = 100.0
#: below this a voxel is air (HU): never background, and a lesion's margin stops where the air's
#: blurred edge begins (the skin over a subcutaneous deposit, an air-filled space)
AIR_CUTOFF_HU = -400.0
#: the densest a deposit can be over its background (HU): bounds the fitted density
MAX_DENSITY_HU = 3000.0
#: the grid the model sphere is blurred on (mm)
MODEL_GRID_MM = 0.15


def margins_mm(spacing_kji: np.ndarray, psf: ScannerPSF | None, margin_mm: float | None = None) -> np.ndarray:
    """How far (k, j, i; mm) beyond a lesion's outline its excess is integrated: ``margin_mm``
    along every axis when given; else the blur's reach (:attr:`ScannerPSF.reach_mm`) and half
    a voxel (the outline lies between voxel centres) - as little of the surroundings as holds
    the blur, because the background is never quite uniform; else :data:`DEFAULT_MARGIN_MM`."""
    if margin_mm is not None:
        return np.full(3, float(margin_mm))
    if psf is None:
        return np.full(3, DEFAULT_MARGIN_MM)
    return psf.reach_mm + 0.5 * np.asarray(spacing_kji, float)


def lesion_excess(image: np.ndarray, labels: np.ndarray, n: int, geometry: Geometry,
                  margin_mm: float | None = None, shell_mm: float = DEFAULT_SHELL_MM,
                  psf: ScannerPSF | None = None, exclude: np.ndarray | None = None,
                  progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Per lesion 1..``n`` of ``labels`` (array[k, j, i], same grid as ``image``): the
    measures of the module's text, as arrays of length ``n`` (NaN for a lesion whose shell
    holds no voxel).  Given the acquisition's ``psf``, also ``density_hu`` and
    ``volume_mm3`` = excess / (density - background): the density is the mean of the
    lesion's core where it has one (:data:`MIN_CORE_VOXELS` deeper than the blur reaches),
    else fitted (:func:`fit_sphere_density`; ``density_fitted`` says which).  The slices are
    array axis 0 (``k``): the psf's slice profile is applied along it.

    ``exclude`` (same grid): voxels that are neither margin nor background (bone): left out
    of every integral and shell; ``near_excluded`` says where they reached into a lesion's
    margin (its excess then misses what the blur carried into them and holds what theirs
    carried out).  ``at_image_edge``: the margin or shell was cut by the image's border.
    ``too_large``: longer than :data:`MAX_EXTENT_MM` along an axis, not measured."""
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])   # (k, j, i)
    vox = float(np.prod(sp))
    out = {k: np.full(n, np.nan) for k in ("background_hu", "peak_hu", "excess_hu_mm3", "excess_volume_mm3",
                                            "half_maximum_volume_mm3", "density_hu", "volume_mm3")}
    for k in ("density_fitted", "near_excluded", "near_air", "at_image_edge", "too_large"):
        out[k] = np.zeros(n, bool)
    blur_reach = None if psf is None else psf.reach_mm
    margins = margins_mm(sp, psf, margin_mm)                 # (k, j, i)
    units = sp / margins                                      # a voxel step in margins
    shell_units = shell_mm / float(margins.max())             # the shell's thickness, in margins
    reach = np.ceil(margins * (1.0 + shell_units) / sp).astype(int) + 1
    objects = ndimage.find_objects(labels, max_label=n)
    # every lesion's surroundings, to keep each lesion's integral and shell off the others
    for c, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        report(progress, (c - 1) / max(n, 1), f"partial-volume measures, lesion {c} of {n}")
        if np.any(np.array([s.stop - s.start for s in sl]) * sp > MAX_EXTENT_MM):
            out["too_large"][c - 1] = True      # a bone, an organ full of contrast: not a deposit
            continue
        want_lo = np.array([s.start for s in sl]) - reach
        want_hi = np.array([s.stop for s in sl]) + reach
        lo = np.maximum(want_lo, 0)
        hi = np.minimum(want_hi, labels.shape)
        out["at_image_edge"][c - 1] = bool((want_lo < 0).any() or (want_hi > np.array(labels.shape)).any())
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        lab = labels[box]
        img = image[box].astype(np.float64)
        own = lab == c
        # distances in margins (the margin is 1 along every axis)
        d_own = ndimage.distance_transform_edt(~own, sampling=units)
        others = (lab > 0) & ~own
        d_other = ndimage.distance_transform_edt(~others, sampling=units) if others.any() else np.full(lab.shape, np.inf)
        mine = d_own < d_other                     # nearer this lesion than any other
        region = mine & (d_own <= 1.0)
        # air, and what its edge's blur reaches: no background, and no deposit's excess to find
        air = (img < AIR_CUTOFF_HU) & ~own
        near_air = (ndimage.distance_transform_edt(~air, sampling=units) <= 1.0) & ~own if air.any() \
            else np.zeros(lab.shape, bool)
        free = ~near_air if exclude is None else ~near_air & (~exclude[box] | own)
        out["near_air"][c - 1] = bool((region & near_air).any())
        if exclude is not None:
            out["near_excluded"][c - 1] = bool((region & ~free & ~near_air).any())
        region &= free
        shell = mine & free & (d_own > 1.0) & (d_own <= 1.0 + shell_units) & (d_other > 1.0)
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
        blur_units = sp / blur_reach
        depth = ndimage.distance_transform_edt(np.pad(half, 1), sampling=blur_units)[1:-1, 1:-1, 1:-1]
        core = half & (depth - 0.5 * float(blur_units.max()) >= 1.0)
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


# ---------------------------------------------------------------------- the lesion table's columns
#: the method of ``pv_volume_mm3``, as recorded in provenance and the column's description
PV_METHOD = ("integrated excess over the local background (lesion + margin) / the deposit's density over it "
             "(core mean, or a sphere blurred by the scanner's point-spread function fitted to the voxels)")

PV_COLUMNS = [
    Column("pv_volume_mm3", "double", "mm3",
           "Partial-volume-corrected volume: excess_hu_mm3 / (density_hu - background_hu); does not grow with the "
           "scanner's blur or slice thickness as volume_mm3 (a threshold count) does (docs/methods/ct-volume.md)"),
    Column("half_maximum_volume_mm3", "double", "mm3",
           "Voxels within the margin at or above half-way from background_hu to peak_hu, x voxel volume"),
    Column("excess_hu_mm3", "double", "HU*mm3",
           "Integral of (HU - background_hu) over the lesion and its margin: (density - background) x volume, "
           "which blur conserves"),
    Column("background_hu", "double", "HU", "Median HU of the shell beyond the lesion's margin (other lesions, air "
                                            "and excluded tissue left out)"),
    Column("peak_hu", "double", "HU", "The lesion's densest voxel"),
    Column("density_hu", "double", "HU", "The deposit's own density: mean of its core, or fitted (density_source)"),
    Column("density_source", "string", "", "core: mean of voxels deeper than the blur reaches; fitted: a blurred "
                                           "sphere fitted to the voxels (small lesions)"),
    Column("calcium_mass_mg", "double", "mg",
           "Hydroxyapatite mass above the background's: slope (mg HA/cm3 per HU) x excess_hu_mm3 / 1000; empty "
           "without a calibration"),
    Column("pv_note", "string", "", "Why the partial-volume columns of this lesion are uncertain or empty; "
                                    "empty when they are not"),
]
PV_COLUMN_NAMES = [c.name for c in PV_COLUMNS]


def _round(v, digits=4):
    return None if v is None or not np.isfinite(v) else round(float(v), digits)


def partial_volume_columns(image: np.ndarray, labels: np.ndarray, n: int, geometry: Geometry, psf: ScannerPSF,
                           calibration=None, exclude: np.ndarray | None = None,
                           progress: Progress | None = None) -> list[dict]:
    """Per lesion 1..``n`` the :data:`PV_COLUMNS` (a dict each, in lesion order), from
    :func:`lesion_excess` with the scanner's ``psf`` and an optional
    :class:`~calcinosis.core.calibration.HUCalibration`."""
    m = lesion_excess(image, labels, n, geometry, psf=psf, exclude=exclude, progress=progress)
    rows = []
    for c in range(n):
        notes = []
        if m["too_large"][c]:
            notes.append(f"longer than {MAX_EXTENT_MM:g} mm along an image axis: not measured (not a deposit)")
        elif not np.isfinite(m["background_hu"][c]):
            notes.append("no background around the lesion (its surroundings are other lesions, excluded tissue or "
                         "outside the image)")
        elif not np.isfinite(m["volume_mm3"][c]):
            notes.append("the lesion is not denser than its surroundings")
        if m["near_air"][c]:
            notes.append("air (the skin) lies within the margin: the excess misses what the blur carried past it")
        if m["near_excluded"][c]:
            notes.append("excluded tissue (bone) lies within the margin: the excess misses what the blur carried "
                         "into it and holds what its blur carried out")
        if m["at_image_edge"][c]:
            notes.append("the margin is cut by the image's edge: the excess may miss part of the blur")
        mass = None
        if calibration is not None and np.isfinite(m["excess_hu_mm3"][c]):
            mass = float(calibration.mass_mg(m["excess_hu_mm3"][c]))
        density = m["density_hu"][c]
        rows.append({
            "pv_volume_mm3": _round(m["volume_mm3"][c]),
            "half_maximum_volume_mm3": _round(m["half_maximum_volume_mm3"][c]),
            "excess_hu_mm3": _round(m["excess_hu_mm3"][c], 2),
            "background_hu": _round(m["background_hu"][c], 2),
            "peak_hu": _round(m["peak_hu"][c], 2),
            "density_hu": _round(density, 2),
            "density_source": None if not np.isfinite(density) else ("fitted" if m["density_fitted"][c] else "core"),
            "calcium_mass_mg": _round(mass, 5),
            "pv_note": "; ".join(notes),
        })
    return rows


def add_partial_volume_columns(table: Table, rows: list[dict], after: str = "volume_mm3") -> None:
    """Insert :data:`PV_COLUMNS` after ``after`` (the threshold volume), row ``i`` of
    ``rows`` for lesion_id ``i + 1``."""
    by_id = {int(r["lesion_id"]): i for i, r in enumerate(table.rows)}
    if len(by_id) != len(rows):
        raise ValueError(f"{len(rows)} partial-volume rows for {len(by_id)} lesions")
    pos = after
    for col in PV_COLUMNS:
        values = [None] * len(table.rows)
        for lid, i in by_id.items():
            values[i] = rows[lid - 1][col.name]
        table.add_column(col, values, after=pos)
        pos = col.name


def partial_volume_record(psf: ScannerPSF, psf_record: dict, geometry: Geometry, calibration=None) -> dict:
    """What provenance keeps of the partial-volume measures: the method, the blur and where
    its numbers came from, the margins along the slices and in plane, the calibration."""
    sp = np.array([geometry.spacing_along_array_axis(a) for a in range(3)])
    margins = margins_mm(sp, psf)
    return {"method": PV_METHOD, "margin_along_slices_mm": round(float(margins[0]), 4),
            "margin_in_plane_mm": [round(float(margins[1]), 4), round(float(margins[2]), 4)],
            "background_shell_mm": DEFAULT_SHELL_MM, "air_below_hu": AIR_CUTOFF_HU,
            "min_core_voxels": MIN_CORE_VOXELS, "scanner_blur": dict(psf_record),
            "calibration": None if calibration is None else calibration.to_dict()}
