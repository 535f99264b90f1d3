"""The layers are the folders, and imports go one way (CONTRIBUTING.md, "Layers").

    core  <-  hand, spine  <-  tasks  <-  follow  <-  cohort  <-  cli
    core  <-  mrml (the MRML bridge and the panels' sessions)  <-  the module files

Every ``import`` statement is read from the source (also those inside functions, which run
later), so a lazy import cannot hide a wrong direction.  Nothing below ``mrml`` may import
Slicer, VTK, Qt or CTK: that code must run in a plain Python process.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "CalcinosisQuant" / "calcinosis"
MODULE_FILES = [REPO / "CalcinosisQuant" / "CalcinosisQuant.py", REPO / "SpineCalcMap" / "SpineCalcMap.py"]

# layer -> the layers it may import (besides itself)
ALLOWED = {
    "core": set(),
    "hand": {"core"},
    "spine": {"core"},
    "tasks": {"core", "hand", "spine"},
    "follow": {"core", "hand", "spine", "tasks"},
    "cohort": {"core", "hand", "spine", "tasks", "follow"},
    "cli": {"core", "hand", "spine", "tasks", "follow", "cohort"},
    "mrml": {"core", "hand", "spine", "tasks", "follow"},
}
SLICER_ONLY = {"slicer", "vtk", "vtkmodules", "qt", "ctk", "SegmentEditorEffects", "DICOMLib", "mrml"}
SLICER_FREE = ("core", "hand", "spine", "tasks", "follow", "cohort", "cli")


def imported_modules(path: Path, package_dir: Path = PACKAGE) -> list[tuple[str, int]]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = list(path.relative_to(package_dir.parent).parts[:-1]) if path.is_relative_to(package_dir) else []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
            # `from calcinosis import hand` names the sub-package itself
            if mod == "calcinosis":
                out += [(f"calcinosis.{a.name}", node.lineno) for a in node.names]
    return out


def layer_of(path: Path, package_dir: Path = PACKAGE) -> str | None:
    rel = path.relative_to(package_dir).parts
    return rel[0] if len(rel) > 1 else None


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def layer_violations(files: list[Path], package_dir: Path = PACKAGE) -> list[str]:
    problems = []
    for path in files:
        layer = layer_of(path, package_dir)
        if layer is None:  # calcinosis/__init__.py: imports nothing of its own
            continue
        if layer not in ALLOWED:
            problems.append(f"{path.relative_to(package_dir.parent)}: sub-package {layer!r} is not a known layer")
            continue
        for mod, line in imported_modules(path, package_dir):
            top = mod.split(".")[0]
            where = f"{path.relative_to(package_dir.parent)}:{line}"
            if top in SLICER_ONLY and layer in SLICER_FREE:
                problems.append(f"{where}: the {layer} layer imports {mod} (only calcinosis.mrml may)")
            if top == "calcinosis" and mod.count(".") >= 1:
                target = mod.split(".")[1]
                if target != layer and target in ALLOWED and target not in ALLOWED[layer]:
                    problems.append(f"{where}: {layer} imports {mod} ({layer} may import "
                                    f"{', '.join(sorted(ALLOWED[layer])) or 'nothing of the package'})")
    return problems


def test_every_import_goes_down_the_layers():
    assert package_files(), f"no package found at {PACKAGE}"
    assert layer_violations(package_files()) == []


def test_every_layer_folder_exists():
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == sorted(ALLOWED)


def test_module_files_do_not_use_the_command_line():
    for path in MODULE_FILES:
        for mod, line in imported_modules(path):
            assert not mod.startswith("calcinosis.cli"), f"{path.name}:{line} imports {mod}"


@pytest.mark.parametrize("layer,bad,expected", [
    ("core", "from calcinosis.hand import anatomy\n", "core imports calcinosis.hand"),
    ("hand", "from calcinosis.spine import anatomy\n", "hand imports calcinosis.spine"),
    ("cohort", "def f():\n    from ..cli import main\n", "cohort imports calcinosis.cli"),
    ("tasks", "import slicer\n", "the tasks layer imports slicer"),
    ("spine", "def f():\n    import vtk\n", "the spine layer imports vtk"),
    ("core", "from calcinosis import mrml\n", "core imports calcinosis.mrml"),
])
def test_a_wrong_import_is_caught(tmp_path, layer, bad, expected):
    """The check itself can fail: a planted wrong import in each direction is reported."""
    fake = tmp_path / "calcinosis"
    (fake / layer).mkdir(parents=True)
    (fake / layer / "planted.py").write_text(bad, encoding="utf-8")
    problems = layer_violations([fake / layer / "planted.py"], fake)
    assert any(expected in p for p in problems), problems
