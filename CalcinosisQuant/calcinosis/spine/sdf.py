"""Signed-distance primitives (mm, negative inside) for the spine phantom.

Each primitive evaluates on RAS points of shape (..., 3) and knows an axis-aligned RAS
box that holds it, so a renderer only visits voxels near it.  Distances are exact for
capsules and planes and close approximations for ellipses (scaled radial distance),
which is all partial-volume rendering needs (the surface band is a voxel wide).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


class Prim:
    lo: np.ndarray
    hi: np.ndarray

    def sdf(self, p: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


def _box(points: Sequence[np.ndarray], pad: float) -> tuple[np.ndarray, np.ndarray]:
    P = np.array(points, float)
    return P.min(axis=0) - pad, P.max(axis=0) + pad


@dataclass
class Capsule(Prim):
    """All points within ``radius`` of the segment p0-p1."""

    p0: np.ndarray
    p1: np.ndarray
    radius: float

    def __post_init__(self):
        self.p0 = np.asarray(self.p0, float)
        self.p1 = np.asarray(self.p1, float)
        self.lo, self.hi = _box([self.p0, self.p1], self.radius)

    def sdf(self, p):
        d = self.p1 - self.p0
        L2 = float(d @ d)
        t = np.clip(((p - self.p0) @ d) / L2, 0.0, 1.0) if L2 > 0 else np.zeros(p.shape[:-1])
        q = p - (self.p0 + t[..., None] * d)
        return np.sqrt(np.einsum("...k,...k->...", q, q)) - self.radius


@dataclass
class Frame:
    """Origin and orthonormal axes r (x), a (y), u (z) of a local coordinate system."""

    origin: np.ndarray
    r: np.ndarray
    a: np.ndarray
    u: np.ndarray

    def local(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = p - self.origin
        return q @ self.r, q @ self.a, q @ self.u

    def to_ras(self, x: float, y: float, z: float) -> np.ndarray:
        return self.origin + x * self.r + y * self.a + z * self.u


def _ellipse_sd(x, y, A, B):
    q = np.sqrt((x / A) ** 2 + (y / B) ** 2)
    return (q - 1.0) * min(A, B)


@dataclass
class EllipticCylinder(Prim):
    """Ellipse (semi-axes A along x, B along y, centre cx, cy) extruded over z in [z0, z1]."""

    frame: Frame
    A: float
    B: float
    z0: float
    z1: float
    cx: float = 0.0
    cy: float = 0.0

    def __post_init__(self):
        f = self.frame
        pts = [f.to_ras(self.cx + sx * self.A, self.cy + sy * self.B, z)
               for sx in (-1, 1) for sy in (-1, 1) for z in (self.z0, self.z1)]
        self.lo, self.hi = _box(pts, 1.0)

    def sdf(self, p):
        x, y, z = self.frame.local(p)
        e = _ellipse_sd(x - self.cx, y - self.cy, self.A, self.B)
        zz = np.maximum(self.z0 - z, z - self.z1)
        return np.maximum(e, zz)


@dataclass
class ExtrudedCapsule(Prim):
    """A 2D capsule in the local x-y plane (segment q0-q1, radius) extruded over z in [z0, z1]."""

    frame: Frame
    q0: tuple[float, float]
    q1: tuple[float, float]
    radius: float
    z0: float
    z1: float

    def __post_init__(self):
        f = self.frame
        pts = [f.to_ras(q[0], q[1], z) for q in (self.q0, self.q1) for z in (self.z0, self.z1)]
        self.lo, self.hi = _box(pts, self.radius + 1.0)

    def sdf(self, p):
        x, y, z = self.frame.local(p)
        q0 = np.asarray(self.q0, float)
        d = np.asarray(self.q1, float) - q0
        L2 = float(d @ d)
        t = np.clip(((x - q0[0]) * d[0] + (y - q0[1]) * d[1]) / L2, 0, 1) if L2 > 0 else 0.0 * x
        dx = x - (q0[0] + t * d[0])
        dy = y - (q0[1] + t * d[1])
        e = np.sqrt(dx * dx + dy * dy) - self.radius
        zz = np.maximum(self.z0 - z, z - self.z1)
        return np.maximum(e, zz)


@dataclass
class Slab(Prim):
    """The region between two planes (point, outward normal each) inside an elliptic
    cylinder of a frame: an intervertebral disc between two endplates."""

    frame: Frame
    A: float
    B: float
    top_point: np.ndarray
    top_normal: np.ndarray      # points out of the slab (cranial)
    bottom_point: np.ndarray
    bottom_normal: np.ndarray   # points out of the slab (caudal)
    cy: float = 0.0

    def __post_init__(self):
        f = self.frame
        pts = [f.to_ras(sx * self.A, self.cy + sy * self.B, 0.0) + dz
               for sx in (-1, 1) for sy in (-1, 1)
               for dz in (self.top_point - f.origin, self.bottom_point - f.origin)]
        self.lo, self.hi = _box(pts, 3.0)

    def sdf(self, p):
        x, y, _ = self.frame.local(p)
        e = _ellipse_sd(x, y - self.cy, self.A, self.B)
        t = (p - self.top_point) @ self.top_normal
        b = (p - self.bottom_point) @ self.bottom_normal
        return np.maximum(e, np.maximum(t, b))


@dataclass
class Ellipsoid(Prim):
    center: np.ndarray
    axes: np.ndarray      # 3x3, columns are the unit axes (RAS)
    semi: np.ndarray      # semi-axis lengths

    def __post_init__(self):
        self.center = np.asarray(self.center, float)
        self.axes = np.asarray(self.axes, float)
        self.semi = np.asarray(self.semi, float)
        M = self.axes @ np.diag(self.semi ** 2) @ self.axes.T
        half = np.sqrt(np.diag(M))
        self.lo, self.hi = self.center - half - 1.0, self.center + half + 1.0

    def sdf(self, p):
        q = ((p - self.center) @ self.axes) / self.semi
        n = np.sqrt(np.einsum("...k,...k->...", q, q))
        return (n - 1.0) * float(self.semi.min())


@dataclass
class Union(Prim):
    parts: list
    minus: list = field(default_factory=list)

    def __post_init__(self):
        self.lo = np.min([p.lo for p in self.parts], axis=0)
        self.hi = np.max([p.hi for p in self.parts], axis=0)

    def sdf(self, p):
        d = self.parts[0].sdf(p)
        for q in self.parts[1:]:
            d = np.minimum(d, q.sdf(p))
        for q in self.minus:
            d = np.maximum(d, -q.sdf(p))
        return d
