"""Tier 5: static checks of the Segment Editor effect *Calcinosis* (``SegmentEditorCalcinosisLib``),
which cannot run outside Slicer (no ``qt``, ``SegmentEditorEffects`` or
``qSlicerSegmentationsEditorEffectsPythonQt`` in slicer-core), and proof that the checks catch
breakage (each ``test_catches_*`` breaks a copy of the module folder in one way).

:func:`check_effect` returns one line per problem:

* the folder follows Slicer's scripted-effect template: ``<Lib>/__init__.py`` exposing
  ``SegmentEditorEffect`` from ``<Lib>/SegmentEditorEffect.py``;
* the class ``SegmentEditorEffect`` derives from ``AbstractScriptedSegmentEditorEffect``, sets
  ``scriptedEffect.name`` and calls the base ``__init__``; it has the template's methods
  (``clone``, ``icon``, ``helpText``, ``setupOptionsFrame``, ``setMRMLDefaults``,
  ``updateGUIFromMRML``, ``updateMRMLFromGUI``) and ``processInteractionEvents`` with the
  Segment Editor's signature; ``clone`` re-creates the effect from ``__file__``;
* every method that writes a segment (``modifySegmentByLabelmap``) saves the state for undo
  first, and ``processInteractionEvents`` reaches such a method;
* the icon it loads exists under ``Resources/Icons``;
* its imports are Slicer's (qt, vtk, slicer, SegmentEditorEffects, ...) or ``calcinosis``: the
  logic lives in the package (tested headless); every ``calcinosis`` module and name it uses
  exists;
* the module registers it at startup (``startupCompleted()`` -> a method creating a
  ``qSlicerSegmentEditorScriptedEffect`` from this file and calling ``.self().register()``);
* the module's ``CMakeLists.txt`` lists the effect's files and its icon.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = "CalcinosisQuant"
LIB = "SegmentEditorCalcinosisLib"

TEMPLATE_METHODS = ("clone", "icon", "helpText", "setupOptionsFrame", "setMRMLDefaults", "updateGUIFromMRML",
                    "updateMRMLFromGUI", "processInteractionEvents")
#: what an effect may import besides calcinosis (Slicer's Python environment and the stdlib it needs)
SLICER_IMPORTS = {"qt", "ctk", "vtk", "slicer", "SegmentEditorEffects", "qSlicerSegmentationsEditorEffectsPythonQt",
                  "vtkSegmentationCorePython", "os", "logging", "math", "__future__"}


def _parse(path: Path, where: str, problems: list[str]) -> ast.Module | None:
    if not path.is_file():
        problems.append(f"{where}: missing")
        return None
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as e:
        problems.append(f"{where}: syntax error line {e.lineno}: {e.msg}")
        return None


def _calls(node: ast.AST) -> list[tuple[str, int]]:
    """(dotted name of the called thing, line) of every call under ``node``."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            out.append((ast.unparse(n.func), n.lineno))
    return out


def _module_names(tree: ast.Module) -> set[str]:
    names = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.Assign):
            names |= {t.id for t in n.targets if isinstance(t, ast.Name)}
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            names.add(n.target.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in n.names}
    return names


def _calcinosis_module(repo: Path, dotted: str) -> Path | None:
    base = repo / MODULE / Path(*dotted.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def check_effect(repo: Path) -> list[str]:
    repo = Path(repo)
    folder = repo / MODULE / LIB
    problems: list[str] = []
    init = _parse(folder / "__init__.py", f"{MODULE}/{LIB}/__init__.py", problems)
    if init is not None and not any(isinstance(n, ast.ImportFrom) and n.module == "SegmentEditorEffect" and n.level == 1
                                    and any(a.name in ("SegmentEditorEffect", "*") for a in n.names)
                                    for n in init.body):
        problems.append(f"{MODULE}/{LIB}/__init__.py: does not import SegmentEditorEffect from .SegmentEditorEffect")
    where = f"{MODULE}/{LIB}/SegmentEditorEffect.py"
    tree = _parse(folder / "SegmentEditorEffect.py", where, problems)
    if tree is None:
        return problems
    source = (folder / "SegmentEditorEffect.py").read_text(encoding="utf-8")

    # imports: Slicer's or calcinosis, and what is used from calcinosis exists
    aliases: dict[str, Path] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            mods = [(a.name, a.asname) for a in n.names]
            froms = []
        elif isinstance(n, ast.ImportFrom):
            mods = [(n.module or "", None)]
            froms = [(a.name, a.asname) for a in n.names]
        else:
            continue
        for mod, asname in mods:
            top = mod.split(".")[0]
            if top == "calcinosis":
                target = _calcinosis_module(repo, mod)
                if target is None:
                    problems.append(f"{where}:{n.lineno}: imports {mod}, which does not exist")
                    continue
                for name, alias in froms:
                    sub = _calcinosis_module(repo, f"{mod}.{name}")
                    if sub is not None:
                        aliases[alias or name] = sub
                    elif name not in _module_names(ast.parse(target.read_text(encoding="utf-8"))):
                        problems.append(f"{where}:{n.lineno}: {mod} has no {name}")
            elif top not in SLICER_IMPORTS:
                problems.append(f"{where}:{n.lineno}: imports {top}; the effect's logic belongs in calcinosis "
                                "(tested headless), the effect imports only Slicer and calcinosis")
    for alias, path in aliases.items():
        defined = _module_names(ast.parse(path.read_text(encoding="utf-8")))
        for m in re.finditer(rf"\b{re.escape(alias)}\.([A-Za-z_]\w*)", source):
            if m.group(1) not in defined:
                line = source[:m.start()].count("\n") + 1
                problems.append(f"{where}:{line}: {alias}.{m.group(1)} does not exist in "
                                f"{path.relative_to(repo / MODULE).as_posix()}")

    classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
    cls = classes.get("SegmentEditorEffect")
    if cls is None:
        return problems + [f"{where}: class SegmentEditorEffect is missing"]
    bases = [ast.unparse(b).split(".")[-1] for b in cls.bases]
    if not any(b in ("AbstractScriptedSegmentEditorEffect", "AbstractScriptedSegmentEditorLabelEffect") for b in bases):
        problems.append(f"{where}: SegmentEditorEffect does not derive from AbstractScriptedSegmentEditorEffect")
    methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
    for name in ("__init__",) + TEMPLATE_METHODS:
        if name not in methods:
            problems.append(f"{where}: SegmentEditorEffect.{name} is missing")
    if "__init__" in methods:
        init_src = ast.unparse(methods["__init__"])
        if "scriptedEffect.name =" not in init_src:
            problems.append(f"{where}: __init__ does not set scriptedEffect.name")
        if not re.search(r"AbstractScriptedSegmentEditor\w*Effect\.__init__\(self, scriptedEffect\)", init_src):
            problems.append(f"{where}: __init__ does not call the base class __init__(self, scriptedEffect)")
    if "processInteractionEvents" in methods:
        args = [a.arg for a in methods["processInteractionEvents"].args.args]
        if args != ["self", "callerInteractor", "eventId", "viewWidget"]:
            problems.append(f"{where}: processInteractionEvents{tuple(args)} is not "
                            "(self, callerInteractor, eventId, viewWidget)")
    if "clone" in methods:
        text = ast.unparse(methods["clone"])
        if "qSlicerSegmentEditorScriptedEffect" not in text or "setPythonSource(__file__" not in text:
            problems.append(f"{where}: clone does not re-create the effect from __file__")
    # undo: saveStateForUndo before any segment is written; the click reaches such a method
    writers = []
    for name, f in methods.items():
        calls = _calls(f)
        writes = [line for c, line in calls if c.endswith("modifySegmentByLabelmap")
                  or c.endswith("modifySelectedSegmentByLabelmap")]
        if not writes:
            continue
        writers.append(name)
        saves = [line for c, line in calls if c.endswith("saveStateForUndo")]
        if not saves or min(saves) > min(writes):
            problems.append(f"{where}:{min(writes)}: {name} writes a segment without saveStateForUndo() before it "
                            "(undo would not work)")
    if "processInteractionEvents" in methods and writers:
        reached = {c.split(".")[-1] for c, _ in _calls(methods["processInteractionEvents"]) if c.startswith("self.")}
        if not (reached & set(writers)) and "processInteractionEvents" not in writers:
            problems.append(f"{where}: processInteractionEvents does not reach {', '.join(writers)} (a click adds "
                            "nothing)")
    elif "processInteractionEvents" in methods:
        problems.append(f"{where}: no method writes a segment (modifySegmentByLabelmap)")
    # the icon
    pngs = re.findall(r"[\"']([\w.-]+\.png)[\"']", source)
    if not pngs:
        problems.append(f"{where}: icon() loads no .png")
    for png in pngs:
        if not (repo / MODULE / "Resources" / "Icons" / png).is_file():
            problems.append(f"{where}: icon {png} is not in {MODULE}/Resources/Icons")

    # registration by the module
    mod_where = f"{MODULE}/{MODULE}.py"
    mod_tree = _parse(repo / MODULE / f"{MODULE}.py", mod_where, problems)
    if mod_tree is not None:
        mod_cls = next((c for c in mod_tree.body if isinstance(c, ast.ClassDef) and c.name == MODULE), None)
        mod_methods = {f.name: f for f in mod_cls.body if isinstance(f, ast.FunctionDef)} if mod_cls else {}
        handlers = []      # every method connected to startupCompleted() (the effect's, Sample Data's ...)
        for n in ast.walk(mod_methods.get("__init__", ast.Module(body=[], type_ignores=[]))):
            if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("app.connect") and len(n.args) == 2 \
                    and isinstance(n.args[0], ast.Constant) and n.args[0].value == "startupCompleted()":
                handlers.append(ast.unparse(n.args[1]).split(".")[-1])
        for h in handlers:
            if h not in mod_methods:
                problems.append(f"{mod_where}: {MODULE}.{h} (connected to startupCompleted()) is missing")
        # the effect's registration: the handler named for it or creating it
        effect = [h for h in handlers if h in mod_methods and
                  ("Effect" in h or "qSlicerSegmentEditorScriptedEffect" in ast.unparse(mod_methods[h]))]
        handler = effect[0] if effect else None
        if handler is None and not any(h not in mod_methods for h in handlers):
            problems.append(f"{mod_where}: {MODULE}.__init__ does not connect startupCompleted() to the effect's "
                            "registration")
        elif handler is not None:
            text = ast.unparse(mod_methods[handler])
            for needed in ("qSlicerSegmentEditorScriptedEffect", "setPythonSource", LIB, "SegmentEditorEffect.py",
                           ".self().register()"):
                if needed not in text:
                    problems.append(f"{mod_where}: {MODULE}.{handler} lacks {needed} (the effect is not registered)")

    # CMakeLists
    cm = repo / MODULE / "CMakeLists.txt"
    text = cm.read_text(encoding="utf-8") if cm.is_file() else ""
    for f in (f"{LIB}/__init__.py", f"{LIB}/SegmentEditorEffect.py") + tuple(f"Resources/Icons/{p}" for p in pngs):
        if not re.search(rf"^\s*{re.escape(f)}\s*$", text, re.M):
            problems.append(f"{MODULE}/CMakeLists.txt: does not list {f}")
    return problems


def test_the_effect_passes():
    problems = check_effect(REPO)
    assert problems == [], "\n".join(problems)


def test_the_effect_logic_imports_headless():
    """What the effect runs is importable without Slicer's GUI: the core (always) and the MRML
    bridge (with slicer-core)."""
    from calcinosis.hand import click

    assert callable(click.outline_at_point)
    try:
        from calcinosis.mrml import click_outline
    except ImportError as e:   # slicer-core is a test extra
        pytest.skip(f"slicer-core not installed ({e})")
    for name in ("outline_at_world_point", "outline_labelmap", "new_lesion_segment", "detect_params", "image_text",
                 "outline_text", "CT_THRESHOLD_DEFAULT"):
        assert hasattr(click_outline, name), name


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(REPO / MODULE, tmp_path / MODULE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    assert check_effect(tmp_path) == []
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _only(problems, pattern):
    assert problems, "the check found nothing"
    assert any(re.search(pattern, p) for p in problems), problems


EFFECT = Path(MODULE) / LIB / "SegmentEditorEffect.py"


@pytest.mark.parametrize("old,new,pattern", [
    ("    def helpText(self):", "    def helpTextX(self):", r"SegmentEditorEffect.helpText is missing"),
    ("    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):",
     "    def processInteractionEvents(self, interactor, eventId, viewWidget):", r"is not \(self, callerInteractor"),
    ("        scriptedEffect.name = EFFECT_NAME\n", "", r"does not set scriptedEffect.name"),
    ("            self.scriptedEffect.saveStateForUndo()\n", "", r"writes a segment without saveStateForUndo"),
    ("        self.outlineAt(self.xyToRas(xy, viewWidget))", "        self.xyToRas(xy, viewWidget)",
     r"processInteractionEvents does not reach outlineAt"),
    ('"SegmentEditorCalcinosis.png")', '"Missing.png")', r"icon Missing.png is not in"),
    ("import logging\n", "import logging\nimport numpy as np\n", r"imports numpy; the effect's logic belongs in"),
    ("click_outline.outline_labelmap(", "click_outline.outline_mask(", r"click_outline.outline_mask does not exist"),
    ("clonedEffect.setPythonSource(__file__", "clonedEffect.setPythonSource(ICON",
     r"clone does not re-create the effect from __file__"),
])
def test_catches_a_broken_effect(copy, old, new, pattern):
    _edit(copy / EFFECT, old, new)
    _only(check_effect(copy), pattern)


def test_catches_registration_and_cmake_problems(copy):
    module = copy / MODULE / f"{MODULE}.py"
    _edit(module, '        effect.self().register()\n', "")
    _only(check_effect(copy), r"lacks \.self\(\)\.register\(\)")
    _edit(module, 'slicer.app.connect("startupCompleted()", self.registerEditorEffect)', "pass")
    _only(check_effect(copy), r"does not connect startupCompleted\(\)")
    _edit(copy / MODULE / "CMakeLists.txt", f"  {LIB}/SegmentEditorEffect.py\n", "")
    _only(check_effect(copy), rf"does not list {LIB}/SegmentEditorEffect.py")
    (copy / MODULE / LIB / "__init__.py").write_text('"""nothing"""\n')
    _only(check_effect(copy), r"does not import SegmentEditorEffect")
