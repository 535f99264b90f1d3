"""Discovery of sub-commands, phantom kinds and demo steps by module name.

Each part of the project adds its own module instead of editing a shared list:

* ``*_cmd.py``     - a sub-command: ``register(subparsers)``
* ``phantoms_*.py`` - phantom kinds: ``register(kind_subparsers)``
* ``demo_*.py``    - a demo step: ``TITLE``, ``ORDER`` and ``run(outdir, force) -> lines``

Order: the module's ``ORDER`` (default 50), then its name.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType


def discover(prefix: str = "", suffix: str = "") -> list[ModuleType]:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)])
                   if m.name.startswith(prefix) and m.name.endswith(suffix)
                   and (suffix == "_cmd" or not m.name.endswith("_cmd")))
    mods = [importlib.import_module(f"{__package__}.{n}") for n in names]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 50), m.__name__))
