"""Helpers shared by the hand tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calcinosis.cli.main import main as cli_main
from calcinosis.core.phantoms import match_by_centroid
from calcinosis.core.tables import Table


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
