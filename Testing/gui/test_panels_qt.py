"""The panels rendered with real Qt from their ``.ui`` files (``qt_panels``: Slicer's widgets
replaced by Qt stand-ins): they fit Slicer's module panel without horizontal scrolling, the
spine review list shows level, segment, sub-site and pattern at once, and each panel has
*Restore default parameters* covering its parameters."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from environment import skip_or_fail_in_ci


@pytest.fixture(scope="module")
def qt():
    try:
        import qt_panels
        qt_panels.application()
    except ImportError as e:
        skip_or_fail_in_ci("Qt panel tests", f"PySide6 is not installed ({e}); `make test` installs it")
    return qt_panels


@pytest.mark.parametrize("name", ["CalcinosisQuant", "SpineCalcMap"])
def test_panel_fits_the_module_panel(qt, name):
    width = qt.panel_minimum_width(qt.load_panel(name))
    assert 250 < width <= qt.PANEL_CONTENT_WIDTH_PX, f"{name} needs {width} px"


def test_spine_review_list_shows_level_segment_subsite_and_pattern(qt):
    from PySide6 import QtWidgets

    from calcinosis.mrml.spine_session import REVIEW_COLUMNS, ReviewRow
    from calcinosis.spine.anatomy import LEVELS, PATTERNS, SEGMENTS, SUBSITES

    panel = qt.load_panel("SpineCalcMap")
    panel.resize(qt.PANEL_CONTENT_WIDTH_PX, panel.sizeHint().height())
    panel.show()
    QtWidgets.QApplication.processEvents()
    table = panel.findChild(QtWidgets.QTableWidget, "reviewTable")
    table.setColumnCount(len(REVIEW_COLUMNS))
    table.setHorizontalHeaderLabels(REVIEW_COLUMNS)
    longest = lambda names: max(names, key=len)   # noqa: E731 - the widest case of each column
    rows = [ReviewRow(auto_id=1, lesion_id=123, level=longest(LEVELS), segment=longest(SEGMENTS), subsite=s,
                      pattern=longest(PATTERNS), volume_mm3=12345.6, centroid=np.zeros(3), reader="level set")
            for s in SUBSITES]
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row.display_values()):
            table.setItem(r, c, QtWidgets.QTableWidgetItem(value))
    table.resizeColumnsToContents()
    QtWidgets.QApplication.processEvents()
    pattern = REVIEW_COLUMNS.index("pattern")
    right = table.horizontalHeader().sectionPosition(pattern) + table.columnWidth(pattern)
    assert right <= table.viewport().width(), (right, table.viewport().width())


def _parameter_fields(ui_path, sections):
    """The parameter fields of the widgets in ``sections`` (not the node selectors: inputs
    and outputs are not parameters)."""
    root = ET.parse(ui_path).getroot()
    out = set()
    for section in root.iter("widget"):
        if section.get("name") in sections:
            for w in section.iter("widget"):
                if w.get("class", "").startswith("qMRML"):
                    continue
                for prop in w.findall("property"):
                    if prop.get("name") == "SlicerParameterName":
                        out.add(prop.find("string").text)
    return out


def test_hand_restore_defaults_covers_the_parameters(qt):
    from calcinosis.hand.assign import AssignParams
    from calcinosis.hand.detect import DetectParams
    from calcinosis.mrml import hand_session as sl

    defaults = sl.panel_parameter_defaults()
    fields = _parameter_fields(qt.PANELS["CalcinosisQuant"], {"detectionCollapsibleButton",
                                                              "assignmentCollapsibleButton"})
    assert fields and fields <= set(defaults), fields - set(defaults)
    for name, param in sl.PANEL_DETECT_FIELDS.items():
        assert defaults[name] == getattr(DetectParams(), param)
    for name, param in sl.PANEL_ASSIGN_FIELDS.items():
        assert defaults[name] == getattr(AssignParams(), param)
    for name in ("CalcinosisQuant", "SpineCalcMap"):
        root = ET.parse(qt.PANELS[name]).getroot()
        button = [w for w in root.iter("widget") if w.get("name") == "resetParametersButton"]
        assert button and button[0].find("property/string").text == "Restore default parameters"


def test_standins_keep_every_widget_and_label(qt):
    """The stand-in file has every widget of the original (same names), so what is measured is the panel."""
    for name, path in qt.PANELS.items():
        original = {w.get("name") for w in ET.parse(path).getroot().iter("widget")}
        standin = {w.get("name") for w in ET.fromstring(qt.standin_ui(path)).iter("widget")}
        assert original == standin
        panel = qt.load_panel(name)
        from PySide6 import QtWidgets
        assert {w.objectName() for w in panel.findChildren(QtWidgets.QWidget)} >= original - {name}
