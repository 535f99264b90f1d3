"""Markups point lists <-> ``[(label, RAS position or None)]``.

Positions are world RAS (a parent transform of the list is applied).  ``None`` stands for
an unplaced point: :func:`markups_from_points` creates it with an undefined position, so
a list can hold every expected landmark (``thumb MCP``, ``index PIP`` ...) for the user to
place one by one in the Markups module; :func:`points_from_markups` returns ``None`` for
points not placed yet (undefined, preview or "missing" positions alike).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import slicer
import vtk

from calcinosis.core.errors import InputError
from .scene import get_scene


def points_from_markups(markups_node) -> list[tuple[str, np.ndarray | None]]:
    """Every control point's label and world RAS position (``None`` when unplaced)."""
    if markups_node is None:
        raise InputError("no point list selected")
    out = []
    defined = slicer.vtkMRMLMarkupsNode.PositionDefined
    for n in range(markups_node.GetNumberOfControlPoints()):
        label = markups_node.GetNthControlPointLabel(n)
        if markups_node.GetNthControlPointPositionStatus(n) == defined:
            p = [0.0, 0.0, 0.0]
            markups_node.GetNthControlPointPositionWorld(n, p)
            out.append((label, np.array(p, dtype=float)))
        else:
            out.append((label, None))
    return out


def markups_from_points(points: Sequence[tuple[str, Sequence[float] | None]], name: str, scene=None, node=None,
                        locked: bool = False):
    """A ``vtkMRMLMarkupsFiducialNode`` with one control point per ``(label, ras)``; a
    ``None`` position makes an unplaced point.  ``node``: replace the points of this list."""
    scene = get_scene(scene)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    elif name:
        node.SetName(name)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    was = node.StartModify()
    try:
        node.RemoveAllControlPoints()
        for label, ras in points:
            if ras is None:
                n = node.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 0.0), str(label))
                node.UnsetNthControlPointPosition(n)
            else:
                p = np.asarray(ras, dtype=float).ravel()
                if p.size != 3 or not np.all(np.isfinite(p)):
                    raise InputError(f"point '{label}': expected three finite RAS coordinates, got {ras!r}")
                node.AddControlPointWorld(vtk.vtkVector3d(*p.tolist()), str(label))
        node.SetLocked(bool(locked))
    finally:
        node.EndModify(was)
    return node
