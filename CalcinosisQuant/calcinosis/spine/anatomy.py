"""Names the spine map uses everywhere: vertebrae, disco-vertebral levels, segments,
sub-sites and patterns (study 2, Bauer et al. 2020).

* Vertebrae are named ``C1``…``C7``, ``T1``…``T12`` (``T13`` transitional), ``L1``…``L5``
  (``L6`` transitional), ``S1``.  Each has an *order number* along the spine (C1 = 1 …
  S1 = 25; transitional vertebrae get half steps) so "adjacent" and "cranial of" are
  arithmetic.
* A disco-vertebral **level** is the unit between two adjacent vertebrae, written
  ``C7-T1``, ``T1-T2`` … ``T12-L1``, ``L1-L2`` … ``L5-S1``.  The map reports the 18 levels
  C7-T1 … L5-S1 (the study's chest, thoraco-abdomino-pelvic and lumbar coverage).
* Three **segments**, nine **sub-sites** (each sub-site belongs to one segment: the
  study's eight and the facet joint, posterior, which the study shows but whose scoring
  names no sub-site for it) and three **patterns**.
"""

from __future__ import annotations

import re

CERVICAL = [f"C{n}" for n in range(1, 8)]
THORACIC = [f"T{n}" for n in range(1, 13)]
LUMBAR = [f"L{n}" for n in range(1, 6)]
#: The regular vertebrae in cranio-caudal order (index + 1 = order number).
VERTEBRAE = CERVICAL + THORACIC + LUMBAR + ["S1"]
#: Transitional vertebrae (VerSe labels them): not part of any reported level.
TRANSITIONAL = {"T13": 19.5, "L6": 24.5}

#: The levels the map reports, cranial to caudal.
LEVEL_VERTEBRAE = VERTEBRAE[VERTEBRAE.index("C7"):]
LEVELS = [f"{a}-{b}" for a, b in zip(LEVEL_VERTEBRAE[:-1], LEVEL_VERTEBRAE[1:])]

SEGMENTS = ("anterior", "intracanal", "posterior")
SUBSITES = ("anterior_longitudinal_ligament", "intervertebral_disc", "posterior_longitudinal_ligament",
            "intracanal", "foraminal", "costotransverse", "interspinous", "transverse_process", "facet_joint")
SUBSITE_SEGMENT = {
    "anterior_longitudinal_ligament": "anterior",
    "intervertebral_disc": "anterior",
    "posterior_longitudinal_ligament": "anterior",
    "intracanal": "intracanal",
    "foraminal": "intracanal",
    "costotransverse": "posterior",
    "interspinous": "posterior",
    "transverse_process": "posterior",
    "facet_joint": "posterior",
}
PATTERNS = ("linear", "punctate", "pseudotumoral")
#: Short sub-site names for narrow lists (the review table of the panel); the full name is
#: the column value in every table.
SUBSITE_SHORT = {
    "anterior_longitudinal_ligament": "ALL", "intervertebral_disc": "disc", "posterior_longitudinal_ligament": "PLL",
    "intracanal": "intracanal", "foraminal": "foraminal", "costotransverse": "costotransv.",
    "interspinous": "interspinous", "transverse_process": "transv. proc.", "facet_joint": "facet",
}

#: Colours (RGB 0-1) of the segments in segmentations and charts; sub-sites are shades.
SEGMENT_COLORS = {
    "anterior": (0.90, 0.33, 0.20),
    "intracanal": (0.20, 0.45, 0.90),
    "posterior": (0.25, 0.70, 0.30),
}
SUBSITE_SHADE = {
    "anterior_longitudinal_ligament": 1.0, "intervertebral_disc": 0.78, "posterior_longitudinal_ligament": 0.6,
    "intracanal": 1.0, "foraminal": 0.7,
    "costotransverse": 1.0, "interspinous": 0.78, "transverse_process": 0.6, "facet_joint": 0.45,
}


def order_number(name: str) -> float:
    """C1 -> 1 … C7 -> 7, T1 -> 8 … T12 -> 19, L1 -> 20 … L5 -> 24, S1 -> 25;
    T13 -> 19.5, L6 -> 24.5.  KeyError for an unknown name."""
    if name in TRANSITIONAL:
        return TRANSITIONAL[name]
    return float(VERTEBRAE.index(name) + 1)


def is_thoracic(name: str) -> bool:
    return name.startswith("T")


def level_name(upper: str, lower: str) -> str:
    return f"{upper}-{lower}"


def level_vertebrae(level: str) -> tuple[str, str]:
    """'T8-T9' -> ('T8', 'T9').  InputError-free: ValueError for a malformed name."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}")
    a, b = level.split("-")
    return a, b


def subsite_color(subsite: str) -> tuple[float, float, float]:
    base = SEGMENT_COLORS[SUBSITE_SEGMENT[subsite]]
    s = SUBSITE_SHADE[subsite]
    return tuple(float(min(1.0, c * s + (1 - s) * 0.15)) for c in base)  # type: ignore[return-value]


_VERT_WORDS = re.compile(r"\b(vertebrae|vertebra|vertebral|body|bodies)\b")
_DISC_WORDS = re.compile(r"\b(intervertebral|discs|disc|disks|disk)\b")
_ONE = r"([ctls])\s*0?(\d{1,2})"


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[_\-/,.:;()]+", " ", str(text).strip().lower()).split())


def parse_vertebra_name(text: str) -> str | None:
    """A vertebra name from a segment or point label: 'vertebrae_T8', 'T8', 't 8',
    'T8 Vertebra' (Slicer's TotalSegmentator names), 'Vertebra L01', 'sacrum' (-> S1).
    None when the text names no vertebra (or names a disc)."""
    t = _normal(text)
    if t in ("sacrum", "s"):
        return "S1"
    if _DISC_WORDS.search(t):
        return None
    t = " ".join(_VERT_WORDS.sub(" ", t).split())
    m = re.fullmatch(_ONE, t)
    if not m:
        return None
    name = f"{m.group(1).upper()}{int(m.group(2))}"
    return name if (name in VERTEBRAE or name in TRANSITIONAL) else None


def parse_disc_name(text: str) -> str | None:
    """A level from a disc segment name: 'disc_T8_T9', 'T8-T9', 'T8-T9 intervertebral disc',
    'intervertebral disc L5-S1'."""
    t = " ".join(_DISC_WORDS.sub(" ", _normal(text)).split())
    m = re.fullmatch(_ONE + r"\s*" + _ONE, t)
    if not m:
        return None
    name = f"{m.group(1).upper()}{int(m.group(2))}-{m.group(3).upper()}{int(m.group(4))}"
    return name if name in LEVELS else None
