"""The per-case summary files the cohort tools read (the shared table contract).

``calcinosis hand`` and ``calcinosis spine`` (and the Slicer modules' *Export*) write
these files in each case folder; the names below are the only thing the cohort code
assumes about them.  The anatomy (sides, digits, zones, levels, segments, sub-sites,
patterns) is the hand and spine pipelines' own; the column lists are checked against the
tables those pipelines write (``Testing/cohort/test_contract.py``).
"""

from __future__ import annotations

from calcinosis import tasks
from calcinosis.hand import anatomy as hand_anatomy
from calcinosis.spine import anatomy as spine_anatomy

# ---------------------------------------------------------------------- hand
HAND_SIDES = hand_anatomy.SIDE_VALUES
HAND_DIGITS = hand_anatomy.DIGIT_VALUES
HAND_ZONES = hand_anatomy.ZONES
HAND_KINDS = hand_anatomy.KINDS

HAND_COLUMNS = (
    "side", "modality", "lesion_count", "total_area_mm2", "total_volume_mm3", "largest_area_mm2",
    "largest_volume_mm3", "total_projected_area_mm2", "n_subcutaneous", "n_periarticular",
    "zone_distal_phalanx_count", "zone_dip_count", "zone_pip_count", "zone_mcp_count", "zone_wrist_count",
    "zone_other_count", "digits_affected",
)
DIGIT_COLUMNS = (
    "side", "digit", "modality", "lesion_count", "total_area_mm2", "largest_area_mm2", "total_volume_mm3",
    "largest_volume_mm3", "total_projected_area_mm2",
)
HAND_LESION_EXTRA = ("side", "digit", "zone", "kind")

# ---------------------------------------------------------------------- spine
SEGMENTS = tuple(spine_anatomy.SEGMENTS)
SUBSITES = tuple(spine_anatomy.SUBSITES)
SUBSITE_SEGMENT = dict(spine_anatomy.SUBSITE_SEGMENT)
PATTERNS = tuple(spine_anatomy.PATTERNS)
LEVELS = tuple(spine_anatomy.LEVELS)
LEVEL_STATUS = ("assessed", "not_assessed")

# NOTE: the contract's segment "intracanal" and sub-site "intracanal" give the same column
# names (count_intracanal, any_intracanal).  Such a column is read as the *segment* (listed
# first in the contract): intracanal proper + foraminal.  The duplicates are dropped here.
LEVEL_COLUMNS = tuple(dict.fromkeys(("level", "status", "count_total") + tuple(f"count_{s}" for s in SEGMENTS)
                                    + tuple(f"count_{s}" for s in SUBSITES)))
SPINE_PATIENT_COLUMNS = tuple(dict.fromkeys(
    ("coverage", "levels_assessed", "first_level_assessed", "last_level_assessed", "calcification_count",
     "any_calcification", "any_anterior", "any_intracanal", "any_posterior", "any_all_three_segments",
     "count_anterior", "count_intracanal", "count_posterior")
    + tuple(f"any_{s}" for s in SUBSITES) + tuple(f"count_{s}" for s in SUBSITES)
    + tuple(f"count_{p}" for p in PATTERNS)
))
#: Sub-sites whose column names are the same as a segment's (read as the segment).
SUBSITES_SHADOWED = tuple(s for s in SUBSITES if s in SEGMENTS)
SPINE_LESION_EXTRA = ("level", "segment", "subsite", "pattern")

#: Which file of a case folder proves the task ran, per task.
TASK_SUMMARY_FILE = {name: tasks.summary_file(name) for name in tasks.TASKS}   # the file the join reads
TASKS = ("hand", "spine", "measure")

#: Modality names used in cohort column names (``hand_ct_lesion_count`` ...).
MODALITY_KEYS = ("xr", "ct", "mri")
_MODALITY_ALIASES = {"xr": "xr", "cr": "xr", "dx": "xr", "dr": "xr", "rg": "xr", "px": "xr", "radiograph": "xr",
                     "ct": "ct", "mr": "mri", "mri": "mri"}


def modality_key(value) -> str | None:
    """'XR'/'CR'/'DX' -> 'xr', 'CT' -> 'ct', 'MR'/'MRI' -> 'mri'; unknown -> None."""
    if value is None:
        return None
    return _MODALITY_ALIASES.get(str(value).strip().lower())


def level_index(level: str) -> int:
    """Position of a level in cranio-caudal order (unknown levels sort last)."""
    try:
        return LEVELS.index(level)
    except ValueError:
        return len(LEVELS)
