"""The MRML scene: Slicer's own inside the application, a headless one elsewhere.

Inside 3D Slicer :func:`headless_scene` returns ``slicer.mrmlScene``.  In a plain Python
process with the ``slicer-core`` wheel (real MRML, no Qt) it builds what the application
would: a ``vtkMRMLScene``, a ``vtkSlicerApplicationLogic`` with its colour logic and the
default colour nodes, and the module logics the bridge and ``slicer.util`` helpers use
(Colors, Volumes, Segmentations, Markups, Tables, Plots, SubjectHierarchy), each
registered on the application logic with ``SetModuleLogic``.  It sets
``slicer.mrmlScene`` and, when the application's ``slicer.modules`` is absent, a small
``slicer.modules`` namespace whose entries answer ``.logic()`` (as
``slicer.modules.segmentations.logic()`` does in Slicer), so ``slicer.util`` helpers such as
``arrayFromSegmentBinaryLabelmap`` work headless.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import slicer

from .vtklog import vtk_messages

#: Module logics created for a headless scene: (name in SetModuleLogic, slicer class name).
HEADLESS_LOGICS = (
    ("Volumes", "vtkSlicerVolumesLogic"),
    ("Segmentations", "vtkSlicerSegmentationsModuleLogic"),
    ("Markups", "vtkSlicerMarkupsLogic"),
    ("Tables", "vtkSlicerTablesLogic"),
    ("Plots", "vtkSlicerPlotsLogic"),
    ("SubjectHierarchy", "vtkSlicerSubjectHierarchyModuleLogic"),
)

#: Messages a headless set-up prints that mean nothing here (no share directory, no
#: colour files, no application home in a slicer-core install).
HEADLESS_SETUP_NOISE = (
    r"FindDefaultColorFiles",
    r"HomeDirectory is not set",
    r"Unable to get application logic",
    r"SetModuleShareDirectory",
)


def in_slicer() -> bool:
    """True inside the 3D Slicer application (``slicer.app`` exists only there)."""
    return hasattr(slicer, "app")


@dataclass
class HeadlessState:
    scene: object
    app_logic: object
    logics: dict = field(default_factory=dict)


_STATES: dict[str, HeadlessState] = {}


class _ModuleEntry:
    """What ``slicer.modules.<name>`` offers headless: ``logic()``."""

    def __init__(self, name: str, logic) -> None:
        self.name = name
        self._logic = logic

    def logic(self):
        return self._logic


def headless_scene():
    """A scene to work in: ``slicer.mrmlScene`` inside Slicer, else a fresh headless one
    (which becomes ``slicer.mrmlScene``)."""
    if in_slicer():
        return slicer.mrmlScene
    with vtk_messages(expected=HEADLESS_SETUP_NOISE):
        scene = slicer.vtkMRMLScene()
        app = slicer.vtkSlicerApplicationLogic()
        app.SetMRMLScene(scene)
        colors = app.GetColorLogic()
        colors.SetMRMLScene(scene)
        colors.AddDefaultColorNodes()
        app.SetModuleLogic("Colors", colors)
        logics = {"Colors": colors}
        for name, cls_name in HEADLESS_LOGICS:
            cls = getattr(slicer, cls_name, None)
            if cls is None:  # an older/smaller wheel: the bridge does not need every logic
                continue
            logic = cls()
            logic.SetMRMLApplicationLogic(app)
            logic.SetMRMLScene(scene)
            app.SetModuleLogic(name, logic)
            logics[name] = logic
    state = HeadlessState(scene, app, logics)
    _STATES[scene.GetAddressAsString("")] = state
    slicer.mrmlScene = scene
    existing = getattr(slicer, "modules", None)
    if existing is None or isinstance(existing, types.SimpleNamespace):
        slicer.modules = types.SimpleNamespace(**{n.lower(): _ModuleEntry(n, lg) for n, lg in logics.items()})
    return scene


def close_headless_scene(scene) -> None:
    """Clear a headless scene and release its logics (no-op inside Slicer).

    Segmentation nodes are emptied first with
    :func:`~calcinosis.mrml.segmentations.clear_segments_fast`: deleting a node with
    hundreds of segments in a large shared labelmap otherwise takes minutes in Slicer."""
    if in_slicer():
        return
    from .segmentations import clear_segments_fast

    state = _STATES.pop(scene.GetAddressAsString(""), None)
    nodes = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    for n in range(nodes.GetNumberOfItems()):
        clear_segments_fast(nodes.GetItemAsObject(n).GetSegmentation())
    with vtk_messages(expected=(r"Invalid scene given",)):
        scene.Clear(1)
        if state is not None:
            for logic in state.logics.values():
                logic.SetMRMLScene(None)
            state.app_logic.SetMRMLScene(None)
    if getattr(slicer, "mrmlScene", None) is scene:
        slicer.mrmlScene = None


def get_scene(scene=None):
    """``scene`` or ``slicer.mrmlScene``; a clear error when there is none."""
    if scene is not None:
        return scene
    current = getattr(slicer, "mrmlScene", None)
    if current is None:
        raise RuntimeError("no MRML scene: call calcinosis.mrml.headless_scene() first (outside Slicer)")
    return current


def module_logic(name: str, scene=None):
    """A module logic by its module name ('Segmentations', 'Volumes', ...)."""
    if in_slicer():
        return getattr(slicer.modules, name.lower()).logic()
    scene = get_scene(scene)
    state = _STATES.get(scene.GetAddressAsString(""))
    if state is None or name not in state.logics:
        raise RuntimeError(f"no {name} logic registered for this scene; create it with headless_scene()")
    return state.logics[name]
