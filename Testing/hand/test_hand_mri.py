"""MRI: signal voids inside the regions a reader draws."""

from __future__ import annotations

import numpy as np

from hand_helpers import matched, read, run_cli, unmatched_measured


def test_every_drawn_lesion_of_2mm_or_more_is_found(hand_data, hand_results):
    truth = read(hand_data / "mri" / "truth.csv")
    lesions = read(hand_results / "mri" / "lesions.csv")
    pairs = matched(lesions, truth)
    assert not [t["name"] for t, m in pairs if m is None and t["max_diameter_mm"] >= 2.0]
    assert not unmatched_measured(lesions, truth)
    found = [(t, m) for t, m in pairs if m is not None]
    assert all(t["digit"] == m["digit"] for t, m in found)
    assert np.mean([t["zone"] == m["zone"] for t, m in found]) >= 0.95
    # Volumes: with 1.5 mm slices the lesion's partial-volume layer is a whole slice thick, and
    # the local background (median of a shell inside the drawn region) mixes tissue with that
    # layer and with the fat or air beyond the thin tissue around a nodule; the half-way edge
    # then moves inwards.  Measured on this phantom: -2% to -13% for voids >= 4 mm across;
    # asserted: within 15%, and below the truth on average, as study 1 found MRI volumes
    # systematically below CT's.
    big = [(t, m) for t, m in found if t["min_diameter_mm"] >= 4.0]
    assert len(big) >= 3
    for t, m in big:
        assert abs(m["volume_mm3"] / t["volume_mm3"] - 1) <= 0.15, t["name"]
    assert np.mean([m["volume_mm3"] / t["volume_mm3"] for t, m in found]) < 1.0


def test_mri_without_a_region_is_a_clear_error(hand_data, tmp_path, capsys):
    code = run_cli("hand", hand_data / "mri" / "mri", "-o", tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 2 and "draw a region" in err and "--roi" in err
    assert not (tmp_path / "o").exists()
