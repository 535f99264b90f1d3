"""Hand vocabulary: sides, digits, landmark points, zones, kinds, and landmark labels.

Landmark labels follow ``{L|R}_{digit}_{point}``:

* digits ``thumb, index, middle, ring, little``;
* thumb points ``CMC, MCP, IP, tip``; finger points ``MCP, PIP, DIP, tip`` (and optionally
  ``CMC``, the base of the finger's ray, estimated when not placed);
* ``tip`` is the end of the distal phalanx (the tuft), the joints are placed at the
  centre of the joint space.

Reading is tolerant: case is ignored; ``_``, ``-``, ``.`` and spaces all separate; a few
spellings readers use are accepted (``Right``/``Left``, ``pinky``/``small``/``fifth`` for
little, ``D1``..``D5``; see the alias tables).  Anything else is an error that names the
label, because a misspelt point silently dropped would leave lesions of that digit
unassigned or in the wrong zone without anyone noticing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from calcinosis.core.errors import InputError

SIDES = ("R", "L")
#: side values in tables ("unknown" when neither landmarks nor DICOM laterality say)
SIDE_VALUES = ("L", "R", "unknown")
DIGITS = ("thumb", "index", "middle", "ring", "little")
#: digit values in tables
DIGIT_VALUES = DIGITS + ("unassigned",)
THUMB_POINTS = ("CMC", "MCP", "IP", "tip")
FINGER_POINTS = ("MCP", "PIP", "DIP", "tip")
ZONES = ("distal_phalanx", "DIP", "PIP", "MCP", "wrist", "other")
KINDS = ("periarticular", "subcutaneous")
MODALITIES = ("XR", "CT", "MR")

SIDE_ALIASES = {"r": "R", "right": "R", "rt": "R", "l": "L", "left": "L", "lt": "L"}
DIGIT_ALIASES = {
    "thumb": "thumb", "pollex": "thumb", "d1": "thumb", "1": "thumb", "first": "thumb",
    "index": "index", "d2": "index", "2": "index", "second": "index",
    "middle": "middle", "long": "middle", "d3": "middle", "3": "middle", "third": "middle",
    "ring": "ring", "d4": "ring", "4": "ring", "fourth": "ring",
    "little": "little", "pinky": "little", "pinkie": "little", "small": "little", "d5": "little",
    "5": "little", "fifth": "little",
}
#: accepted point spellings (upper-cased key) -> canonical point
POINT_ALIASES = {"CMC": "CMC", "MCP": "MCP", "PIP": "PIP", "DIP": "DIP", "IP": "IP",
                 "TIP": "tip", "FINGERTIP": "tip", "TUFT": "tip"}


#: points a reader may also place on a finger (not in the template): its carpometacarpal
#: joint, the base of its ray (otherwise estimated from the MCP and PIP)
OPTIONAL_FINGER_POINTS = ("CMC",)


def accepted_points(digit: str) -> tuple[str, ...]:
    """Every point a label may name on a digit (the template's and the optional ones)."""
    return digit_points(digit) if digit == "thumb" else OPTIONAL_FINGER_POINTS + digit_points(digit)


def digit_points(digit: str) -> tuple[str, ...]:
    """Landmark points of a digit, proximal to distal."""
    return THUMB_POINTS if digit == "thumb" else FINGER_POINTS


def joint_points(digit: str) -> tuple[str, ...]:
    """Joints of a digit (every point but the tip), proximal to distal."""
    return digit_points(digit)[:-1]


def format_label(side: str, digit: str, point: str) -> str:
    return f"{side}_{digit}_{point}"


def expected_landmark_labels(sides: str | tuple[str, ...] | list[str] = ("R", "L")) -> list[str]:
    """Every landmark label, in placement order (per side: thumb CMC..tip, index MCP..tip, ...).

    ``sides`` is ``"R"``, ``"L"``, ``"both"`` or a sequence of them.  This is the list the
    Slicer panel's *Create and place* button puts in an unplaced point list."""
    if isinstance(sides, str):
        sides = SIDES if sides.lower() in ("both", "all", "") else (sides,)
    out = []
    for s in sides:
        side = SIDE_ALIASES.get(str(s).strip().lower())
        if side is None:
            raise InputError(f"side {s!r}: expected R, L or both")
        for d in DIGITS:
            for p in digit_points(d):
                out.append(format_label(side, d, p))
    return out


@dataclass(frozen=True)
class LandmarkKey:
    side: str
    digit: str
    point: str

    @property
    def label(self) -> str:
        return format_label(self.side, self.digit, self.point)


_SPLIT = re.compile(r"[\s_\-.:/]+")


def parse_landmark_label(text: str, where: str = "") -> LandmarkKey:
    """``'r-Index pip'`` -> ``LandmarkKey('R', 'index', 'PIP')``; an unknown label is an
    :class:`InputError` that names it (``where`` says which file/row)."""
    raw = str(text)
    parts = [p for p in _SPLIT.split(raw.strip()) if p]
    prefix = f"{where}: " if where else ""
    example = "e.g. R_index_PIP or L_thumb_IP"
    if len(parts) != 3:
        raise InputError(f"{prefix}landmark label {raw!r} is not a hand landmark: expected "
                         f"{{L|R}}_{{thumb|index|middle|ring|little}}_{{point}}, {example}")
    s, d, p = parts
    side = SIDE_ALIASES.get(s.lower())
    digit = DIGIT_ALIASES.get(d.lower())
    point = POINT_ALIASES.get(p.upper())
    if side is None:
        raise InputError(f"{prefix}landmark label {raw!r}: side {s!r} is not L or R ({example})")
    if digit is None:
        raise InputError(f"{prefix}landmark label {raw!r}: digit {d!r} is not one of {', '.join(DIGITS)}")
    if point is None or point not in accepted_points(digit):
        valid = ", ".join(accepted_points(digit))
        raise InputError(f"{prefix}landmark label {raw!r}: point {p!r} does not exist on the {digit} "
                         f"(its points are {valid})")
    return LandmarkKey(side, digit, point)
