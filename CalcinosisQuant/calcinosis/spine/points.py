"""Point lists with one point per vertebral body (``T8``, ``L1`` …).

Read and written by :mod:`calcinosis.core.pointlists` (``.mrk.json``, ``.fcsv`` or a CSV
with a ``label`` column and ``r,a,s`` or ``l,p,s``); every position comes back in RAS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calcinosis.core import pointlists

from .anatomy import parse_vertebra_name

Point = pointlists.Point


def read_points(path: str | Path) -> list[Point]:
    """[(label, ras or None when the point is not placed)] in file order."""
    return pointlists.read_point_list(path, what="point list")


def vertebra_points(points: list[Point], source: str = "point list"
                    ) -> tuple[dict[str, np.ndarray], list[str], set[str]]:
    """({vertebra: ras}, warnings, duplicated names) from labelled points.

    Points whose label names no vertebra are ignored with a warning; unplaced points
    are skipped; a vertebra given twice is reported in ``duplicated`` (both dropped)."""
    found: dict[str, list[np.ndarray]] = {}
    warnings = []
    for label, ras in points:
        name = parse_vertebra_name(label)
        if name is None:
            warnings.append(f"{source}: point {label!r} names no vertebra (expected labels like T8, L1); ignored")
            continue
        if ras is None:
            warnings.append(f"{source}: point {label} is not placed; ignored")
            continue
        found.setdefault(name, []).append(np.asarray(ras, float))
    duplicated = {n for n, v in found.items() if len(v) > 1}
    for n in sorted(duplicated):
        warnings.append(f"{source}: vertebra {n} is given {len(found[n])} times; levels next to it are not assessed")
    return {n: v[0] for n, v in found.items() if n not in duplicated}, warnings, duplicated


def write_points_mrk_json(points: list[tuple[str, np.ndarray]], path: str | Path, name: str = "vertebrae") -> Path:
    """A Slicer markups point list (RAS written as LPS, as Slicer does)."""
    path = Path(path)
    path.write_text(pointlists.markups_json_text(points, name=name), encoding="utf-8")
    return path
