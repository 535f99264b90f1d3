"""A CT's HU-to-calcium line (issue 14): mg of hydroxyapatite (HA) per cm³ for each HU.

Either given (``--calibration SLOPE,INTERCEPT`` - from the scanner's quantitative-CT
phantom, or a published line for the protocol) or fitted to calibration rods imaged with the
patient (a label map of the rods and each rod's known HA density: the rods' mean HU against
their densities by least squares).

A lesion's calcium mass then follows from its integrated excess
(:func:`calcinosis.core.partial_volume.lesion_excess`): the line is linear, so the mass of HA
above that of the surrounding tissue is ``slope x excess_hu_mm3 / 1000`` (mm³ to cm³) -
the intercept cancels, and neither the lesion's outline nor its density estimate enters.

Functional: numbers (or an image, a label array and densities) in; a
:class:`HUCalibration` out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import InputError

#: the least a rod may hold to give its mean HU (voxels)
MIN_ROD_VOXELS = 20
#: a fitted line explaining less of the rods' spread than this is refused (R²)
MIN_ROD_FIT_R2 = 0.95
#: a plausible slope, mg HA/cm³ per HU (QCT phantoms give about 0.6-1.0 at 80-140 kVp)
SLOPE_RANGE = (0.2, 3.0)


@dataclass(frozen=True)
class HUCalibration:
    """density (mg HA/cm³) = ``slope`` x HU + ``intercept``; ``source`` says where from."""

    slope_mg_cm3_per_hu: float
    intercept_mg_cm3: float
    source: str
    r2: float | None = None
    rods: tuple = ()

    def mass_mg(self, excess_hu_mm3):
        """The HA mass (mg) above the background's, of an integrated excess (HU x mm³)."""
        return self.slope_mg_cm3_per_hu * np.asarray(excess_hu_mm3, float) / 1000.0

    def to_dict(self) -> dict:
        d = {"slope_mg_cm3_per_HU": self.slope_mg_cm3_per_hu, "intercept_mg_cm3": self.intercept_mg_cm3,
             "source": self.source}
        if self.r2 is not None:
            d["fit_r2"] = round(self.r2, 6)
        if self.rods:
            d["rods"] = [dict(r) for r in self.rods]
        return d


def _check_slope(slope: float, where: str) -> None:
    lo, hi = SLOPE_RANGE
    if not (lo <= slope <= hi):
        raise InputError(f"{where}: slope {slope:g} mg HA/cm³ per HU is outside {lo:g}-{hi:g} "
                         "(a CT calibration line gives about 0.6-1.0)")


def calibration_from_text(text: str, where: str = "--calibration") -> HUCalibration:
    """``SLOPE,INTERCEPT`` (mg HA/cm³ per HU, mg HA/cm³)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2:
        raise InputError(f"{where}: expected SLOPE,INTERCEPT (mg HA/cm³ per HU, mg HA/cm³), got {text!r}")
    try:
        slope, intercept = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputError(f"{where}: expected two numbers SLOPE,INTERCEPT, got {text!r}") from None
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise InputError(f"{where}: SLOPE and INTERCEPT must be finite, got {text!r}")
    _check_slope(slope, where)
    return HUCalibration(slope, intercept, "given")


def calibration_from_rods(image: np.ndarray, rods: np.ndarray, densities_mg_cm3: Sequence[float],
                          where: str = "--calibration-rods") -> HUCalibration:
    """The line through the rods' mean HU and their known densities: ``rods`` is an array
    of rod numbers on the image's grid, rod ``v`` has ``densities_mg_cm3[v - 1]``.
    Each rod's mean is taken over its voxels more than one voxel inside its outline (the
    rod's own partial-volume edge left out)."""
    from scipy import ndimage

    dens = [float(d) for d in densities_mg_cm3]
    if len(dens) < 2:
        raise InputError(f"{where}: at least two rods (two densities) are needed to fit a line, got {len(dens)}")
    labels = np.asarray(rods)
    rows, hu, rho = [], [], []
    for v, d in enumerate(dens, start=1):
        rod = labels == v
        inner = ndimage.binary_erosion(rod) if rod.ndim == 3 else rod
        if np.count_nonzero(inner) < MIN_ROD_VOXELS:
            raise InputError(f"{where}: rod {v} ({d:g} mg HA/cm³) has "
                             f"{int(np.count_nonzero(inner))} voxels inside its edge; at least {MIN_ROD_VOXELS} "
                             "are needed (is the label map on this image, one segment per rod?)")
        mean = float(np.asarray(image)[inner].mean())
        rows.append({"label": v, "density_mg_cm3": d, "mean_hu": round(mean, 3),
                     "voxels": int(np.count_nonzero(inner))})
        hu.append(mean)
        rho.append(d)
    extra = sorted(set(np.unique(labels).tolist()) - set(range(len(dens) + 1)))
    if extra:
        raise InputError(f"{where}: {len(extra)} rods more than densities (give one density per rod, "
                         "in label-value order)")
    hu_a, rho_a = np.array(hu), np.array(rho)
    if np.ptp(hu_a) <= 0:
        raise InputError(f"{where}: the rods all read {hu_a[0]:.1f} HU; a line needs rods of different densities")
    slope, intercept = np.polyfit(hu_a, rho_a, 1)
    pred = slope * hu_a + intercept
    ss = float(((rho_a - rho_a.mean()) ** 2).sum())
    r2 = 1.0 - float(((rho_a - pred) ** 2).sum()) / ss if ss > 0 else 0.0
    if len(dens) > 2 and r2 < MIN_ROD_FIT_R2:
        raise InputError(f"{where}: the rods' mean HU do not follow their densities on a line (R² {r2:.3f} < "
                         f"{MIN_ROD_FIT_R2}); check the densities' order against the label values")
    _check_slope(float(slope), where)
    return HUCalibration(float(slope), float(intercept), "fitted to calibration rods", r2, tuple(rows))
