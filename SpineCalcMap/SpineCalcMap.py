"""SpineCalcMap: calcifications on spine CT, mapped to disco-vertebral levels and segments.

Slicer GUI layer only.  The Widget wires the panel to the parameter node; the Logic
delegates to ``calcinosis.mrml.spine_session`` (tested headless on slicer-core), which runs
the same ``calcinosis.spine`` code as the ``calcinosis spine`` command line.
``calcinosis.core`` ships in the CalcinosisQuant module folder; this module declares
CalcinosisQuant as a dependency so that it is importable here (as SlicerHeart shares
HeartValveLib).

Panel: Inputs (CT, vertebrae as segmentation / label map / point list, convention,
optional aorta; TotalSegmentator when installed) -> Map (segmentation, lesion / levels /
patient tables, level chart) -> review (click a row: the views centre on it) and reader
correction (delete, change level / segment / sub-site / pattern; Apply corrections) ->
Export (the command line's files).
"""

import logging
import pathlib
from typing import Annotated, Optional, Union

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
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLPlotChartNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)

from calcinosis.core.lesions import CONNECTIVITIES
from calcinosis.mrml.spine_session import REVIEW_COLUMNS  # the columns of the review list in the panel
from calcinosis.spine.params import CONVENTION_CHOICES, SpineParams

#: Every default of the spine map comes from SpineParams (the command line's defaults).
SPINE_DEFAULTS = SpineParams()
#: Raw parameter (not a wrapper field) holding the chosen segment of the aorta segmentation.
AORTA_SEGMENT_PARAMETER = "aortaSegmentID"


#
# SpineCalcMap
#


class SpineCalcMap(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Spine Calc Map")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        # calcinosis.core (the shared core) lives in the CalcinosisQuant module folder
        self.parent.dependencies = ["CalcinosisQuant", "Segmentations", "SegmentEditor"]
        self.parent.contributors = ["SlicerCalcinosis contributors"]
        self.parent.helpText = _("""
Calcifications on a spine CT (chest, thoraco-abdomino-pelvic or lumbar) in systemic sclerosis,
mapped to the disco-vertebral levels C7-T1 ... L5-S1, to the anterior, intracanal and posterior
segments, their sub-sites and a pattern (linear, punctate, pseudo-tumoral), as the calcinosis
spine study scored them. Choose the CT and the vertebrae (a segmentation or label map, e.g. from
TotalSegmentator, or one point per vertebral body), press <b>Map</b>; levels the scan does not
cover are <i>not assessed</i>, never 0. Click a calcification in the list to centre the views on
it; delete it or change its level, segment, sub-site or pattern, then <b>Apply corrections</b>:
the decisions are kept (matched by position) when you Map again. <b>Export</b> writes the same
files as the <code>calcinosis spine</code> command.
See the <a href="https://github.com/slicer-calcinosis/SlicerCalcinosis#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer's scripted module template. The map follows Bauer et al., Medicine 2020
(spine CT calcifications in systemic sclerosis).
""")


#
# SpineCalcMapParameterNode
#


@parameterNodeWrapper
class SpineCalcMapParameterNode:
    """
    inputVolume - the spine CT.
    vertebrae - segmentation (segment names carry the vertebra), label map (values in a
        convention) or point list (one point per vertebral body, labelled T8 ...).
    convention - how to read the vertebra labels (auto, names, totalsegmentator ...).
    aorta - optional aorta: a segmentation (segment chosen in the panel) or a label map.
    subregions - optional SPINEPS sub-region label map (seg-spine) beside a SPINEPS vertebra input.
    totalSegmentatorFast - TotalSegmentator's fast mode when the panel runs it.
    threshold_hu ... override_tolerance_mm - the spine map's parameters: the fields of
        calcinosis.spine.params.SpineParams under the same names, with its defaults.
    lesionSegmentation, lesionTable, levelsTable, patientTable, levelChart - Map's outputs.
    readerDecisions - the reader's decisions (overrides.csv format), re-applied by Map.
    outputDirectory, caseId, exportDicomSeg, exportDicomSr - Export (DICOM SEG and SR on the source series).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    vertebrae: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, vtkMRMLMarkupsFiducialNode, None]
    convention: Annotated[str, Choice(list(CONVENTION_CHOICES))] = SPINE_DEFAULTS.convention
    aorta: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, None]
    subregions: Optional[vtkMRMLLabelMapVolumeNode]
    totalSegmentatorFast: bool = True
    # --- the spine map's parameters (SpineParams names and defaults)
    threshold_hu: Annotated[float, WithinRange(-1024, 3071)] = SPINE_DEFAULTS.threshold_hu
    min_size_mm3: Annotated[float, WithinRange(0, 100000)] = SPINE_DEFAULTS.min_size_mm3
    min_voxels: Annotated[int, WithinRange(1, 1000)] = SPINE_DEFAULTS.min_voxels
    connectivity: Annotated[str, Choice(list(CONNECTIVITIES))] = SPINE_DEFAULTS.connectivity
    study_rule: bool = SPINE_DEFAULTS.study_rule
    study_min_slices: Annotated[int, WithinRange(1, 100)] = SPINE_DEFAULTS.study_min_slices
    study_slice_mm: Annotated[float, WithinRange(0.1, 20)] = SPINE_DEFAULTS.study_slice_mm
    search_margin_mm: Annotated[float, WithinRange(0.1, 500)] = SPINE_DEFAULTS.search_margin_mm
    vertebra_margin_mm: Annotated[float, WithinRange(0, 20)] = SPINE_DEFAULTS.vertebra_margin_mm
    bone_margin_mm: Annotated[float, WithinRange(0, 20)] = SPINE_DEFAULTS.bone_margin_mm
    label_shift_limit_mm: Annotated[float, WithinRange(0, 10)] = SPINE_DEFAULTS.label_shift_limit_mm
    vessel_margin_mm: Annotated[float, WithinRange(0, 100)] = SPINE_DEFAULTS.vessel_margin_mm
    detect_aorta: bool = SPINE_DEFAULTS.detect_aorta
    bone_contact_mm2: Annotated[float, WithinRange(0, 1000)] = SPINE_DEFAULTS.bone_contact_mm2
    bone_contact_fraction: Annotated[float, WithinRange(0, 1)] = SPINE_DEFAULTS.bone_contact_fraction
    bone_rim_protrusion_mm: Annotated[float, WithinRange(0.1, 20)] = SPINE_DEFAULTS.bone_rim_protrusion_mm
    bone_hollow_margin_hu: Annotated[float, WithinRange(0, 2000)] = SPINE_DEFAULTS.bone_hollow_margin_hu
    noise_multiple: Annotated[float, WithinRange(0.1, 50)] = SPINE_DEFAULTS.noise_multiple
    vessel_blood_hu: Annotated[float, WithinRange(-1024, 3071)] = SPINE_DEFAULTS.vessel_blood_hu
    anterior_max_gap_mm: Annotated[float, WithinRange(0, 100)] = SPINE_DEFAULTS.anterior_max_gap_mm
    pll_front_mm: Annotated[float, WithinRange(0, 50)] = SPINE_DEFAULTS.pll_front_mm
    pll_back_mm: Annotated[float, WithinRange(0, 50)] = SPINE_DEFAULTS.pll_back_mm
    foramen_depth_mm: Annotated[float, WithinRange(0.1, 100)] = SPINE_DEFAULTS.foramen_depth_mm
    interspinous_half_width_mm: Annotated[float, WithinRange(0.1, 100)] = SPINE_DEFAULTS.interspinous_half_width_mm
    costotransverse_fraction: Annotated[float, WithinRange(0.01, 1)] = SPINE_DEFAULTS.costotransverse_fraction
    facet_front_fraction: Annotated[float, WithinRange(0, 2)] = SPINE_DEFAULTS.facet_front_fraction
    facet_reach_mm: Annotated[float, WithinRange(0.1, 100)] = SPINE_DEFAULTS.facet_reach_mm
    rib_near_mm: Annotated[float, WithinRange(0, 100)] = SPINE_DEFAULTS.rib_near_mm
    subregion_near_mm: Annotated[float, WithinRange(0.1, 20)] = SPINE_DEFAULTS.subregion_near_mm
    pseudotumoral_min_diameter_mm: Annotated[float, WithinRange(0.1, 200)] = (
        SPINE_DEFAULTS.pseudotumoral_min_diameter_mm)
    linear_min_elongation: Annotated[float, WithinRange(0.1, 100)] = SPINE_DEFAULTS.linear_min_elongation
    linear_min_length_mm: Annotated[float, WithinRange(0, 200)] = SPINE_DEFAULTS.linear_min_length_mm
    points_bone_hu: Annotated[float, WithinRange(-1024, 3071)] = SPINE_DEFAULTS.points_bone_hu
    override_tolerance_mm: Annotated[float, WithinRange(0.1, 50)] = SPINE_DEFAULTS.override_tolerance_mm
    rib_level_check: bool = SPINE_DEFAULTS.rib_level_check
    # --- outputs
    lesionSegmentation: vtkMRMLSegmentationNode
    lesionTable: vtkMRMLTableNode
    levelsTable: vtkMRMLTableNode
    patientTable: vtkMRMLTableNode
    levelChart: vtkMRMLPlotChartNode
    readerDecisions: vtkMRMLTableNode
    outputDirectory: pathlib.Path
    caseId: str = ""
    exportDicomSeg: bool = False
    exportDicomSr: bool = False


#
# SpineCalcMapWidget
#


class SpineCalcMapWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._reviewRows = []
        self._updatingEditor = False
        self._matplotlibOffered = False

    def setup(self) -> None:
        import qt

        from calcinosis.spine.anatomy import PATTERNS, SEGMENTS

        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineCalcMap.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpineCalcMapLogic()

        # parameter help texts come from SpineParams (one source for the CLI, README and panel)
        helpTexts = SpineParams.describe()
        for child in uiWidget.findChildren(qt.QWidget):
            name = child.property("SlicerParameterName")
            if name and name in helpTexts and helpTexts[name]:
                child.toolTip = helpTexts[name]

        self.ui.reviewTable.setColumnCount(len(REVIEW_COLUMNS))
        self.ui.reviewTable.setHorizontalHeaderLabels(REVIEW_COLUMNS)
        self.ui.segmentComboBox.addItems(list(SEGMENTS))
        self.ui.patternComboBox.addItems(list(PATTERNS))
        self._fillSubsites(SEGMENTS[0])

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.mapButton.connect("clicked(bool)", self.onMapButton)
        self.ui.runTotalSegmentatorButton.connect("clicked(bool)", self.onRunTotalSegmentator)
        self.ui.resetParametersButton.connect("clicked(bool)", self.onResetParameters)
        self.ui.aortaSegmentSelector.connect("currentSegmentChanged(QString)", self.onAortaSegmentChanged)
        self.ui.reviewTable.connect("itemSelectionChanged()", self.onReviewSelectionChanged)
        self.ui.reviewTable.connect("cellClicked(int,int)", self.onReviewCellClicked)
        self.ui.reviewTable.connect("currentCellChanged(int,int,int,int)", self.onReviewCurrentCellChanged)
        self.ui.segmentComboBox.connect("currentIndexChanged(int)", self.onSegmentChanged)
        self.ui.setButton.connect("clicked(bool)", self.onSetButton)
        self.ui.deleteButton.connect("clicked(bool)", self.onDeleteButton)
        self.ui.undoButton.connect("clicked(bool)", self.onUndoButton)
        self.ui.applyCorrectionsButton.connect("clicked(bool)", self.onApplyCorrections)
        self.ui.loadOverridesButton.connect("clicked(bool)", self.onLoadOverrides)
        self.ui.clearDecisionsButton.connect("clicked(bool)", self.onClearDecisions)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)

        self.initializeParameterNode()
        self._refreshReview()

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
        self.logic.resetSession()
        self._refreshReview()
        # the scene is closing anyway: empty the calcification segmentations first (Slicer
        # removes many segments of a shared labelmap one by one otherwise)
        from calcinosis.mrml import workflow
        workflow.release_lesion_segmentations(slicer.mrmlScene)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[SpineCalcMapParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUI)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUI)
            self._updateGUI()

    # ------------------------------------------------------------------ state of the panel
    def _updateGUI(self, caller=None, event=None) -> None:
        from calcinosis.mrml import spine_session as slicer_logic

        p = self._parameterNode
        hasCT = bool(p and p.inputVolume)
        hasVertebrae = bool(p and p.vertebrae)
        self.ui.mapButton.enabled = hasCT and hasVertebrae
        self.ui.mapButton.toolTip = (
            _("Find the calcifications and map them to levels, segments, sub-sites and patterns.")
            if hasCT and hasVertebrae else _("Choose the CT and the vertebrae first."))
        self.ui.studyMinSlicesSpinBox.enabled = bool(p and p.study_rule)
        # convention: label maps only (segmentations are read by segment names, points need none)
        vertebraKind = ""
        if hasVertebrae:
            vertebraKind = slicer_logic.vertebra_input_kind(p.vertebrae)
        self.ui.conventionComboBox.enabled = vertebraKind != "point list"
        self.ui.pointsBoneSpinBox.enabled = vertebraKind in ("", "point list")
        self.ui.inputStatusLabel.text = {
            "": _("Vertebrae: a segmentation or label map with the vertebrae, or a point list with one point per "
                  "vertebral body labelled T8, L1 ..."),
            "segmentation": _("Vertebrae from segment names (vertebrae_T8, T8, T8 vertebra ...); aorta, ribs and "
                              "discs are used when named."),
            "label map": _("Vertebrae from label values: convention 'auto' detects TotalSegmentator, TotalSpineSeg "
                           "or VerSe."),
            "point list": _("Vertebrae segmented from the CT around each body point (bone threshold under Advanced "
                            "parameters); a label map gives better results."),
        }[vertebraKind]
        # TotalSegmentator: only when the extension is installed
        tsAvailable = slicer_logic.totalsegmentator_available()
        self.ui.runTotalSegmentatorButton.enabled = tsAvailable and hasCT
        self.ui.totalSegmentatorFastCheckBox.enabled = tsAvailable
        self.ui.runTotalSegmentatorButton.toolTip = (
            _("Run the TotalSegmentator extension (task 'total') on the CT and use its segmentation as the "
              "vertebrae.") if tsAvailable else slicer_logic.TOTALSEGMENTATOR_INSTALL_HINT)
        self._syncAortaSegmentSelector()
        session = self.logic.session
        hasResult = session.result is not None
        self.ui.exportButton.enabled = hasResult and _directoryGiven(p)
        self.ui.exportButton.toolTip = (
            _("Write the same files as 'calcinosis spine'; an earlier result in the folder is replaced only after "
              "you confirm.") if hasResult else _("Press Map first."))
        self.ui.clearDecisionsButton.enabled = bool(p and p.readerDecisions) or bool(hasResult and
                                                                                    session.result.overrides)
        self._updateCorrectionButtons()

    def _updateCorrectionButtons(self) -> None:
        session = self.logic.session
        selected = self._selectedRows()
        live = [r for r in selected if r.lesion_id is not None]
        self.ui.setButton.enabled = bool(live)
        self.ui.deleteButton.enabled = bool(live)
        self.ui.undoButton.enabled = any(r.pending or r.reader for r in selected)
        for combo in (self.ui.levelComboBox, self.ui.segmentComboBox, self.ui.subsiteComboBox,
                      self.ui.patternComboBox):
            combo.enabled = bool(live)
        n = len(session.pending)
        self.ui.applyCorrectionsButton.enabled = n > 0
        self.ui.pendingLabel.text = (_("{n} correction(s) staged: press Apply corrections.").format(n=n) if n
                                     else "")

    def _syncAortaSegmentSelector(self) -> None:
        p = self._parameterNode
        node = p.aorta if p else None
        isSegmentation = node is not None and node.IsA("vtkMRMLSegmentationNode")
        self.ui.aortaSegmentSelector.visible = isSegmentation
        self.ui.aortaSegmentLabel.visible = isSegmentation
        current = self.ui.aortaSegmentSelector.currentNode()
        if not isSegmentation or (current is not None and current.GetID() == node.GetID()):
            return
        self.ui.aortaSegmentSelector.setCurrentNode(node)
        from calcinosis.mrml import spine_session as slicer_logic
        wanted = p.parameterNode.GetParameter(AORTA_SEGMENT_PARAMETER)
        if not wanted or node.GetSegmentation().GetSegment(wanted) is None:
            wanted = slicer_logic.guess_aorta_segment(node)
        if wanted:
            self.ui.aortaSegmentSelector.setCurrentSegmentID(wanted)

    def onAortaSegmentChanged(self, segmentID) -> None:
        p = self._parameterNode
        if p and p.parameterNode.GetParameter(AORTA_SEGMENT_PARAMETER) != (segmentID or ""):
            p.parameterNode.SetParameter(AORTA_SEGMENT_PARAMETER, segmentID or "")

    def _aortaSegmentID(self):
        p = self._parameterNode
        if not p or not p.aorta or not p.aorta.IsA("vtkMRMLSegmentationNode"):
            return None
        return self.ui.aortaSegmentSelector.currentSegmentID() or p.parameterNode.GetParameter(AORTA_SEGMENT_PARAMETER)

    # ------------------------------------------------------------------ long work
    def _runWithProgress(self, title, work):
        """Run ``work(progress)`` with a progress dialog whose Cancel stops it (None when cancelled)."""
        from calcinosis.mrml.panel import run_with_progress

        result, cancelled = run_with_progress(title, work)
        if cancelled:
            self.ui.statusLabel.text = _("{title}: cancelled; nothing was changed.").format(title=title)
        return result

    def _showWarnings(self, summary, warnings) -> None:
        text = summary
        if warnings:
            text += "\n" + "\n".join(_("Warning: {w}").format(w=w) for w in warnings)
        self.ui.statusLabel.text = text

    # ------------------------------------------------------------------ Map
    def onMapButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Spine map failed."), waitCursor=True):
            aortaSegmentID = self._aortaSegmentID()
            result = self._runWithProgress(_("Mapping the spine"), lambda progress: self.logic.mapFromParameterNode(
                p, aortaSegmentID, progress))
            if result is None:
                return
            self._storeOutputNodes()
            slicer.util.setSliceViewerLayers(background=p.inputVolume)
            _showResults(self.logic.session.nodes)
            self._refreshReview()
            self._showWarnings(self.logic.session.summary(), result.warnings)

    def _storeOutputNodes(self) -> None:
        p = self._parameterNode
        nodes = self.logic.session.nodes
        with slicer.util.NodeModify(p.parameterNode):
            p.lesionSegmentation = nodes.segmentation
            p.lesionTable = nodes.lesions
            p.levelsTable = nodes.levels
            p.patientTable = nodes.patient
            p.levelChart = nodes.chart
            p.readerDecisions = nodes.decisions

    def onRunTotalSegmentator(self) -> None:
        from calcinosis.mrml import spine_session as slicer_logic

        p = self._parameterNode
        if not slicer_logic.totalsegmentator_available():
            slicer.util.infoDisplay(slicer_logic.TOTALSEGMENTATOR_INSTALL_HINT)
            return
        if not slicer_logic.totalsegmentator_packages_installed() and not slicer.util.confirmOkCancelDisplay(
                _("TotalSegmentator's Python packages (PyTorch and TotalSegmentator, several GB) are not installed "
                  "yet. Install them now? This can take a long time and may ask to restart Slicer.")):
            return
        mode = _("fast mode: a few minutes on a CPU") if p.totalSegmentatorFast else _(
            "full resolution: up to an hour on a CPU, minutes with a GPU")
        question = _("Run TotalSegmentator (task 'total', {mode}) on '{ct}'? It cannot be interrupted once "
                     "started.").format(mode=mode, ct=p.inputVolume.GetName())
        if not slicer.util.confirmOkCancelDisplay(question):
            return
        with slicer.util.tryWithErrorDisplay(_("TotalSegmentator failed."), waitCursor=True):
            try:
                segmentation = self.logic.runTotalSegmentator(p.inputVolume, p.totalSegmentatorFast, self._logStatus)
            except Exception as e:
                if getattr(e, "restartRequired", False):
                    if slicer.util.confirmOkCancelDisplay(_("Slicer must restart to finish installing "
                                                            "TotalSegmentator. Restart now?")):
                        slicer.util.restart()
                    return
                raise
            with slicer.util.NodeModify(p.parameterNode):
                p.vertebrae = segmentation
                p.convention = "auto"   # read by segment names; its own aorta segment is used
            self.ui.statusLabel.text = _("TotalSegmentator: {n} segments in '{name}', selected as the vertebrae. "
                                         "Press Map.").format(
                n=segmentation.GetSegmentation().GetNumberOfSegments(), name=segmentation.GetName())

    def _logStatus(self, text) -> None:
        if text:
            self.ui.statusLabel.text = text
            slicer.app.processEvents()

    def onResetParameters(self) -> None:
        from calcinosis.mrml.spine_session import SPINE_PARAMETER_NAMES

        p = self._parameterNode
        with slicer.util.NodeModify(p.parameterNode):
            for name in SPINE_PARAMETER_NAMES:
                setattr(p, name, getattr(SPINE_DEFAULTS, name))

    # ------------------------------------------------------------------ review and correction
    def _refreshReview(self, keepSelection=None) -> None:
        import qt

        session = self.logic.session
        table = self.ui.reviewTable
        rows = session.review_rows() if session.result is not None else []
        self._reviewRows = rows
        self._updatingEditor = True
        try:
            table.clearSelection()
            table.setRowCount(len(rows))
            for r, row in enumerate(rows):
                for c, value in enumerate(row.display_values()):
                    item = qt.QTableWidgetItem(value)
                    if c == REVIEW_COLUMNS.index("sub-site"):
                        item.setToolTip(row.subsite)
                    if row.lesion_id is None:
                        item.setForeground(qt.QBrush(qt.QColor("gray")))
                    if row.pending:
                        font = item.font()
                        font.setItalic(True)
                        item.setFont(font)
                    table.setItem(r, c, item)
            table.resizeColumnsToContents()
            if keepSelection:
                for r, row in enumerate(rows):
                    if row.auto_id in keepSelection:
                        table.setRangeSelected(qt.QTableWidgetSelectionRange(r, 0, r, len(REVIEW_COLUMNS) - 1), True)
        finally:
            self._updatingEditor = False
        # the editor offers only the levels assessed in this scan
        self.ui.levelComboBox.clear()
        if session.result is not None:
            self.ui.levelComboBox.addItems(list(session.result.assessed))
            self.ui.summaryLabel.text = session.summary()
        else:
            self.ui.summaryLabel.text = _("Press Map: the calcifications are listed here.")
        self.onReviewSelectionChanged()
        self._updateGUI()

    def _selectedRows(self):
        table = self.ui.reviewTable
        indices = sorted({index.row() for index in table.selectionModel().selectedRows()})
        return [self._reviewRows[i] for i in indices if i < len(self._reviewRows)]

    def onReviewSelectionChanged(self) -> None:
        if self._updatingEditor:
            return
        selected = self._selectedRows()
        if selected:
            row = selected[0]
            self._updatingEditor = True
            try:
                _setComboText(self.ui.levelComboBox, row.level)
                _setComboText(self.ui.segmentComboBox, row.segment)
                self._fillSubsites(row.segment)
                _setComboText(self.ui.subsiteComboBox, row.subsite)
                _setComboText(self.ui.patternComboBox, row.pattern)
            finally:
                self._updatingEditor = False
        self._updateCorrectionButtons()

    def onReviewCellClicked(self, row, column) -> None:
        self._jumpToRow(row)

    def onReviewCurrentCellChanged(self, row, column, previousRow, previousColumn) -> None:
        if row != previousRow:
            self._jumpToRow(row)

    def _jumpToRow(self, row) -> None:
        if self._updatingEditor or row is None or not 0 <= row < len(self._reviewRows):
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot show the calcification."), waitCursor=False):
            self.logic.session.jump_to(self._reviewRows[row].auto_id)

    def _fillSubsites(self, segment) -> None:
        from calcinosis.spine.anatomy import SUBSITE_SEGMENT, SUBSITES

        combo = self.ui.subsiteComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        combo.addItems([s for s in SUBSITES if SUBSITE_SEGMENT[s] == segment])
        combo.blockSignals(wasBlocked)

    def onSegmentChanged(self, index) -> None:
        if not self._updatingEditor:
            self._fillSubsites(self.ui.segmentComboBox.currentText)

    def _stage(self, action) -> None:
        rows = self._selectedRows()
        problems = []
        with slicer.util.tryWithErrorDisplay(_("Cannot stage the correction."), waitCursor=False):
            for row in rows:
                try:
                    if action == "undo":
                        if not self.logic.session.unstage(row.auto_id):
                            self.logic.session.stage(row.auto_id, "revert")
                    elif action == "change":
                        self.logic.session.stage(row.auto_id, "change", level=self.ui.levelComboBox.currentText,
                                                 segment=self.ui.segmentComboBox.currentText,
                                                 subsite=self.ui.subsiteComboBox.currentText,
                                                 pattern=self.ui.patternComboBox.currentText)
                    elif row.lesion_id is not None:
                        self.logic.session.stage(row.auto_id, action)
                except ValueError as e:   # InputError: one calcification, the others go on
                    problems.append(str(e))
            self._refreshReview(keepSelection={row.auto_id for row in rows})
            if problems:
                self.ui.statusLabel.text = "\n".join(problems)

    def onSetButton(self) -> None:
        self._stage("change")

    def onDeleteButton(self) -> None:
        self._stage("delete")

    def onUndoButton(self) -> None:
        self._stage("undo")

    def onApplyCorrections(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Applying the corrections failed."), waitCursor=True):
            result = self.logic.session.apply_corrections()
            self._storeOutputNodes()
            self._refreshReview()
            self._showWarnings(self.logic.session.summary(), [w for w in result.warnings
                                                              if w.startswith("reader override")])

    def onLoadOverrides(self) -> None:
        import qt

        path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Load reader overrides"), "",
                                              _("CSV files (*.csv);;All files (*)"))
        if not path:
            return
        session = self.logic.session
        with slicer.util.tryWithErrorDisplay(_("Cannot load the overrides."), waitCursor=True):
            if self._parameterNode.readerDecisions is not None and session.nodes.decisions is None:
                session.nodes.decisions = self._parameterNode.readerDecisions
            if session.decisions() and not slicer.util.confirmOkCancelDisplay(
                    _("Replace the {n} current reader decisions by those of the file?").format(
                        n=len(session.decisions()))):
                return
            decisions = session.load_overrides(path)
            self._storeOutputNodes()
            self._refreshReview()
            if session.result is None:
                self.ui.statusLabel.text = _("{n} reader decisions loaded: Map applies them.").format(n=len(decisions))
            else:
                self._showWarnings(session.summary(), [w for w in session.result.warnings
                                                       if w.startswith("reader override")])

    def onClearDecisions(self) -> None:
        session = self.logic.session
        if not slicer.util.confirmOkCancelDisplay(_("Forget every reader decision and go back to the automatic "
                                                    "map?")):
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot clear the decisions."), waitCursor=True):
            if self._parameterNode.readerDecisions is not None and session.nodes.decisions is None:
                session.nodes.decisions = self._parameterNode.readerDecisions
            session.set_decisions([])
            self._storeOutputNodes()
            self._refreshReview()

    # ------------------------------------------------------------------ Export
    def onExportButton(self) -> None:
        from calcinosis.core.errors import OutputExistsError
        from calcinosis.core.output import check_output_free

        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            force = False
            try:
                check_output_free(p.outputDirectory, force=False)
            except OutputExistsError:
                if not slicer.util.confirmYesNoDisplay(
                        _("'{folder}' holds an earlier result. Replace it?").format(folder=p.outputDirectory)):
                    return
                force = True
            self._offerMatplotlib()
            dicomSeg, dicomSr = _dicomChoices(p)
            written = self._runWithProgress(_("Exporting"), lambda progress: self.logic.export(
                p.outputDirectory, force, p.caseId, progress, dicomSeg=dicomSeg, dicomSr=dicomSr,
                inputVolume=p.inputVolume))
            if written is None:
                return
            self.ui.statusLabel.text = _("{n} files written to {folder}").format(n=len(written),
                                                                                folder=p.outputDirectory)

    def _offerMatplotlib(self) -> None:
        """level_chart.png needs matplotlib, which Slicer does not bundle: offer it once."""
        from calcinosis.spine.chart import chart_available

        if chart_available() or self._matplotlibOffered:
            return
        self._matplotlibOffered = True
        if not slicer.util.confirmYesNoDisplay(
                _("level_chart.png (the level x segment figure) needs the matplotlib Python package, which is not "
                  "installed in Slicer. Install it now? (No: the export goes on without the PNG; the chart node in "
                  "the scene shows the same counts.)")):
            return
        packaging = getattr(slicer, "packaging", None)
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure("matplotlib", prompt_install=False, requester="SpineCalcMap")
        else:
            slicer.util.pip_install("matplotlib")
        import importlib
        importlib.invalidate_caches()


def _dicomChoices(p) -> tuple[bool, bool]:
    """(DICOM SEG, DICOM SR) to write: as ticked, once highdicom is there (Slicer 5.10 has
    none: offered for install, with why; declined, the other files are written)."""
    from calcinosis.mrml import dicom_objects

    return dicom_objects.choose_outputs(p.exportDicomSeg, p.exportDicomSr,
                                        lambda text: slicer.util.confirmYesNoDisplay(_(text)),
                                        slicer.util.pip_install)


def _setComboText(combo, text) -> None:
    index = combo.findText(text)
    if index >= 0:
        combo.currentIndex = index


def _directoryGiven(p) -> bool:
    return bool(p) and str(p.outputDirectory) not in ("", ".")


def _showResults(nodes) -> None:
    """Slice views, the lesion table and the level chart in one layout."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:
        return
    layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
    appLogic = slicer.app.applicationLogic()
    selectionNode = appLogic.GetSelectionNode()
    selectionNode.SetActiveTableID(nodes.lesions.GetID())
    appLogic.PropagateTableSelection()
    selectionNode.SetActivePlotChartID(nodes.chart.GetID())
    appLogic.PropagatePlotChartSelection()


#
# SpineCalcMapLogic
#


class SpineCalcMapLogic(ScriptedLoadableModuleLogic):
    """Delegates to ``calcinosis.mrml.spine_session``; usable without the widget (batch, tests).

    ``self.session`` (a ``slicer_logic.SpineSession``) holds the current map and the
    reader's corrections: ``session.review_rows()``, ``session.stage(...)``,
    ``session.apply_corrections()``, ``session.load_overrides(csv)``, ``session.jump_to(...)``."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.resetSession()

    def resetSession(self) -> None:
        from calcinosis.mrml.spine_session import SpineSession

        self.session = SpineSession()

    def getParameterNode(self):
        return SpineCalcMapParameterNode(super().getParameterNode())

    def map(self, inputVolume, vertebrae, params=None, aorta=None, aortaSegmentID=None, outputs=None,
            progress=None, subregions=None):
        """Map the calcifications of ``inputVolume`` (CT) with ``vertebrae`` (segmentation, label
        map or point list node) and fill the output nodes; returns the ``SpineResult``.
        ``params``: a ``SpineParams`` (defaults when None); ``outputs``: a
        ``slicer_logic.SpineNodes`` of nodes to refill (its ``decisions`` are re-applied);
        ``subregions``: a SPINEPS sub-region label map node (optional)."""
        result = self.session.map(inputVolume, vertebrae, params, aorta, aortaSegmentID, nodes=outputs,
                                  progress=progress, subregions_node=subregions)
        logging.info(f"SpineCalcMap: {self.session.summary()}")
        return result

    def mapFromParameterNode(self, parameterNode, aortaSegmentID=None, progress=None):
        """``map`` with the inputs, parameters and output nodes of the panel's parameter node."""
        from calcinosis.mrml import spine_session as slicer_logic

        p = parameterNode
        outputs = slicer_logic.SpineNodes(p.lesionSegmentation, p.lesionTable, p.levelsTable, p.patientTable,
                                          p.levelChart, p.readerDecisions)
        return self.map(p.inputVolume, p.vertebrae, slicer_logic.spine_params(p), p.aorta, aortaSegmentID, outputs,
                        progress, p.subregions)

    def applyCorrections(self):
        return self.session.apply_corrections()

    def export(self, outputDirectory, overwrite=False, caseId=None, progress=None, dicomSeg=False, dicomSr=False,
               inputVolume=None):
        """Write the files of ``calcinosis spine`` (tables, chart, label map, segmentation,
        reader overrides, provenance); refuses to replace an earlier result unless ``overwrite``.
        ``dicomSeg`` / ``dicomSr``: also the DICOM SEG / SR on the series ``inputVolume`` came from."""
        from calcinosis.core.errors import InputError

        if self.session.result is None:
            raise InputError("nothing to export: press Map first")
        return self.session.export(outputDirectory, force=overwrite, case_id=caseId or None, progress=progress,
                                   dicom_seg=dicomSeg, dicom_sr=dicomSr, volume_node=inputVolume)

    def runTotalSegmentator(self, inputVolume, fast=True, log=None):
        """Vertebra labels by the TotalSegmentator extension (task 'total'), as a new segmentation node."""
        from calcinosis.mrml import spine_session as slicer_logic

        return slicer_logic.run_totalsegmentator(inputVolume, fast=fast, log=log)


#
# SpineCalcMapTest
#


class SpineCalcMapTest(ScriptedLoadableModuleTest):
    """The whole flow on the spine phantom (lumbar, known calcifications), inside Slicer."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SpineMapOnPhantom()
        self.setUp()
        self.test_PanelMapAndCorrect()

    def _phantom(self):
        """The lumbar spine CT of Sample Data (CalcinosisSpineCT: 1 mm in-plane, 1.25 mm slices,
        TotalSegmentator-convention vertebra labels, made on first use by
        ``calcinosis.mrml.sampledata``) as nodes, and its truth (``truth.csv`` and the voxels of
        each calcification, ``truth_labels.nrrd``)."""
        import shutil
        import tempfile
        import types

        import numpy as np
        from calcinosis.core import image_io
        from calcinosis.core.tables import Table
        from calcinosis.mrml import sampledata

        cache = pathlib.Path(tempfile.mkdtemp(prefix="calcinosis-selftest-"))
        self.addCleanup(shutil.rmtree, cache, True)
        nodes = sampledata.load_sample("CalcinosisSpineCT", cache)
        folder = sampledata.make_sample("CalcinosisSpineCT", cache)
        truthLabels = image_io.load_image(folder / "truth_labels.nrrd")
        truth = Table.read_csv(folder / "truth.csv")
        flat = np.asarray(truthLabels.array).ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(1, len(truth.rows) + 2))
        voxels = [np.sort(order[bounds[n]:bounds[n + 1]]) for n in range(len(truth.rows))]
        truthPhantom = types.SimpleNamespace(geometry=truthLabels.geometry, truth=truth, truth_voxels=voxels)
        return truthPhantom, nodes["volume"], nodes["vertebrae"]

    def _score(self, rendered, nodes):
        """Each true calcification found in the segmentation node by the voxels it covers; its
        row in the lesion table node compared with the truth."""
        import numpy as np

        from calcinosis import mrml

        lab = mrml.label_image_from_segmentation(nodes.segmentation, rendered.geometry)
        ids = np.zeros(rendered.geometry.shape, np.int32)
        for s in lab.segments:
            lesionId = int(s.name.rsplit("#", 1)[1])   # named '<level> <segment> <subsite> #<id>'
            ids[lab.mask(s)] = lesionId
        rows = {r["lesion_id"]: r for r in mrml.table_from_table_node(nodes.lesions).rows}
        score = {"n": 0, "vascular": 0, "level": 0, "segment": 0, "subsite": 0, "pattern": 0}
        for truth, voxels in zip(rendered.truth.rows, rendered.truth_voxels):
            found = ids.ravel()[voxels]
            found = found[found > 0]
            if truth["kind"] == "vascular":
                score["vascular"] += int(found.size > 0)
                continue
            score["n"] += 1
            if found.size:
                row = rows[int(np.bincount(found).argmax())]
                for field in ("level", "segment", "subsite", "pattern"):
                    score[field] += int(row[field] == truth[field])
        return score

    def test_SpineMapOnPhantom(self):
        import tempfile

        from calcinosis import mrml
        from calcinosis.spine.anatomy import LEVELS

        self.delayDisplay("Spine map on the lumbar phantom")
        rendered, ct, labels = self._phantom()
        logic = SpineCalcMapLogic()
        result = logic.map(ct, labels)
        nodes = logic.session.nodes

        # the scan covers T11 (cut) to S1: exactly T11-T12 ... L5-S1 assessed, the rest not, with empty counts
        expected = LEVELS[LEVELS.index("T11-T12"):]
        levels = mrml.table_from_table_node(nodes.levels).rows
        self.assertEqual([r["level"] for r in levels if r["status"] == "assessed"], expected)
        self.assertTrue(all(r["count_total"] is None for r in levels if r["status"] == "not_assessed"))
        self.assertEqual(nodes.lesions.GetColumnUnitLabel("volume_mm3"), "mm3")

        # against the phantom's truth: the accuracy thresholds, no aortic calcification
        score = self._score(rendered, nodes)
        self.assertGreater(score["n"], 10)
        self.assertGreaterEqual(score["level"], 0.95 * score["n"])
        self.assertGreaterEqual(score["segment"], 0.90 * score["n"])
        self.assertGreaterEqual(score["subsite"], 0.85 * score["n"])
        self.assertGreaterEqual(score["pattern"], 0.85 * score["n"])
        self.assertEqual(score["vascular"], 0)

        # the level chart: one series per segment over the assessed levels only
        self.assertEqual(nodes.chart.GetNumberOfPlotSeriesNodes(), 3)
        self.assertEqual(nodes.chart_table.GetTable().GetNumberOfRows(), len(expected))

        # reader correction: delete the first calcification, make the second pseudo-tumoral
        n = len(result.table)
        rows = logic.session.review_rows()
        logic.session.stage(rows[0].auto_id, "delete")
        newPattern = "pseudotumoral" if rows[1].pattern != "pseudotumoral" else "punctate"
        logic.session.stage(rows[1].auto_id, "change", pattern=newPattern)
        corrected = logic.applyCorrections()
        self.assertEqual(nodes.lesions.GetTable().GetNumberOfRows(), n - 1)
        self.assertEqual(mrml.table_from_table_node(nodes.patient).rows[0]["calcification_count"], n - 1)
        self.assertEqual(corrected.table.rows[0]["pattern"], newPattern)
        self.assertEqual(nodes.segmentation.GetSegmentation().GetNumberOfSegments(), n - 1)
        self.assertEqual(nodes.decisions.GetTable().GetNumberOfRows(), 2)

        # Map again at another threshold: the decisions are kept (matched by centroid)
        from calcinosis.spine.params import SpineParams
        again = logic.map(ct, labels, SpineParams(threshold_hu=150.0), outputs=nodes)
        self.assertEqual([a.status for a in again.applied], ["applied", "applied"])
        self.assertEqual(len(again.table), len(again.auto_rows) - 1)

        with tempfile.TemporaryDirectory() as folder:
            out = pathlib.Path(folder) / "result"
            written = {p.name for p in logic.export(out)}
            for name in ("lesions.csv", "levels.csv", "patient.csv", "vertebrae.csv", "reader_overrides.csv",
                         "overrides.csv", "lesion_labels.nrrd", "lesions.seg.nrrd", "provenance.json"):
                self.assertIn(name, written)
        self.delayDisplay("Test passed")

    def test_PanelMapAndCorrect(self):
        self.delayDisplay("Map, review and correct from the panel")
        rendered, ct, labels = self._phantom()
        widget = slicer.util.getModuleWidget("SpineCalcMap")
        p = widget._parameterNode
        p.inputVolume = ct
        p.vertebrae = labels
        p.threshold_hu = SPINE_DEFAULTS.threshold_hu
        p.lesionTable = None
        p.readerDecisions = None
        widget.ui.mapButton.click()
        n = p.lesionTable.GetTable().GetNumberOfRows()
        self.assertGreater(n, 10)
        self.assertEqual(widget.ui.reviewTable.rowCount, n)
        # selecting a row centres the slice views on the calcification
        widget.ui.reviewTable.selectRow(2)
        centroid = widget.logic.session.lesion_centroid(widget._reviewRows[2].auto_id)
        sliceToRAS = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode().GetSliceToRAS()
        for axis in range(3):
            self.assertAlmostEqual(sliceToRAS.GetElement(axis, 3), centroid[axis], places=3)
        # delete it, apply: one row fewer everywhere, the decision kept
        widget.ui.deleteButton.click()
        self.assertTrue(widget.ui.applyCorrectionsButton.enabled)
        widget.ui.applyCorrectionsButton.click()
        self.assertEqual(p.lesionTable.GetTable().GetNumberOfRows(), n - 1)
        self.assertEqual(p.readerDecisions.GetTable().GetNumberOfRows(), 1)
        self.assertEqual(widget.ui.reviewTable.rowCount, n)   # the deleted one is listed, greyed, to restore
        self.delayDisplay("Test passed")
