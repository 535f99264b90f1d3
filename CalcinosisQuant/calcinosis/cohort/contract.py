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

HAND_COLUMNS = tasks.get("hand").HAND_COLUMNS        # what the hand task promises in hand.csv
DIGIT_COLUMNS = tasks.get("hand").DIGIT_COLUMNS      # ... and in digits.csv
HAND_LESION_EXTRA = ("side", "digit", "zone", "kind")

# ---------------------------------------------------------------------- spine
SEGMENTS = tuple(spine_anatomy.SEGMENTS)
SUBSITES = tuple(spine_anatomy.SUBSITES)
SUBSITE_SEGMENT = dict(spine_anatomy.SUBSITE_SEGMENT)
PATTERNS = tuple(spine_anatomy.PATTERNS)
LEVELS = tuple(spine_anatomy.LEVELS)
LEVEL_STATUS = ("assessed", "not_assessed")

LEVEL_COLUMNS = tasks.get("spine").LEVEL_COLUMNS            # what the spine task promises in levels.csv
SPINE_PATIENT_COLUMNS = tasks.get("spine").PATIENT_COLUMNS  # ... and in patient.csv
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
