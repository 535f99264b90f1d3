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
    if m.get("laterality"):
        d["laterality"] = m["laterality"]
    if m.get("dicom"):
        d["dicom"] = m["dicom"]
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
