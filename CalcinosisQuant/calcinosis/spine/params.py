"""Every parameter of the spine map, with its default and meaning (all recorded in the
provenance of each result).  The Slicer panel binds its parameter node to these names."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from calcinosis.core.defaults import CONNECTIVITIES
from calcinosis.core.errors import InputError

#: vertebra label conventions read by :mod:`.conventions` (numpy-free here, for the help)
CONVENTIONS = ("totalsegmentator", "totalspineseg", "verse", "totalsegmentator_v1", "spineps")
CONVENTION_CHOICES = ("auto", "names") + CONVENTIONS


def _p(default, help_text: str):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class SpineParams:
    # --- candidates
    threshold_hu: float = _p(130.0,
        "Voxels at or above this CT value are calcification candidates (Agatston's 130 HU).")
    min_size_mm3: float = _p(1.0,
        'Smallest calcification kept (mm³) …')
    min_voxels: int = _p(2,
        '… and never fewer voxels than this (the smallest size follows the voxel size).')
    connectivity: str = _p("face",
        "Voxel neighbourhood joining a calcification: face (Slicer's Islands default) or full.")
    study_rule: bool = _p(True,
        "Apply study 2's rule: >= study_min_slices contiguous axial slices and seen in another plane.")
    study_min_slices: int = _p(2,
        'Contiguous axial slices a calcification must span under the study rule, on slices of study_slice_mm …')
    study_slice_mm: float = _p(1.25,
        "… the study's slice thickness: on other slices the rule asks for as many as see the same calcifications.")
    search_margin_mm: float = _p(25.0,
        'How far from the vertebrae a calcification may lie; structures reaching beyond are rejected.')
    vertebra_margin_mm: float = _p(0.5,
        "Voxels this close beyond a vertebra's bone surface (fitted to the CT along its label's border) are bone; "
        "further where the CT shows the partial-volume rim reaching further.")
    bone_margin_mm: float = _p(0.5,
        'The same around ribs and other labelled bones.')
    label_shift_limit_mm: float = _p(3.0,
        "How far the fitted bone surface may lie from a vertebra label's border (a label's imprecision).")
    vessel_margin_mm: float = _p(3.0,
        'Zone excluded around the aorta and other labelled vessels; candidates touching it are vessel wall.')
    detect_aorta: bool = _p(True,
        'Reject contrast-filled vessels found by shape and density (aorta, vena cava, iliac, renal, azygos) and '
        'what touches them, besides the labelled ones.')
    bone_rim_protrusion_mm: float = _p(1.4,
        "A dense body touching bone with fewer than two voxels this far beyond the bone's fitted zone is the "
        "bone's own rim (a label locally short), not a calcification.")
    bone_contact_mm2: float = _p(30.0,
        "A dense body continuing into labelled bone over this area (mm², 0 = off) …")
    bone_contact_fraction: float = _p(0.25,
        "… with at least this share of its voxels against it is bone the label missed (a rib head, a process).")
    bone_hollow_margin_hu: float = _p(30.0,
        "A dense body touching bone whose core is less dense than its outer layer by this much (HU) is bone "
        "(cortex over marrow: an osteophyte, a spur, a process the label missed), not a calcification.")
    noise_multiple: float = _p(5.0,
        "A calcification's peak must stand above the tissue around it by this many times the CT's noise "
        "(measured per slice around the spine).")
    vessel_blood_hu: float = _p(100.0,
        'Vessel search by shape: enhanced blood from this CT value (after 3 x 3 smoothing).')
    anterior_max_gap_mm: float = _p(10.0,
        'Anterior candidates further than this from the vertebral body/disc outline are not ligamentous '
        '(prevertebral).')
    # --- sub-sites
    pll_front_mm: float = _p(2.0,
        'Posterior longitudinal ligament band: from this far in front of the posterior wall …')
    pll_back_mm: float = _p(4.0,
        '… to this far behind it (into the canal).')
    foramen_depth_mm: float = _p(12.0,
        "Lateral reach of the foraminal zone beyond the canal's side.")
    facet_front_fraction: float = _p(0.7,
        "Facet joint zone: beside the canal, from this fraction of the canal's half depth behind its centre …")
    facet_reach_mm: float = _p(10.0,
        "… to this far beyond the canal's side and behind its back wall (lateral of the interspinous band).")
    interspinous_half_width_mm: float = _p(7.0,
        'Posterior candidates within this distance of the mid-line are interspinous.')
    costotransverse_fraction: float = _p(0.7,
        'Thoracic posterior candidates beyond this fraction of the transverse-process reach are '
        'costotransverse.')
    subregion_near_mm: float = _p(3.0,
        "With a SPINEPS sub-region mask: a calcification takes its sub-site from the part (spinous or costal "
        "process, articular process, canal, disc) most of its voxels lie within this distance of.")
    rib_near_mm: float = _p(5.0,
        '… as are those within this distance of a labelled rib.')
    # --- patterns
    pseudotumoral_min_diameter_mm: float = _p(7.0,
        'Equivalent diameter from which a calcification is pseudo-tumoral.')
    linear_min_elongation: float = _p(2.5,
        'Major / middle principal axis ratio from which a calcification is linear …')
    linear_min_length_mm: float = _p(6.0,
        '… when its major axis is at least this long.')
    # --- inputs
    convention: str = _p("auto",
        'Label convention of the vertebra label map: auto, names, totalsegmentator, totalspineseg, verse, spineps.')
    points_bone_hu: float = _p(200.0,
        'Point-list input: bone threshold used to make the vertebra masks.')
    rib_level_check: bool = _p(True,
        "Check the vertebra names against the ribs of the CT: the last vertebra carrying a rib must be T12 (T11 or "
        "L1 is warned as a variant); two or more vertebrae off is an error (false: for a patient whose ribs are "
        "known to be atypical).")
    override_tolerance_mm: float = _p(3.0,
        'Reader overrides match a calcification whose centroid lies within this distance.')

    def validate(self) -> None:
        positive = ("search_margin_mm", "foramen_depth_mm", "study_slice_mm", "noise_multiple",
                    "bone_rim_protrusion_mm", "interspinous_half_width_mm", "facet_reach_mm",
                    "pseudotumoral_min_diameter_mm", "linear_min_elongation", "override_tolerance_mm",
                    "subregion_near_mm")
        nonneg = ("min_size_mm3", "label_shift_limit_mm", "bone_contact_mm2", "bone_contact_fraction", "bone_hollow_margin_hu", "vertebra_margin_mm",
                  "bone_margin_mm", "vessel_margin_mm", "anterior_max_gap_mm", "pll_front_mm", "pll_back_mm",
                  "rib_near_mm", "linear_min_length_mm")
        for name in positive:
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{_flag(name)}: expected a positive number, got {v!r}")
        for name in nonneg:
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"{_flag(name)}: expected a number >= 0, got {v!r}")
        if not math.isfinite(self.vessel_blood_hu):
            raise InputError(f"{_flag('vessel_blood_hu')}: expected a number in HU, got {self.vessel_blood_hu!r}")
        if int(self.min_voxels) != self.min_voxels or self.min_voxels < 1:
            raise InputError(f"{_flag('min_voxels')}: expected a whole number >= 1, got {self.min_voxels!r}")
        if not math.isfinite(self.threshold_hu):
            raise InputError(f"--threshold: expected a number in HU, got {self.threshold_hu!r}")
        if self.connectivity not in CONNECTIVITIES:
            raise InputError(f"--connectivity: expected one of {', '.join(CONNECTIVITIES)}, got {self.connectivity!r}")
        if int(self.study_min_slices) != self.study_min_slices or self.study_min_slices < 1:
            raise InputError(f"--study-min-slices: expected a whole number >= 1, got {self.study_min_slices!r}")
        if not 0 < self.costotransverse_fraction <= 1:
            raise InputError(f"{_flag('costotransverse_fraction')}: expected a number in (0, 1], got "
                             f"{self.costotransverse_fraction!r}")
        if not 0 <= self.facet_front_fraction <= 2:
            raise InputError(f"{_flag('facet_front_fraction')}: expected a number in [0, 2], got "
                             f"{self.facet_front_fraction!r}")
        if self.convention not in CONVENTION_CHOICES:
            raise InputError(f"--convention: expected one of {', '.join(CONVENTION_CHOICES)}, got {self.convention!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["threshold_unit"] = "HU"
        return d

    @staticmethod
    def describe() -> dict[str, str]:
        """Parameter name -> one-line description (for help texts and the panel)."""
        return {f.name: f.metadata.get("help", "") for f in fields(SpineParams)}


#: parameter -> the ``calcinosis spine`` option that sets it; every other parameter is set
#: with ``--param NAME=VALUE``
OPTIONS = {
    "threshold_hu": "--threshold", "min_size_mm3": "--min-size", "connectivity": "--connectivity",
    "study_rule": "--no-study-rule", "study_min_slices": "--study-min-slices", "search_margin_mm": "--search-margin",
    "vessel_margin_mm": "--vessel-margin", "detect_aorta": "--no-aorta-shape",
    "pseudotumoral_min_diameter_mm": "--pseudotumoral-diameter", "linear_min_elongation": "--linear-elongation",
    "convention": "--convention",
}


def _flag(name: str) -> str:
    """How an error message names a parameter: its option, else ``--param NAME``."""
    return OPTIONS.get(name, f"--param {name}")
