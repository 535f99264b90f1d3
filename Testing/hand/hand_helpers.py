"""Helpers shared by the hand tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calcinosis.cli.main import main as cli_main
from calcinosis.core.phantoms import match_by_centroid
from calcinosis.core.tables import Table


def xr_phantom_detection(side: str, seed: int, placed_landmarks: bool):
    """The default detector on the phantom radiograph of ``side``/``seed``: with the
    phantom's exact landmarks, or with the automatic ones only (laterality given) - computed
    once per run and code version and shared by the test files (``phantom_cache``)."""
    from phantom_cache import cached
    return cached(_xr_phantom_detection, side, seed, placed_landmarks)


def _xr_phantom_detection(side: str, seed: int, placed_landmarks: bool):
    from phantom_cache import cached

    from calcinosis.core.volume import Volume
    from calcinosis.hand import detect, phantom as phantom_hand
    from calcinosis.hand.landmarks import landmarks_from_points
    ph = cached(phantom_hand.xr_phantom, side, seed)
    if placed_landmarks:
        vol = Volume(ph.array.astype(np.float32), ph.geometry, {"modality": "XR"})
        return detect.detect_xr(vol, detect.DetectParams(), landmarks=landmarks_from_points(ph.landmarks))
    vol = Volume(ph.array.astype(np.float32), ph.geometry, {"modality": "XR", "laterality": side})
    return detect.detect_xr(vol, detect.DetectParams())


def run_cli(*argv) -> int:
    """The ``calcinosis`` command in-process; argument errors (argparse) give their exit code too."""
    try:
        return cli_main([str(a) for a in argv])
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2


def read(path: Path) -> Table:
    return Table.read_csv(path)


def matched(measured: Table, truth: Table, max_mm: float = 4.0) -> list[tuple[dict, dict | None]]:
    """(truth row, measured row or None) by nearest centroid."""
    pairs = match_by_centroid(measured, truth, max_mm)
    return [(truth.rows[t], None if m is None else measured.rows[m]) for t, m in pairs]


def unmatched_measured(measured: Table, truth: Table, max_mm: float = 4.0) -> list[dict]:
    used = {m for _, m in match_by_centroid(measured, truth, max_mm) if m is not None}
    return [r for k, r in enumerate(measured.rows) if k not in used]


def ras(table: Table, prefix: str) -> np.ndarray:
    return np.array([[r[f"{prefix}_{a}_mm"] for a in "ras"] for r in table.rows]).reshape(-1, 3)
