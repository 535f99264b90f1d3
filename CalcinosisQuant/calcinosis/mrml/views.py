"""Slice views: centring them on a point (the panels' "jump to lesion")."""

from __future__ import annotations

from typing import Sequence

from .scene import get_scene, module_logic


def center_views_on(ras: Sequence[float], scene=None) -> None:
    """Centre every slice view on a RAS point, as clicking a point in the Markups list does
    (the Markups logic's jump when it is there, else every slice node's centred jump)."""
    import slicer

    r, a, s = (float(v) for v in ras)
    try:
        logic = module_logic("Markups", scene)
    except (RuntimeError, AttributeError):
        logic = None
    if logic is not None:
        logic.JumpSlicesToLocation(r, a, s, True)
    else:
        slicer.vtkMRMLSliceNode.JumpAllSlices(get_scene(scene), r, a, s, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
