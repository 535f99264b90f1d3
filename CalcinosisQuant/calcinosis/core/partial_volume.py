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
  background to the peak.

Functional: image, label array and geometry in; one row per lesion out.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import Geometry

#: integrated beyond the outline (mm): the scanner's blur reaches about this far at 3 mm slices
DEFAULT_MARGIN_MM = 3.0
#: the background's shell, beyond the margin (mm)
DEFAULT_SHELL_MM = 2.0


def lesion_excess(image: np.ndarray, labels: np.ndarray, n: int, geometry: Geometry,
                  margin_mm: float = DEFAULT_MARGIN_MM, shell_mm: float = DEFAULT_SHELL_MM) -> dict[str, np.ndarray]:
    """Per lesion 1..``n`` of ``labels`` (array[k, j, i], same grid as ``image``): the
    measures of the module's text, as arrays of length ``n`` (NaN for a lesion whose shell
    holds no voxel)."""
    sp = np.array([geometry.spacing[2], geometry.spacing[1], geometry.spacing[0]], float)   # (k, j, i)
    vox = float(np.prod(sp))
    out = {k: np.full(n, np.nan) for k in ("background_hu", "peak_hu", "excess_hu_mm3", "excess_volume_mm3",
                                            "half_maximum_volume_mm3")}
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
    return out
