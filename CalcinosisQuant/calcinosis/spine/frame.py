"""The spine frame: where each vertebra is, which way it faces, and the local
coordinates of any point relative to the spine at its height.

Per vertebra (from its voxels only, in physical space, so any grid orientation works):

* a cranio-caudal axis ``u`` from its neighbours (the curve of the spine), an
  antero-posterior axis ``a`` along the vertebra's mid-sagittal line, from the tip of
  its spinous process (or the canal centre) to the centre of its body, so axial rotation
  is followed, and ``r = a x u`` (towards the patient's right);
* the **canal centre**: the vertebral foramen, found as the hole in the vertebra's
  projection along ``u`` (body, pedicles and laminae close the ring; a small closing
  bridges gaps of a coarse segmentation).  Fall-backs, each recorded: a larger closing,
  the spinal cord/canal label, the gap between body and arch on the mid-line;
* the **body**: the part in front of the canal (centre, half-width, half-depth,
  endplates along ``u``); the **arch**: the part behind it (centroid, spinous tip,
  transverse-process reach).

Two passes: the first uses the centroids of the neighbours for ``u``, the second the
body centres.  A vertebra cut by the scan's edge takes its neighbour's shape, moved one
vertebra along the spine.

:meth:`SpineFrame.locate` places points between the mid-body planes of two consecutive
vertebrae (the disco-vertebral unit) and gives their coordinates in the frame
interpolated at their height: ``x`` to the right, ``y`` anterior (both from the canal
centre), and whether they lie in the disc space between the endplates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from calcinosis.core.geometry import AXIS_A, AXIS_S

from .anatomy import LEVELS, VERTEBRAE, order_number
from .vertebrae import CAT_CORD, SpineLabels

#: Axial rotation beyond this (degrees from the patient's anterior) is taken for an error.
MAX_ROTATION_DEG = 40.0
#: Voxels of one vertebra used for its geometry (an even sample of larger ones).
MAX_POINTS = 40000
#: Canal size assumed when no foramen can be found (mm, half-width / half-depth).
DEFAULT_CANAL_HALF = (8.0, 7.0)


@dataclass
class VertebraGeometry:
    name: str
    centroid: np.ndarray
    u: np.ndarray            # cranial
    a: np.ndarray            # anterior
    r: np.ndarray            # right
    canal: np.ndarray        # canal centre (RAS) at the body's mid-height
    body: np.ndarray         # body centre (RAS)
    arch: np.ndarray         # centroid of the posterior elements (RAS)
    canal_half: tuple[float, float]   # half-width (x), half-depth (y)
    body_half: tuple[float, float]    # half-width, half-depth
    body_y: float            # body centre, y from the canal centre
    body_x: float
    wall_y: float            # posterior wall of the body (= front of canal), y from the canal centre
    endplates: tuple[float, float]    # superior, inferior: along u from the body centre
    spinous_y: float         # most posterior point, y from the canal centre
    tp_reach: float          # transverse-process reach |x| from the canal centre
    canal_method: str = "foramen"
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    arch_points: np.ndarray | None = None   # a sample of the posterior elements' voxels (RAS)

    def to_row(self) -> dict:
        return {
            "vertebra": self.name,
            "body_r_mm": self.body[0], "body_a_mm": self.body[1], "body_s_mm": self.body[2],
            "canal_r_mm": self.canal[0], "canal_a_mm": self.canal[1], "canal_s_mm": self.canal[2],
            "axis_cranial_r": self.u[0], "axis_cranial_a": self.u[1], "axis_cranial_s": self.u[2],
            "axis_anterior_r": self.a[0], "axis_anterior_a": self.a[1], "axis_anterior_s": self.a[2],
            "canal_width_mm": 2 * self.canal_half[0], "canal_depth_mm": 2 * self.canal_half[1],
            "body_width_mm": 2 * self.body_half[0], "body_depth_mm": 2 * self.body_half[1],
            "body_height_mm": self.endplates[0] - self.endplates[1],
            "canal_method": self.canal_method, "truncated": int(self.truncated),
        }


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _perp(v: np.ndarray, u: np.ndarray) -> np.ndarray:
    return _unit(v - (v @ u) * u)


# ---------------------------------------------------------------------- one vertebra
def _canal_from_projection(x: np.ndarray, y: np.ndarray, bin_mm: float, close_bins: int):
    """Hole of the projection nearest the mid-line: (x, y, half-width, half-depth) or None."""
    if x.size < 20:
        return None
    pad = 3 + close_bins
    x0, y0 = x.min() - pad * bin_mm, y.min() - pad * bin_mm
    nx = int(np.ceil((x.max() - x0) / bin_mm)) + pad + 1
    ny = int(np.ceil((y.max() - y0) / bin_mm)) + pad + 1
    ix = np.clip(((x - x0) / bin_mm).astype(int), 0, nx - 1)
    iy = np.clip(((y - y0) / bin_mm).astype(int), 0, ny - 1)
    occ = np.zeros((ny, nx), dtype=bool)
    occ[iy, ix] = True
    if close_bins > 0:
        st = ndimage.generate_binary_structure(2, 1)
        occ = ndimage.binary_closing(occ, st, iterations=close_bins, border_value=0)
    holes = ndimage.binary_fill_holes(occ) & ~occ
    lab, n = ndimage.label(holes)
    if n == 0:
        return None
    best = None
    for h in range(1, n + 1):
        yy, xx = np.nonzero(lab == h)
        area = yy.size * bin_mm * bin_mm
        cx = x0 + (xx.mean() + 0.5) * bin_mm
        cy = y0 + (yy.mean() + 0.5) * bin_mm
        if area < 20.0 or abs(cx) > 15.0:
            continue
        if best is None or area > best[0]:
            hw = (xx.max() - xx.min() + 1) * bin_mm / 2.0
            hd = (yy.max() - yy.min() + 1) * bin_mm / 2.0
            best = (area, cx, cy, hw, hd)
    if best is None:
        return None
    return best[1], best[2], best[3], best[4]


def _canal_from_midline_gap(x: np.ndarray, y: np.ndarray, bin_mm: float):
    """Largest empty run along y on the mid-line between body and arch."""
    sel = np.abs(x) <= max(3.0, bin_mm)
    if sel.sum() < 10:
        return None
    ys = np.sort(y[sel])
    gaps = np.diff(ys)
    k = int(np.argmax(gaps))
    if gaps[k] < 4.0:
        return None
    cy = (ys[k] + ys[k + 1]) / 2.0
    hd = gaps[k] / 2.0
    return 0.0, cy, max(hd * 1.1, 5.0), hd


def vertebra_geometry(name: str, ras: np.ndarray, u: np.ndarray, bin_mm: float,
                      cord_ras: np.ndarray | None = None, a_hint: np.ndarray | None = None) -> VertebraGeometry:
    """Geometry of one vertebra from its voxel centres (RAS, n x 3) and a cranial axis."""
    G = ras.mean(axis=0)
    u = _unit(u)
    a = _perp(a_hint if a_hint is not None else AXIS_A, u)
    method = "foramen"
    notes: list[str] = []
    canal = None
    for _ in range(2):  # second round with the rotation-corrected anterior axis
        r = np.cross(a, u)
        rel = ras - G
        x, y, z = rel @ r, rel @ a, rel @ u
        canal = None
        for close in (1, 2, 4):
            canal = _canal_from_projection(x, y, bin_mm, close)
            if canal is not None:
                method = "foramen" if close == 1 else f"foramen (closing {close * bin_mm:.0f} mm)"
                break
        if canal is None and cord_ras is not None and len(cord_ras):
            crel = cord_ras - G
            cz = crel @ u
            near = np.abs(cz) <= max(z.max() - z.min(), 10.0) / 2
            if near.sum() >= 3:
                cx, cy = float((crel[near] @ r).mean()), float((crel[near] @ a).mean())
                canal = (cx, cy, *DEFAULT_CANAL_HALF)
                method = "spinal cord label"
        if canal is None:
            canal = _canal_from_midline_gap(x, y, bin_mm)
            method = "mid-line gap"
        if canal is None:
            # nothing better: assume the canal just behind a body that fills the front 55%
            ymin, ymax = np.percentile(y, [1, 99])
            cy = ymin + 0.45 * (ymax - ymin) - DEFAULT_CANAL_HALF[1]
            canal = (0.0, cy, *DEFAULT_CANAL_HALF)
            method = "assumed"
            notes.append("no vertebral foramen found; canal position assumed")
        cx, cy, chw, chd = canal
        wall = cy + chd
        # the body straight in front of the canal gives the rotation (not the whole front,
        # which may hold transverse-process roots, sacral alae or a cut-off part)
        strip = (y > wall + 0.5) & (np.abs(x - cx) <= max(1.5 * chw, 10.0))
        if strip.sum() < 10:
            break
        bx, by = float(x[strip].mean()), float(y[strip].mean())
        # the line from the spinous process's tip to the body is the longest lever on the
        # vertebra's mid-sagittal plane; without a posterior arch, the canal stands in
        px, py = cx, cy
        arch = (y < cy - chd - 1.0) & (np.abs(x - cx) <= max(8.0, chw))
        if arch.sum() >= 20:
            tip = arch & (y <= np.percentile(y[arch], 5))
            px, py = float(x[tip].mean()), float(y[tip].mean())
        a_new = _perp((by - py) * a + (bx - px) * r, u)
        a_patient = _perp(AXIS_A, u)
        if a_new @ a_patient < np.cos(np.radians(MAX_ROTATION_DEG)):
            notes.append(f"axial rotation above {MAX_ROTATION_DEG:g} degrees found and not used")
            break
        if np.degrees(np.arccos(np.clip(a_new @ a, -1, 1))) < 0.5:
            a = a_new
            break
        a = a_new
    r = np.cross(a, u)
    rel = ras - G
    x, y, z = rel @ r, rel @ a, rel @ u
    cx, cy, chw, chd = canal
    wall = cy + chd
    front = y > wall + 0.5
    if front.sum() < 10:
        front = y > np.median(y)
    y_front = float(np.percentile(y[front], 99)) if front.sum() else float(y.max())
    # the body proper: the front three quarters (pedicle and transverse-process roots excluded)
    core_front = front & (y > wall + 0.25 * (y_front - wall))
    if core_front.sum() < 10:
        core_front = front
    bx, bz = float(x[core_front].mean()), float(z[core_front].mean())
    body_hw = float(np.percentile(np.abs(x[core_front] - bx), 97)) if core_front.sum() else 15.0
    body_hd = max((y_front - wall) / 2.0, 5.0)
    by_c = (y_front + wall) / 2.0
    core = core_front & (np.abs(x - bx) <= 0.6 * body_hw)
    if core.sum() < 10:
        core = front
    zs = z[core] - bz
    sup, inf = (float(np.percentile(zs, 99)), float(np.percentile(zs, 1))) if zs.size else (10.0, -10.0)
    back = y < wall - 0.5
    arch = G + (ras[back] - G).mean(axis=0) if back.sum() >= 10 else G - 25.0 * a
    mid = back & (np.abs(x - cx) <= 8.0)
    spinous = float(np.percentile(y[mid], 0.5)) - cy if mid.sum() else -(chd + 30.0)
    reach = float(np.percentile(np.abs(x[back] - cx), 99.5)) if back.sum() >= 10 else body_hw + 15.0
    canal_c = G + cx * r + cy * a + bz * u
    body_c = G + bx * r + by_c * a + bz * u
    arch_pts = ras[back]
    if len(arch_pts) > 4000:
        arch_pts = arch_pts[:: len(arch_pts) // 4000 + 1]
    return VertebraGeometry(
        name=name, centroid=G, u=u, a=a, r=r, canal=canal_c, body=body_c, arch=arch,
        canal_half=(float(chw), float(chd)), body_half=(body_hw, body_hd), body_y=float(by_c - cy),
        body_x=float(bx - cx), wall_y=float(chd), endplates=(sup, inf), spinous_y=spinous, tp_reach=reach,
        canal_method=method, notes=notes, arch_points=arch_pts)


# ---------------------------------------------------------------------- the whole spine
@dataclass
class Located:
    """Where points lie in the spine frame (arrays, one entry per point)."""

    upper: np.ndarray        # index into SpineFrame.order of the vertebra above, -1 = above all
    t: np.ndarray            # 0 at the upper vertebra's mid-body plane, 1 at the lower's
    x: np.ndarray            # mm to the right of the canal centre
    y: np.ndarray            # mm anterior of the canal centre
    disc_space: np.ndarray   # between the endplates of the two vertebrae
    body_gap: np.ndarray     # mm outside the (interpolated, elliptic) body outline; <0 inside
    canal_half_x: np.ndarray
    canal_half_y: np.ndarray
    wall_y: np.ndarray
    tp_reach: np.ndarray


@dataclass
class SpineFrame:
    """Vertebra geometries in cranio-caudal order (usable vertebrae only)."""

    vertebrae: list[VertebraGeometry]
    unusable: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def order(self) -> list[str]:
        return [v.name for v in self.vertebrae]

    def level_between(self, upper_index: int) -> str | None:
        """Level name between order[i] and order[i+1] when they are anatomically adjacent."""
        if upper_index < 0 or upper_index + 1 >= len(self.vertebrae):
            return None
        a, b = self.vertebrae[upper_index].name, self.vertebrae[upper_index + 1].name
        name = f"{a}-{b}"
        if name in LEVELS and a in VERTEBRAE and b in VERTEBRAE and VERTEBRAE.index(b) - VERTEBRAE.index(a) == 1:
            return name
        return None

    def assessed_levels(self) -> list[str]:
        out = []
        for i in range(len(self.vertebrae) - 1):
            lv = self.level_between(i)
            if lv is not None:
                out.append(lv)
        return out

    def _planes(self, ref: str) -> tuple[np.ndarray, np.ndarray]:
        pts = np.array([getattr(v, ref) for v in self.vertebrae])
        normals = np.array([v.u for v in self.vertebrae])
        return pts, normals

    def upper_index(self, p: np.ndarray, ref: str = "body") -> tuple[np.ndarray, np.ndarray]:
        """For points (n x 3): the index of the vertebra whose mid-plane (through its
        ``ref`` point: 'body' or 'arch') is the last one above the point, and the
        fraction t of the way to the next plane."""
        pts, normals = self._planes(ref)
        d = np.einsum("nvk,vk->nv", p[:, None, :] - pts[None], normals)  # >0: cranial of the plane
        nv = len(self.vertebrae)
        below = d < 0  # point is caudal of plane v
        # first plane the point is cranial of (scanning cranial -> caudal)
        first_above = np.where((~below).any(axis=1), np.argmax(~below, axis=1), nv)
        upper = first_above - 1
        t = np.zeros(len(p))
        ok = (upper >= 0) & (upper < nv - 1)
        rows = np.flatnonzero(ok)
        du = -d[rows, upper[rows]]
        dl = d[rows, upper[rows] + 1]
        t[rows] = du / np.maximum(du + dl, 1e-9)
        return upper, t

    def locate(self, p: np.ndarray) -> Located:
        p = np.atleast_2d(np.asarray(p, float))
        n = len(p)
        upper, t = self.upper_index(p, "body")
        nv = len(self.vertebrae)
        vi = np.clip(upper, 0, nv - 1)
        wi = np.clip(upper + 1, 0, nv - 1)
        tt = np.where(upper < 0, 0.0, np.where(upper >= nv - 1, 1.0, t))
        # outside the run of vertebrae: use the end vertebra's frame unchanged
        tt = np.where(upper < 0, 1.0, tt)
        vi = np.where(upper < 0, 0, vi)
        wi = np.where(upper < 0, 0, wi)
        V, W = self.vertebrae, self.vertebrae

        def interp(attr):
            A = np.array([np.asarray(getattr(v, attr), float) for v in V])
            return A[vi] * (1 - tt)[:, None] + A[wi] * tt[:, None] if A.ndim == 2 else A[vi] * (1 - tt) + A[wi] * tt

        canal = interp("canal")
        u = interp("u")
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        a = interp("a")
        a -= np.einsum("nk,nk->n", a, u)[:, None] * u
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        r = np.cross(a, u)
        rel = p - canal
        x = np.einsum("nk,nk->n", rel, r)
        y = np.einsum("nk,nk->n", rel, a)
        chx = interp("canal_half")[:, 0]
        chy = interp("canal_half")[:, 1]
        bhw = interp("body_half")[:, 0]
        bhd = interp("body_half")[:, 1]
        by = interp("body_y")
        bx = interp("body_x")
        wall = interp("wall_y")
        reach = interp("tp_reach")
        q = np.sqrt(((x - bx) / bhw) ** 2 + ((y - by) / bhd) ** 2)
        gap = (q - 1.0) * np.minimum(bhw, bhd)
        # disc space: below the upper vertebra's inferior endplate and above the lower's superior one
        disc = np.zeros(n, dtype=bool)
        inner = (upper >= 0) & (upper < nv - 1)
        for k in np.flatnonzero(inner):
            v, w = V[upper[k]], W[upper[k] + 1]
            e_v = (p[k] - (v.body + v.endplates[1] * v.u)) @ v.u
            e_w = (p[k] - (w.body + w.endplates[0] * w.u)) @ w.u
            disc[k] = (e_v < 0.5) and (e_w > -0.5)
        return Located(upper, t, x, y, disc, gap, chx, chy, wall, reach)


def build_frame(lab: SpineLabels, progress=None) -> SpineFrame:
    """Geometry of every usable vertebra of ``lab`` (two passes, see module docstring)."""
    g = lab.box_geometry
    vox = lab.vertebra_voxels()
    names = sorted(vox, key=order_number)
    bin_mm = max(1.0, 0.9 * max(g.spacing))
    ras_of = {}
    for n in names:
        idx = vox[n]
        if idx.size > MAX_POINTS:  # an even sample is as good for centres and axes, and faster
            idx = idx[:: int(np.ceil(idx.size / MAX_POINTS))]
        ras_of[n] = g.kji_to_ras(np.stack(np.unravel_index(idx, lab.vert.shape), axis=1))
    cord = None
    if np.any(lab.category == CAT_CORD):
        cidx = np.flatnonzero(lab.category == CAT_CORD)
        if cidx.size > 200000:
            cidx = cidx[:: cidx.size // 200000 + 1]
        cord = g.kji_to_ras(np.stack(np.unravel_index(cidx, lab.vert.shape), axis=1))
    usable = [n for n in names if lab.usable(n)]
    # the spine's own order along S must follow anatomy; vertebrae that break it are unusable
    centroids = {n: ras_of[n].mean(axis=0) for n in usable}
    usable = _drop_out_of_order(usable, centroids, lab)
    truncated = _truncated(usable, ras_of, lab)
    full = [n for n in usable if n not in truncated] or usable

    def axes_from(points: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for k, n in enumerate(full):
            prev = full[k - 1] if k > 0 else None
            nxt = full[k + 1] if k + 1 < len(full) else None
            if prev is not None and nxt is not None:
                d = points[prev] - points[nxt]
            elif prev is not None:
                d = points[prev] - points[n]
            elif nxt is not None:
                d = points[n] - points[nxt]
            else:
                d = AXIS_S.copy()
            if np.linalg.norm(d) == 0 or d @ AXIS_S < -0.2 * np.linalg.norm(d):
                d = AXIS_S.copy()
            out[n] = _unit(d)
        for n in usable:
            if n not in out:  # truncated: the axis of the nearest complete vertebra
                out[n] = out[min(full, key=lambda m: abs(order_number(m) - order_number(n)))] if full else AXIS_S
        return out

    geoms: dict[str, VertebraGeometry] = {}
    u_of = axes_from(centroids)
    for _pass in range(2):
        for n in usable:
            geoms[n] = vertebra_geometry(n, ras_of[n], u_of[n], bin_mm, cord,
                                         geoms[n].a if n in geoms else None)
        u_of = axes_from({n: geoms[n].body for n in full})
    # truncated vertebrae: the neighbour's shape, one vertebra further along the spine
    for n in truncated:
        k = usable.index(n)
        nb = [m for m in (usable[k + 1] if k + 1 < len(usable) else None,
                          usable[k - 1] if k > 0 else None) if m is not None and m not in truncated]
        if not nb:
            geoms[n].notes.append("cut by the scan's edge; geometry from its visible part")
            geoms[n].truncated = True
            continue
        m = nb[0]
        gm = geoms[m]
        sign = 1.0 if order_number(n) < order_number(m) else -1.0
        height = gm.endplates[0] - gm.endplates[1]
        step = _typical_step(gm, geoms, usable, m, truncated) or 1.3 * height
        shift = sign * step * gm.u
        new = replace(gm, name=n, centroid=gm.centroid + shift, canal=gm.canal + shift, body=gm.body + shift,
                      arch=gm.arch + shift, truncated=True,
                      arch_points=None if gm.arch_points is None else gm.arch_points + shift,
                      notes=[f"cut by the scan's edge; shape taken from {m}, {step:.0f} mm along the spine"])
        # its own posterior elements, where the scan shows enough of them, are better than a copy
        own = ras_of[n]
        rel = own - new.canal
        back = own[(rel @ new.a) < new.wall_y - 0.5]
        m_rel = ras_of[m] - gm.canal
        m_back = int(((m_rel @ gm.a) < gm.wall_y - 0.5).sum())
        if len(back) >= max(20, 0.3 * m_back):
            sample = back[:: len(back) // 4000 + 1]
            xs = np.abs((back - new.canal) @ new.r)
            new = replace(new, arch_points=sample, arch=back.mean(axis=0),
                          tp_reach=max(float(np.percentile(xs, 99.5)), 0.5 * gm.tp_reach))
        geoms[n] = new
    frame = SpineFrame([geoms[n] for n in usable], {n: list(v) for n, v in lab.problems.items()})
    return frame


def _truncated(usable: list[str], ras_of: dict[str, np.ndarray], lab: SpineLabels) -> set[str]:
    """Vertebrae cut by the scan's edge and clearly smaller than their neighbour
    (less than 70% of its voxels): their own voxels cannot give their geometry."""
    out = set()
    for n in usable:
        if n not in lab.truncated:
            continue
        k = usable.index(n)
        nb = [usable[j] for j in (k - 1, k + 1) if 0 <= j < len(usable) and usable[j] not in lab.truncated]
        if not nb or len(ras_of[n]) < 0.7 * max(len(ras_of[m]) for m in nb):
            out.add(n)
    return out


def _typical_step(gm: VertebraGeometry, geoms: dict, usable: list[str], m: str, truncated: set[str]) -> float | None:
    """Distance between the body centres of m and its complete anatomical neighbour."""
    k = usable.index(m)
    for j in (k - 1, k + 1):
        if 0 <= j < len(usable) and usable[j] not in truncated \
                and abs(order_number(usable[j]) - order_number(m)) == 1:
            return float(np.linalg.norm(geoms[usable[j]].body - gm.body))
    return None


def _drop_out_of_order(usable: list[str], centroids: dict[str, np.ndarray], lab: SpineLabels) -> list[str]:
    """Vertebrae whose centroid is not between its neighbours' along S are unusable
    (a swapped pair makes both unusable: which one is wrong cannot be told)."""
    if len(usable) < 2:
        return usable
    s = np.array([centroids[n] @ AXIS_S for n in usable])
    bad = []
    for k in range(len(usable)):
        up = s[k - 1] if k > 0 else np.inf
        down = s[k + 1] if k + 1 < len(usable) else -np.inf
        if not (down < s[k] < up):
            bad.append(usable[k])
    if not bad:
        return usable
    for n in bad:
        lab.add_problem(n, "out of anatomical order")
    lab.warnings.append(f"{lab.source}: vertebrae {', '.join(bad)} lie out of anatomical order along the spine "
                        "(cranial vertebrae must lie higher); levels next to them are not assessed")
    return [m for m in usable if m not in bad]
