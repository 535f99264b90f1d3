"""Label conventions of vertebra label maps, and how the map tells them apart.

Three conventions are known (values from the tools' own documentation):

* ``totalsegmentator`` - TotalSegmentator (v2) task ``total``: 117 classes, among them
  25 sacrum, 26 vertebrae_S1, 27-31 L5…L1, 32-43 T12…T1, 44-50 C7…C1, 52 aorta,
  79 spinal_cord, ribs 92-115, and other organs, vessels, bones and muscles;
* ``totalspineseg`` - TotalSpineSeg: 1 spinal cord, 2 spinal canal (CSF), vertebrae
  C1-C7 = 11-17, T1-T12 = 21-32, L1-L5 = 41-45, sacrum 50, and the intervertebral discs
  (63-67 C2-C3…C6-C7, 71 C7-T1, 72-82 T1-T2…T11-T12, 91 T12-L1, 92-95 L1-L2…L4-L5,
  100 L5-S);
* ``verse`` - VerSe: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 sacrum, 27 coccyx, 28 T13;
* ``spineps`` - SPINEPS instance masks: VerSe's numbers, the discs as 100 + the vertebra
  above (119 = T12-L1) and the end plates facing a disc as 200 + that vertebra (bone);
  detected only when a disc or end-plate value is present (else it is VerSe);
* ``totalsegmentator_v1`` - TotalSegmentator before version 2 (104 classes: 18-41
  vertebrae L5…C1, 7 aorta, 51-52 iliac arteries, 58-81 ribs, 92 sacrum), still found in
  archives: read with the same numbers it would silently map to the wrong vertebrae.

:func:`detect_convention` picks one from the label values and where they lie:
a convention must know every value in the map; among those that do, the one whose
vertebrae (and discs) are best stacked in anatomical order wins (cranial structures
higher in S, checked on the physical positions), then the one that reads more of the
values as vertebrae, then the one whose vertebra spacing fits adult anatomy better; a
tie that none of these settles is an error asking for ``--convention``.  Unknown values are an error that names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calcinosis.core import parallel
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import AXIS_S, Geometry

from .anatomy import VERTEBRAE, order_number
from .params import CONVENTIONS  # noqa: F401 (the names live with the parameters; the tables are here)


class ConventionError(InputError):
    """A label map whose values do not fit the (given or any) convention."""


# ---------------------------------------------------------------------- the tables
_TS_NAMES = {
    1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "stomach",
    7: "pancreas", 8: "adrenal_gland_right", 9: "adrenal_gland_left", 10: "lung_upper_lobe_left",
    11: "lung_lower_lobe_left", 12: "lung_upper_lobe_right", 13: "lung_middle_lobe_right",
    14: "lung_lower_lobe_right", 15: "esophagus", 16: "trachea", 17: "thyroid_gland", 18: "small_bowel",
    19: "duodenum", 20: "colon", 21: "urinary_bladder", 22: "prostate", 23: "kidney_cyst_left",
    24: "kidney_cyst_right", 25: "sacrum", 51: "heart", 52: "aorta", 53: "pulmonary_vein",
    54: "brachiocephalic_trunk", 55: "subclavian_artery_right", 56: "subclavian_artery_left",
    57: "common_carotid_artery_right", 58: "common_carotid_artery_left", 59: "brachiocephalic_vein_left",
    60: "brachiocephalic_vein_right", 61: "atrial_appendage_left", 62: "superior_vena_cava",
    63: "inferior_vena_cava", 64: "portal_vein_and_splenic_vein", 65: "iliac_artery_left",
    66: "iliac_artery_right", 67: "iliac_vena_left", 68: "iliac_vena_right", 69: "humerus_left",
    70: "humerus_right", 71: "scapula_left", 72: "scapula_right", 73: "clavicula_left", 74: "clavicula_right",
    75: "femur_left", 76: "femur_right", 77: "hip_left", 78: "hip_right", 79: "spinal_cord",
    80: "gluteus_maximus_left", 81: "gluteus_maximus_right", 82: "gluteus_medius_left",
    83: "gluteus_medius_right", 84: "gluteus_minimus_left", 85: "gluteus_minimus_right",
    86: "autochthon_left", 87: "autochthon_right", 88: "iliopsoas_left", 89: "iliopsoas_right", 90: "brain",
    91: "skull", 116: "sternum", 117: "costal_cartilages",
}
_TS_NAMES[26] = "S1"
for _n, _v in enumerate(range(27, 32)):
    _TS_NAMES[_v] = f"L{5 - _n}"
for _n, _v in enumerate(range(32, 44)):
    _TS_NAMES[_v] = f"T{12 - _n}"
for _n, _v in enumerate(range(44, 51)):
    _TS_NAMES[_v] = f"C{7 - _n}"
for _n in range(12):
    _TS_NAMES[92 + _n] = f"rib_left_{_n + 1}"
    _TS_NAMES[104 + _n] = f"rib_right_{_n + 1}"

_TSS_NAMES = {1: "spinal_cord", 2: "spinal_canal", 50: "sacrum"}
for _n in range(7):
    _TSS_NAMES[11 + _n] = f"C{_n + 1}"
for _n in range(12):
    _TSS_NAMES[21 + _n] = f"T{_n + 1}"
for _n in range(5):
    _TSS_NAMES[41 + _n] = f"L{_n + 1}"
for _n, _lv in enumerate(["C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7"]):
    _TSS_NAMES[63 + _n] = f"disc:{_lv}"
_TSS_NAMES[71] = "disc:C7-T1"
for _n in range(11):
    _TSS_NAMES[72 + _n] = f"disc:T{_n + 1}-T{_n + 2}"
_TSS_NAMES[91] = "disc:T12-L1"
for _n in range(4):
    _TSS_NAMES[92 + _n] = f"disc:L{_n + 1}-L{_n + 2}"
_TSS_NAMES[100] = "disc:L5-S1"

_VERSE_NAMES = {26: "sacrum", 27: "coccyx", 28: "T13"}
for _n in range(7):
    _VERSE_NAMES[1 + _n] = f"C{_n + 1}"
for _n in range(12):
    _VERSE_NAMES[8 + _n] = f"T{_n + 1}"
for _n in range(6):
    _VERSE_NAMES[20 + _n] = f"L{_n + 1}"

# SPINEPS instance masks (``*_seg-vert_msk``): VerSe's vertebra numbers (S2-S6 29-33, the
# sacrum written as 26), intervertebral discs 100 + the vertebra above, end plates 200 + the
# vertebra above (both end plates facing that disc: bone, not either vertebra)
_SPINEPS_NAMES = dict(_VERSE_NAMES)
_SPINEPS_NAMES.update({29 + _n: "sacrum" for _n in range(5)})
_NEXT = {"C7": "T1", "T12": "L1", "T13": "L1", "L5": "S1", "L6": "S1"}
for _v, _name in list(_VERSE_NAMES.items()):
    if _name in ("sacrum", "coccyx"):
        continue
    _below = _NEXT.get(_name) or f"{_name[0]}{int(_name[1:]) + 1}"
    if _name == "T12":
        _below = "L1"
    _SPINEPS_NAMES[100 + _v] = f"disc:{_name}-{_below}"
    _SPINEPS_NAMES[200 + _v] = f"endplate:{_name}-{_below}"
_SPINEPS_NAMES[126] = "disc:S1-S2"
_SPINEPS_NAMES[226] = "endplate:S1-S2"

# TotalSegmentator before version 2 (task total, 104 classes): still found in archives
_TS1_NAMES = {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "stomach",
              7: "aorta", 8: "inferior_vena_cava", 9: "portal_vein_and_splenic_vein", 10: "pancreas",
              11: "adrenal_gland_right", 12: "adrenal_gland_left", 13: "lung_upper_lobe_left",
              14: "lung_lower_lobe_left", 15: "lung_upper_lobe_right", 16: "lung_middle_lobe_right",
              17: "lung_lower_lobe_right", 42: "esophagus", 43: "trachea", 44: "heart_myocardium",
              45: "heart_atrium_left", 46: "heart_ventricle_left", 47: "heart_atrium_right",
              48: "heart_ventricle_right", 49: "pulmonary_artery", 50: "brain", 51: "iliac_artery_left",
              52: "iliac_artery_right", 53: "iliac_vena_left", 54: "iliac_vena_right", 55: "small_bowel",
              56: "duodenum", 57: "colon", 82: "humerus_left", 83: "humerus_right", 84: "scapula_left",
              85: "scapula_right", 86: "clavicula_left", 87: "clavicula_right", 88: "femur_left", 89: "femur_right",
              90: "hip_left", 91: "hip_right", 92: "sacrum", 93: "face", 94: "gluteus_maximus_left",
              95: "gluteus_maximus_right", 96: "gluteus_medius_left", 97: "gluteus_medius_right",
              98: "gluteus_minimus_left", 99: "gluteus_minimus_right", 100: "autochthon_left",
              101: "autochthon_right", 102: "iliopsoas_left", 103: "iliopsoas_right", 104: "urinary_bladder"}
for _n, _v in enumerate(range(18, 42)):
    _TS1_NAMES[_v] = (["L5", "L4", "L3", "L2", "L1"] + [f"T{12 - k}" for k in range(12)]
                      + [f"C{7 - k}" for k in range(7)])[_n]
for _n in range(12):
    _TS1_NAMES[58 + _n] = f"rib_left_{_n + 1}"
    _TS1_NAMES[70 + _n] = f"rib_right_{_n + 1}"

TITLES = {"totalsegmentator": "TotalSegmentator total", "totalspineseg": "TotalSpineSeg", "verse": "VerSe",
          "totalsegmentator_v1": "TotalSegmentator v1 total", "spineps": "SPINEPS instances"}
TABLES: dict[str, dict[int, str]] = {"totalsegmentator": _TS_NAMES, "totalspineseg": _TSS_NAMES,
                                     "verse": _VERSE_NAMES, "totalsegmentator_v1": _TS1_NAMES,
                                     "spineps": _SPINEPS_NAMES}
#: a convention that extends another: chosen only when a value outside the other is present
EXTENDS = {"spineps": "verse"}

VESSELS = {"aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right", "subclavian_artery_left",
           "common_carotid_artery_right", "common_carotid_artery_left", "brachiocephalic_vein_left",
           "brachiocephalic_vein_right", "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein",
           "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right", "heart",
           "atrial_appendage_left", "heart_myocardium", "heart_atrium_left", "heart_ventricle_left",
           "heart_atrium_right", "heart_ventricle_right", "pulmonary_artery"}
OTHER_BONES = {"sacrum", "coccyx", "humerus_left", "humerus_right", "scapula_left", "scapula_right",
               "clavicula_left", "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right", "skull",
               "sternum", "costal_cartilages"}
#: Structures inside which a spinal calcification cannot lie (voxels there are never candidates).
ORGANS = {"spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
          "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
          "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus", "trachea",
          "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate", "kidney_cyst_left",
          "kidney_cyst_right", "brain", "face"}
#: Kept as candidates' surroundings (calcifications can lie in or against them).
NEUTRAL = {"spinal_cord", "spinal_canal", "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left",
           "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left",
           "autochthon_right", "iliopsoas_left", "iliopsoas_right"}


def category(name: str) -> str:
    """'vertebra', 'disc', 'aorta', 'vessel', 'rib', 'bone', 'organ', 'cord' or 'neutral'."""
    if name in VERTEBRAE or name in ("T13", "L6"):
        return "vertebra"
    if name.startswith("disc:"):
        return "disc"
    if name == "aorta":
        return "aorta"
    if name in VESSELS:
        return "vessel"
    if name.startswith("rib_"):
        return "rib"
    if name.startswith("endplate:"):
        return "bone"
    if name in OTHER_BONES:
        return "bone"
    if name in ORGANS:
        return "organ"
    if name in ("spinal_cord", "spinal_canal"):
        return "cord"
    return "neutral"


# ---------------------------------------------------------------------- detection
#: Typical adult distance (mm) between the centroids of adjacent vertebrae, used only to
#: break ties between conventions that stack the vertebrae in the same order.
_TYPICAL_STEP_MM = {
    **{f"C{n}": 16.0 for n in range(1, 7)}, "C7": 19.0, "T1": 20.0, "T2": 21.0, "T3": 21.0, "T4": 22.0,
    "T5": 22.0, "T6": 23.0, "T7": 24.0, "T8": 25.0, "T9": 26.0, "T10": 27.0, "T11": 28.0, "T12": 31.0,
    "L1": 35.0, "L2": 37.0, "L3": 38.0, "L4": 38.0, "L5": 35.0,
}


@dataclass
class ConventionChoice:
    """The convention used and why."""

    key: str
    how: str  # 'given', 'detected', 'names'
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES.get(self.key, "segment names")

    def to_dict(self) -> dict:
        return {"convention": self.key, "title": self.title, "how": self.how, "notes": list(self.notes)}


def structure_names(key: str) -> dict[int, str]:
    return TABLES[key]


def unknown_values(values, key: str) -> list[int]:
    table = TABLES[key]
    return sorted(int(v) for v in values if int(v) not in table)


def _vertebra_positions(table: dict[int, str], s_of_value: dict[int, float]) -> list[tuple[float, float, str]]:
    out = []
    for v, s in s_of_value.items():
        name = table.get(int(v))
        if name is None:
            continue
        if category(name) == "vertebra":
            out.append((order_number(name), s, name))
        elif name.startswith("disc:"):
            a, b = name[5:].split("-")
            out.append(((order_number(a) + order_number(b)) / 2.0, s, name))
        elif name == "sacrum" and "S1" not in [table.get(int(x)) for x in s_of_value]:
            out.append((order_number("S1"), s, "S1"))
    return out


def order_concordance(positions: list[tuple[float, float, str]]) -> tuple[float, int]:
    """Fraction of structure pairs stacked in anatomical order (cranial = higher S)."""
    good = total = 0
    for a in range(len(positions)):
        for b in range(a + 1, len(positions)):
            na, sa, _ = positions[a]
            nb, sb, _ = positions[b]
            if na == nb:
                continue
            total += 1
            if (na < nb) == (sa > sb):
                good += 1
    return (good / total if total else 1.0), total


def _spacing_misfit(positions: list[tuple[float, float, str]]) -> float:
    """Mean |log(measured / typical)| of the S distance between adjacent vertebrae."""
    verts = sorted((n, s, name) for n, s, name in positions if not name.startswith("disc:") and n == int(n))
    errs = []
    for (n1, s1, a), (n2, s2, _) in zip(verts[:-1], verts[1:]):
        if n2 - n1 != 1 or a not in _TYPICAL_STEP_MM:
            continue
        d = abs(s1 - s2)
        if d > 0:
            errs.append(abs(np.log(d / _TYPICAL_STEP_MM[a])))
    return float(np.mean(errs)) if errs else 0.0


def detect_convention(values_counts: dict[int, int], s_of_value: dict[int, float], source: str = "label map",
                      given: str | None = None) -> ConventionChoice:
    """Choose the convention of a label map.

    ``values_counts``: voxel count per non-zero value; ``s_of_value``: the S coordinate
    (mm) of each value's centroid.  ``given`` (a key of :data:`CONVENTIONS`) is checked,
    not guessed: unknown values are then an error too."""
    values = sorted(int(v) for v, c in values_counts.items() if v != 0 and c > 0)
    if not values:
        raise InputError(f"{source}: the label map is empty (no labels at all); a vertebra label map is needed")
    if given is not None and given != "auto":
        if given not in TABLES:
            raise InputError(f"--convention: expected auto, {', '.join(CONVENTIONS)} or names, got {given!r}")
        unknown = unknown_values(values, given)
        if unknown:
            raise ConventionError(
                f"{source}: label values {_fmt_values(unknown)} are not in the {TITLES[given]} convention "
                f"(values there: {_fmt_values(sorted(TABLES[given]))}); check --convention")
        _require_vertebrae(values, given, source)
        return ConventionChoice(given, "given")

    from .subregions import SPINEPS_SUBREGIONS
    vals = {int(v) for v in values}
    if vals <= set(SPINEPS_SUBREGIONS) and {41, 42} <= vals and vals & {49, 50} and vals & {60, 61}:
        raise ConventionError(f"{source}: this is a SPINEPS sub-region mask (seg-spine: arch, spinous process, "
                              "body, canal ...), not a vertebra label map: give it with --subregions and the "
                              "SPINEPS instance mask (seg-vert) with --vertebrae")
    fits = [k for k in CONVENTIONS if not unknown_values(values, k)]
    fits = [k for k in fits if any(category(TABLES[k][v]) == "vertebra" or TABLES[k][v] == "sacrum" for v in values)]
    fits = [k for k in fits if not (EXTENDS.get(k) in fits and not unknown_values(values, EXTENDS[k]))]
    if not fits:
        detail = "; ".join(f"{TITLES[k]}: {_fmt_values(unknown_values(values, k)) or 'no vertebra values'}"
                           for k in CONVENTIONS)
        raise ConventionError(f"{source}: label values fit no known convention (values not in each: {detail}); "
                              "pass --convention, or use a TotalSegmentator, TotalSpineSeg, VerSe or SPINEPS label map")
    if len(fits) == 1:
        return ConventionChoice(fits[0], "detected", [f"only {TITLES[fits[0]]} knows every label value"])
    scored = []
    for k in fits:
        pos = _vertebra_positions(TABLES[k], {v: s_of_value[v] for v in values if v in s_of_value})
        conc, npairs = order_concordance(pos)
        scored.append((round(conc, 2), npairs, -round(_spacing_misfit(pos), 3), k))
    # best: stacked in anatomical order, then the most vertebrae explained, then adult spacing
    scored.sort(reverse=True)
    best, second = scored[0], scored[1]
    notes = [f"{TITLES[k]}: {100 * c:.0f}% of {n} structure pairs in anatomical order, spacing misfit {-m:.2f}"
             for c, n, m, k in scored]
    if best[1] == 0:
        raise ConventionError(f"{source}: the label values {_fmt_values(values)} fit several conventions "
                              f"({', '.join(TITLES[k] for *_, k in scored)}) and a single structure cannot tell "
                              "them apart; pass --convention")
    if best[0] > second[0] or best[1] > second[1] or best[2] - second[2] >= 0.15:
        return ConventionChoice(best[3], "detected", notes)
    raise ConventionError(f"{source}: the label values {_fmt_values(values)} fit {TITLES[best[3]]} and "
                          f"{TITLES[second[3]]} equally well; pass --convention")


def _require_vertebrae(values: list[int], key: str, source: str) -> None:
    table = TABLES[key]
    if not any(category(table[v]) == "vertebra" or table[v] == "sacrum" for v in values if v in table):
        raise InputError(f"{source}: no vertebra labels in this label map ({TITLES[key]} convention: values "
                         f"{_fmt_values(values)} name no vertebra); a vertebra label map is needed")


def _fmt_values(values) -> str:
    vals = [int(v) for v in values]
    if len(vals) > 12:
        return ", ".join(str(v) for v in vals[:12]) + f", … ({len(vals)} values)"
    return ", ".join(str(v) for v in vals)


# ---------------------------------------------------------------------- label statistics
def value_histogram_along_axis(labels: np.ndarray, axis: int, max_value: int | None = None) -> np.ndarray:
    """Voxel count per (slice along ``axis``, label value): shape (n_slices, max_value + 1).

    One pass over the array in slabs along ``axis`` (never a pass per label): only the
    labelled voxels - a small share of a label map - are counted, background is the rest."""
    if max_value is None:
        max_value = int(labels.max()) if labels.size else 0
    nv = max_value + 1
    moved = np.moveaxis(labels, axis, 0)
    n = moved.shape[0]
    plane = int(np.prod(moved.shape[1:]))
    out = np.zeros((n, nv), dtype=np.int64)
    step = max(1, SLAB_VOXELS // max(plane, 1))

    def count(a: int, b: int) -> None:   # slabs of [a, b) (two threads take halves of the array)
        for s0 in range(a, b, step):
            s1 = min(s0 + step, b)
            slab = moved[s0:s1].reshape(-1)        # a copy only when ``axis`` is not the first
            labelled = slab != 0
            per_slice = labelled.reshape(-1, plane).sum(axis=1)
            # code = slice * nv + value for each labelled voxel (they come slice by slice)
            codes = np.repeat(np.arange(per_slice.size, dtype=np.int64) * nv, per_slice) + slab[labelled]
            out[s0:s1] = np.bincount(codes, minlength=per_slice.size * nv).reshape(-1, nv)

    parallel.over_slabs(count, n, min_slab=step)
    out[:, 0] = plane - out[:, 1:].sum(axis=1)
    return out


#: voxels per slab of :func:`value_histogram_along_axis` (bounds its temporaries)
SLAB_VOXELS = 1 << 22


def value_s_positions(hist: np.ndarray, geometry: Geometry, axis: int) -> dict[int, float]:
    """S coordinate (mm) of each value's centroid along the slice axis (grid centre in-plane)."""
    counts = hist.sum(axis=0)
    idx = np.arange(hist.shape[0], dtype=float)
    out = {}
    centre = (np.asarray(geometry.size_ijk, float) - 1) / 2.0
    ijk_axis = 2 - axis
    for v in np.flatnonzero(counts):
        if v == 0:
            continue
        mean_index = float((hist[:, v] * idx).sum() / counts[v])
        p = centre.copy()
        p[ijk_axis] = mean_index
        out[int(v)] = float(geometry.ijk_to_ras(p) @ AXIS_S)
    return out

