"""Static checks of the Slicer GUI files (tier 5): they cannot run outside Slicer, so read them.

:func:`check_repository` returns a list of problems (empty = fine), each one line naming
the file and what is wrong:

* each module file parses and defines ``<M>``, ``<M>Widget``, ``<M>Logic``, ``<M>Test`` on
  the scripted-module base classes, and a ``@parameterNodeWrapper`` class;
* the ``.ui`` file it loads exists and is well-formed; every ``self.ui.<name>`` used in the
  module is a widget of that ``.ui``;
* every ``SlicerParameterName`` in the ``.ui`` is a field of the parameter node class, with
  a type the widget can show (checkbox -> bool, spin box -> int/float, combo box -> a
  ``Choice`` or enum, node combo box -> a node class listed in its ``nodeTypes`` ...);
* the module is in category Quantification; a module that imports a package living in
  another module's folder declares that module as a dependency;
* each module ``CMakeLists.txt`` lists every ``.py`` under the module folder and every file
  under ``Resources/``, nothing that does not exist, and builds with
  ``slicerMacroBuildScriptedModule(... WITH_GENERIC_TESTS)`` and
  ``slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)``;
* the top-level ``CMakeLists.txt`` adds every module folder (and no missing one), has
  category Quantification and its icon exists.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTED_BASES = {
    "": "ScriptedLoadableModule",
    "Widget": "ScriptedLoadableModuleWidget",
    "Logic": "ScriptedLoadableModuleLogic",
    "Test": "ScriptedLoadableModuleTest",
}

#: Widget class -> parameter types it can show (after parameterNodeWrapper's GUI connectors).
WIDGET_TYPES = {
    "QCheckBox": {"bool"}, "ctkCheckBox": {"bool"}, "QPushButton": {"bool"}, "ctkCheckablePushButton": {"bool"},
    "QSpinBox": {"int"}, "QSlider": {"int"},
    "QDoubleSpinBox": {"float", "int"}, "ctkDoubleSpinBox": {"float", "int"}, "ctkSliderWidget": {"float", "int"},
    "qMRMLSliderWidget": {"float", "int"}, "ctkDoubleSlider": {"float", "int"}, "qMRMLSpinBox": {"float", "int"},
    "QComboBox": {"choice", "enum"}, "ctkComboBox": {"choice", "enum"},
    "QLineEdit": {"str"}, "QLabel": {"str"}, "QTextEdit": {"str"},
    "ctkPathLineEdit": {"path"}, "ctkDirectoryButton": {"path"},
    "ctkRangeWidget": {"range"}, "ctkDoubleRangeSlider": {"range"}, "qMRMLRangeWidget": {"range"},
    "qMRMLNodeComboBox": {"node"},
    "ctkColorPickerButton": {"color"},
}



def package_homes(repo: Path, modules: list[str]) -> dict[str, str]:
    """Python packages shipped inside a module folder -> that module (e.g. calcinosis ->
    CalcinosisQuant)."""
    homes = {}
    for m in modules:
        for init in sorted((repo / m).glob("*/__init__.py")):
            homes[init.parent.name] = m
    return homes


@dataclass
class Field:
    name: str
    kind: str  # bool, int, float, str, choice, enum, path, node, range, color, unknown
    node_classes: list[str] = field(default_factory=list)
    text: str = ""


# ---------------------------------------------------------------------- python side
def _annotation_kind(node: ast.AST) -> tuple[str, list[str]]:
    text = ast.unparse(node)
    inner = node
    has_choice = "Choice(" in text
    # Annotated[X, ...] -> X ; Optional[X] -> X ; X | None -> X
    while True:
        if isinstance(inner, ast.Subscript) and isinstance(inner.value, (ast.Name, ast.Attribute)):
            head = ast.unparse(inner.value).split(".")[-1]
            elts = inner.slice.elts if isinstance(inner.slice, ast.Tuple) else [inner.slice]
            if head == "Annotated":
                inner = elts[0]
                continue
            if head in ("Optional",):
                inner = elts[0]
                continue
            if head == "Union":
                names = [ast.unparse(e) for e in elts if ast.unparse(e) != "None"]
                if all(n.split(".")[-1].startswith("vtkMRML") for n in names):
                    return "node", [n.split(".")[-1] for n in names]
                return "unknown", []
        if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.BitOr):
            parts = [p for p in (inner.left, inner.right) if ast.unparse(p) != "None"]
            if len(parts) == 1:
                inner = parts[0]
                continue
            names = [ast.unparse(p).split(".")[-1] for p in parts]
            if all(n.startswith("vtkMRML") for n in names):
                return "node", names
            return "unknown", []
        break
    name = ast.unparse(inner).split(".")[-1]
    if name in ("bool", "int", "float", "str"):
        if has_choice:
            return "choice", []
        return name, []
    if name in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"):
        return "path", []
    if name.startswith("vtkMRML"):
        return "node", [name]
    if name == "FloatRange":
        return "range", []
    if name == "QColor":
        return "color", []
    return "enum", []


def parameter_fields(tree: ast.Module) -> tuple[str | None, dict[str, Field]]:
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef)]:
        decorators = [ast.unparse(d) for d in cls.decorator_list]
        if any(d.split("(")[0].split(".")[-1] == "parameterNodeWrapper" for d in decorators):
            fields = {}
            for stmt in cls.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    kind, nodes = _annotation_kind(stmt.annotation)
                    fields[stmt.target.id] = Field(stmt.target.id, kind, nodes, ast.unparse(stmt.annotation))
            return cls.name, fields
    return None, {}


def ui_attributes_used(tree: ast.Module) -> dict[str, int]:
    """``self.ui.<name>`` -> first line where it is used."""
    used: dict[str, int] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            used.setdefault(node.attr, node.lineno)
    return used


def ui_files_loaded(tree: ast.Module) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"UI/[\w.-]+\.ui", node.value):
            out.append(node.value)
    return out


def imported_top_packages(tree: ast.Module) -> set[str]:
    pkgs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            pkgs.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            pkgs.add(node.module.split(".")[0])
    return pkgs


def _string_list(node: ast.AST) -> list[str]:
    """String constants inside an expression (e.g. [translate(..., "Quantification")])."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def module_assignments(tree: ast.Module, module: str) -> dict[str, list[str]]:
    """``self.parent.<attr> = ...`` in the module class: attr -> string constants."""
    out: dict[str, list[str]] = {}
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == module]:
        for node in ast.walk(cls):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Attribute)
                            and t.value.attr == "parent" and isinstance(t.value.value, ast.Name)
                            and t.value.value.id == "self"):
                        out[t.attr] = _string_list(node.value)
    return out


# ---------------------------------------------------------------------- .ui side
@dataclass
class UiFile:
    widgets: dict[str, str]  # name -> class
    parameters: dict[str, str]  # SlicerParameterName -> widget name
    node_types: dict[str, list[str]]  # widget name -> nodeTypes


def read_ui(path: Path) -> UiFile:
    root = ET.parse(path).getroot()
    widgets, parameters, node_types = {}, {}, {}
    for w in root.iter("widget"):
        name, cls = w.get("name"), w.get("class")
        widgets[name] = cls
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                s = p.find("string")
                if s is not None and s.text:
                    parameters[s.text.strip()] = name
            if p.get("name") == "nodeTypes":
                node_types[name] = [s.text.strip() for s in p.iter("string") if s.text]
    return UiFile(widgets, parameters, node_types)


# ---------------------------------------------------------------------- CMake side
def _cmake_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def cmake_commands(text: str) -> list[tuple[str, list[str]]]:
    """``(command, arguments)`` of a CMake file: quoted arguments unquoted, comments dropped."""
    out: list[tuple[str, list[str]]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*\(").match(text, i)
        if not m:
            i += 1
            continue
        name = m.group(0).rstrip("( \t\n")
        i = m.end()
        args: list[str] = []
        current = ""
        depth = 1
        while i < n and depth:
            c = text[i]
            if c == '"':
                j = i + 1
                buf = ""
                while j < n and text[j] != '"':
                    if text[j] == "\\" and j + 1 < n:
                        buf += text[j + 1]
                        j += 2
                        continue
                    buf += text[j]
                    j += 1
                current += buf
                i = j + 1
                continue
            if c == "#":
                j = text.find("\n", i)
                i = n if j < 0 else j
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    break
            if c.isspace():
                if current:
                    args.append(current)
                    current = ""
            else:
                current += c
            i += 1
        if current:
            args.append(current)
        out.append((name, args))
        i += 1
    return out


def cmake_calls(text: str, command: str) -> list[list[str]]:
    return [args for name, args in cmake_commands(text) if name.lower() == command.lower()]


def cmake_set(text: str, var: str) -> list[str] | None:
    for args in cmake_calls(text, "set"):
        if args and args[0] == var:
            return args[1:]
    return None


def module_folders(repo: Path) -> list[str]:
    """Folders whose CMakeLists.txt builds a scripted module."""
    out = []
    for cm in sorted(repo.glob("*/CMakeLists.txt")):
        if cmake_calls(_cmake_text(cm), "slicerMacroBuildScriptedModule"):
            out.append(cm.parent.name)
    return out


def check_module_cmake(repo: Path, module: str) -> list[str]:
    folder = repo / module
    cm = folder / "CMakeLists.txt"
    where = f"{module}/CMakeLists.txt"
    if not cm.is_file():
        return [f"{where}: missing"]
    text = _cmake_text(cm)
    problems = []
    name = cmake_set(text, "MODULE_NAME")
    if name != [module]:
        problems.append(f"{where}: set(MODULE_NAME {module}) expected, found {name}")

    def expand(items):
        return [i.replace("${MODULE_NAME}", module) for i in items]

    scripts = expand(cmake_set(text, "MODULE_PYTHON_SCRIPTS") or [])
    resources = expand(cmake_set(text, "MODULE_PYTHON_RESOURCES") or [])
    if not scripts:
        problems.append(f"{where}: no MODULE_PYTHON_SCRIPTS")
    on_disk_py = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.py")
                        if "__pycache__" not in p.parts and p.relative_to(folder).parts[0] != "Testing")
    on_disk_res = sorted(p.relative_to(folder).as_posix() for p in (folder / "Resources").rglob("*")
                         if p.is_file()) if (folder / "Resources").is_dir() else []
    for f in on_disk_py:
        if f not in scripts:
            problems.append(f"{where}: does not list {f} in MODULE_PYTHON_SCRIPTS")
    for f in on_disk_res:
        if f not in resources:
            problems.append(f"{where}: does not list {f} in MODULE_PYTHON_RESOURCES")
    for f in scripts + resources:
        if not (folder / f).is_file():
            problems.append(f"{where}: lists {f}, which does not exist")
    for f in resources:
        if not f.startswith("Resources/"):
            problems.append(f"{where}: resource {f} is not under Resources/")
    dups = sorted({f for f in scripts + resources if (scripts + resources).count(f) > 1})
    if dups:
        problems.append(f"{where}: lists {', '.join(dups)} more than once")
    build = cmake_calls(text, "slicerMacroBuildScriptedModule")
    if not build:
        problems.append(f"{where}: no slicerMacroBuildScriptedModule(...)")
    else:
        args = build[0]
        for needed in ("NAME", "${MODULE_NAME}", "SCRIPTS", "${MODULE_PYTHON_SCRIPTS}", "RESOURCES",
                       "${MODULE_PYTHON_RESOURCES}", "WITH_GENERIC_TESTS"):
            if needed not in args:
                problems.append(f"{where}: slicerMacroBuildScriptedModule lacks {needed}")
    unittests = cmake_calls(text, "slicer_add_python_unittest")
    if not any(a[:2] == ["SCRIPT", "${MODULE_NAME}.py"] or a[:2] == ["SCRIPT", f"{module}.py"] for a in unittests):
        problems.append(f"{where}: no slicer_add_python_unittest(SCRIPT ${{MODULE_NAME}}.py)")
    return problems


def check_top_cmake(repo: Path, modules: list[str]) -> list[str]:
    cm = repo / "CMakeLists.txt"
    if not cm.is_file():
        return ["CMakeLists.txt: missing"]
    text = _cmake_text(cm)
    problems = []
    subdirs = [a[0] for a in cmake_calls(text, "add_subdirectory") if a]
    for m in modules:
        if m not in subdirs:
            problems.append(f"CMakeLists.txt: no add_subdirectory({m})")
    for s in subdirs:
        if not (repo / s / "CMakeLists.txt").is_file():
            problems.append(f"CMakeLists.txt: add_subdirectory({s}) but {s}/CMakeLists.txt does not exist")
    category = cmake_set(text, "EXTENSION_CATEGORY")
    if category != ["Quantification"]:
        problems.append(f"CMakeLists.txt: EXTENSION_CATEGORY must be \"Quantification\", found {category}")
    icon = cmake_set(text, "EXTENSION_ICONURL")
    m = re.search(r"/main/(\S+?\.png)", " ".join(icon or []))
    if not m:
        problems.append("CMakeLists.txt: EXTENSION_ICONURL does not point at a .png in the repository")
    elif not (repo / m.group(1)).is_file():
        problems.append(f"CMakeLists.txt: extension icon {m.group(1)} does not exist")
    commands = cmake_commands(text)
    if not any(name == "find_package" and args[:1] == ["Slicer"] for name, args in commands):
        problems.append("CMakeLists.txt: lacks find_package(Slicer REQUIRED)")
    includes = " ".join(" ".join(args) for name, args in commands if name == "include")
    for needed in ("Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        if needed not in includes:
            problems.append(f"CMakeLists.txt: lacks include(${{{needed}}})")
    return problems


# ---------------------------------------------------------------------- module file
def check_module(repo: Path, module: str, homes: dict[str, str] | None = None) -> list[str]:
    folder = repo / module
    src = folder / f"{module}.py"
    where = f"{module}/{module}.py"
    if not src.is_file():
        return [f"{where}: missing"]
    try:
        tree = ast.parse(src.read_text(encoding="utf-8"), filename=str(src))
    except SyntaxError as e:
        return [f"{where}: syntax error line {e.lineno}: {e.msg}"]
    problems = []
    classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
    for suffix, base in SCRIPTED_BASES.items():
        name = module + suffix
        if name not in classes:
            problems.append(f"{where}: class {name} is missing")
        elif base not in [ast.unparse(b).split(".")[-1] for b in classes[name].bases]:
            problems.append(f"{where}: class {name} does not derive from {base}")
    pn_class, fields = parameter_fields(tree)
    if pn_class is None:
        problems.append(f"{where}: no @parameterNodeWrapper class")
    assigned = module_assignments(tree, module)
    if "Quantification" not in assigned.get("categories", []):
        problems.append(f"{where}: self.parent.categories does not name Quantification")
    deps = assigned.get("dependencies", [])
    homes = homes if homes is not None else package_homes(repo, module_folders(repo))
    for pkg in sorted(imported_top_packages(tree)):
        home = homes.get(pkg)
        if home and home != module and home not in deps:
            problems.append(f"{where}: imports {pkg} (shipped by {home}) but does not list {home} in dependencies")

    ui_paths = ui_files_loaded(tree)
    if not ui_paths:
        problems.append(f"{where}: loads no .ui file (slicer.util.loadUI(self.resourcePath('UI/...')))")
        return problems
    ui_file = folder / "Resources" / ui_paths[0]
    if not ui_file.is_file():
        return problems + [f"{where}: loads {ui_paths[0]}, but {module}/Resources/{ui_paths[0]} does not exist"]
    try:
        ui = read_ui(ui_file)
    except ET.ParseError as e:
        return problems + [f"{module}/Resources/{ui_paths[0]}: not well-formed XML ({e})"]
    ui_where = f"{module}/Resources/{ui_paths[0]}"
    for name, line in sorted(ui_attributes_used(tree).items(), key=lambda kv: kv[1]):
        if name not in ui.widgets:
            problems.append(f"{where}:{line}: self.ui.{name} is not a widget in {ui_where}")
    for param, widget in sorted(ui.parameters.items()):
        if param not in fields:
            problems.append(f"{ui_where}: widget {widget} has SlicerParameterName '{param}', "
                            f"which is not a field of {pn_class}")
            continue
        f = fields[param]
        wclass = ui.widgets[widget]
        allowed = WIDGET_TYPES.get(wclass)
        if allowed is None:
            problems.append(f"{ui_where}: widget {widget} ({wclass}) cannot be bound to a parameter")
        elif f.kind not in allowed:
            problems.append(f"{ui_where}: widget {widget} ({wclass}) cannot show parameter '{param}' "
                            f"of type {f.text} (expects {', '.join(sorted(allowed))})")
        elif f.kind == "node":
            listed = ui.node_types.get(widget, [])
            if not set(f.node_classes) & set(listed):
                problems.append(f"{ui_where}: widget {widget} lists node types {listed}, parameter '{param}' "
                                f"is {f.text}")
    return problems


def check_python_files(repo: Path, module: str) -> list[str]:
    problems = []
    for p in sorted((repo / module).rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        try:
            ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
        except SyntaxError as e:
            problems.append(f"{p.relative_to(repo).as_posix()}: syntax error line {e.lineno}: {e.msg}")
    return problems


def check_repository(repo: Path, modules: list[str] | None = None) -> list[str]:
    repo = Path(repo)
    modules = modules if modules is not None else module_folders(repo)
    homes = package_homes(repo, module_folders(repo))
    problems = []
    for m in modules:
        problems += check_module(repo, m, homes)
        problems += check_module_cmake(repo, m)
        problems += check_python_files(repo, m)
    problems += check_top_cmake(repo, module_folders(repo))
    return problems
