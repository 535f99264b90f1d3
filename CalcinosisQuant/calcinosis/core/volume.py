"""A voxel array with its geometry and the facts about where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .geometry import Geometry

#: Modalities the project knows.  Radiographs are 2D; CT and MR are 3D.
RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "XR", "RG", "PX")
MODALITY_ALIASES = {"XR": "XR", "CR": "XR", "DX": "XR", "DR": "XR", "RG": "XR", "PX": "XR",
                    "CT": "CT", "MR": "MR", "MRI": "MR", "OT": "OT"}


def normalise_modality(value: str | None) -> str | None:
    """'CR'/'DX'/'xr' -> 'XR', 'MRI'/'mr' -> 'MR', 'ct' -> 'CT'; None stays None."""
    if value is None or str(value).strip() == "":
        return None
    v = str(value).strip().upper()
    if v not in MODALITY_ALIASES:
        return v
    return MODALITY_ALIASES[v]


@dataclass
class Volume:
    """``array[k, j, i]`` placed in RAS by ``geometry``.

    ``meta`` keys used by the project (all optional):
      ``modality`` ('CT', 'MR', 'XR', ...), ``intensity_unit`` ('HU' or 'a.u.'),
      ``spacing_source`` (where the physical spacing came from), ``input_id``
      (pseudonymous), ``laterality`` ('L'/'R'), ``warnings`` (list of str),
      ``source_format``.
    """

    array: np.ndarray
    geometry: Geometry
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim == 2:
            self.array = self.array[np.newaxis, :, :]
        if tuple(self.array.shape) != self.geometry.shape:
            raise ValueError(f"array shape {self.array.shape} does not match geometry {self.geometry.shape}")
        self.meta.setdefault("warnings", [])

    @property
    def is_2d(self) -> bool:
        return self.geometry.is_2d

    @property
    def modality(self) -> str | None:
        return self.meta.get("modality")

    @property
    def intensity_unit(self) -> str:
        return self.meta.get("intensity_unit") or ("HU" if self.modality == "CT" else "a.u.")

    def warn(self, message: str) -> None:
        self.meta.setdefault("warnings", []).append(message)
