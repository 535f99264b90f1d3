"""CalcinosisQuant: calcinosis of the hand on radiographs, CT and MRI, in 3D Slicer.

Slicer GUI layer only: the Widget wires the panel to the parameter node and shows
results; the Logic is ``calcinosis.mrml.hand_session.HandSession`` (plain Python on
MRML nodes, tested headless on slicer-core), which runs the hand pipeline of
``calcinosis.hand.pipeline`` - the same steps ``calcinosis hand`` chains:

Inputs (image, modality, landmarks, optional region) -> *Detect* (a segmentation, one
named segment per lesion) -> review in the Segment Editor -> *Measure* (lesion, digit and
hand tables, a per-digit chart; a lesion row click centres the views on it) -> *Export*
(the files of ``calcinosis hand``, with the structural-lesion form when filled).

The module also registers the Segment Editor effect *Calcinosis* (``SegmentEditorCalcinosisLib``:
click a deposit, its outline becomes a new segment).
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

from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLPlotChartNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)

from calcinosis.mrml import hand_session as hand

#
# CalcinosisQuant
#


class CalcinosisQuant(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Calcinosis Quant")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = ["Segmentations", "SegmentEditor", "Markups", "Tables", "Plots"]
        self.parent.contributors = ["SlicerCalcinosis contributors"]
        self.parent.helpText = _("""
Calcinosis of the hand in systemic sclerosis, on a PA radiograph (area, mm²), CT or MRI (volume, mm³).
Select the image (its modality is read from DICOM; override it if needed) and the hand landmarks
(<b>Create and place</b> makes a point list with every label to place in order).
<b>Detect</b> finds candidate lesions (CT: bone removed; MRI: inside the region you draw; radiograph:
bright blobs) as a segmentation, one named segment per lesion; review and edit it in the Segment Editor.
<b>Measure</b> measures the segmentation as it is now and assigns each lesion to side, digit, zone and
kind: lesion, digit and hand tables and a per-digit chart; click a lesion row to centre the views on it.
<b>Export</b> writes the same files as <code>calcinosis hand</code>, with the structural-lesion form.
See the <a href="https://github.com/slicer-calcinosis/SlicerCalcinosis#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer's scripted module template. Measurement methods follow the calcinosis
imaging studies cited in the documentation.
""")
        # the Segment Editor effect "Calcinosis" (one-click deposit outlines) is registered
        # once the application has started (the Segment Editor's effect factory exists then);
        # outside the application (the headless tests) there is no slicer.app and no editor
        if hasattr(slicer, "app"):
            slicer.app.connect("startupCompleted()", self.registerEditorEffect)
            slicer.app.connect("startupCompleted()", self.registerSampleData)

    def registerSampleData(self) -> None:
        """The phantoms in the Sample Data module, category "Calcinosis": made on this computer
        the first time they are loaded (no download) in Slicer's cache folder
        (``calcinosis.mrml.sampledata``)."""
        try:
            import SampleData
        except ImportError:
            return
        from calcinosis.mrml import sampledata

        iconsPath = pathlib.Path(__file__).resolve().parent / "Resources" / "Icons" / "SampleData"
        for sample in sampledata.SAMPLES:
            SampleData.SampleDataLogic.registerCustomSampleDataSource(
                category=sampledata.CATEGORY, sampleName=sample.name, uris=[], fileNames=[],
                thumbnailFileName=str(iconsPath / f"{sample.name}.png"),
                customDownloader=lambda source, name=sample.name: loadSampleData(name))

    def registerEditorEffect(self) -> None:
        """Register the scripted Segment Editor effect of ``SegmentEditorCalcinosisLib``."""
        try:
            import qSlicerSegmentationsEditorEffectsPythonQt as editorEffects
        except ImportError:  # no Segment Editor (e.g. a build without it): nothing to register
            logging.warning("CalcinosisQuant: Segment Editor effects are not available; the Calcinosis effect "
                            "is not registered")
            return
        effect = editorEffects.qSlicerSegmentEditorScriptedEffect(None)
        effectPath = pathlib.Path(__file__).resolve().parent / "SegmentEditorCalcinosisLib" / "SegmentEditorEffect.py"
        effect.setPythonSource(effectPath.as_posix())
        effect.self().register()


def loadSampleData(name: str) -> dict:
    """Make (the first time) and load a calcinosis sample: its image, landmarks or labels."""
    from calcinosis.mrml import sampledata

    with slicer.util.tryWithErrorDisplay(_("The sample could not be made."), waitCursor=True):
        cache = pathlib.Path(slicer.app.cachePath) / "SlicerCalcinosis"
        slicer.util.showStatusMessage(_("Making the {name} phantom (the first time only)...").format(name=name))
        slicer.app.processEvents()
        nodes = sampledata.load_sample(name, cache)
        slicer.util.setSliceViewerLayers(background=nodes["volume"], fit=True)
        return nodes


#
# CalcinosisQuantParameterNode
#


@parameterNodeWrapper
class CalcinosisQuantParameterNode:
    """
    Inputs: inputVolume (the hand image), modality ('auto': read from the image),
    landmarks (point list, labels like R_index_PIP), landmarkSides (for a new list),
    regionSegmentation (optional search region; required for MRI), magnification (radiograph;
    0: from the file).
    Detection: customThreshold/threshold (else the modality's automatic threshold),
    minSize (mm³ on CT/MRI, mm² on radiographs), connectivity, minSlices, boundary,
    removeBone (CT), minConfidence (radiograph), lesionSegmentation (Detect's output,
    reviewed, Measure's input).
    Assignment distances (mm): maxRayDistance, jointRadius, periarticularDistance,
    wristReach, wristWidth, sideReach, landmarkMargin; thumbIpZone; ignoreUnknownLandmarks.
    Measure: splitIslands; outputs lesionTable, digitTable, handTable, digitChart.
    Partial-volume measures (CT): partialVolume, inPlaneFwhm (mm; 0: measured on the skin),
    calibration ('SLOPE,INTERCEPT', mg HA/cm³ per HU; empty: no calcium mass).
    structuralForm: the study-2 form table. Export: outputDirectory, caseId, exportDicomSeg,
    exportDicomSr.
    Defaults are the core's (DetectParams, AssignParams), never repeated here.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    modality: Annotated[str, Choice(list(hand.MODALITY_CHOICES))] = "auto"
    landmarks: vtkMRMLMarkupsFiducialNode
    landmarkSides: Annotated[str, Choice(list(hand.LANDMARK_SIDES))] = "both"
    regionSegmentation: vtkMRMLSegmentationNode
    magnification: Annotated[float, WithinRange(0, 2)] = 0.0
    customThreshold: bool = False
    threshold: Annotated[float, WithinRange(-100000, 100000)] = hand.CT_THRESHOLD_DEFAULT
    minSize: Annotated[float, WithinRange(0, 1000000)] = hand.DETECT_DEFAULTS.min_size
    connectivity: Annotated[str, Choice(list(hand.CONNECTIVITY_CHOICES))] = hand.DETECT_DEFAULTS.connectivity
    minSlices: Annotated[int, WithinRange(1, 1000)] = hand.DETECT_DEFAULTS.min_slices
    boundary: Annotated[str, Choice(list(hand.BOUNDARY_CHOICES))] = hand.DETECT_DEFAULTS.boundary
    removeBone: bool = hand.DETECT_DEFAULTS.exclude_bone
    minConfidence: Annotated[float, WithinRange(0, 1)] = hand.DETECT_DEFAULTS.xr_min_confidence
    lesionSegmentation: vtkMRMLSegmentationNode
    maxRayDistance: Annotated[float, WithinRange(0, 1000)] = hand.ASSIGN_DEFAULTS.max_ray_distance_mm
    jointRadius: Annotated[float, WithinRange(0, 1000)] = hand.ASSIGN_DEFAULTS.joint_radius_mm
    periarticularDistance: Annotated[float, WithinRange(0, 1000)] = hand.ASSIGN_DEFAULTS.periarticular_mm
    wristReach: Annotated[float, WithinRange(0, 1000)] = hand.ASSIGN_DEFAULTS.wrist_reach_mm
    sideReach: Annotated[float, WithinRange(0, 1000)] = hand.ASSIGN_DEFAULTS.side_reach_mm
    wristWidth: Annotated[float, WithinRange(0, 1000)] = hand.ASSIGN_DEFAULTS.wrist_width_mm
    landmarkMargin: Annotated[float, WithinRange(0, 1000)] = hand.ASSIGN_DEFAULTS.landmark_margin_mm
    thumbIpZone: Annotated[str, Choice(list(hand.THUMB_IP_ZONES))] = hand.ASSIGN_DEFAULTS.thumb_ip_zone
    partialVolume: bool = False
    inPlaneFwhm: Annotated[float, WithinRange(0, 5)] = 0.0
    calibration: str = ""
    ignoreUnknownLandmarks: bool = False
    splitIslands: bool = False
    lesionTable: vtkMRMLTableNode
    digitTable: vtkMRMLTableNode
    handTable: vtkMRMLTableNode
    digitChart: vtkMRMLPlotChartNode
    structuralForm: vtkMRMLTableNode
    outputDirectory: pathlib.Path
    caseId: str = ""
    exportDicomSeg: bool = False
    exportDicomSr: bool = False


def detectParamsFrom(p):
    """Core detection parameters from the parameter node (validated)."""
    return hand.detect_params_from_node(p)


def assignParamsFrom(p):
    """Core assignment parameters (distances in mm) from the parameter node (validated)."""
    return hand.assign_params_from_node(p)


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
        self._measurement = None
        self._observedLandmarks = None
        self._summaryCache = (None, None)
        self._spacingDeclined = set()
        self._comparison = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CalcinosisQuant.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = CalcinosisQuantLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.createLandmarksButton.connect("clicked(bool)", self.onCreateLandmarksButton)
        self.ui.detectButton.connect("clicked(bool)", self.onDetectButton)
        self.ui.editSegmentsButton.connect("clicked(bool)", self.onEditSegmentsButton)
        self.ui.measureButton.connect("clicked(bool)", self.onMeasureButton)
        self.ui.lesionTableView.connect("clicked(QModelIndex)", self.onLesionRowClicked)
        self.ui.createFormButton.connect("clicked(bool)", self.onCreateFormButton)
        self.ui.showFormButton.connect("clicked(bool)", self.onShowFormButton)
        self.ui.checkFormButton.connect("clicked(bool)", self.onCheckFormButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.ui.resetParametersButton.connect("clicked(bool)", self.onResetParameters)
        self.ui.loadComparisonButton.connect("clicked(bool)", self.onLoadComparisonButton)
        self.ui.changesTableView.connect("clicked(QModelIndex)", self.onChangeRowClicked)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUI)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self._measurement = None
        self._comparison = None
        self._observeLandmarks(None)
        self.logic.forget_detections()
        # the scene is closing anyway: empty our lesion segmentations first, or Slicer spends
        # minutes removing hundreds of segments from a large shared labelmap one by one
        from calcinosis.mrml import workflow
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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUI)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUI)
            self._updateGUI()

    # ------------------------------------------------------------------ panel state
    def _imageSummary(self):
        """The image's modality and dimensionality (cached until the node or the override changes)."""
        p = self._parameterNode
        volume = p.inputVolume if p else None
        if volume is None:
            return None
        key = (volume.GetID(), volume.GetMTime(), p.modality)
        if self._summaryCache[0] != key:
            self._summaryCache = (key, hand.image_summary(volume, p.modality))
        return self._summaryCache[1]

    def _updateGUI(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        summary = self._imageSummary()
        hasInput = summary is not None and summary.problem is None
        modality = summary.modality if hasInput else None
        hasLesions = bool(p.lesionSegmentation)

        self.ui.imageInfoLabel.text = summary.text() if summary is not None else _("Select the hand image.")
        unit = "mm²" if summary is not None and summary.is_2d else "mm³"
        self.ui.minSizeLabel.text = _("Minimum size ({unit}):").format(unit=unit)
        self.ui.thresholdSpinBox.enabled = p.customThreshold
        self.ui.thresholdSpinBox.suffix = " HU" if modality == "CT" else ""
        self.ui.thresholdHintLabel.text = self._thresholdHint(modality, p.customThreshold)
        self.ui.removeBoneCheckBox.enabled = modality in (None, "CT")
        self.ui.minSlicesSpinBox.enabled = not (summary is not None and summary.is_2d)

        self.ui.detectButton.enabled = hasInput
        self.ui.detectButton.toolTip = (_("Find candidate lesions and show them as a segmentation.") if hasInput
                                        else (summary.problem if summary is not None else _("Select the hand image.")))
        self.ui.editSegmentsButton.enabled = hasLesions
        self.ui.measureButton.enabled = hasInput and hasLesions
        self.ui.exportButton.enabled = hasInput and hasLesions and _directoryGiven(p)
        self.ui.showFormButton.enabled = bool(p.structuralForm)
        self.ui.checkFormButton.enabled = bool(p.structuralForm)
        self._observeLandmarks(p.landmarks)

    @staticmethod
    def _thresholdHint(modality, custom) -> str:
        if custom:
            return {"CT": _("Voxels at or above this many HU are candidates."),
                    "MR": _("Voxels at or below this value (inside the region) are candidates."),
                    "XR": _("Blobs whose peak stands this much above the local background (image units).")}.get(
                modality, _("In the image's units: HU on CT."))
        return {"CT": _("Automatic: {t:g} HU.").format(t=hand.CT_THRESHOLD_DEFAULT),
                "MR": _("Automatic: {f:g} x the median signal on the region's border.").format(
                    f=hand.DETECT_DEFAULTS.mri_void_fraction),
                "XR": _("Automatic: {k:g} x the image noise above the local background.").format(
                    k=hand.DETECT_DEFAULTS.xr_noise_k)}.get(
            modality, _("Automatic: depends on the modality (CT {t:g} HU).").format(t=hand.CT_THRESHOLD_DEFAULT))

    _LANDMARK_EVENTS = (vtk.vtkCommand.ModifiedEvent, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                        slicer.vtkMRMLMarkupsNode.PointPositionUndefinedEvent)

    def _observeLandmarks(self, node) -> None:
        """Show which landmark the next click places (and how many are placed)."""
        if node is self._observedLandmarks:
            self._updateLandmarkStatus()
            return
        if self._observedLandmarks is not None:
            for event in self._LANDMARK_EVENTS:
                self.removeObserver(self._observedLandmarks, event, self._updateLandmarkStatus)
        self._observedLandmarks = node
        if node is not None:
            for event in self._LANDMARK_EVENTS:
                self.addObserver(node, event, self._updateLandmarkStatus)
        self._updateLandmarkStatus()

    def _updateLandmarkStatus(self, caller=None, event=None) -> None:
        node = self._observedLandmarks
        if node is None:
            self.ui.landmarkStatusLabel.text = _("No landmarks: lesions get no digit, zone or kind.")
            return
        placed, total, nextLabel = hand.landmark_progress(node)
        text = _("{placed} of {total} landmarks placed.").format(placed=placed, total=total)
        if nextLabel:
            text += " " + _("Next click places {label}.").format(label=nextLabel)
        self.ui.landmarkStatusLabel.text = text

    # ------------------------------------------------------------------ long steps
    def _runWithProgress(self, title, work):
        """Run ``work(progress)`` with a progress dialog whose Cancel stops it (None when cancelled)."""
        from calcinosis.mrml.panel import run_with_progress

        result, cancelled = run_with_progress(title, work)
        if cancelled:
            self.ui.statusLabel.text = _("{title}: cancelled; nothing was changed.").format(title=title)
        return result

    def _showStatus(self, summary, warnings=()) -> None:
        text = summary
        if warnings:
            text += "\n" + "\n".join(_("Warning: {w}").format(w=w) for w in warnings)
        self.ui.statusLabel.text = text

    def _offerPatientSpacing(self, volumeNode) -> bool:
        """A radiograph shown with the detector's pixel spacing: the user's magnification applied
        (when given), else the spacing at the patient offered.  False: a bad magnification (said)."""
        if volumeNode is None:
            return True
        magnification = self._parameterNode.magnification
        if magnification > 0:   # the user's factor: applied as asked (recorded in provenance)
            if magnification < 1.0:
                slicer.util.errorDisplay(_("Magnification {m} is not a radiograph's: give 1.0 to 2.0, or 0 to read "
                                           "it from the file.").format(m=magnification))
                return False
            advice = hand.radiograph_spacing_advice(volumeNode, magnification=magnification)
            if advice is not None:
                hand.apply_patient_spacing(volumeNode, advice)
            return True
        if volumeNode.GetID() in self._spacingDeclined:
            return True
        advice = hand.radiograph_spacing_advice(volumeNode)
        if advice is None:
            return True
        if slicer.util.confirmYesNoDisplay(advice.text(volumeNode.GetName()) + "\n\n"
                                           + _("Set the image to the spacing at the patient? (Recommended. Draw "
                                               "landmarks and outlines after this change.)")):
            hand.apply_patient_spacing(volumeNode, advice)
        else:
            self._spacingDeclined.add(volumeNode.GetID())
        return True

    # ------------------------------------------------------------------ buttons
    def onCreateLandmarksButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Cannot create the landmark list."), waitCursor=True):
            name = slicer.mrmlScene.GenerateUniqueName(
                f"{p.inputVolume.GetName()} landmarks" if p.inputVolume else "HandLandmarks")
            node = hand.create_landmark_list(p.landmarkSides, name)
            p.landmarks = node
            # each click in a view now places the next unplaced label, in order
            markupsLogic = slicer.modules.markups.logic()
            markupsLogic.SetActiveList(node)
            markupsLogic.StartPlaceMode(True)
            placed, total, nextLabel = hand.landmark_progress(node)
            self._showStatus(_("Place the {n} landmarks in order, joints at the centre of the joint space, tips on the "
                               "tuft: the next click places {label}. Right-click or Esc stops placing; points you "
                               "skip stay unplaced (a partial set works for the digits it covers).").format(
                n=total, label=nextLabel))

    def onDetectButton(self) -> None:
        p = self._parameterNode
        if not self._offerPatientSpacing(p.inputVolume):
            return
        segmentation = p.lesionSegmentation
        if segmentation is not None and segmentation.GetSegmentation().GetNumberOfSegments() > 0:
            if not slicer.util.confirmYesNoDisplay(_("Detect again? The {n} segments of '{name}', with your edits, "
                                                     "will be replaced. (Choose '(new segmentation)' to keep them.)")
                                                   .format(n=segmentation.GetSegmentation().GetNumberOfSegments(),
                                                           name=segmentation.GetName())):
                return
        with slicer.util.tryWithErrorDisplay(_("Lesion detection failed."), waitCursor=True):
            params, assign = detectParamsFrom(p), assignParamsFrom(p)
            detection = self._runWithProgress(_("Detecting lesions"), lambda progress: self.logic.detect(
                p.inputVolume, p.modality, params, p.regionSegmentation, p.landmarks, assign, segmentation,
                p.ignoreUnknownLandmarks, progress))
            if detection is None:
                return
            p.lesionSegmentation = detection.segmentation_node
            if detection.landmarks_node is not None:   # the hand model's landmarks, to review
                p.landmarks = detection.landmarks_node
            self._measurement = None
            detection.segmentation_node.SetDisplayVisibility(True)
            slicer.util.setSliceViewerLayers(background=p.inputVolume, fit=True)
            self._showStatus(_("{n} lesions found ({modality}): review them in the Segment Editor, then Measure.")
                             .format(n=detection.lesions.n, modality=detection.modality), detection.warnings)
            self._updateGUI()

    def onEditSegmentsButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Cannot open the Segment Editor."), waitCursor=True):
            slicer.util.selectModule("SegmentEditor")
            editor = slicer.util.getModuleWidget("SegmentEditor").editor
            editor.setSegmentationNode(p.lesionSegmentation)
            if p.inputVolume:
                editor.setSourceVolumeNode(p.inputVolume)

    def _measure(self):
        """Measure and show the results; the measurement, or None (cancelled)."""
        p = self._parameterNode
        params, assign = detectParamsFrom(p), assignParamsFrom(p)
        partialVolume = hand.partial_volume_request(p.partialVolume, p.inPlaneFwhm, p.calibration)
        measurement = self._runWithProgress(_("Measuring lesions"), lambda progress: self.logic.measure(
            p.inputVolume, p.lesionSegmentation, p.modality, p.landmarks, params, p.splitIslands, assign,
            p.ignoreUnknownLandmarks, p.lesionTable, p.digitTable, p.handTable, p.digitChart, progress,
            partial_volume=partialVolume))
        if measurement is None:
            return None
        p.lesionTable = measurement.lesion_table_node
        p.digitTable = measurement.digit_table_node
        p.handTable = measurement.hand_table_node
        p.digitChart = measurement.chart_node
        self._measurement = measurement
        self.ui.resultsTabWidget.currentIndex = 0
        slicer.modules.plots.logic().ShowChartInLayout(measurement.chart_node)
        result = measurement.result
        unit, column = ("mm²", "total_area_mm2") if result.volume.is_2d else ("mm³", "total_volume_mm3")
        hands = "; ".join(_("{side} hand: {n} lesions, total {total:.1f} {unit}").format(
            side=r["side"], n=r["lesion_count"], total=r[column] or 0.0, unit=unit) for r in result.hand_table.rows)
        self._showStatus(_("Measured ({modality}) - {hands}. Click a lesion row to centre the views on it.").format(
            modality=result.modality, hands=hands), result.warnings)
        return measurement

    def onMeasureButton(self) -> None:
        if not self._offerPatientSpacing(self._parameterNode.inputVolume):
            return
        with slicer.util.tryWithErrorDisplay(_("Measurement failed."), waitCursor=True):
            self._measure()
            self._updateGUI()

    def onLesionRowClicked(self, index) -> None:
        """Centre the slice views on the lesion of the clicked row (sorting allowed)."""
        view = self.ui.lesionTableView
        tableNode = view.mrmlTableNode()
        if tableNode is None or not index.isValid():
            return
        sourceIndex = view.sortFilterProxyModel().mapToSource(index)
        row = hand.table_row(tableNode, sourceIndex.row())
        ras = hand.lesion_position(tableNode, row)
        if ras is not None:
            hand.center_views_on(ras)

    def onLoadComparisonButton(self) -> None:
        """The two visits of a 'calcinosis follow' result on the baseline image."""
        from calcinosis.mrml import follow_view

        with slicer.util.tryWithErrorDisplay(_("Could not show the follow-up."), waitCursor=True):
            self._comparison = follow_view.load_follow_comparison(self.ui.followResultPathLineEdit.currentPath,
                                                                  self.ui.baselineImagePathLineEdit.currentPath)
            slicer.util.setSliceViewerLayers(background=self._comparison.volume_node, fit=True)
            self.ui.changesTableView.setMRMLTableNode(self._comparison.table_node)
            counts = {}
            for row in self._comparison.changes.rows:
                counts[row["change"]] = counts.get(row["change"], 0) + 1
            self.ui.statusLabel.text = _("Follow-up: {counts}. Click a group to see it.").format(
                counts=", ".join(f"{n} {c}" for c, n in sorted(counts.items())))

    def onChangeRowClicked(self, index) -> None:
        """Centre the slice views on the clicked lesion group."""
        from calcinosis.mrml import follow_view

        view = self.ui.changesTableView
        tableNode = view.mrmlTableNode()
        if self._comparison is None or tableNode is None or not index.isValid():
            return
        row = hand.table_row(tableNode, view.sortFilterProxyModel().mapToSource(index).row())
        if row is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not show the group.")):
            follow_view.jump_to_group(self._comparison, self._comparison.changes.rows[row]["group_id"])

    def onCreateFormButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Cannot create the structural-lesion form."), waitCursor=True):
            sides = hand.form_sides(p.landmarks, p.inputVolume, self._measurement)
            name = slicer.mrmlScene.GenerateUniqueName(
                f"{p.inputVolume.GetName()} structural lesions" if p.inputVolume else "Structural lesions")
            p.structuralForm = hand.create_structural_form(sides, name)
            _showTable(p.structuralForm)
            self._showStatus(_("Form for the {sides} hand(s): type 1 (present) or 0 (absent), leave empty when not "
                               "assessed. Export saves it.").format(sides=" and ".join(sides)))

    def onShowFormButton(self) -> None:
        if self._parameterNode.structuralForm:
            _showTable(self._parameterNode.structuralForm)

    def onCheckFormButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The structural-lesion form has a problem."), waitCursor=True):
            self._showStatus(hand.form_summary_text(hand.form_from_node(self._parameterNode.structuralForm)))

    def onResetParameters(self) -> None:
        """Every detection and assignment parameter back to its default (inputs and outputs kept)."""
        p = self._parameterNode
        with slicer.util.NodeModify(p.parameterNode):
            for name, value in hand.panel_parameter_defaults().items():
                setattr(p, name, value)

    def onExportButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Measurement failed."), waitCursor=True):
            settings = hand.settings_key(p.inputVolume, p.modality, detectParamsFrom(p), assignParamsFrom(p),
                                         p.splitIslands, p.landmarks, p.ignoreUnknownLandmarks,
                                         hand.partial_volume_request(p.partialVolume, p.inPlaneFwhm, p.calibration))
            if not hand.measurement_is_current(self._measurement, settings):
                # lesions edited, landmarks moved or settings changed since Measure: export what is there now
                if self._measure() is None:
                    return
        force = False
        if hand.output_holds_result(p.outputDirectory):
            if not slicer.util.confirmYesNoDisplay(_("'{folder}' holds an earlier result. Replace it?").format(
                    folder=p.outputDirectory)):
                self.ui.statusLabel.text = _("Export cancelled: the earlier result was kept.")
                return
            force = True
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            dicomSeg, dicomSr = _dicomChoices(p)
            written = self._runWithProgress(_("Exporting"), lambda progress: self.logic.export(
                p.outputDirectory, self._measurement, p.structuralForm, force, p.caseId, progress,
                dicom_seg=dicomSeg, dicom_sr=dicomSr, volume_node=p.inputVolume))
            if written is None:
                return
            self.ui.statusLabel.text = _("{n} files written to {folder}").format(n=len(written), folder=p.outputDirectory)


def _dicomChoices(p) -> tuple[bool, bool]:
    """(DICOM SEG, DICOM SR) to write: as ticked, once highdicom is there (Slicer 5.10 has
    none: offered for install, with why; declined, the other files are written)."""
    from calcinosis.mrml import dicom_objects

    return dicom_objects.choose_outputs(p.exportDicomSeg, p.exportDicomSr,
                                        lambda text: slicer.util.confirmYesNoDisplay(_(text)),
                                        slicer.util.pip_install)


def _directoryGiven(p) -> bool:
    return bool(p) and str(p.outputDirectory) not in ("", ".")


def _showTable(tableNode) -> None:
    """Show a table node in a layout that has a table view."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:
        return
    if layoutManager.layout not in (slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView,
                                    slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView):
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    selectionNode = slicer.app.applicationLogic().GetSelectionNode()
    selectionNode.SetActiveTableID(tableNode.GetID())
    slicer.app.applicationLogic().PropagateTableSelection()


#
# CalcinosisQuantLogic
#


class CalcinosisQuantLogic(ScriptedLoadableModuleLogic, hand.HandSession):
    """The panel's steps for the widget and for scripts: a
    :class:`calcinosis.mrml.hand_session.HandSession` (``detect``, ``measure``, ``export``;
    the detection is remembered so that *Measure* on an unedited detection measures it
    exactly as ``calcinosis hand`` does).  The steps without state are the functions of
    ``calcinosis.mrml.hand_session`` (imported here as ``hand``)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        hand.HandSession.__init__(self)

    def getParameterNode(self):
        return CalcinosisQuantParameterNode(super().getParameterNode())


#
# CalcinosisQuantTest
#


class CalcinosisQuantTest(ScriptedLoadableModuleTest):
    """The whole hand workflow on the synthetic patient's CT, against its analytic truth."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_HandWorkflowOnPhantom()
        self.setUp()
        self.test_PanelWorkflow()

    def _loadPhantom(self, folder):
        """The hand CT of Sample Data (category Calcinosis: the synthetic patient's CT at 0.5 mm
        with its landmarks, made on first use by ``calcinosis.mrml.sampledata``), loaded as a
        user loads it; returns (its truth table, the volume node, the landmarks node)."""
        from calcinosis.core.tables import Table
        from calcinosis.mrml import sampledata

        nodes = sampledata.load_sample("CalcinosisHandCT", folder)
        truth = Table.read_csv(sampledata.make_sample("CalcinosisHandCT", folder) / "truth.csv")
        return truth, nodes["volume"], nodes["landmarks"]

    def test_HandWorkflowOnPhantom(self):
        import tempfile

        import numpy as np
        from calcinosis.core.phantoms import match_by_centroid

        self.delayDisplay("Hand workflow on the CT phantom")
        with tempfile.TemporaryDirectory() as tmp:
            folder = pathlib.Path(tmp)
            truth, volumeNode, landmarksNode = self._loadPhantom(folder)
            logic = CalcinosisQuantLogic()
            # the sample's volume carries its modality: the panel's "auto" reads CT
            self.assertIsNone(hand.image_summary(volumeNode, "auto").problem)
            detection = logic.detect(volumeNode, "CT", landmarks_node=landmarksNode)
            segmentation = detection.segmentation_node
            self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), detection.lesions.n)

            measurement = logic.measure(volumeNode, segmentation, "CT", landmarksNode)
            lesions = measurement.result.lesions_table
            self.assertTrue(measurement.from_detection)
            self.assertEqual(measurement.lesion_table_node.GetTable().GetNumberOfRows(), len(lesions))
            self.assertEqual(measurement.lesion_table_node.GetColumnUnitLabel("volume_mm3"), "mm3")
            # against the truth: every lesion >= 2 mm found, nothing else reported (no bone)
            pairs = match_by_centroid(lesions, truth, 4.0)
            found = {t: m for t, m in pairs if m is not None}
            missed = [truth.rows[t]["name"] for t, m in pairs if m is None and truth.rows[t]["max_diameter_mm"] >= 2.0]
            self.assertEqual(missed, [])
            self.assertEqual(len(found), len(lesions))
            # digits as the truth says (all landmarks placed); zones >= 95 %
            for t, m in found.items():
                self.assertEqual(lesions.rows[m]["digit"], truth.rows[t]["digit"], truth.rows[t]["name"])
                self.assertEqual(lesions.rows[m]["side"], "R")
            zoneOk = np.mean([lesions.rows[m]["zone"] == truth.rows[t]["zone"] for t, m in found.items()])
            self.assertGreaterEqual(zoneOk, 0.95)
            # volumes of lesions >= 3 mm across within 10 % (partial-volume tolerance, Testing/hand/test_hand_ct.py)
            for t, m in found.items():
                if truth.rows[t]["min_diameter_mm"] >= 3.0:
                    ratio = lesions.rows[m]["volume_mm3"] / truth.rows[t]["volume_mm3"]
                    self.assertAlmostEqual(ratio, 1.0, delta=0.10, msg=truth.rows[t]["name"])
            # the digit table counts the found truth lesions of each digit
            digitsNode = measurement.digit_table_node.GetTable()
            for r in range(digitsNode.GetNumberOfRows()):
                digit = digitsNode.GetValueByName(r, "digit").ToString()
                count = digitsNode.GetValueByName(r, "lesion_count").ToInt()
                self.assertEqual(count, sum(1 for t in found if truth.rows[t]["digit"] == digit), digit)
            self.assertEqual(measurement.chart_node.GetNumberOfPlotSeriesNodes(), 1)

            # a lesion row gives its centroid (the panel centres the views there)
            ras = hand.lesion_position(measurement.lesion_table_node, 0)
            self.assertTrue(np.allclose(ras, [lesions.rows[0][f"centroid_{a}_mm"] for a in "ras"]))

            # the reviewer deletes a lesion: one row fewer, its digit one fewer
            gone = lesions.rows[0]
            segmentation.GetSegmentation().RemoveSegment(segmentation.GetSegmentation().GetNthSegmentID(0))
            self.assertFalse(hand.measurement_is_current(measurement))
            edited = logic.measure(volumeNode, segmentation, "CT", landmarksNode,
                                   lesion_table=measurement.lesion_table_node, digit_table=measurement.digit_table_node,
                                   hand_table=measurement.hand_table_node, chart=measurement.chart_node)
            self.assertFalse(edited.from_detection)
            self.assertEqual(edited.lesion_table_node.GetTable().GetNumberOfRows(), len(lesions) - 1)
            before = {r["digit"]: r["lesion_count"] for r in measurement.result.digits_table.rows}
            after = {r["digit"]: r["lesion_count"] for r in edited.result.digits_table.rows}
            self.assertEqual(after[gone["digit"]], before[gone["digit"]] - 1)

            written = logic.export(folder / "result", edited, case_id="phantom-0")
            self.assertEqual(sorted(p.name for p in written), [
                "digits.csv", "digits.schema.csv", "hand.csv", "hand.schema.csv", "lesion_assignment.csv",
                "lesion_assignment.schema.csv", "lesion_labels.nrrd", "lesions.csv", "lesions.schema.csv",
                "lesions.seg.nrrd", "provenance.json", "tables.xlsx"])
            self.assertTrue(hand.output_holds_result(folder / "result"))

            # the landmark list for a new image: every label, unplaced
            blank = hand.create_landmark_list("R", "new landmarks")
            self.assertEqual(blank.GetNumberOfControlPoints(), 20)
            self.assertEqual(hand.landmark_progress(blank), (0, 20, "R_thumb_CMC"))
        self.delayDisplay("Test passed")

    def test_PanelWorkflow(self):
        """The panel's buttons (needs Qt: inside Slicer only)."""
        import tempfile

        import numpy as np

        self.delayDisplay("Panel: detect, measure, row click, form, export")
        with tempfile.TemporaryDirectory() as tmp:
            folder = pathlib.Path(tmp)
            truth, volumeNode, landmarksNode = self._loadPhantom(folder)
            slicer.util.selectModule("CalcinosisQuant")
            widget = slicer.util.getModuleWidget("CalcinosisQuant")
            p = widget._parameterNode
            p.inputVolume = volumeNode
            p.modality = "CT"
            p.landmarks = landmarksNode
            p.lesionSegmentation = None
            self.assertTrue(widget.ui.detectButton.enabled)
            widget.ui.detectButton.click()
            segmentation = p.lesionSegmentation
            self.assertIsNotNone(segmentation)
            n = segmentation.GetSegmentation().GetNumberOfSegments()
            self.assertGreater(n, 0)

            widget.ui.measureButton.click()
            self.assertEqual(p.lesionTable.GetTable().GetNumberOfRows(), n)
            self.assertEqual(widget.ui.lesionTableView.mrmlTableNode().GetID(), p.lesionTable.GetID())
            self.assertIsNotNone(p.digitChart)

            # clicking the third lesion row centres the red view on that lesion
            view = widget.ui.lesionTableView
            widget.onLesionRowClicked(view.model().index(2, 0))
            row = hand.table_row(p.lesionTable, view.sortFilterProxyModel().mapToSource(view.model().index(2, 0)).row())
            ras = hand.lesion_position(p.lesionTable, row)
            red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode()
            centre = [red.GetSliceToRAS().GetElement(i, 3) for i in range(3)]
            self.assertTrue(np.allclose(centre, ras, atol=1e-3))

            widget.ui.createFormButton.click()
            self.assertEqual(p.structuralForm.GetTable().GetNumberOfRows(), 8)

            p.outputDirectory = folder / "panel result"
            widget.ui.exportButton.click()
            self.assertTrue((folder / "panel result" / "lesions.csv").is_file())
            self.assertTrue((folder / "panel result" / "structural_form.csv").is_file())

            widget.ui.createLandmarksButton.click()
            self.assertEqual(p.landmarks.GetNumberOfControlPoints(), 40)
            slicer.app.applicationLogic().GetInteractionNode().SwitchToViewTransformMode()
        self.delayDisplay("Test passed")
