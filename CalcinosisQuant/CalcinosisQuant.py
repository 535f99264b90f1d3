"""CalcinosisQuant: calcinosis lesions on hand radiographs, CT and MRI.

Slicer GUI layer only: the Widget wires the panel to the parameter node, the Logic
delegates to ``CalcinosisLib.mrml.workflow`` (tested headless on slicer-core), and the
science lives in ``CalcinosisLib`` / ``CalcinosisQuantLib`` (no Slicer needed).

The panel offers the generic lesion workflow for now: Detect (threshold, minimum size,
connectivity, slice rule, optional region) -> review in the Segment Editor -> Measure
(lesion table) -> Export (the files ``calcinosis measure`` writes).  The hand-specific
steps (digits, joints, modality comparison) come with the hand issue.
"""

import logging
import pathlib
from typing import Annotated, Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode


#
# CalcinosisQuant
#


class CalcinosisQuant(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Calcinosis Quant")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = ["Segmentations", "SegmentEditor"]
        self.parent.contributors = ["SlicerCalcinosis contributors"]
        self.parent.helpText = _("""
Calcinosis in systemic sclerosis on hand radiographs (area, mm²), CT and MRI (volume, mm³).
<b>Detect</b> finds candidate lesions by intensity (above the threshold for CT and radiographs,
below it for MRI signal voids), splits them into connected lesions and drops those smaller than
the minimum size; review and correct them in the Segment Editor, then <b>Measure</b> fills a
lesion table with physical measurements and <b>Export</b> writes the same files as the
<code>calcinosis measure</code> command.
See the <a href="https://github.com/slicer-calcinosis/SlicerCalcinosis#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer's scripted module template. Measurement methods follow the calcinosis
imaging studies cited in the documentation.
""")


#
# CalcinosisQuantParameterNode
#


@parameterNodeWrapper
class CalcinosisQuantParameterNode:
    """
    inputVolume - image to search (CT, MRI, radiograph).
    regionSegmentation - optional: search only inside its segments.
    thresholdLow, useThresholdHigh, thresholdHigh, below - the intensity window.
    minSize - smallest lesion kept, mm³ (3D) or mm² (2D).
    connectivity - 'face' (Slicer's Islands default) or 'full'.
    minSlices - contiguous axial slices a lesion must span.
    lesionSegmentation - Detect's output, reviewed by the user, Measure's input.
    splitIslands - Measure: each island of a segment is one lesion.
    lesionTable - Measure's output.
    outputDirectory, overwrite - Export.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    regionSegmentation: vtkMRMLSegmentationNode
    thresholdLow: Annotated[float, WithinRange(-100000, 100000)] = 130.0
    useThresholdHigh: bool = False
    thresholdHigh: Annotated[float, WithinRange(-100000, 100000)] = 3000.0
    below: bool = False
    minSize: Annotated[float, WithinRange(0, 1000000)] = 1.0
    connectivity: Annotated[str, Choice(["face", "full"])] = "face"
    minSlices: Annotated[int, WithinRange(1, 1000)] = 1
    lesionSegmentation: vtkMRMLSegmentationNode
    splitIslands: bool = False
    lesionTable: vtkMRMLTableNode
    outputDirectory: pathlib.Path
    overwrite: bool = False


#
# CalcinosisQuantWidget
#


class CalcinosisQuantWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._lastMeasurement = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CalcinosisQuant.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = CalcinosisQuantLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.detectButton.connect("clicked(bool)", self.onDetectButton)
        self.ui.editSegmentsButton.connect("clicked(bool)", self.onEditSegmentsButton)
        self.ui.measureButton.connect("clicked(bool)", self.onMeasureButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self._lastMeasurement = None
        # the scene is closing anyway: empty our lesion segmentations first, or Slicer spends
        # minutes removing hundreds of segments from a large shared labelmap one by one
        from CalcinosisLib.mrml import workflow
        workflow.release_lesion_segmentations(slicer.mrmlScene)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[CalcinosisQuantParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        hasInput = bool(p and p.inputVolume)
        hasLesions = bool(hasInput and p.lesionSegmentation)
        self.ui.detectButton.enabled = hasInput
        self.ui.thresholdHighSpinBox.enabled = bool(p and p.useThresholdHigh)
        self.ui.editSegmentsButton.enabled = bool(p and p.lesionSegmentation)
        self.ui.measureButton.enabled = hasLesions
        self.ui.exportButton.enabled = self._lastMeasurement is not None and _directoryGiven(p)
        self.ui.detectButton.toolTip = (_("Find candidate lesions and show them as a segmentation.") if hasInput
                                        else _("Select an input volume."))

    def _runWithProgress(self, title, work):
        """Run ``work(progress)`` with a progress dialog whose Cancel stops it (None when cancelled)."""
        from CalcinosisLib.errors import Cancelled
        from CalcinosisLib.progress import Progress

        dialog = slicer.util.createProgressDialog(windowTitle=title, labelText=title, maximum=100, value=0)

        def update(fraction, message):
            dialog.value = int(round(100 * fraction))
            dialog.labelText = message or title
            slicer.app.processEvents()

        try:
            return work(Progress(update, lambda: dialog.wasCanceled))
        except Cancelled:
            self.ui.statusLabel.text = _("{title}: cancelled.").format(title=title)
            return None
        finally:
            dialog.close()

    def _showWarnings(self, summary, warnings):
        text = summary
        if warnings:
            text += "\n" + "\n".join(_("Warning: {w}").format(w=w) for w in warnings)
        self.ui.statusLabel.text = text

    def onDetectButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Lesion detection failed."), waitCursor=True):
            detection = self._runWithProgress(_("Detecting lesions"), lambda progress: self.logic.detect(
                p.inputVolume, p.thresholdLow, p.thresholdHigh if p.useThresholdHigh else None, p.below,
                p.connectivity, p.minSize, p.minSlices, p.regionSegmentation, p.lesionSegmentation, progress))
            if detection is None:
                return
            p.lesionSegmentation = detection.segmentation_node
            self._lastMeasurement = None
            slicer.util.setSliceViewerLayers(background=p.inputVolume)
            self._showWarnings(_("{n} lesions found: review them in the Segment Editor, then Measure.").format(
                n=detection.lesions.n), detection.warnings)
            self._updateButtons()

    def onEditSegmentsButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Cannot open the Segment Editor."), waitCursor=True):
            slicer.util.selectModule("SegmentEditor")
            editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
            editor.setSegmentationNode(p.lesionSegmentation)
            if p.inputVolume:
                editor.setSourceVolumeNode(p.inputVolume)

    def onMeasureButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Measurement failed."), waitCursor=True):
            measurement = self._runWithProgress(_("Measuring lesions"), lambda progress: self.logic.measure(
                p.inputVolume, p.lesionSegmentation, p.lesionTable, p.splitIslands, p.connectivity, progress))
            if measurement is None:
                return
            p.lesionTable = measurement.table_node
            self._lastMeasurement = measurement
            _showTable(measurement.table_node)
            self._showWarnings(_("{n} lesions measured.").format(n=measurement.result.lesions.n),
                               measurement.result.warnings)
            self._updateButtons()

    def onExportButton(self) -> None:
        from CalcinosisLib.mrml import workflow

        p = self._parameterNode
        if self._lastMeasurement is not None and not workflow.measurement_is_current(self._lastMeasurement):
            # the lesions were edited after Measure: export what the user sees now
            self.onMeasureButton()
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            written = self._runWithProgress(_("Exporting"), lambda progress: self.logic.export(
                p.outputDirectory, self._lastMeasurement, p.overwrite, progress))
            if written is None:
                return
            self.ui.statusLabel.text = _("{n} files written to {folder}").format(n=len(written), folder=p.outputDirectory)


def _directoryGiven(p) -> bool:
    return bool(p) and str(p.outputDirectory) not in ("", ".")


def _showTable(tableNode) -> None:
    """Show a table node in a layout that has a table view."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:
        return
    if layoutManager.layout != slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView:
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    selectionNode = slicer.app.applicationLogic().GetSelectionNode()
    selectionNode.SetActiveTableID(tableNode.GetID())
    slicer.app.applicationLogic().PropagateTableSelection()


#
# CalcinosisQuantLogic
#


class CalcinosisQuantLogic(ScriptedLoadableModuleLogic):
    """Delegates to ``CalcinosisLib.mrml.workflow``; usable without the widget (batch, tests)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return CalcinosisQuantParameterNode(super().getParameterNode())

    def detect(self, inputVolume, thresholdLow, thresholdHigh=None, below=False, connectivity="face", minSize=1.0,
               minSlices=1, regionSegmentation=None, lesionSegmentation=None, progress=None):
        """Candidate lesions as a segmentation node; returns a ``workflow.Detection``."""
        from CalcinosisLib.mrml import workflow

        params = workflow.lesion_params(thresholdLow, thresholdHigh, below, connectivity, minSize, minSlices)
        detection = workflow.detect(inputVolume, params, region_node=regionSegmentation,
                                    segmentation_node=lesionSegmentation, progress=progress)
        logging.info(f"CalcinosisQuant: {detection.lesions.n} lesions detected")
        return detection

    def measure(self, inputVolume, lesionSegmentation, lesionTable=None, splitIslands=False, connectivity="face",
                progress=None):
        """Measure the (reviewed) segmentation into a table node; returns a ``workflow.Measurement``."""
        from CalcinosisLib.mrml import workflow

        return workflow.measure(inputVolume, lesionSegmentation, table_node=lesionTable, split_islands=splitIslands,
                                connectivity=connectivity, progress=progress)

    def export(self, outputDirectory, measurement, overwrite=False, progress=None):
        """Write lesions.csv (+ schema), lesion_labels.nrrd, lesions.seg.nrrd, provenance.json."""
        from CalcinosisLib.errors import InputError
        from CalcinosisLib.mrml import workflow

        if measurement is None:
            raise InputError("nothing to export: press Measure first")
        if not outputDirectory or str(outputDirectory) in ("", "."):
            raise InputError("choose an output folder")
        return workflow.export(outputDirectory, measurement, force=overwrite,
                               command="CalcinosisQuant (Slicer): measure", progress=progress)


#
# CalcinosisQuantTest
#


class CalcinosisQuantTest(ScriptedLoadableModuleTest):
    """Runs the lesion workflow on a phantom with known lesions, inside Slicer."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LesionWorkflowOnPhantom()
        self.setUp()
        self.test_PanelDetectButton()

    def _phantom(self):
        import numpy as np
        from CalcinosisLib import mrml, phantoms
        from CalcinosisLib.volume import Volume

        arr, geom, ellipsoids = phantoms.spheres_phantom(diameters_mm=(2, 3, 4, 6), spacing=(0.5, 0.5, 0.6))
        volume = Volume(np.round(arr).astype(np.int16), geom, {"modality": "CT"})
        return volume, ellipsoids, mrml.node_from_volume(volume, "calcinosis phantom")

    def test_LesionWorkflowOnPhantom(self):
        import tempfile

        from CalcinosisLib import pipeline
        from CalcinosisLib.lesions import LesionParams

        self.delayDisplay("Lesion workflow on a phantom")
        volume, ellipsoids, volumeNode = self._phantom()
        logic = CalcinosisQuantLogic()
        detection = logic.detect(volumeNode, 130.0, minSize=1.0)
        self.assertEqual(detection.lesions.n, len(ellipsoids))
        self.assertEqual(detection.segmentation_node.GetSegmentation().GetNumberOfSegments(), len(ellipsoids))

        measurement = logic.measure(volumeNode, detection.segmentation_node)
        reference = pipeline.measure_volume(volume, LesionParams(130.0, min_size=1.0))
        self.assertEqual(measurement.result.table.column("voxel_count"), reference.table.column("voxel_count"))
        self.assertEqual(measurement.table_node.GetTable().GetNumberOfRows(), len(ellipsoids))
        self.assertEqual(measurement.table_node.GetColumnUnitLabel("volume_mm3"), "mm3")

        # the user deletes one lesion in the Segment Editor: one row fewer
        detection.segmentation_node.GetSegmentation().RemoveSegment("lesion_1")
        edited = logic.measure(volumeNode, detection.segmentation_node, measurement.table_node)
        self.assertEqual(edited.table_node.GetTable().GetNumberOfRows(), len(ellipsoids) - 1)

        with tempfile.TemporaryDirectory() as folder:
            out = pathlib.Path(folder) / "result"
            written = logic.export(out, edited)
            self.assertEqual(sorted(p.name for p in written), ["lesion_labels.nrrd", "lesions.csv",
                                                               "lesions.schema.csv", "lesions.seg.nrrd",
                                                               "provenance.json"])
        self.delayDisplay("Test passed")

    def test_PanelDetectButton(self):
        self.delayDisplay("Detect from the panel")
        volume, ellipsoids, volumeNode = self._phantom()
        widget = slicer.util.getModuleWidget("CalcinosisQuant")
        widget._parameterNode.inputVolume = volumeNode
        widget._parameterNode.thresholdLow = 130.0
        widget._parameterNode.minSize = 1.0
        widget._parameterNode.lesionSegmentation = None
        widget.ui.detectButton.click()
        segmentationNode = widget._parameterNode.lesionSegmentation
        self.assertIsNotNone(segmentationNode)
        self.assertEqual(segmentationNode.GetSegmentation().GetNumberOfSegments(), len(ellipsoids))
        widget.ui.measureButton.click()
        self.assertEqual(widget._parameterNode.lesionTable.GetTable().GetNumberOfRows(), len(ellipsoids))
        self.delayDisplay("Test passed")
