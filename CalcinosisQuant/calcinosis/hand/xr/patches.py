"""Masks on windows of the analysis grid (:class:`Patch`) and their shape measures, shared by
every step of the radiograph detector (docs/methods/hand-detection.md, radiographs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Patch:
    """A mask on a window of the analysis grid: ``local`` placed at (``r0``, ``c0``)."""

    r0: int
    c0: int
    local: np.ndarray

    @property
    def window(self) -> tuple[slice, slice]:
        return slice(self.r0, self.r0 + self.local.shape[0]), slice(self.c0, self.c0 + self.local.shape[1])

    def trimmed(self) -> "Patch":
        ys = np.flatnonzero(self.local.any(axis=1))
        xs = np.flatnonzero(self.local.any(axis=0))
        if ys.size == 0:
            return Patch(self.r0, self.c0, np.zeros((0, 0), bool))
        return Patch(self.r0 + ys[0], self.c0 + xs[0], self.local[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1].copy())

    def count(self) -> int:
        return int(self.local.sum())

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        ys, xs = np.nonzero(self.local)
        return ys + self.r0, xs + self.c0

    def full(self, shape) -> np.ndarray:
        out = np.zeros(shape, bool)
        ys, xs = self.coords()
        out[ys, xs] = True
        return out

    def on(self, window: tuple[slice, slice], shape) -> np.ndarray:
        """This mask on another window (same grid)."""
        out = np.zeros(shape, bool)
        ys, xs = self.coords()
        ys, xs = ys - window[0].start, xs - window[1].start
        ok = (ys >= 0) & (ys < shape[0]) & (xs >= 0) & (xs < shape[1])
        out[ys[ok], xs[ok]] = True
        return out


def grown_window(p: Patch, pad: int, shape) -> tuple[slice, slice]:
    return (slice(max(p.r0 - pad, 0), min(p.r0 + p.local.shape[0] + pad, shape[0])),
            slice(max(p.c0 - pad, 0), min(p.c0 + p.local.shape[1] + pad, shape[1])))


def disk_patch(r: float, c: float, rad: float, shape) -> Patch:
    R = int(np.ceil(rad)) + 1
    r0, c0 = max(int(r) - R, 0), max(int(c) - R, 0)
    r1, c1 = min(int(r) + R + 1, shape[0]), min(int(c) + R + 1, shape[1])
    yy, xx = np.mgrid[r0:r1, c0:c1]
    return Patch(r0, c0, (yy - r) ** 2 + (xx - c) ** 2 <= rad * rad)


def aspect_ratio(patch: Patch) -> float:
    ys, xs = np.nonzero(patch.local)
    if ys.size < 3:
        return 1.0
    cov = np.cov(np.stack([xs, ys]).astype(float)) + np.eye(2) / 12.0
    ev = np.sort(np.linalg.eigvalsh(cov))
    return float(np.sqrt(ev[1] / max(ev[0], 1e-12)))
