"""Image geometry: the one place where voxel indices become millimetres.

Conventions (read these once, they hold everywhere in the project):

* Arrays are indexed ``array[k, j, i]`` (slowest axis first), exactly as
  ``SimpleITK.GetArrayFromImage`` and ``slicer.util.arrayFromVolume`` return them.
* A :class:`Geometry` is stored in **RAS** (Slicer's patient coordinate system):
  ``ras = origin_ras + direction_ras @ (spacing * ijk)``, where the columns of
  ``direction_ras`` are the unit vectors of the i, j and k axes in RAS.  This is
  Slicer's ``IJKToRAS`` matrix.
* ITK, SimpleITK, NIfTI-through-ITK and DICOM use **LPS**.  The only conversions
  between the two live in :meth:`Geometry.from_sitk` and :meth:`Geometry.to_sitk_fields`:
  LPS -> RAS negates the first two rows.  Nothing else in the project may flip signs.
* A 2D image (radiograph, PNG) is a volume with one slice (``size_ijk[2] == 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_to_ras(points) -> np.ndarray:
    """Positions (..., 3) in LPS turned into RAS (and back: the flip is its own inverse).
    Sign changes only, so exact."""
    return np.asarray(points, dtype=float) * np.array([-1.0, -1.0, 1.0])

#: RAS unit vectors of the patient axes, used to find the array axis closest to each.
AXIS_R = np.array([1.0, 0.0, 0.0])
AXIS_A = np.array([0.0, 1.0, 0.0])
AXIS_S = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """Physical placement of a voxel grid (RAS, millimetres).

    ``size_ijk`` is (ni, nj, nk); the matching numpy array has shape (nk, nj, ni).
    """

    size_ijk: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin_ras: tuple[float, float, float]
    direction_ras: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]

    # ------------------------------------------------------------------ construction
    @staticmethod
    def create(size_ijk: Sequence[int], spacing: Sequence[float] = (1.0, 1.0, 1.0),
               origin_ras: Sequence[float] = (0.0, 0.0, 0.0),
               direction_ras: np.ndarray | Sequence[Sequence[float]] | None = None) -> "Geometry":
        size = tuple(int(s) for s in size_ijk)
        if len(size) == 2:
            size = (size[0], size[1], 1)
        sp = tuple(float(s) for s in spacing)
        if len(sp) == 2:
            sp = (sp[0], sp[1], 1.0)
        if len(size) != 3 or len(sp) != 3:
            raise ValueError("size_ijk and spacing need 2 or 3 values")
        if any(s <= 0 or not np.isfinite(s) for s in sp):
            raise ValueError(f"spacing must be positive and finite, got {sp}")
        d = np.eye(3) if direction_ras is None else np.asarray(direction_ras, dtype=float).reshape(3, 3)
        if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise ValueError("direction matrix is not orthonormal")
        o = tuple(float(v) for v in origin_ras)
        return Geometry(size, sp, (o[0], o[1], o[2]), tuple(tuple(float(v) for v in row) for row in d))  # type: ignore[arg-type]

    @staticmethod
    def from_ijk_to_ras(matrix: np.ndarray, size_ijk: Sequence[int]) -> "Geometry":
        """From a 4x4 IJKToRAS matrix (Slicer's ``GetIJKToRASMatrix``)."""
        m = np.asarray(matrix, dtype=float)
        cols = m[:3, :3]
        spacing = np.linalg.norm(cols, axis=0)
        return Geometry.create(size_ijk, spacing, m[:3, 3], cols / spacing)

    @staticmethod
    def from_sitk(image) -> "Geometry":
        """From a SimpleITK image (LPS).  2D images become one-slice volumes."""
        dim = image.GetDimension()
        size = list(image.GetSize())
        spacing = list(image.GetSpacing())
        origin = list(image.GetOrigin())
        direction = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)
        if dim == 2:
            size += [1]
            spacing += [1.0]
            origin += [0.0]
            d3 = np.eye(3)
            d3[:2, :2] = direction
            direction = d3
        elif dim != 3:
            raise ValueError(f"only 2D and 3D images are supported, got {dim}D")
        return Geometry.create(size, spacing, LPS_TO_RAS @ np.asarray(origin), LPS_TO_RAS @ direction)

    def to_sitk_fields(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """(spacing, origin_lps, direction_lps flattened) for ``SetSpacing`` etc."""
        origin_lps = LPS_TO_RAS @ np.asarray(self.origin_ras)
        direction_lps = LPS_TO_RAS @ self.direction
        return self.spacing, tuple(float(v) for v in origin_lps), tuple(float(v) for v in direction_lps.ravel())

    # ------------------------------------------------------------------ matrices
    @property
    def direction(self) -> np.ndarray:
        return np.asarray(self.direction_ras, dtype=float)

    @property
    def shape(self) -> tuple[int, int, int]:
        """numpy array shape (nk, nj, ni)."""
        return (self.size_ijk[2], self.size_ijk[1], self.size_ijk[0])

    @property
    def is_2d(self) -> bool:
        return self.size_ijk[2] == 1

    @property
    def voxel_volume_mm3(self) -> float:
        return float(self.spacing[0] * self.spacing[1] * self.spacing[2])

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one pixel in the i-j plane (what a 2D image measures)."""
        return float(self.spacing[0] * self.spacing[1])

    def ijk_to_ras_matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.direction * np.asarray(self.spacing)
        m[:3, 3] = self.origin_ras
        return m

    def ras_to_ijk_matrix(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras_matrix())

    def ijk_to_ras(self, ijk: np.ndarray) -> np.ndarray:
        """Continuous (i, j, k) indices, shape (..., 3) -> RAS mm, shape (..., 3)."""
        p = np.asarray(ijk, dtype=float)
        return p @ (self.direction * np.asarray(self.spacing)).T + np.asarray(self.origin_ras)

    def ras_to_ijk(self, ras: np.ndarray) -> np.ndarray:
        p = np.asarray(ras, dtype=float) - np.asarray(self.origin_ras)
        return (p @ self.direction) / np.asarray(self.spacing)

    def kji_to_ras(self, kji: np.ndarray) -> np.ndarray:
        """Array indices (k, j, i) -> RAS mm."""
        return self.ijk_to_ras(np.asarray(kji, dtype=float)[..., ::-1])

    # ------------------------------------------------------------------ patient axes
    def array_axis_along(self, ras_axis: np.ndarray) -> int:
        """numpy axis (0=k, 1=j, 2=i) whose direction is closest to a RAS axis.

        For 2D images the k axis is never chosen (it has one slice)."""
        dots = np.abs(self.direction.T @ np.asarray(ras_axis, dtype=float))  # per i, j, k
        if self.is_2d:
            dots[2] = -1.0
        ijk_axis = int(np.argmax(dots))
        return 2 - ijk_axis

    @property
    def axial_axis(self) -> int:
        """numpy axis that steps between axial slices (closest to S-I)."""
        return self.array_axis_along(AXIS_S)

    @property
    def ap_axis(self) -> int:
        """numpy axis closest to anterior-posterior (projection direction of a PA radiograph)."""
        return self.array_axis_along(AXIS_A)

    def spacing_along_array_axis(self, axis: int) -> float:
        return float(self.spacing[2 - axis])

    def direction_of_array_axis(self, axis: int) -> np.ndarray:
        return self.direction[:, 2 - axis]

    def cross_section_area_mm2(self, axis: int) -> float:
        """Area of one voxel face across numpy ``axis`` (product of the other two spacings)."""
        others = [a for a in (0, 1, 2) if a != axis]
        return self.spacing_along_array_axis(others[0]) * self.spacing_along_array_axis(others[1])

    def tilt_deg(self, axis: int, ras_axis: np.ndarray) -> float:
        """Angle between numpy ``axis`` and a RAS axis (0 on grids aligned with the patient)."""
        c = abs(float(self.direction_of_array_axis(axis) @ np.asarray(ras_axis, dtype=float)))
        return float(np.degrees(np.arccos(min(1.0, c))))

    def is_axis_aligned(self, tol: float = 1e-4) -> bool:
        d = np.abs(self.direction)
        return bool(np.all((d < tol) | (np.abs(d - 1) < tol)))

    # ------------------------------------------------------------------ comparison
    def same_grid(self, other: "Geometry", tol_mm: float = 1e-3) -> bool:
        """True when both grids have the same voxel centres in the same index order."""
        if self.size_ijk != other.size_ijk:
            return False
        return bool(np.allclose(self.ijk_to_ras_matrix(), other.ijk_to_ras_matrix(), atol=tol_mm))

    def corners_ras(self) -> np.ndarray:
        ni, nj, nk = self.size_ijk
        c = np.array([[i, j, k] for i in (-0.5, ni - 0.5) for j in (-0.5, nj - 0.5) for k in (-0.5, nk - 0.5)])
        return self.ijk_to_ras(c)

    def contains_ras(self, ras: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
        """Whether RAS points fall inside the grid (voxel edges, plus a margin in mm)."""
        ijk = self.ras_to_ijk(np.atleast_2d(ras))
        lo = -0.5 - margin_mm / np.asarray(self.spacing)
        hi = np.asarray(self.size_ijk) - 0.5 + margin_mm / np.asarray(self.spacing)
        if self.is_2d:
            lo[2], hi[2] = -np.inf, np.inf
        return np.all((ijk >= lo) & (ijk <= hi), axis=1)

    def to_dict(self) -> dict:
        return {
            "size_ijk": list(self.size_ijk),
            "spacing_mm": list(self.spacing),
            "origin_ras_mm": list(self.origin_ras),
            "direction_ras": [list(r) for r in self.direction_ras],
        }


def orientation_code(geometry: Geometry) -> str:
    """Three-letter code of the i, j, k axes in RAS terms, e.g. 'LPS', 'RAS', 'PIR'."""
    letters = (("R", "L"), ("A", "P"), ("S", "I"))
    code = ""
    for col in geometry.direction.T:
        a = int(np.argmax(np.abs(col)))
        code += letters[a][0] if col[a] > 0 else letters[a][1]
    return code
