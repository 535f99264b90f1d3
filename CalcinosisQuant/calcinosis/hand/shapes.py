"""Analytic solids with signed distance functions, for the hand phantom.

Signed distance ``sdf(points) < 0`` inside, in mm.  Soft tissue and bone are rendered
with a partial-volume ramp on the signed distance (a voxel of size h at distance d from a
smooth surface is covered by about ``clip(0.5 - d / h, 0, 1)``); lesions, whose volume is
the ground truth, are rendered with exact sub-voxel sampling
(:func:`calcinosis.core.phantoms.coverage_fraction`) and projected with exact chord lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class Capsule:
    """Points within ``radius`` of the segment p0-p1 (soft tissue of a finger, a palm ray)."""

    p0: tuple
    p1: tuple
    radius: float

    def sdf(self, pts: np.ndarray) -> np.ndarray:
        dt = pts.dtype if pts.dtype in (np.float32, np.float64) else np.float64
        a, b = np.asarray(self.p0, dt), np.asarray(self.p1, dt)
        ab = b - a
        d = pts - a
        t = np.clip((d @ ab) / dt.type(ab @ ab), 0.0, 1.0)
        d -= t[..., None] * ab
        return np.sqrt(np.einsum("...i,...i->...", d, d)) - dt.type(self.radius)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.asarray(self.p0), np.asarray(self.p1)
        return np.minimum(a, b) - self.radius, np.maximum(a, b) + self.radius


@dataclass(frozen=True)
class RoundedCylinder:
    """A cylinder from p0 to p1 (flat ends, edges rounded by ``edge`` mm): a bone shaft
    whose ends face the neighbouring bone across the joint space."""

    p0: tuple
    p1: tuple
    radius: float
    edge: float = 1.0

    def sdf(self, pts: np.ndarray) -> np.ndarray:
        dt = pts.dtype if pts.dtype in (np.float32, np.float64) else np.float64
        a, b = np.asarray(self.p0, float), np.asarray(self.p1, float)
        c = ((a + b) / 2.0).astype(dt)
        axis = b - a
        half = float(np.linalg.norm(axis) / 2.0)
        u = (axis / (2.0 * half)).astype(dt)
        d = pts - c
        along = d @ u
        radial = np.sqrt(np.maximum(np.einsum("...i,...i->...", d, d) - along * along, 0.0))
        e = min(self.edge, self.radius * 0.99, half * 0.99)
        qx = radial - (self.radius - e)
        qy = np.abs(along) - (half - e)
        outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
        inside = np.minimum(np.maximum(qx, qy), 0.0)
        return outside + inside - e

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.asarray(self.p0), np.asarray(self.p1)
        return np.minimum(a, b) - self.radius, np.maximum(a, b) + self.radius

    def shrunk(self, t: float) -> "RoundedCylinder":
        """The same shaft ``t`` mm thinner all round (the marrow inside a cortex of thickness t)."""
        a, b = np.asarray(self.p0, float), np.asarray(self.p1, float)
        u = _unit(b - a)
        return RoundedCylinder(tuple(a + t * u), tuple(b - t * u), self.radius - t, max(self.edge - t, 0.2))


@dataclass(frozen=True)
class EllipsoidSolid:
    """An ellipsoid (carpal bones, tissue bulges); approximate signed distance
    (exact on the surface, a good estimate near it)."""

    center: tuple
    semi: tuple
    rotation: tuple = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    @property
    def R(self) -> np.ndarray:
        return np.asarray(self.rotation, dtype=float)

    def sdf(self, pts: np.ndarray) -> np.ndarray:
        dt = pts.dtype if pts.dtype in (np.float32, np.float64) else np.float64
        q = (pts - np.asarray(self.center, dt)) @ self.R.astype(dt)
        s = np.asarray(self.semi, dtype=dt)
        k0 = np.linalg.norm(q / s, axis=-1)
        k1 = np.linalg.norm(q / (s * s), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = k0 * (k0 - 1.0) / k1
        return np.where(k1 > 0, d, -float(s.min()))

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        M = self.R @ np.diag(np.asarray(self.semi, float) ** 2) @ self.R.T
        h = np.sqrt(np.diag(M))
        c = np.asarray(self.center, float)
        return c - h, c + h

    def shrunk(self, t: float) -> "EllipsoidSolid":
        return EllipsoidSolid(self.center, tuple(max(s - t, 0.3) for s in self.semi), self.rotation)


def ellipsoid_chord(center: np.ndarray, semi: np.ndarray, R: np.ndarray, origins: np.ndarray,
                    direction: np.ndarray) -> np.ndarray:
    """Length of the lines ``origins + t * direction`` inside an ellipsoid (exact)."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    s = np.asarray(semi, float)
    o = (origins - center) @ R / s
    v = (R.T @ d) / s
    a = v @ v
    b = 2.0 * (o @ v)
    c = np.einsum("...i,...i->...", o, o) - 1.0
    disc = b * b - 4 * a * c
    return np.where(disc > 0, np.sqrt(np.maximum(disc, 0.0)) / a, 0.0)
