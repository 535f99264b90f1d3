"""The Extensions Index entry (``SlicerCalcinosis.json``) and the top-level ``CMakeLists.txt``
metadata: each meets the index's rules and the two agree.

The entry follows Slicer's catalog-entry schema v1.0.1 (``$schema``, ``category``,
``scm_url`` required; ``scm_revision``, ``scm_type``, ``build_dependencies``,
``build_subdirectory``, ``enabled``, ``tier`` allowed, nothing else); the rules are restated
here, not read from the code under test.  The CMake metadata is what the Extensions Manager
shows: description, homepage, contributors ("Name (Affiliation)"), a 128 x 128 icon and
screenshots, whose URLs must point at files of this repository at the entry's revision."""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SCHEMA_URL = "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json#"
SCHEMA_TYPES = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
                "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int}
REQUIRED = {"$schema", "category", "scm_url"}
#: the categories of Slicer's Extensions Manager that fit a quantification tool
CATEGORIES = {"Quantification", "Segmentation", "Informatics", "Diagnostic Support", "Examples"}


def _cmake() -> dict[str, str]:
    text = (REPO / "CMakeLists.txt").read_text()
    values = dict(re.findall(r'set\((EXTENSION_\w+) "([^"]*)"\)', text))
    values["project"] = re.search(r"project\((\w+)\)", text).group(1)
    return values


def _entry() -> tuple[Path, dict]:
    files = [p for p in REPO.glob("*.json")]
    assert len(files) == 1, files
    return files[0], json.loads(files[0].read_text())


def test_index_entry_meets_the_catalog_schema():
    path, entry = _entry()
    assert path.name == _cmake()["project"] + ".json"          # the index names the file after the extension
    assert REQUIRED <= set(entry) and set(entry) <= set(SCHEMA_TYPES), set(entry) ^ set(SCHEMA_TYPES)
    for key, value in entry.items():
        assert isinstance(value, SCHEMA_TYPES[key]), key
    assert entry["$schema"] == SCHEMA_URL
    assert entry.get("tier", 5) in (1, 3, 5) and entry.get("scm_type", "git") in ("git", "local")
    assert all(isinstance(d, str) for d in entry.get("build_dependencies", []))
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", entry["scm_url"])


def test_cmake_metadata_is_complete_and_agrees_with_the_entry():
    cm = _cmake()
    _, entry = _entry()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert cm.get(key, "").strip(), f"{key} is empty"
    assert cm["EXTENSION_CATEGORY"] == entry["category"] and entry["category"] in CATEGORIES
    deps = [] if cm["EXTENSION_DEPENDS"] == "NA" else cm["EXTENSION_DEPENDS"].split()
    assert deps == entry.get("build_dependencies", [])
    assert cm["EXTENSION_HOMEPAGE"].startswith(entry["scm_url"])
    assert len(cm["EXTENSION_DESCRIPTION"]) >= 60 and cm["EXTENSION_DESCRIPTION"].endswith(".")
    for person in cm["EXTENSION_CONTRIBUTORS"].split(", "):
        assert re.fullmatch(r"[^()]+ \([^()]+\)", person), person


def test_icon_and_screenshots_are_files_of_this_repository():
    cm = _cmake()
    _, entry = _entry()
    owner_repo = entry["scm_url"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{owner_repo}/{entry.get('scm_revision', 'main')}/"
    urls = [cm["EXTENSION_ICONURL"]] + cm["EXTENSION_SCREENSHOTURLS"].split()
    assert len(urls) >= 3                                   # the icon and a screenshot per module
    for url in urls:
        assert url.startswith(prefix), url
        path = REPO / url.removeprefix(prefix)
        assert path.is_file(), path
        with Image.open(path) as im:
            assert im.format == "PNG"
            if url == cm["EXTENSION_ICONURL"]:
                assert im.size == (128, 128)
            else:
                assert im.size[0] >= 800 and im.size[1] >= 500   # a readable screenshot
    shots = {Path(u).stem for u in cm["EXTENSION_SCREENSHOTURLS"].split()}
    assert shots == {"CalcinosisQuant", "SpineCalcMap"}
