"""The modules' panels rendered with real Qt (PySide6, offscreen) from their ``.ui`` files.

Slicer's own widgets (CTK, MRML) do not exist outside Slicer; each is replaced by the Qt
widget it derives from or looks like before the file is loaded - a collapsible section by a
group box (expanded: the widest state), a node selector by a combo box holding a typical
node name, a path field by a line edit, an MRML table view by a table view - so the widths,
labels and layouts are the file's own.  Used by the panel-width test and by
``Utilities/make_screenshots.py`` for the screenshots in ``Resources/Screenshots``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PANELS = {
    "CalcinosisQuant": REPO / "CalcinosisQuant" / "Resources" / "UI" / "CalcinosisQuant.ui",
    "SpineCalcMap": REPO / "SpineCalcMap" / "Resources" / "UI" / "SpineCalcMap.ui",
}
#: Slicer's widgets -> the Qt widget standing in for them
STAND_INS = {
    "qMRMLWidget": "QWidget",
    "ctkCollapsibleButton": "QGroupBox",
    "ctkCollapsibleGroupBox": "QGroupBox",
    "qMRMLNodeComboBox": "QComboBox",
    "qMRMLSegmentSelectorWidget": "QComboBox",
    "ctkPathLineEdit": "QLineEdit",
    "qMRMLTableView": "QTableView",
}
#: what a node selector shows: a node name of typical length (its parameter's name stands for it)
NODE_NAME = "{parameter} node"
#: Slicer's module panel: the left dock is about 500 px wide by default on a 1920 x 1080 screen
#: at 100% scaling; the panel's content (inside the dock frame, the scroll area and its
#: vertical scroll bar) must fit in this many pixels to need no horizontal scrolling
PANEL_CONTENT_WIDTH_PX = 460


def standin_ui(path: Path) -> bytes:
    """The ``.ui`` file with Slicer's widgets replaced by Qt stand-ins."""
    tree = ET.parse(path)
    root = tree.getroot()
    for cw in root.findall("customwidgets"):
        root.remove(cw)
    for w in root.iter("widget"):
        cls = w.get("class")
        if cls not in STAND_INS:
            continue
        w.set("class", STAND_INS[cls])
        for prop in list(w.findall("property")):
            name = prop.get("name")
            if cls.startswith("ctkCollapsible") and name == "text":
                prop.set("name", "title")
            elif name in ("filters", "nodeTypes", "showChildNodeTypes", "noneEnabled", "addEnabled",
                          "removeEnabled", "renameEnabled", "editEnabled", "collapsed", "SlicerParameterName",
                          "selectNodeUponCreation", "baseName", "hideChildNodeTypes", "interactionNodeSingletonTag",
                          "noneDisplay", "segmentationNodeSelectorVisible", "multiSelection"):
                w.remove(prop)
    return ET.tostring(root, encoding="utf-8")


def application():
    """The QApplication (offscreen), made once."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def load_panel(name: str, as_opened: bool = False):
    """The panel ``name`` as a live widget (stand-ins filled as Slicer would show them):
    every section expanded (the widest state), or ``as_opened`` with the sections the ``.ui``
    marks collapsed shown by their title only, as Slicer opens the module."""
    application()
    from PySide6 import QtCore, QtUiTools, QtWidgets
    data = QtCore.QByteArray(standin_ui(PANELS[name]))
    buf = QtCore.QBuffer(data)
    buf.open(QtCore.QIODevice.ReadOnly)
    widget = QtUiTools.QUiLoader().load(buf)
    tree = ET.parse(PANELS[name]).getroot()
    node_selectors = {w.get("name"): (w.findtext("property[@name='SlicerParameterName']/string") or "output")
                      for w in tree.iter("widget")
                      if w.get("class") in ("qMRMLNodeComboBox", "qMRMLSegmentSelectorWidget")}
    for combo in widget.findChildren(QtWidgets.QComboBox):
        if combo.objectName() in node_selectors and combo.count() == 0:
            combo.addItem(NODE_NAME.format(parameter=node_selectors[combo.objectName()]))
    if as_opened:
        collapsed = {w.get("name") for w in tree.iter("widget")
                     if any(p.get("name") == "collapsed" and (p.findtext("bool") or "") == "true"
                            for p in w.findall("property"))}
        for box in widget.findChildren(QtWidgets.QGroupBox):
            if box.objectName() in collapsed:
                for child in box.findChildren(QtWidgets.QWidget, options=QtCore.Qt.FindDirectChildrenOnly):
                    child.hide()
                box.setTitle("\u25b8 " + box.title())
    return widget


def show_values(widget, name: str, values: dict) -> None:
    """Show parameter values (``{SlicerParameterName: value}``, e.g. the defaults) in the
    panel's widgets as Slicer's parameter node would."""
    from PySide6 import QtWidgets
    tree = ET.parse(PANELS[name]).getroot()
    for w in tree.iter("widget"):
        param = w.findtext("property[@name='SlicerParameterName']/string")
        if param not in values or w.get("class", "").startswith("qMRML"):
            continue
        child = widget.findChild(QtWidgets.QWidget, w.get("name"))
        value = values[param]
        if isinstance(child, (QtWidgets.QDoubleSpinBox, QtWidgets.QSpinBox)):
            child.setValue(value if isinstance(child, QtWidgets.QDoubleSpinBox) else int(value))
        elif isinstance(child, QtWidgets.QAbstractButton) and isinstance(value, bool):
            child.setChecked(value)
        elif isinstance(child, QtWidgets.QComboBox):
            child.clear()
            child.addItem(str(value))


def panel_minimum_width(widget) -> int:
    """Pixels the panel needs across before Qt must clip or scroll (its layout's minimum)."""
    widget.adjustSize()
    return int(widget.minimumSizeHint().width())


def grab_png(widget, path: Path, width: int = PANEL_CONTENT_WIDTH_PX) -> Path:
    """A PNG of the panel laid out ``width`` px wide (its whole height)."""
    widget.resize(width, widget.sizeHint().height())
    widget.resize(width, widget.heightForWidth(width) if widget.hasHeightForWidth() else widget.sizeHint().height())
    path.parent.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(path))
    return path
