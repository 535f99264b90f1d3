"""Human titles for column and parameter names, for the reports.

``hand_xr_total_area_mm2`` reads "Hand XR: total area (mm²)"; the column name stays one
hover away in the report (``<abbr title=...>``) and is the header of the CSV.  A column's
own ``title`` in its schema wins when it differs from its name.
"""

from __future__ import annotations

import json

from calcinosis.core.tables import Column

#: Prefixes of the cohort tables' columns and what they read as
PREFIXES = (("hand_xr_", "Hand XR"), ("hand_ct_", "Hand CT"), ("hand_mri_", "Hand MRI"), ("spine_", "Spine"),
            ("measure_ct_", "CT"), ("measure_mri_", "MRI"), ("measure_xr_", "XR"), ("measure_", "Measure"))
#: Unit suffixes of names and how a reader writes them
UNIT_SUFFIXES = (("_mm3", "mm³"), ("_mm2", "mm²"), ("_mm", "mm"), ("_hu", "HU"), ("_s", "s"), ("_pct", "%"),
                 ("_percent", "%"), ("_years", "years"), ("_utc", "UTC"))
UNIT_TEXT = {"mm3": "mm³", "mm2": "mm²", "mm": "mm", "HU": "HU", "%": "%", "s": "s"}
#: Words written otherwise than in lower case
WORDS = {"id": "ID", "r": "R", "a": "A", "s": "S", "i": "I", "j": "J", "k": "K", "ct": "CT", "mri": "MRI", "mr": "MR",
         "xr": "XR", "dip": "DIP", "pip": "PIP", "mcp": "MCP", "cmc": "CMC", "ip": "IP", "icc": "ICC", "sd": "SD",
         "ras": "RAS", "lps": "LPS", "hu": "HU", "n": "n", "bbox": "bounding box", "loa": "limit of agreement",
         "ci": "CI", "p": "P", "df": "df", "utc": "UTC", "dicom": "DICOM", "roi": "ROI", "seg": "segmentation",
         "min": "minimum", "max": "maximum", "pah": "PAH", "lcssc": "lcSSc", "dcssc": "dcSSc", "ssc": "SSc",
         "tap": "TAP", "nrrd": "NRRD"}


def _words(stem: str, capital: bool = True) -> str:
    """``total_area`` -> 'Total area' (or 'total area'); words of :data:`WORDS` as written there."""
    words = [w for w in stem.split("_") if w]
    if not words:
        return ""
    parts = [WORDS.get(w.lower(), w) for w in words]
    if words[0].lower() not in WORDS or parts[0].islower():       # an acronym keeps its capitals
        parts[0] = (parts[0][:1].upper() if capital else parts[0][:1].lower()) + parts[0][1:]
    return " ".join(parts)


def human_title(name: str, unit: str = "", title: str = "") -> str:
    """The title a reader sees for column ``name`` (unit in brackets)."""
    if title and title != name:
        return title
    stem, found_unit = name, ""
    for suffix, u in UNIT_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem, found_unit = stem[:-len(suffix)], u
            break
    unit_text = UNIT_TEXT.get(unit, unit) or found_unit
    head = ""
    for prefix, label in PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            stem, head = stem[len(prefix):], label
            break
    words = f"{head}: {_words(stem, capital=False)}" if head else _words(stem)
    return f"{words} ({unit_text})" if unit_text else words


def column_title(column: Column) -> str:
    return human_title(column.name, column.unit, column.title)


def column_tip(column: Column) -> str:
    """What the hover shows: the column name as in the CSV, and its description."""
    return f"{column.name}: {column.description}" if column.description else column.name


def value_text(value) -> str:
    """A parameter value as a reader reads it: yes/no, lists joined, '—' for none."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{human_title(str(k))}: {value_text(v)}" for k, v in value.items())
    if isinstance(value, str):
        return value
    return json.dumps(value)


__all__ = ["human_title", "column_title", "column_tip", "value_text"]
