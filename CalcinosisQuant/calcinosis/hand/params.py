"""Every parameter of the hand pipeline - detection (:class:`DetectParams`) and assignment
to side, digit and zone (:class:`AssignParams`) - with its default, and the command-line
option that sets it (:data:`OPTIONS`).  One source: the command line
(:mod:`calcinosis.tasks.hand`), the Slicer panel and every error message take names and
defaults from here.  All of them are recorded in the provenance of each result.

numpy-free, so that ``calcinosis hand --help`` starts fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from calcinosis.core.defaults import CONNECTIVITIES, DEFAULT_CT_THRESHOLD_HU
from calcinosis.core.errors import InputError

#: typical metacarpal / proximal-phalanx length ratios (adult hands), to place a finger's
#: metacarpal base from its MCP and PIP landmarks (recorded with the assignment parameters)
METACARPAL_RATIO = {"index": 1.65, "middle": 1.5, "ring": 1.42, "little": 1.55}


def _p(default, unit: str, help_text: str, option: str | None = None, kind: str | None = None):
    """A parameter: default, unit ("" when none), what it does, and the ``calcinosis hand``
    option that sets it (None: Python callers only), of ``kind`` number | size | distance |
    fraction | unit-interval (0 to 1, both included) | count | choice | off-switch (the option
    turns the parameter off)."""
    return field(default=default, metadata={"unit": unit, "help": help_text, "option": option, "kind": kind})


BOUNDARIES = ("half-max", "threshold")
THUMB_IP_ZONES = ("DIP", "PIP")
XR_PARAMS = ("xr_max_lesion_mm", "xr_noise_k", "xr_edge_fraction", "xr_background_mm", "xr_max_aspect",
             "xr_axis_reach_mm", "xr_mirror_min", "xr_carpal_min_mm", "xr_carpal_contrast", "xr_carpal_margin_mm",
             "xr_carpal_reach_mm", "xr_min_confidence")


@dataclass(frozen=True)
class DetectParams:
    """Every parameter of hand lesion detection (all recorded in provenance).

    Sizes in mm, mm³ (3D) or mm² (2D); intensities in the image's unit."""

    threshold: float | None = _p(
        None, "HU (CT) / image units",
        f"CT: voxels >= T (default {DEFAULT_CT_THRESHOLD_HU:g} HU); MRI: voxels <= T (default mri_void_fraction x "
        "the region border's median); radiograph: the smallest peak contrast over the local background (default "
        "xr_noise_k x the noise SD)", "--threshold", "number")
    min_size: float = _p(1.0, "mm³ or mm²", "smallest lesion kept, in mm³ on CT/MRI and mm² on radiographs",
                         "--min-size", "size")
    connectivity: str = _p("face", "", "voxel neighbourhood joining a lesion: face (Slicer's Islands) or full",
                           "--connectivity", "choice")
    min_slices: int = _p(1, "", "keep lesions present on at least this many contiguous axial slices",
                         "--min-slices", "count")
    boundary: str = _p("half-max", "", "lesion outline: half-max (half-way between the local background and the "
                       "plateau) or threshold (the plain threshold mask)", "--boundary", "choice")
    edge_fraction: float = _p(0.5, "", "CT/MRI outline level between background (0) and plateau (1)",
                              "--edge-fraction", "fraction")
    # CT bone
    exclude_bone: bool = _p(True, "", "CT: bone (a dense cortex enclosing marrow) is found and removed", "--keep-bone",
                            "off-switch")
    cortical_hu: float = _p(500.0, "HU", "CT: cortical bone level", "--cortical-hu", "number")
    min_bone_mm3: float = _p(30.0, "mm³", "CT: smallest candidate component that may hold bone")
    min_marrow_mm3: float = _p(2.0, "mm³", "CT: smallest enclosed cavity taken for marrow")
    marrow_contrast_hu: float = _p(300.0, "HU", "CT: marrow is at least this much less dense than its shell")
    cortex_max_mm: float = _p(2.0, "mm", "CT: thickest cortex around a marrow cavity", "--cortex-max", "distance")
    rim_mm: float = _p(0.5, "mm", "CT: partial-volume rim added to bone (at least one voxel)", "--bone-rim",
                       "distance")
    bone_sliver_mm: float = _p(1.0, "mm", "CT: candidates against bone that never get farther from it are bone edge")
    # radiograph (calcinosis.hand.xr; docs/methods/hand-detection.md)
    xr_max_lesion_mm: float = _p(25.0, "mm", "radiograph: largest deposit outlined (across)")
    xr_noise_k: float = _p(5.0, "x noise SD", "radiograph: default threshold, in noise SDs")
    xr_edge_fraction: float = _p(0.2, "", "radiograph: outline level, fraction of the peak above the background",
                                 "--xr-edge-fraction", "fraction")
    xr_background_mm: float = _p(24.0, "mm", "radiograph: line-opening length of the seeding background")
    xr_max_aspect: float = _p(2.2, "", "radiograph: longer/shorter axis above which a candidate is bone edge")
    xr_axis_reach_mm: float = _p(12.0, "mm", "radiograph: symmetry test for candidates this close to a digit's axis")
    xr_mirror_min: float = _p(0.12, "x peak", "radiograph: excess over the mirror image below which a candidate "
                              "is bone")
    xr_carpal_min_mm: float = _p(14.0, "mm", "radiograph: at the carpus keep only candidates wider than this")
    xr_carpal_contrast: float = _p(1.3, "x median", "radiograph: ... and brighter than this x the median of what is "
                                   "found there")
    xr_carpal_margin_mm: float = _p(12.0, "mm", "radiograph: the carpus begins this far proximal to a digit's base")
    xr_carpal_reach_mm: float = _p(50.0, "mm", "radiograph: ... and reaches this far from the base")
    xr_min_confidence: float = _p(0.5, "", "radiograph: keep candidates at least this confident (0-1; 0.5 is the "
                                  "operating point chosen for precision on real radiographs, 0 keeps every "
                                  "candidate of steps 1-5); not applied inside a drawn region",
                                  "--min-confidence", "unit-interval")
    # MRI
    mri_void_fraction: float = _p(0.5, "", "MRI: default threshold as a fraction of the region border's median "
                                  "signal", "--mri-void-fraction", "fraction")

    def validate(self) -> None:
        if self.connectivity not in CONNECTIVITIES:
            raise InputError(f"--connectivity: expected one of {', '.join(CONNECTIVITIES)}, got {self.connectivity!r}")
        if self.boundary not in BOUNDARIES:
            raise InputError(f"--boundary: expected one of {', '.join(BOUNDARIES)}, got {self.boundary!r}")
        for name in ("min_size", "cortex_max_mm", "rim_mm", "min_bone_mm3", "min_marrow_mm3", "marrow_contrast_hu",
                     "bone_sliver_mm", "xr_axis_reach_mm", "xr_mirror_min", "xr_carpal_min_mm", "xr_carpal_contrast",
                     "xr_carpal_margin_mm", "xr_carpal_reach_mm"):
            v = getattr(self, name)
            if not (v >= 0) or not math.isfinite(v):
                raise InputError(f"{option_name(name)}: expected a number >= 0, got {v!r}")
        for name in ("xr_max_lesion_mm", "xr_noise_k", "xr_background_mm", "xr_max_aspect"):
            v = getattr(self, name)
            if not (v > 0) or not math.isfinite(v):
                raise InputError(f"{option_name(name)}: expected a positive number, got {v!r}")
        for name in ("edge_fraction", "xr_edge_fraction", "mri_void_fraction"):
            v = getattr(self, name)
            if not (0 < v < 1):
                raise InputError(f"{option_name(name)}: expected a fraction between 0 and 1, got {v!r}")
        if not (0 <= self.xr_min_confidence <= 1):
            raise InputError(f"{option_name('xr_min_confidence')}: expected a number from 0 to 1, "
                             f"got {self.xr_min_confidence!r}")
        if int(self.min_slices) != self.min_slices or self.min_slices < 1:
            raise InputError(f"--min-slices: expected a whole number >= 1, got {self.min_slices!r}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise InputError(f"--threshold: expected a number, got {self.threshold!r}")
        if not math.isfinite(self.cortical_hu):
            raise InputError(f"{option_name('cortical_hu')}: expected a finite number in HU, got {self.cortical_hu!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AssignParams:
    """Every parameter of the assignment to side, digit, zone and kind (distances in mm)."""

    max_ray_distance_mm: float = _p(15.0, "mm", "farthest a lesion may lie from a digit's ray and be assigned to it",
                                    "--max-ray-distance", "distance")
    joint_radius_mm: float = _p(5.0, "mm", "half-length of a joint zone along the ray", "--joint-radius", "distance")
    periarticular_mm: float = _p(6.0, "mm", "a lesion within this distance of a joint centre is periarticular",
                                 "--periarticular-distance", "distance")
    wrist_reach_mm: float = _p(30.0, "mm", "how far proximal to the metacarpal bases the wrist zone reaches",
                               "--wrist-reach", "distance")
    wrist_width_mm: float = _p(25.0, "mm", "how far from a ray's line a lesion proximal to the metacarpal bases may "
                               "lie and still be wrist", "--wrist-width", "distance")
    side_reach_mm: float = _p(60.0, "mm", "farthest a lesion may lie from a hand's landmarks to take its side",
                              "--side-reach", "distance")
    landmark_margin_mm: float = _p(20.0, "mm", "landmarks farther than this outside the image are ignored, with a "
                                   "warning", "--landmark-margin", "distance")
    thumb_ip_zone: str = _p("DIP", "", "zone of the thumb's interphalangeal joint (DIP, its homologue, or PIP)",
                            "--thumb-ip-zone", "choice")

    def validate(self) -> None:
        for name in ("max_ray_distance_mm", "joint_radius_mm", "periarticular_mm", "wrist_reach_mm",
                     "wrist_width_mm", "side_reach_mm", "landmark_margin_mm"):
            v = getattr(self, name)
            if not (v >= 0) or not math.isfinite(v):
                raise InputError(f"{option_name(name)}: expected a distance >= 0 in mm, got {v!r}")
        if self.thumb_ip_zone not in THUMB_IP_ZONES:
            raise InputError(f"--thumb-ip-zone: expected DIP or PIP, got {self.thumb_ip_zone!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metacarpal_ratio"] = dict(METACARPAL_RATIO)
        return d


#: parameter -> the ``calcinosis hand`` option that sets it (parameters without one keep
#: their default on the command line; Python callers set them directly)
OPTIONS = {f.name: f.metadata["option"] for cls in (DetectParams, AssignParams) for f in fields(cls)
           if f.metadata["option"]}


def option_name(param: str) -> str:
    """How an error message names a parameter: its option, else ``parameter NAME``."""
    return OPTIONS.get(param, f"parameter {param}")


def describe(cls) -> list[dict]:
    """One row per parameter of ``cls``: name, option, unit, default, help (the docs table)."""
    return [{"name": f.name, "option": f.metadata["option"], "unit": f.metadata["unit"], "default": f.default,
             "help": f.metadata["help"]} for f in fields(cls)]
