"""Segment Editor effect *Calcinosis*: click a calcinosis deposit in a slice view and its outline
becomes a new lesion segment (radiograph: the edge of its shadow; CT: the connected region
above the threshold, bone removed; MRI: the signal void).

Registered at startup by the CalcinosisQuant module.  The effect only wires the Segment
Editor to :mod:`calcinosis.mrml.click_outline` (plain Python on MRML nodes, tested headless),
which runs :func:`calcinosis.hand.click.outline_at_point`; undo works as for any effect (the
state is saved before the new segment is added).
"""

import logging
import os

import qt
import vtk

import slicer

from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from calcinosis.core.errors import InputError
from calcinosis.mrml import click_outline

#: the effect's name (not translated: modules find effects by name)
EFFECT_NAME = "Calcinosis"
MODALITY_CHOICES = ("auto", "XR", "CT", "MRI")
#: the landmark point list, a node reference of the Segment Editor's parameter node
LANDMARKS_REFERENCE = "Calcinosis.Landmarks"
ICON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Icons",
                    "SegmentEditorCalcinosis.png")


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    """Click a deposit: its outline is added as a new segment, named like the CalcinosisQuant
    module's lesion segments."""

    def __init__(self, scriptedEffect):
        scriptedEffect.name = EFFECT_NAME
        if hasattr(scriptedEffect, "title"):
            scriptedEffect.title = "Calcinosis"
        scriptedEffect.perSegment = False  # adds a new segment; the selected one is not modified
        scriptedEffect.requireSegments = False  # works on an empty segmentation
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)

    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        if os.path.exists(ICON):
            return qt.QIcon(ICON)
        return qt.QIcon()

    def helpText(self):
        return """<html>Outline a calcinosis deposit with one click<br>.
<p><ul style="margin: 0">
<li><b>Left-click</b> the middle of a deposit in a slice view: its outline is added as a <b>new segment</b>,
named like the Calcinosis Quant module's lesions (lesion number, side, digit, zone, kind from the landmarks).
<li><b>Radiograph</b>: the edge of the deposit's shadow; <b>CT</b>: the connected region at or above the
threshold (130 HU by default), bone removed; <b>MRI</b>: the signal void around the click.
<li>Nothing there (soft tissue, bone, a dark region running into cortex): a message says so, nothing is added.
<li>Undo removes the segment. Measure the segmentation in the Calcinosis Quant module.
</ul><p>The same from the command line: <code>calcinosis hand IMAGE --seeds points.mrk.json</code>.</html>"""

    # ------------------------------------------------------------------ options
    def setupOptionsFrame(self):
        self.modalityComboBox = qt.QComboBox()
        for choice in MODALITY_CHOICES:
            self.modalityComboBox.addItem(choice)
        self.modalityComboBox.setToolTip("auto: read from the source volume (DICOM modality, Hounsfield units)")
        self.scriptedEffect.addLabeledOptionsWidget("Modality:", self.modalityComboBox)

        self.imageLabel = qt.QLabel()
        self.imageLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.imageLabel)

        self.customThresholdCheckBox = qt.QCheckBox("Threshold:")
        self.customThresholdCheckBox.setToolTip("Unticked: the modality's automatic threshold (CT 130 HU; MRI half "
                                                "the signal around the void; radiograph 5 x the noise)")
        self.thresholdSpinBox = qt.QDoubleSpinBox()
        self.thresholdSpinBox.setRange(-100000.0, 100000.0)
        self.thresholdSpinBox.setDecimals(1)
        self.thresholdSpinBox.setToolTip("CT: HU at or above; MRI: signal at or below; radiograph: smallest "
                                         "contrast above the background (image units)")
        thresholdLayout = qt.QHBoxLayout()
        thresholdLayout.addWidget(self.customThresholdCheckBox)
        thresholdLayout.addWidget(self.thresholdSpinBox)
        self.scriptedEffect.addOptionsWidget(thresholdLayout)

        self.landmarksSelector = slicer.qMRMLNodeComboBox()
        self.landmarksSelector.nodeTypes = ["vtkMRMLMarkupsFiducialNode"]
        self.landmarksSelector.noneEnabled = True
        self.landmarksSelector.addEnabled = False
        self.landmarksSelector.removeEnabled = False
        self.landmarksSelector.setMRMLScene(slicer.mrmlScene)
        self.landmarksSelector.setToolTip("Hand landmarks (optional): name the new segment with its side, digit, "
                                          "zone and kind")
        self.scriptedEffect.addLabeledOptionsWidget("Landmarks:", self.landmarksSelector)

        self.statusLabel = qt.QLabel("Click the middle of a deposit in a slice view.")
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

        self.modalityComboBox.connect("currentIndexChanged(int)", self.updateMRMLFromGUI)
        self.customThresholdCheckBox.connect("toggled(bool)", self.updateMRMLFromGUI)
        self.thresholdSpinBox.connect("valueChanged(double)", self.updateMRMLFromGUI)
        self.landmarksSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateMRMLFromGUI)

    def setMRMLDefaults(self):
        self.scriptedEffect.setParameterDefault("Modality", "auto")
        self.scriptedEffect.setParameterDefault("CustomThreshold", 0)
        self.scriptedEffect.setParameterDefault("Threshold", click_outline.CT_THRESHOLD_DEFAULT)

    def updateGUIFromMRML(self):
        widgets = (self.modalityComboBox, self.customThresholdCheckBox, self.thresholdSpinBox, self.landmarksSelector)
        blocked = [w.blockSignals(True) for w in widgets]
        modality = self.scriptedEffect.parameter("Modality") or "auto"
        self.modalityComboBox.setCurrentIndex(max(self.modalityComboBox.findText(modality), 0))
        custom = self.scriptedEffect.integerParameter("CustomThreshold") != 0
        self.customThresholdCheckBox.checked = custom
        self.thresholdSpinBox.value = self.scriptedEffect.doubleParameter("Threshold")
        self.thresholdSpinBox.enabled = custom
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        if parameterSetNode is not None:
            self.landmarksSelector.setCurrentNode(parameterSetNode.GetNodeReference(LANDMARKS_REFERENCE))
        for w, b in zip(widgets, blocked):
            w.blockSignals(b)
        self.updateImageLabel()

    def updateMRMLFromGUI(self):
        self.scriptedEffect.setParameter("Modality", self.modalityComboBox.currentText)
        self.scriptedEffect.setParameter("CustomThreshold", 1 if self.customThresholdCheckBox.checked else 0)
        self.scriptedEffect.setParameter("Threshold", self.thresholdSpinBox.value)
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        if parameterSetNode is not None:
            parameterSetNode.SetNodeReferenceID(LANDMARKS_REFERENCE, self.landmarksSelector.currentNodeID)

    def sourceVolumeNodeChanged(self):
        self.updateImageLabel()

    def updateImageLabel(self):
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        volumeNode = parameterSetNode.GetSourceVolumeNode() if parameterSetNode is not None else None
        self.imageLabel.text = click_outline.image_text(volumeNode, self.scriptedEffect.parameter("Modality") or "auto")

    # ------------------------------------------------------------------ the click
    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        abortEvent = False
        if viewWidget.className() != "qMRMLSliceWidget":
            return abortEvent
        if eventId != vtk.vtkCommand.LeftButtonPressEvent:
            return abortEvent
        if callerInteractor.GetShiftKey() or callerInteractor.GetControlKey() or callerInteractor.GetAltKey():
            return abortEvent
        xy = callerInteractor.GetEventPosition()
        self.outlineAt(self.xyToRas(xy, viewWidget))
        return True

    def outlineAt(self, ras):
        """Outline the deposit at ``ras`` (world RAS) as a new segment; returns its ID or None."""
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        segmentationNode = parameterSetNode.GetSegmentationNode()
        sourceVolumeNode = parameterSetNode.GetSourceVolumeNode()
        threshold = self.scriptedEffect.doubleParameter("Threshold") \
            if self.scriptedEffect.integerParameter("CustomThreshold") else None
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            outline = click_outline.outline_at_world_point(
                sourceVolumeNode, ras, self.scriptedEffect.parameter("Modality") or "auto",
                click_outline.detect_params(threshold))
            # allow the user to undo: the state before the segment is added
            self.scriptedEffect.saveStateForUndo()
            segmentId, name = click_outline.new_lesion_segment(
                segmentationNode, outline, parameterSetNode.GetNodeReference(LANDMARKS_REFERENCE))
            modifierLabelmap = click_outline.outline_labelmap(outline, self.scriptedEffect.defaultModifierLabelmap(),
                                                              segmentationNode)
            self.scriptedEffect.modifySegmentByLabelmap(segmentationNode, segmentId, modifierLabelmap,
                                                        slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeSet)
            parameterSetNode.SetSelectedSegmentID(segmentId)
        except InputError as e:
            self.showStatus(str(e))
            return None
        except Exception as e:  # noqa: BLE001 - shown to the user, the traceback logged
            logging.exception("Calcinosis effect failed")
            self.showStatus(f"Outline failed: {e}")
            return None
        finally:
            qt.QApplication.restoreOverrideCursor()
        self.showStatus(click_outline.outline_text(name, outline))
        return segmentId

    def showStatus(self, text):
        self.statusLabel.text = text
        slicer.util.showStatusMessage(text, 5000)
