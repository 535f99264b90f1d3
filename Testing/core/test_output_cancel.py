"""Cancelling while a result is written leaves nothing: the last point where a progress
callback can cancel comes before the files are moved into place (found by the hand panel:
Cancel on the final progress report used to say "cancelled" with the result written)."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core import phantoms, pipeline
from calcinosis.core.errors import Cancelled
from calcinosis.core.lesions import LesionParams
from calcinosis.core.progress import Progress
from calcinosis.core.volume import Volume


def test_cancel_at_any_report_of_write_measure_outputs_writes_nothing(tmp_path):
    arr, geom, _ = phantoms.spheres_phantom(diameters_mm=(3, 4), spacing=(0.6, 0.6, 0.6), seed=2)
    result = pipeline.measure_volume(Volume(np.round(arr).astype(np.int16), geom, {"modality": "CT"}),
                                     LesionParams(130.0, min_size=1.0))
    reports = []
    pipeline.write_measure_outputs(tmp_path / "full", result, progress=Progress(lambda f, m: reports.append(f)))
    assert reports[-1] == 1.0 and (tmp_path / "full" / "provenance.json").is_file()
    for n in range(len(reports)):   # cancel at the 1st, 2nd, ... last report
        seen = []
        progress = Progress(lambda f, m: seen.append(f), cancel_requested=lambda: len(seen) >= n)
        with pytest.raises(Cancelled):
            pipeline.write_measure_outputs(tmp_path / f"cancelled{n}", result, progress=progress)
        assert not (tmp_path / f"cancelled{n}").exists()
