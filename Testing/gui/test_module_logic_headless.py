"""Run each module's Logic and the logic part of its own ScriptedLoadableModuleTest headless.

The module files import ``slicer.ScriptedLoadableModule``, ``slicer.i18n`` and
``slicer.parameterNodeWrapper``, which exist only in the Slicer application.  Here those
three are replaced by minimal stand-ins (plain base classes, an identity translation, a
parameter-node wrapper that only keeps the node); everything else - the MRML scene,
nodes, the bridge, the engine - is the real thing from slicer-core.  So the Logic's
delegation and the in-Slicer test's assertions are exercised before anyone opens Slicer.
The panel tests (``test_PanelDetectButton``, ``test_PanelMapAndCorrect``) need Qt and run
only inside Slicer.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import unittest
from pathlib import Path

import pytest

pytestmark = pytest.mark.mrml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def slicer_gui_stand_ins(monkeypatch, mrml_scene):
    import slicer

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self):
            pass

        def getParameterNode(self):
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
            return node

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            pass

    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    slm.ScriptedLoadableModule = ScriptedLoadableModule
    slm.ScriptedLoadableModuleWidget = ScriptedLoadableModuleWidget
    slm.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    slm.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest

    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text

    pnw = types.ModuleType("slicer.parameterNodeWrapper")

    def parameterNodeWrapper(cls):
        class Wrapped:
            def __init__(self, node):
                self.parameterNode = node
        Wrapped.__name__ = cls.__name__
        Wrapped.__annotations__ = getattr(cls, "__annotations__", {})
        return Wrapped

    class _Annotation:
        def __init__(self, *args, **kwargs):
            self.args = args

    pnw.parameterNodeWrapper = parameterNodeWrapper
    pnw.Choice = _Annotation
    pnw.WithinRange = _Annotation

    for name, mod in (("slicer.ScriptedLoadableModule", slm), ("slicer.i18n", i18n),
                      ("slicer.parameterNodeWrapper", pnw)):
        monkeypatch.setitem(sys.modules, name, mod)
    yield


def _load_module(name: str):
    path = REPO / name / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_module_under_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the logic part of each module's own test (the rest clicks the panel: Qt, in Slicer only)
LOGIC_TESTS = {"CalcinosisQuant": "test_LesionWorkflowOnPhantom", "SpineCalcMap": "test_SpineMapOnPhantom"}
#: what each Logic says when asked to export before its main step
EXPORT_REFUSALS = {"CalcinosisQuant": "Measure first", "SpineCalcMap": "Map first"}


@pytest.mark.parametrize("name", ["CalcinosisQuant", "SpineCalcMap"])
def test_module_test_logic_part_runs_headless(slicer_gui_stand_ins, name):
    module = _load_module(name)
    parent = types.SimpleNamespace()
    getattr(module, name)(parent)
    assert "Quantification" in parent.categories
    test = getattr(module, f"{name}Test")()
    test.setUp()
    # the in-Slicer test's own assertions (lesions or the spine map against the phantom, edits, export) run here
    getattr(test, LOGIC_TESTS[name])()


@pytest.mark.parametrize("name", ["CalcinosisQuant", "SpineCalcMap"])
def test_logic_refuses_export_without_measurement(slicer_gui_stand_ins, name, tmp_path):
    from CalcinosisLib.errors import InputError

    logic = getattr(_load_module(name), f"{name}Logic")()
    with pytest.raises(InputError, match=EXPORT_REFUSALS[name]):
        logic.export(tmp_path / "out", None)
    assert logic.getParameterNode().parameterNode.IsA("vtkMRMLScriptedModuleNode")
