"""Segment terminology: each lesion coded as a calcification in its anatomic region.

Slicer stores a segment's terminology in its ``TerminologyEntry`` tag (``.seg.nrrd`` header
``Segment<N>_Tags``): seven ``~``-separated parts - category-and-type context name, category,
type, type modifier, anatomic context name, anatomic region, region modifier - each coded part
``scheme^value^meaning`` (``^^`` when empty), the tags ``|``-terminated.

Codes (SNOMED CT, scheme ``SCT``):

* category *Morphologically Altered Structure* 49755003 (Slicer's segmentation category lists);
  type *Pathologic calcification* 18115005 (the DICOM standard's code, as pydicom's code
  dictionary has it; Slicer's lists have no calcification type, so Slicer shows it as a code
  outside its list);
* regions as Slicer's "Anatomic codes - DICOM master list" has them: Hand 85562004, Thumb
  76505004, Finger 7569003 (the list has no index ... little finger: the digit is in the
  segment's name), Wrist joint 74670003, with laterality Right 24028007 / Left 7771000; Spine
  421060004, Cervical 122494005, Thoracic 122495006, Lumbar spine 122496007, Cervico-thoracic
  297171002, Thoraco-lumbar 297172009, Lumbo-sacral spine 297173004 (a disco-vertebral level
  is coded by the part of the spine it lies in).
"""

from __future__ import annotations

CATEGORY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
MORPHOLOGICALLY_ALTERED = ("SCT", "49755003", "Morphologically Altered Structure")
CALCIFICATION = ("SCT", "18115005", "Pathologic calcification")

HAND = ("SCT", "85562004", "Hand")
THUMB = ("SCT", "76505004", "Thumb")
FINGER = ("SCT", "7569003", "Finger")
WRIST_JOINT = ("SCT", "74670003", "Wrist joint")
RIGHT = ("SCT", "24028007", "Right")
LEFT = ("SCT", "7771000", "Left")

SPINE = ("SCT", "421060004", "Spine")
CERVICAL_SPINE = ("SCT", "122494005", "Cervical spine")
THORACIC_SPINE = ("SCT", "122495006", "Thoracic spine")
LUMBAR_SPINE = ("SCT", "122496007", "Lumbar spine")
CERVICO_THORACIC_SPINE = ("SCT", "297171002", "Cervico-thoracic spine")
THORACO_LUMBAR_SPINE = ("SCT", "297172009", "Thoraco-lumbar spine")
LUMBO_SACRAL_SPINE = ("SCT", "297173004", "Lumbo-sacral spine")

TAG_NAME = "TerminologyEntry"
EMPTY = ("", "", "")


def _code(c: tuple[str, str, str]) -> str:
    return "^".join(c)


def terminology_entry(region: tuple[str, str, str] | None = None,
                      modifier: tuple[str, str, str] | None = None) -> str:
    """The ``TerminologyEntry`` value of a calcification in ``region`` (``modifier``: laterality)."""
    return "~".join([CATEGORY_CONTEXT, _code(MORPHOLOGICALLY_ALTERED), _code(CALCIFICATION), _code(EMPTY),
                     ANATOMIC_CONTEXT, _code(region or EMPTY), _code((modifier or EMPTY) if region else EMPTY)])


def segment_tags(entry: str) -> str:
    """The ``Segment<N>_Tags`` value carrying terminology ``entry`` (as Slicer writes it:
    ``key:value|``)."""
    return f"{TAG_NAME}:{entry}|"


def hand_region(side: str | None, digit: str | None, zone: str | None):
    """(region, laterality) of a hand lesion at ``side``/``digit``/``zone``."""
    lat = {"R": RIGHT, "L": LEFT}.get(side or "")
    if zone == "wrist":
        return WRIST_JOINT, lat
    if digit == "thumb":
        return THUMB, lat
    if digit in ("index", "middle", "ring", "little"):
        return FINGER, lat
    return HAND, lat


def spine_region(level: str | None):
    """(region, None) of a calcification at disco-vertebral ``level`` (``T8-T9``)."""
    if not level or "-" not in level:
        return SPINE, None
    upper, lower = (p[:1] for p in level.split("-", 1))
    region = {("C", "C"): CERVICAL_SPINE, ("C", "T"): CERVICO_THORACIC_SPINE, ("T", "T"): THORACIC_SPINE,
              ("T", "L"): THORACO_LUMBAR_SPINE, ("L", "L"): LUMBAR_SPINE, ("L", "S"): LUMBO_SACRAL_SPINE}
    return region.get((upper, lower), SPINE), None


def spine_level_region(level: str | None):
    """(region, None) of a calcification at disco-vertebral ``level`` for DICOM SEG and SR:
    the level itself - SNOMED CT "Level of T8/T9 intervertebral disc" (243915003), as the
    DICOM standard's code dictionary (pydicom's) has it for C7/T1 ... L5/S1 - or, for a
    level it has no code for, the part of the spine (:func:`spine_region`)."""
    if level and "-" in level:
        try:
            from pydicom.sr.codedict import codes
            c = getattr(codes.SCT, "LevelOf" + level.replace("-", "") + "IntervertebralDisc")
            return ("SCT", str(c.value), str(c.meaning)), None
        except (ImportError, AttributeError):
            pass
    return spine_region(level)


def parse_terminology(tags: str) -> dict | None:
    """The coded parts of the ``TerminologyEntry`` in a ``Segment<N>_Tags`` value, or None."""
    for tag in tags.split("|"):
        key, _, value = tag.partition(":")
        if key == TAG_NAME:
            parts = value.split("~")
            if len(parts) != 7:
                return None
            names = ("category_context", "category", "type", "type_modifier", "anatomic_context", "region",
                     "region_modifier")
            return {n: (tuple(p.split("^")) if "^" in p else p) for n, p in zip(names, parts)}
    return None


__all__ = ["terminology_entry", "segment_tags", "hand_region", "spine_region", "parse_terminology"]
