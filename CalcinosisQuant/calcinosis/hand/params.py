"""Every parameter of the hand pipeline - detection (:class:`DetectParams`) and assignment
to side, digit and zone (:class:`AssignParams`) - with its default, and the command-line
option that sets it (:data:`OPTIONS`).  One source: the command line
(:mod:`calcinosis.tasks.hand`), the Slicer panel and every error message take names and
defaults from here.  All of them are recorded in the provenance of each result.

numpy-free, so that ``calcinosis hand --help`` starts fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from calcinosis.core.defaults import CONNECTIVITIES, DEFAULT_CT_THRESHOLD_HU
from calcinosis.core.errors import InputError

#: typical metacarpal / proximal-phalanx length ratios (adult hands), to place a finger's
#: metacarpal base from its MCP and PIP landmarks (recorded with the assignment parameters)
METACARPAL_RATIO = {"index": 1.65, "middle": 1.5, "ring": 1.42, "little": 1.55}

#: parameter -> the ``calcinosis hand`` option that sets it; parameters without one keep
#: their default on the command line (Python callers set them directly)
OPTIONS = {
    "threshold": "--threshold", "min_size": "--min-size", "connectivity": "--connectivity",
    "min_slices": "--min-slices", "boundary": "--boundary", "edge_fraction": "--edge-fraction",
    "exclude_bone": "--keep-bone", "cortical_hu": "--cortical-hu", "cortex_max_mm": "--cortex-max",
    "rim_mm": "--bone-rim", "xr_edge_fraction": "--xr-edge-fraction", "mri_void_fraction": "--mri-void-fraction",
    "max_ray_distance_mm": "--max-ray-distance", "joint_radius_mm": "--joint-radius",
    "periarticular_mm": "--periarticular-distance", "wrist_reach_mm": "--wrist-reach",
    "side_reach_mm": "--side-reach", "wrist_width_mm": "--wrist-width", "landmark_margin_mm": "--landmark-margin",
    "thumb_ip_zone": "--thumb-ip-zone",
}


def option_name(param: str) -> str:
    """How an error message names a parameter: its option, else ``parameter NAME``."""
    return OPTIONS.get(param, f"parameter {param}")


BOUNDARIES = ("half-max", "threshold")
XR_PARAMS = ("xr_max_lesion_mm", "xr_noise_k", "xr_edge_fraction", "xr_background_mm", "xr_max_aspect",
             "xr_axis_reach_mm", "xr_mirror_min", "xr_carpal_min_mm", "xr_carpal_contrast", "xr_carpal_margin_mm",
             "xr_carpal_reach_mm")


@dataclass(frozen=True)
class DetectParams:
    """Every parameter of hand lesion detection (all recorded in provenance).

    Sizes in mm, mm³ (3D) or mm² (2D); intensities in the image's unit."""

    threshold: float | None = None           # CT: HU (default 130); XR/MR: image units (default automatic)
    min_size: float = 1.0                    # mm³ (3D) / mm² (2D)
    connectivity: str = "face"
    min_slices: int = 1
    boundary: str = "half-max"
    edge_fraction: float = 0.5
    # CT bone
    exclude_bone: bool = True
    cortical_hu: float = 500.0
    min_bone_mm3: float = 30.0
    min_marrow_mm3: float = 2.0
    marrow_contrast_hu: float = 300.0
    cortex_max_mm: float = 2.0
    rim_mm: float = 0.5
    bone_sliver_mm: float = 1.0
    # radiograph (see calcinosis.hand.xr and docs/methods/hand-detection.md)
    xr_max_lesion_mm: float = 25.0           # largest deposit outlined (mm across)
    xr_noise_k: float = 5.0                  # default threshold: k x the image noise SD
    xr_edge_fraction: float = 0.2            # outline level, fraction of the peak excess
    xr_background_mm: float = 24.0           # line-opening length for the seeding background
    xr_max_aspect: float = 2.2               # longer/shorter axis above which a candidate is bone edge
    xr_axis_reach_mm: float = 12.0           # symmetry test for candidates this close to a digit's axis
    xr_mirror_min: float = 0.12              # excess over the mirror image below which a candidate is bone
    xr_carpal_min_mm: float = 14.0           # at the carpus keep only candidates wider than this
    xr_carpal_contrast: float = 1.3          # ... and brighter than this x the median of what is found there
    xr_carpal_margin_mm: float = 12.0        # 'carpus' = proximal to a digit's base + this margin
    xr_carpal_reach_mm: float = 50.0         # ... and within this distance of the base (wrist, distal forearm)
    # MRI
    mri_void_fraction: float = 0.5

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
        if int(self.min_slices) != self.min_slices or self.min_slices < 1:
            raise InputError(f"--min-slices: expected a whole number >= 1, got {self.min_slices!r}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise InputError(f"--threshold: expected a number, got {self.threshold!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AssignParams:
    max_ray_distance_mm: float = 15.0
    joint_radius_mm: float = 5.0
    periarticular_mm: float = 6.0
    wrist_reach_mm: float = 30.0
    wrist_width_mm: float = 25.0
    side_reach_mm: float = 60.0
    landmark_margin_mm: float = 20.0
    thumb_ip_zone: str = "DIP"

    def validate(self) -> None:
        for name in ("max_ray_distance_mm", "joint_radius_mm", "periarticular_mm", "wrist_reach_mm",
                     "wrist_width_mm", "side_reach_mm", "landmark_margin_mm"):
            v = getattr(self, name)
            if not (v >= 0) or not math.isfinite(v):
                raise InputError(f"{option_name(name)}: expected a distance >= 0 in mm, got {v!r}")
        if self.thumb_ip_zone not in ("DIP", "PIP"):
            raise InputError(f"--thumb-ip-zone: expected DIP or PIP, got {self.thumb_ip_zone!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metacarpal_ratio"] = dict(METACARPAL_RATIO)
        return d
