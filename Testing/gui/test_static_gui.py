"""Tier 5: static checks of the Slicer GUI files, and proof that the checks catch breakage.

The module files cannot be imported outside Slicer (no ScriptedLoadableModule, qt, ctk in
slicer-core), so ``gui_checks`` reads them.  Each ``test_catches_*`` test breaks a copy of
the repository's GUI files in tmp_path in one way and expects exactly that problem.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gui_checks  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODULES = ["CalcinosisQuant", "SpineCalcMap"]


def test_the_repository_passes():
    assert gui_checks.module_folders(REPO) == MODULES
    problems = gui_checks.check_repository(REPO)
    assert problems == [], "\n".join(problems)


def test_parameter_node_fields_and_ui_bindings_are_complete():
    """Every parameter-node field is shown by some widget (else the user cannot set it)."""
    import ast

    for m in MODULES:
        tree = ast.parse((REPO / m / f"{m}.py").read_text(encoding="utf-8"))
        _, fields = gui_checks.parameter_fields(tree)
        ui = gui_checks.read_ui(REPO / m / "Resources" / "UI" / f"{m}.ui")
        assert set(fields) == set(ui.parameters), m


@pytest.fixture
def copy(tmp_path):
    """The GUI-relevant part of the repository, to break."""
    for name in ("CMakeLists.txt", "Resources", *MODULES):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, tmp_path / name)
    assert gui_checks.check_repository(tmp_path) == []
    return tmp_path


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def _only(problems, pattern):
    assert problems, "the check found nothing"
    assert any(re.search(pattern, p) for p in problems), problems
    return problems


def test_catches_ui_name_missing_from_ui(copy):
    _edit(copy / "CalcinosisQuant" / "CalcinosisQuant.py", "self.ui.measureButton.enabled = hasInput and hasLesions",
          "self.ui.measureButon.enabled = hasInput and hasLesions")
    _only(gui_checks.check_repository(copy), r"CalcinosisQuant.py:\d+: self.ui.measureButon is not a widget")


def test_catches_widget_renamed_in_ui(copy):
    _edit(copy / "SpineCalcMap" / "Resources" / "UI" / "SpineCalcMap.ui", 'name="exportButton"', 'name="saveButton"')
    _only(gui_checks.check_repository(copy), r"SpineCalcMap.py:\d+: self.ui.exportButton is not a widget")


def test_catches_parameter_name_not_a_field(copy):
    _edit(copy / "CalcinosisQuant" / "Resources" / "UI" / "CalcinosisQuant.ui", "<string>minSlices</string>",
          "<string>minimumSlices</string>")
    _only(gui_checks.check_repository(copy), r"SlicerParameterName 'minimumSlices'.*not a field of CalcinosisQuantParameterNode")


@pytest.mark.parametrize("old,new,pattern", [
    ("    removeBone: bool = hand.DETECT_DEFAULTS.exclude_bone", "    removeBone: float = 0.0",
     r"QCheckBox.*cannot show parameter 'removeBone'"),
    ("    connectivity: Annotated[str, Choice(list(hand.CONNECTIVITY_CHOICES))] = hand.DETECT_DEFAULTS.connectivity",
     '    connectivity: str = "face"', r"QComboBox.*cannot show parameter 'connectivity'"),
    ("    minSlices: Annotated[int, WithinRange(1, 1000)] = hand.DETECT_DEFAULTS.min_slices", "    minSlices: str = '1'",
     r"QSpinBox.*cannot show parameter 'minSlices'"),
    ("    caseId: str = \"\"", "    caseId: bool = False", r"QLineEdit.*cannot show parameter 'caseId'"),
    ("    landmarks: vtkMRMLMarkupsFiducialNode", "    landmarks: vtkMRMLTableNode",
     r"landmarksSelector lists node types \['vtkMRMLMarkupsFiducialNode'\]"),
    ("    outputDirectory: pathlib.Path", "    outputDirectory: str", r"ctkPathLineEdit.*'outputDirectory'"),
    ("    lesionTable: vtkMRMLTableNode", "    lesionTable: vtkMRMLSegmentationNode",
     r"lesionTableSelector lists node types \['vtkMRMLTableNode'\]"),
])
def test_catches_implausible_parameter_types(copy, old, new, pattern):
    _edit(copy / "CalcinosisQuant" / "CalcinosisQuant.py", old, new)
    _only(gui_checks.check_repository(copy), pattern)


def test_catches_missing_class_and_syntax_error(copy):
    _edit(copy / "SpineCalcMap" / "SpineCalcMap.py", "class SpineCalcMapTest(ScriptedLoadableModuleTest):",
          "class SpineTest(ScriptedLoadableModuleTest):")
    _only(gui_checks.check_repository(copy), r"class SpineCalcMapTest is missing")
    _edit(copy / "CalcinosisQuant" / "CalcinosisQuant.py", "    def cleanup(self) -> None:", "    def cleanup(self) -> None")
    _only(gui_checks.check_repository(copy), r"CalcinosisQuant.py: syntax error line \d+")


def test_catches_missing_dependency_and_category(copy):
    _edit(copy / "SpineCalcMap" / "SpineCalcMap.py", '["CalcinosisQuant", "Segmentations", "SegmentEditor"]',
          '["Segmentations", "SegmentEditor"]')
    _only(gui_checks.check_repository(copy), r"imports calcinosis \(shipped by CalcinosisQuant\) but does not list")
    _edit(copy / "CalcinosisQuant" / "CalcinosisQuant.py", '"Quantification")]', '"Examples")]')
    _only(gui_checks.check_repository(copy), r"categories does not name Quantification")


def test_catches_ui_file_missing_or_broken(copy):
    ui = copy / "CalcinosisQuant" / "Resources" / "UI" / "CalcinosisQuant.ui"
    ui.write_text(ui.read_text(encoding="utf-8")[:-40], encoding="utf-8")
    _only(gui_checks.check_repository(copy), r"CalcinosisQuant.ui: not well-formed XML")
    ui.unlink()
    problems = gui_checks.check_repository(copy)
    _only(problems, r"loads UI/CalcinosisQuant.ui, but .* does not exist")
    _only(problems, r"CMakeLists.txt: lists Resources/UI/CalcinosisQuant.ui, which does not exist")


def test_catches_cmake_lists_out_of_date(copy):
    cm = copy / "CalcinosisQuant" / "CMakeLists.txt"
    _edit(cm, "  calcinosis/core/lesions.py\n", "")
    _only(gui_checks.check_repository(copy), r"does not list calcinosis/core/lesions.py in MODULE_PYTHON_SCRIPTS")
    _edit(cm, "  calcinosis/core/measure.py\n", "  calcinosis/core/measure.py\n  calcinosis/core/gone.py\n")
    _only(gui_checks.check_repository(copy), r"lists calcinosis/core/gone.py, which does not exist")
    (copy / "SpineCalcMap" / "levels.py").write_text("LEVELS = []\n")
    _only(gui_checks.check_repository(copy), r"SpineCalcMap/CMakeLists.txt: does not list levels.py")
    (copy / "SpineCalcMap" / "Resources" / "Icons" / "extra.png").write_bytes(b"png")
    _only(gui_checks.check_repository(copy), r"does not list Resources/Icons/extra.png in MODULE_PYTHON_RESOURCES")


def test_catches_cmake_build_macro_changes(copy):
    cm = copy / "SpineCalcMap" / "CMakeLists.txt"
    _edit(cm, "  WITH_GENERIC_TESTS\n", "")
    _only(gui_checks.check_repository(copy), r"slicerMacroBuildScriptedModule lacks WITH_GENERIC_TESTS")
    _edit(cm, "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)", "")
    _only(gui_checks.check_repository(copy), r"no slicer_add_python_unittest")


def test_catches_top_level_cmake_problems(copy):
    top = copy / "CMakeLists.txt"
    _edit(top, "add_subdirectory(SpineCalcMap)\n", "")
    _only(gui_checks.check_repository(copy), r"no add_subdirectory\(SpineCalcMap\)")
    _edit(top, 'set(EXTENSION_CATEGORY "Quantification")', 'set(EXTENSION_CATEGORY "Examples")')
    _only(gui_checks.check_repository(copy), r"EXTENSION_CATEGORY must be \"Quantification\"")
    _edit(top, "add_subdirectory(CalcinosisQuant)", "add_subdirectory(CalcinosisQuant)\nadd_subdirectory(HandMap)")
    _only(gui_checks.check_repository(copy), r"add_subdirectory\(HandMap\) but HandMap/CMakeLists.txt does not exist")
    (copy / "Resources" / "SlicerCalcinosis.png").unlink()
    _only(gui_checks.check_repository(copy), r"extension icon Resources/SlicerCalcinosis.png does not exist")


def test_catches_a_syntax_error_in_a_library_file(copy):
    (copy / "CalcinosisQuant" / "calcinosis" / "core" / "geometry.py").write_text("def broken(:\n")
    _only(gui_checks.check_repository(copy), r"calcinosis/core/geometry.py: syntax error line 1")
