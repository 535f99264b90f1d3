"""The provenance record written beside every result (``provenance.json``).

It says where every number came from: pseudonymous input identifiers (hashes, never
patient name, ID or birth date, and no file paths unless asked for, since paths often
carry names), every parameter, the spacing source, warnings, software versions, time,
and the list of files written.
"""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from typing import Any

from calcinosis import __version__

SOFTWARE_NAME = "SlicerCalcinosis"


def software_versions() -> dict[str, str]:
    versions = {"SlicerCalcinosis": __version__, "python": platform.python_version()}
    for mod in ("numpy", "scipy", "SimpleITK", "pydicom"):
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = __import__(mod)
            except ImportError:
                continue
        versions[mod] = str(getattr(m, "__version__", "?"))
    return versions


def describe_volume(volume, path: str | None = None, record_paths: bool = False) -> dict[str, Any]:
    """What provenance keeps of an input image (no identifying DICOM fields)."""
    m = volume.meta
    d: dict[str, Any] = {
        "input_id": m.get("input_id"),
        "format": m.get("source_format"),
        "modality": m.get("modality"),
        "intensity_unit": volume.intensity_unit,
        "spacing_source": m.get("spacing_source"),
        "geometry": volume.geometry.to_dict(),
    }
    if m.get("magnification_source"):
        d["magnification"] = m.get("magnification")
        d["magnification_source"] = m["magnification_source"]
    if m.get("laterality"):
        d["laterality"] = m["laterality"]
    if m.get("dicom"):
        d["dicom"] = m["dicom"]
    from .protocol import protocol_of
    d["protocol"] = protocol_of(d)
    if record_paths and path is not None:
        d["path"] = str(path)
    return d


def build_record(command: str, inputs: dict[str, Any], parameters: dict[str, Any], results: dict[str, Any],
                 warnings: list[str] | None = None, outputs: list[str] | None = None,
                 case_id: str | None = None) -> dict[str, Any]:
    return {
        "software": SOFTWARE_NAME,
        "versions": software_versions(),
        "command": command,
        "case_id": case_id,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "coordinate_system": "RAS (Slicer), millimetres",
        "inputs": inputs,
        "parameters": parameters,
        "results": results,
        "warnings": list(warnings or []),
        "outputs": list(outputs or []),
    }


def redact_paths(texts: list[str], paths: dict[str, Any]) -> list[str]:
    """``texts`` (warnings, reasons) with every input path replaced by ``<its role>``: the
    path as given, normalised and absolute, and its file name when that is distinctive (it
    often carries a patient's name; a bare ``ct`` is left alone: it is also a word).
    ``paths``: role -> path (None skipped).  Used unless ``--record-paths``."""
    import os
    import re

    whole: list[tuple[str, str]] = []
    names: list[tuple[str, str]] = []
    for role, path in paths.items():
        if not path:
            continue
        text = str(path)
        for form in {text, os.path.normpath(text), os.path.abspath(text)}:
            whole.append((form, f"<{role}>"))
        base = os.path.basename(os.path.normpath(text))
        if base and (len(base) >= 8 or re.search(r"[._\d]", base)):
            names.append((base, f"<{role}>"))
    whole.sort(key=lambda s: len(s[0]), reverse=True)     # the longest form first
    out = []
    for line in texts:
        for form, role in whole:
            line = line.replace(form, role)
        for base, role in names:
            line = re.sub(r"(?<![\w.-])" + re.escape(base) + r"(?![\w-])", role, line)
        out.append(line)
    return out
