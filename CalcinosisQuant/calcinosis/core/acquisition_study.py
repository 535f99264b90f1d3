"""The same deposits through every acquisition, measured as a user's run measures them
(issue 14, deliverable 2; docs/validation.md).

Each acquisition of :mod:`.acquisition_phantom` (a body with a skin, noise) is measured by the
``measure`` pipeline's own steps - the 130 HU threshold outline
(:func:`~calcinosis.core.pipeline.measure_volume`), then the partial-volume columns with the
scanner's blur measured on the skin (:func:`~calcinosis.core.pipeline.add_partial_volume`) -
and each deposit is matched to the lesion holding its true centre.  One row per deposit and
acquisition: the truth, the threshold volume and the partial-volume volume (None where the
threshold found nothing there).

Functional: deposits, acquisitions and noise in; a table out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .acquisition_phantom import Acquisition, Deposit, acquire
from .defaults import DEFAULT_CT_THRESHOLD_HU
from .lesions import LesionParams
from .pipeline import PartialVolumeRequest, add_partial_volume, measure_volume
from .tables import Column, Table
from .volume import Volume

STUDY_COLUMNS = [
    Column("acquisition", "string", "", "Slice thickness and kernel"),
    Column("slice_mm", "double", "mm", "Slice thickness (= spacing)"),
    Column("kernel", "string", "", "Reconstruction kernel (sharp / standard / soft)"),
    Column("noise_sd_hu", "double", "HU", "Noise standard deviation"),
    Column("measured_fwhm_mm", "double", "mm", "In-plane blur measured on the skin"),
    Column("diameter_mm", "double", "mm", "True diameter"),
    Column("hu", "double", "HU", "True density"),
    Column("true_volume_mm3", "double", "mm3", "pi d^3 / 6"),
    Column("threshold_volume_mm3", "double", "mm3", "volume_mm3 of the lesion at the true centre (130 HU)"),
    Column("pv_volume_mm3", "double", "mm3", "pv_volume_mm3 of that lesion"),
    Column("density_source", "string", "", "core or fitted"),
]


def measure_acquisition(deposits: Sequence[Deposit], acq: Acquisition, noise_sd: float = 0.0,
                        seed: int = 0) -> list[dict]:
    """One acquisition of ``deposits`` (with a skin), measured: a row per deposit."""
    arr, geometry, truth = acquire(deposits, acq, noise_sd=noise_sd, seed=seed, skin=True)
    volume = Volume(np.round(arr).astype(np.int16), geometry, {"modality": "CT", "intensity_unit": "HU"})
    params = LesionParams(DEFAULT_CT_THRESHOLD_HU, None, False, "face", 1.0, 1, True)
    result = measure_volume(volume, params)
    add_partial_volume(result, PartialVolumeRequest())
    fwhm = result.extra_parameters["partial_volume"]["scanner_blur"]["in_plane_fwhm_mm"]
    by_id = {int(r["lesion_id"]): r for r in result.table.rows}
    rows = []
    for t in truth.rows:
        ijk = geometry.ras_to_ijk(np.array([[t["center_r_mm"], t["center_a_mm"], t["center_s_mm"]]]))[0]
        i, j, k = np.round(ijk).astype(int)
        lid = int(result.lesions.labels[k, j, i])
        row = by_id.get(lid)
        rows.append({"acquisition": acq.name, "slice_mm": acq.slice_mm, "kernel": acq.kernel,
                     "noise_sd_hu": noise_sd, "measured_fwhm_mm": fwhm, "diameter_mm": t["diameter_mm"],
                     "hu": t["hu"], "true_volume_mm3": t["volume_mm3"],
                     "threshold_volume_mm3": None if row is None else row["volume_mm3"],
                     "pv_volume_mm3": None if row is None else row["pv_volume_mm3"],
                     "density_source": None if row is None else row["density_source"]})
    return rows


def acquisition_study(deposits: Sequence[Deposit], acquisitions: Sequence[Acquisition], noise_sd: float = 0.0,
                      seed: int = 0) -> Table:
    """:func:`measure_acquisition` for every acquisition, in one table."""
    table = Table(STUDY_COLUMNS, name="acquisition_study",
                  description="The same deposits measured across acquisitions (issue 14)")
    for n, acq in enumerate(acquisitions):
        for row in measure_acquisition(deposits, acq, noise_sd, seed + n):
            table.append(row)
    return table
