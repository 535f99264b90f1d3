#!/usr/bin/env python3
"""Rewrite the explicit file lists in each module's CMakeLists.txt from what is on disk.

Slicer installs only the files a module's CMakeLists.txt names, so every ``.py`` under the
module folder and every file under its ``Resources/`` must be listed.  Run this after adding
or removing a file; ``Testing/gui/test_static_gui.py`` fails when a list is out of date.

    python Utilities/sync_cmake_lists.py          # rewrite
    python Utilities/sync_cmake_lists.py --check  # exit 1 when a list is out of date
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("CalcinosisQuant", "SpineCalcMap")


def wanted(module_dir: Path) -> tuple[list[str], list[str]]:
    name = module_dir.name
    scripts = sorted(p.relative_to(module_dir).as_posix() for p in module_dir.rglob("*.py")
                     if "__pycache__" not in p.parts and p.name != f"{name}.py")
    resources = sorted(p.relative_to(module_dir).as_posix() for p in (module_dir / "Resources").rglob("*")
                       if p.is_file())
    resources = [r.replace(f"/{name}.", "/${MODULE_NAME}.") for r in resources]
    return ["${MODULE_NAME}.py"] + scripts, resources


def rewrite(text: str, var: str, items: list[str]) -> str:
    pattern = re.compile(rf"(set\({var}\n)(.*?)(\n  \))", re.S)
    if not pattern.search(text):
        raise SystemExit(f"no set({var} ...) block found")
    return pattern.sub(lambda m: m.group(1) + "\n".join(f"  {i}" for i in items) + m.group(3), text, count=1)


def main(argv: list[str]) -> int:
    stale = []
    for module in MODULES:
        cm = ROOT / module / "CMakeLists.txt"
        text = cm.read_text(encoding="utf-8")
        scripts, resources = wanted(ROOT / module)
        new = rewrite(rewrite(text, "MODULE_PYTHON_SCRIPTS", scripts), "MODULE_PYTHON_RESOURCES", resources)
        if new != text:
            stale.append(str(cm.relative_to(ROOT)))
            if "--check" not in argv:
                cm.write_text(new, encoding="utf-8")
    if stale:
        print(("out of date: " if "--check" in argv else "updated: ") + ", ".join(stale))
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
