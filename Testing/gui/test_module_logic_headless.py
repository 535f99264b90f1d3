"""Run each module's Logic and the logic part of its own ScriptedLoadableModuleTest headless.

The module files import ``slicer.ScriptedLoadableModule``, ``slicer.i18n`` and
``slicer.parameterNodeWrapper``, which exist only in the Slicer application.  Here those
three are replaced by minimal stand-ins (plain base classes, an identity translation, a
parameter-node wrapper that only keeps the node); everything else - the MRML scene,
nodes, the bridge, the engine - is the real thing from slicer-core.  So the Logic's
delegation and the in-Slicer test's assertions are exercised before anyone opens Slicer.
The panel tests (``test_PanelWorkflow``, ``test_PanelMapAndCorrect``) need Qt and run only
inside Slicer.
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
                # each field starts at the class's default (no validation, no storage in the node)
                for field in getattr(cls, "__annotations__", {}):
                    setattr(self, field, getattr(cls, field, None))
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
LOGIC_TESTS = {"CalcinosisQuant": "test_HandWorkflowOnPhantom", "SpineCalcMap": "test_SpineMapOnPhantom"}
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
    # the in-Slicer test's own assertions (hand tables or the spine map against the phantom, edits, export) run here
    getattr(test, LOGIC_TESTS[name])()


@pytest.mark.parametrize("name", ["CalcinosisQuant", "SpineCalcMap"])
def test_logic_refuses_export_without_measurement(slicer_gui_stand_ins, name, tmp_path):
    from calcinosis.core.errors import InputError

    logic = getattr(_load_module(name), f"{name}Logic")()
    with pytest.raises(InputError, match=EXPORT_REFUSALS[name]):
        logic.export(tmp_path / "out", None)
    assert logic.getParameterNode().parameterNode.IsA("vtkMRMLScriptedModuleNode")


class _FakeWidget(types.SimpleNamespace):
    """Stands for a Qt widget: properties are plain attributes."""


def test_calcinosisquant_panel_flow_headless(slicer_gui_stand_ins, monkeypatch, tmp_path):
    """The hand panel's Widget code (button handlers, enabling, labels, re-measure before
    export, overwrite confirmation) on fake widgets with the real logic and scene: catches
    wrong names and broken flows before anyone opens Slicer (Qt itself is not exercised)."""
    import slicer
    import slicer.util
    from calcinosis import mrml
    from calcinosis.core.volume import Volume
    from calcinosis.hand import phantom as phantom_hand

    module = _load_module("CalcinosisQuant")
    dialogs, confirmations, charts = [], [], []

    class Dialog(types.SimpleNamespace):
        wasCanceled = False

        def close(self):
            pass

    def confirm(text, *args, **kwargs):
        confirmations.append(text)
        return True

    monkeypatch.setattr(slicer.util, "createProgressDialog", lambda **kw: dialogs.append(kw) or Dialog(), raising=False)
    monkeypatch.setattr(slicer.util, "confirmYesNoDisplay", confirm, raising=False)
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda **kw: None, raising=False)
    import contextlib

    @contextlib.contextmanager
    def tryWithErrorDisplay(message=None, show=True, waitCursor=False):
        yield

    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", tryWithErrorDisplay, raising=False)
    # the module sees an application object (slicer.app.processEvents); the bridge must not (it would
    # think it runs inside Slicer), so the module gets its own view of the slicer package
    monkeypatch.setattr(module, "slicer", types.SimpleNamespace(**{**vars(slicer),
                                                                   "app": types.SimpleNamespace(processEvents=lambda: None)}))
    monkeypatch.setattr(slicer.modules, "plots",
                        types.SimpleNamespace(logic=lambda: types.SimpleNamespace(ShowChartInLayout=charts.append)),
                        raising=False)
    monkeypatch.setattr(module, "_showTable", lambda node: None)

    widget = module.CalcinosisQuantWidget()
    names = ["imageInfoLabel", "minSizeLabel", "thresholdSpinBox", "thresholdHintLabel", "removeBoneCheckBox",
             "minSlicesSpinBox", "detectButton", "editSegmentsButton", "measureButton", "exportButton",
             "showFormButton", "checkFormButton", "landmarkStatusLabel", "statusLabel", "resultsTabWidget"]
    widget.ui = types.SimpleNamespace(**{n: _FakeWidget() for n in names})
    widget.logic = module.CalcinosisQuantLogic()
    p = widget.logic.getParameterNode()
    widget._parameterNode = p

    phantom = phantom_hand.ct_phantom("R", seed=0, spacing=(0.7, 0.7, 0.7))
    p.inputVolume = mrml.node_from_volume(Volume(phantom.array, phantom.geometry, {}), "hand")
    p.landmarks = mrml.markups_from_points(phantom.landmarks, "landmarks")
    p.outputDirectory = tmp_path / "out"
    widget._updateGUI()
    assert not widget.ui.detectButton.enabled and "choose XR, CT or MRI" in widget.ui.imageInfoLabel.text
    assert widget.ui.landmarkStatusLabel.text == "20 of 20 landmarks placed."
    p.modality = "CT"
    widget._updateGUI()
    assert widget.ui.detectButton.enabled and widget.ui.minSizeLabel.text == "Minimum size (mm³):"
    assert widget.ui.thresholdHintLabel.text == "Automatic: 130 HU." and not widget.ui.thresholdSpinBox.enabled

    widget.onDetectButton()
    segmentation = p.lesionSegmentation
    n = segmentation.GetSegmentation().GetNumberOfSegments()
    assert n > 0 and f"{n} lesions found (CT)" in widget.ui.statusLabel.text
    widget._updateGUI()
    assert widget.ui.measureButton.enabled and widget.ui.exportButton.enabled
    widget.onMeasureButton()
    assert p.lesionTable.GetTable().GetNumberOfRows() == n and charts == [p.digitChart]
    assert "R hand: " in widget.ui.statusLabel.text
    # the partial-volume measures (CT): ticked, Measure adds their columns; the setting is part of
    # what makes a measurement current
    p.partialVolume = True
    p.calibration = "0.8,0"
    widget.onMeasureButton()
    table = p.lesionTable.GetTable()
    names = [table.GetColumnName(k) for k in range(table.GetNumberOfColumns())]
    assert "pv_volume_mm3" in names and "calcium_mass_mg" in names
    assert widget._measurement.result.parameters["partial_volume"]["calibration"]["slope_mg_cm3_per_HU"] == 0.8
    p.partialVolume = False
    p.calibration = ""
    widget.onMeasureButton()

    widget.onCreateFormButton()
    assert p.structuralForm.GetTable().GetNumberOfRows() == 8
    widget.onCheckFormButton()
    assert widget.ui.statusLabel.text.startswith("form valid: 0 of 40 cells filled")

    widget.onExportButton()
    assert (tmp_path / "out" / "structural_form.csv").is_file() and not confirmations
    # an edit after Measure: Export measures again first; the earlier result is replaced after asking
    segmentation.GetSegmentation().RemoveSegment(segmentation.GetSegmentation().GetNthSegmentID(0))
    widget.onExportButton()
    assert len(confirmations) == 1 and "holds an earlier result" in confirmations[0]
    assert (tmp_path / "out" / "lesions.csv").read_text(encoding="utf-8").count("\n") == n  # header + n - 1 rows
    # detecting again into the edited segmentation asks first
    widget.onDetectButton()
    assert len(confirmations) == 2 and "will be replaced" in confirmations[1]
    assert all(d["maximum"] == 100 for d in dialogs)

    # Compare time points: the exported result followed to itself, shown on its image; a click on
    # a group centres the views on it
    from calcinosis.cli.main import main as cli_main
    from calcinosis.core import image_io
    image_io.write_image(phantom.array, phantom.geometry, tmp_path / "hand.nrrd")
    assert cli_main(["follow", str(tmp_path / "out"), str(tmp_path / "out"), "--registration", "none",
                     "-o", str(tmp_path / "follow"), "-q"]) == 0
    shown = {}

    class TableView(_FakeWidget):
        def setMRMLTableNode(self, node):
            shown["table"] = node

        def mrmlTableNode(self):
            return shown.get("table")

        def sortFilterProxyModel(self):
            return types.SimpleNamespace(mapToSource=lambda index: index)

    widget.ui.followResultPathLineEdit = _FakeWidget(currentPath=str(tmp_path / "follow"))
    widget.ui.baselineImagePathLineEdit = _FakeWidget(currentPath=str(tmp_path / "hand.nrrd"))
    widget.ui.changesTableView = TableView()
    widget.onLoadComparisonButton()
    groups = shown["table"].GetTable().GetNumberOfRows()
    assert groups > 0 and widget.ui.statusLabel.text == f"Follow-up: {groups} stable. Click a group to see it."
    jumps = []
    monkeypatch.setattr("calcinosis.mrml.follow_view.center_views_on", lambda ras, scene=None: jumps.append(ras))
    index = types.SimpleNamespace(isValid=lambda: True, row=lambda: 0 if shown["table"].GetUseColumnTitleAsColumnHeader()
                                  else 1)
    widget.onChangeRowClicked(index)
    assert len(jumps) == 1
