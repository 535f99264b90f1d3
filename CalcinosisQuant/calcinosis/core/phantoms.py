"""Simple phantoms with exact ground truth.

Ellipsoids (3D) and ellipses (2D) of known size and intensity on a noisy background,
rendered with partial volume: each voxel's value mixes lesion and background in the
proportion of the voxel covered, estimated from ``supersample``³ sub-voxel points.
The truth tables give the analytic values (volume 4/3·π·abc, area π·ab, projected
area of an ellipsoid on the coronal plane), so tests compare measurements with
geometry, not with another run of the same code.

The realistic hand and spine phantoms build on these in their own libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .geometry import AXIS_A, Geometry
from .tables import Column, Table


def rotation_matrix(axis: Sequence[float], angle_deg: float) -> np.ndarray:
    """Rotation about ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    t = np.deg2rad(angle_deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K


@dataclass(frozen=True)
class Ellipsoid:
    center_ras: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    intensity: float
    rotation: tuple = field(default=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
    name: str = ""

    @property
    def R(self) -> np.ndarray:
        """Columns: the ellipsoid's axes in RAS."""
        return np.asarray(self.rotation, dtype=float)

    @property
    def volume_mm3(self) -> float:
        a, b, c = self.semi_axes_mm
        return 4.0 / 3.0 * np.pi * a * b * c

    def projected_area_mm2(self, normal_ras: Sequence[float] = AXIS_A) -> float:
        """Area of the shadow on the plane with unit normal ``normal_ras``."""
        a, b, c = self.semi_axes_mm
        n = self.R.T @ np.asarray(normal_ras, dtype=float)
        return float(np.pi * np.sqrt((b * c * n[0]) ** 2 + (a * c * n[1]) ** 2 + (a * b * n[2]) ** 2))

    def projected_semi_axes_mm(self, normal_ras: Sequence[float] = AXIS_A) -> tuple[float, float]:
        """Semi-axes of the shadow ellipse on the plane with unit normal ``normal_ras``."""
        n = np.asarray(normal_ras, dtype=float)
        n = n / np.linalg.norm(n)
        helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        e1 = np.cross(n, helper)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(n, e1)
        B = np.stack([e1, e2], axis=1)
        A = self.R @ np.diag(self.semi_axes_mm)
        ev = np.linalg.eigvalsh(B.T @ A @ A.T @ B)
        return float(np.sqrt(ev[1])), float(np.sqrt(ev[0]))

    def bounding_half_extent_ras(self) -> np.ndarray:
        """Half-size of the axis-aligned RAS box around the ellipsoid."""
        M = self.R @ np.diag(np.asarray(self.semi_axes_mm) ** 2) @ self.R.T
        return np.sqrt(np.diag(M))

    def contains(self, ras: np.ndarray) -> np.ndarray:
        q = (np.asarray(ras) - np.asarray(self.center_ras)) @ self.R / np.asarray(self.semi_axes_mm)
        return np.einsum("...i,...i->...", q, q) <= 1.0


def coverage_fraction(geometry: Geometry, shape_contains, center_ras: np.ndarray, half_extent_ras: np.ndarray,
                      supersample: int = 4) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Fraction of each voxel inside a shape, on the index box around it.

    ``shape_contains(ras_points) -> bool array``.  Returns (numpy slices, fractions) or
    None when the shape is outside the grid."""
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half_extent_ras
    ijk = geometry.ras_to_ijk(corners + center_ras)
    lo = np.floor(ijk.min(axis=0) - 1).astype(int)
    hi = np.ceil(ijk.max(axis=0) + 1).astype(int)
    size = np.asarray(geometry.size_ijk)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, size - 1)
    if geometry.is_2d:
        lo[2], hi[2] = 0, 0
    if np.any(hi < lo):
        return None
    ii, jj, kk = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1),
                             np.arange(lo[2], hi[2] + 1), indexing="ij")
    base = np.stack([ii, jj, kk], axis=-1).astype(float)  # (ni, nj, nk, 3)
    inside = np.zeros(base.shape[:3], dtype=np.float64)
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    koffs = [0.0] if geometry.is_2d else offs
    n = 0
    for di in offs:
        for dj in offs:
            for dk in koffs:
                ras = geometry.ijk_to_ras(base + np.array([di, dj, dk]))
                inside += shape_contains(ras)
                n += 1
    frac = np.transpose(inside / n, (2, 1, 0))  # to (k, j, i)
    slices = (slice(lo[2], hi[2] + 1), slice(lo[1], hi[1] + 1), slice(lo[0], hi[0] + 1))
    return slices, frac


def render_ellipsoids(geometry: Geometry, ellipsoids: Sequence[Ellipsoid], background: float = 40.0,
                      noise_sd: float = 10.0, seed: int = 0, supersample: int = 4,
                      dtype=np.float32) -> np.ndarray:
    """Background + partial-volume ellipsoids + Gaussian noise, as ``array[k, j, i]``."""
    rng = np.random.default_rng(seed)
    arr = np.full(geometry.shape, background, dtype=np.float32)
    for e in ellipsoids:
        cov = coverage_fraction(geometry, e.contains, np.asarray(e.center_ras), e.bounding_half_extent_ras(), supersample)
        if cov is None:
            continue
        sl, frac = cov
        arr[sl] += (frac * (e.intensity - background)).astype(np.float32)
    if noise_sd > 0:
        arr += rng.normal(0.0, noise_sd, size=arr.shape).astype(np.float32)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(arr), info.min, info.max).astype(dtype)
    return arr.astype(dtype)


TRUTH_COLUMNS = [
    Column("lesion_id", "int", "", "Phantom lesion number"),
    Column("name", "string", "", "Phantom lesion name"),
    Column("center_r_mm", "double", "mm", "True centre, R (RAS)"),
    Column("center_a_mm", "double", "mm", "True centre, A (RAS)"),
    Column("center_s_mm", "double", "mm", "True centre, S (RAS)"),
    Column("semi_axis_1_mm", "double", "mm", "Semi-axis 1"),
    Column("semi_axis_2_mm", "double", "mm", "Semi-axis 2"),
    Column("semi_axis_3_mm", "double", "mm", "Semi-axis 3 (0 for a 2D ellipse)"),
    Column("diameter_mm", "double", "mm", "Largest true diameter"),
    Column("volume_mm3", "double", "mm3", "Analytic volume 4/3 pi abc (3D)"),
    Column("area_mm2", "double", "mm2", "Analytic area pi ab (2D)"),
    Column("projected_area_mm2", "double", "mm2", "Analytic area of the projection on the coronal plane (3D)"),
    Column("intensity", "double", "", "Lesion intensity before partial volume and noise"),
]


def ellipsoid_truth(ellipsoids: Sequence[Ellipsoid]) -> Table:
    t = Table(TRUTH_COLUMNS, name="truth", description="Phantom ground truth (analytic)")
    for n, e in enumerate(ellipsoids, start=1):
        t.append({"lesion_id": n, "name": e.name or f"lesion_{n}",
                  "center_r_mm": e.center_ras[0], "center_a_mm": e.center_ras[1], "center_s_mm": e.center_ras[2],
                  "semi_axis_1_mm": e.semi_axes_mm[0], "semi_axis_2_mm": e.semi_axes_mm[1],
                  "semi_axis_3_mm": e.semi_axes_mm[2], "diameter_mm": 2 * max(e.semi_axes_mm),
                  "volume_mm3": e.volume_mm3, "projected_area_mm2": e.projected_area_mm2(), "intensity": e.intensity})
    return t


# ---------------------------------------------------------------------- standard phantoms
def spheres_phantom(diameters_mm: Sequence[float] = (2, 3, 4, 6, 8, 12), intensity: float = 400.0,
                    spacing: Sequence[float] = (0.4, 0.4, 0.6), oblique_deg: float = 0.0,
                    background: float = 40.0, noise_sd: float = 10.0, seed: int = 0,
                    elongate: bool = False) -> tuple[np.ndarray, Geometry, list[Ellipsoid]]:
    """Spheres (or tilted ellipsoids with ``elongate``) in a row, in soft tissue.

    ``oblique_deg`` rotates the voxel grid about a skewed axis, so RAS and index axes
    differ (geometry must then come through the direction matrix)."""
    rng = np.random.default_rng(seed + 1)
    gap = 4.0
    lengths = [d * (1.6 if elongate else 1.0) for d in diameters_mm]
    total = sum(lengths) + gap * (len(lengths) + 1)
    width = max(lengths) + 2 * gap
    extent = np.array([total, width, width])  # mm along R, A, S
    direction = rotation_matrix((1, 2, 3), oblique_deg) if oblique_deg else np.eye(3)
    # a grid that covers the (rotated) extent
    diag = np.linalg.norm(extent) if oblique_deg else None
    if oblique_deg:
        size = np.ceil(np.array([diag, diag, diag]) / np.asarray(spacing)).astype(int)
    else:
        size = np.ceil(extent / np.asarray(spacing)).astype(int)
    center_ras = np.array([10.0, -20.0, 35.0])
    origin = center_ras - direction @ ((size - 1) * np.asarray(spacing) / 2.0)
    geom = Geometry.create(size, spacing, origin, direction)
    ellipsoids = []
    x = center_ras[0] - total / 2 + gap
    for n, (d, length) in enumerate(zip(diameters_mm, lengths), start=1):
        c = (x + length / 2, center_ras[1] + rng.uniform(-0.3, 0.3), center_ras[2] + rng.uniform(-0.3, 0.3))
        if elongate:
            semi = (length / 2, d / 2, d * 0.35)
            rot = rotation_matrix((0.3, 1.0, 0.5), 25.0 * n)
        else:
            semi = (d / 2, d / 2, d / 2)
            rot = np.eye(3)
        ellipsoids.append(Ellipsoid(tuple(c), semi, intensity, tuple(map(tuple, rot)), f"sphere_{d:g}mm"))
        x += length + gap
    arr = render_ellipsoids(geom, ellipsoids, background, noise_sd, seed)
    return arr, geom, ellipsoids


@dataclass(frozen=True)
class Ellipse:
    """A 2D ellipse in the image plane, in image millimetres (u along columns, v along rows)."""

    center_uv_mm: tuple[float, float]
    semi_axes_mm: tuple[float, float]
    angle_deg: float
    intensity: float
    name: str = ""

    @property
    def area_mm2(self) -> float:
        return float(np.pi * self.semi_axes_mm[0] * self.semi_axes_mm[1])


def render_ellipses(shape_rc: tuple[int, int], spacing_xy: Sequence[float], ellipses: Sequence[Ellipse],
                    background: float = 1000.0, noise_sd: float = 20.0, seed: int = 0,
                    supersample: int = 8) -> np.ndarray:
    """2D image (rows, cols): background + partial-area ellipses + noise."""
    rng = np.random.default_rng(seed)
    img = np.full(shape_rc, background, dtype=np.float64)
    sx, sy = float(spacing_xy[0]), float(spacing_xy[1])
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    for e in ellipses:
        a, b = e.semi_axes_mm
        r = max(a, b)
        c0 = int(max(0, np.floor((e.center_uv_mm[0] - r) / sx) - 1))
        c1 = int(min(shape_rc[1] - 1, np.ceil((e.center_uv_mm[0] + r) / sx) + 1))
        r0 = int(max(0, np.floor((e.center_uv_mm[1] - r) / sy) - 1))
        r1 = int(min(shape_rc[0] - 1, np.ceil((e.center_uv_mm[1] + r) / sy) + 1))
        cc, rr = np.meshgrid(np.arange(c0, c1 + 1), np.arange(r0, r1 + 1))
        t = np.deg2rad(e.angle_deg)
        inside = np.zeros(cc.shape)
        for du in offs:
            for dv in offs:
                u = (cc + du) * sx - e.center_uv_mm[0]
                v = (rr + dv) * sy - e.center_uv_mm[1]
                p = (u * np.cos(t) + v * np.sin(t)) / a
                q = (-u * np.sin(t) + v * np.cos(t)) / b
                inside += (p * p + q * q) <= 1.0
        img[r0:r1 + 1, c0:c1 + 1] += inside / offs.size ** 2 * (e.intensity - background)
    if noise_sd > 0:
        img += rng.normal(0.0, noise_sd, size=shape_rc)
    return img


def ellipse_truth(ellipses: Sequence[Ellipse], geometry: Geometry) -> Table:
    t = Table(TRUTH_COLUMNS, name="truth", description="Phantom ground truth (analytic)")
    for n, e in enumerate(ellipses, start=1):
        ijk = np.array([e.center_uv_mm[0] / geometry.spacing[0], e.center_uv_mm[1] / geometry.spacing[1], 0.0])
        ras = geometry.ijk_to_ras(ijk)
        t.append({"lesion_id": n, "name": e.name or f"lesion_{n}", "center_r_mm": ras[0], "center_a_mm": ras[1],
                  "center_s_mm": ras[2], "semi_axis_1_mm": e.semi_axes_mm[0], "semi_axis_2_mm": e.semi_axes_mm[1],
                  "semi_axis_3_mm": 0.0, "diameter_mm": 2 * max(e.semi_axes_mm), "area_mm2": e.area_mm2,
                  "intensity": e.intensity})
    return t


def radiograph_phantom(diameters_mm: Sequence[float] = (1.5, 2, 3, 5, 8, 12), spacing_xy=(0.1, 0.1),
                       background: float = 1000.0, intensity: float = 3000.0, noise_sd: float = 20.0,
                       seed: int = 0) -> tuple[np.ndarray, list[Ellipse]]:
    """Ellipses of known area on a flat background (values like a MONOCHROME2 radiograph)."""
    rng = np.random.default_rng(seed + 2)
    gap = 4.0
    total_u = sum(diameters_mm) * 1.3 + gap * (len(diameters_mm) + 1)
    height = max(diameters_mm) * 1.3 + 2 * gap
    cols = int(np.ceil(total_u / spacing_xy[0]))
    rows = int(np.ceil(height / spacing_xy[1]))
    ellipses = []
    u = gap
    for n, d in enumerate(diameters_mm, start=1):
        a, b = d * 0.65, d * 0.5
        ellipses.append(Ellipse((u + a, height / 2 + rng.uniform(-0.5, 0.5)), (a, b), 30.0 * n, intensity, f"ellipse_{d:g}mm"))
        u += 2 * a + gap
    img = render_ellipses((rows, cols), spacing_xy, ellipses, background, noise_sd, seed)
    return img, ellipses


# ---------------------------------------------------------------------- matching
def match_by_centroid(measured: Table, truth: Table, max_distance_mm: float,
                      truth_prefix: str = "center", measured_prefix: str = "centroid") -> list[tuple[int, int | None]]:
    """Greedy nearest-centroid matching: [(truth row, measured row or None)]."""
    tc = np.array([[r[f"{truth_prefix}_{a}_mm"] for a in "ras"] for r in truth.rows]).reshape(-1, 3)
    mc = np.array([[r[f"{measured_prefix}_{a}_mm"] for a in "ras"] for r in measured.rows]).reshape(-1, 3)
    if len(mc) == 0:
        return [(t, None) for t in range(len(tc))]
    d = np.linalg.norm(tc[:, None, :] - mc[None, :, :], axis=2)
    pairs: list[tuple[int, int | None]] = []
    used: set[int] = set()
    for t in np.argsort(d.min(axis=1)):
        order = np.argsort(d[t])
        m = next((int(m) for m in order if int(m) not in used and d[t, m] <= max_distance_mm), None)
        if m is not None:
            used.add(m)
        pairs.append((int(t), m))
    return sorted(pairs)
