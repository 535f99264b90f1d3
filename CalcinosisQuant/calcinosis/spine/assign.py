"""Assignment of each calcification to a level, segment, sub-site and pattern.

All in the spine frame at the calcification's height (:mod:`.frame`), with ``x`` to
the right and ``y`` anterior of the canal centre, and ``wall`` the posterior wall of
the body/disc (the canal's front).  Rules, in order (each threshold a parameter):

* with a SPINEPS sub-region mask (:mod:`.subregions`), the part the calcification lies in
  or nearest to: canal -> posterior longitudinal ligament (in its band) or intracanal;
  disc -> intervertebral_disc; spinous process -> interspinous; costal process ->
  transverse_process / costotransverse (as below); articular process -> facet_joint
  (behind ``facet_front_fraction`` of the canal's half depth) or foraminal (in front); the
  arch, body and end plates leave it to the rules below;
* inside a TotalSpineSeg disc label (half of its voxels or more) -> intervertebral_disc;
* in front of the posterior-longitudinal-ligament band (``y > wall + pll_front``):
  inside the body outline and between the endplates of the level's two vertebrae
  -> intervertebral_disc, else anterior_longitudinal_ligament (front and sides);
* in the band (``wall - pll_back <= y <= wall + pll_front``) within the canal's width
  -> posterior_longitudinal_ligament;
* inside the canal's ellipse -> intracanal;
* beside and behind the canal (lateral of the interspinous band, within ``facet_reach`` of
  the canal's side, from ``facet_front_fraction`` of its half depth behind its centre to
  ``facet_reach`` behind its back wall) -> facet_joint (posterior segment);
* beside the canal, within ``foramen_depth`` of its side and in its antero-posterior
  band -> foraminal (counted with the intracanal segment);
* behind: within ``interspinous_half_width`` of the mid-line -> interspinous; at a
  thoracic vertebra beyond ``costotransverse_fraction`` of the transverse-process reach
  or near a labelled rib -> costotransverse; otherwise transverse_process.

Level: for the anterior and intracanal segments, between the mid-body planes of two
consecutive vertebrae (normal to the spine's axis); for the posterior segment, between
the posterior elements of the two vertebrae nearest to it (an interspinous
calcification belongs to the level of the two spinous processes it lies between, even
where thoracic spinous processes slope down over the next body).  Only levels whose two
vertebrae are present, usable and adjacent are reported.

Pattern: ``pseudotumoral`` when the equivalent diameter reaches
``pseudotumoral_min_diameter_mm``; else ``linear`` when the major principal axis is at
least ``linear_min_elongation`` times the middle one and ``linear_min_length_mm`` long;
else ``punctate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calcinosis.core.lesions import LesionSet
from calcinosis.core.tables import Table

from .anatomy import SUBSITE_SEGMENT, is_thoracic
from .candidates import near, near_values, neighbour_offsets
from .frame import SpineFrame
from .params import SpineParams
from .subregions import PART_CODE
from .vertebrae import CAT_RIB, SpineLabels


@dataclass
class Assignment:
    level: list[str | None]
    segment: list[str]
    subsite: list[str]
    pattern: list[str]
    dropped: dict[int, str] = field(default_factory=dict)   # row index -> reason
    gap_mm: np.ndarray | None = None


def classify_pattern(eq_diameter: np.ndarray, major: np.ndarray, mid: np.ndarray, params: SpineParams) -> list[str]:
    out = []
    for d, a, b in zip(eq_diameter, major, mid):
        if d >= params.pseudotumoral_min_diameter_mm:
            out.append("pseudotumoral")
        elif b > 0 and a / b >= params.linear_min_elongation and a >= params.linear_min_length_mm:
            out.append("linear")
        else:
            out.append("punctate")
    return out


def _posterior_levels(frame: SpineFrame, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper index, nearest vertebra index) by distance to the vertebrae's posterior elements."""
    from scipy.spatial import cKDTree
    nv = len(frame.vertebrae)
    d = np.full((len(p), nv), np.inf)
    for k, v in enumerate(frame.vertebrae):
        pts = v.arch_points
        if pts is None or len(pts) == 0:
            d[:, k] = np.linalg.norm(p - v.arch, axis=1)
        else:
            d[:, k] = cKDTree(pts).query(p)[0]
    n1 = np.argmin(d, axis=1)
    upper = np.empty(len(p), dtype=int)
    first, last = frame.vertebrae[0], frame.vertebrae[-1]
    for row, k in enumerate(n1):
        above = d[row, k - 1] if k - 1 >= 0 else np.inf
        below = d[row, k + 1] if k + 1 < nv else np.inf
        upper[row] = k - 1 if above < below else k
        # beyond the end vertebrae's posterior elements: a level the scan does not hold
        if k == 0 and (p[row] - first.arch) @ first.u > 0:
            upper[row] = -1
        elif k == nv - 1 and (p[row] - last.arch) @ last.u < 0:
            upper[row] = nv - 1
    return upper, n1


def _subregion_parts(lesions: LesionSet, lab: SpineLabels, ids: np.ndarray, params: SpineParams) -> list:
    """Per lesion row, the SPINEPS part that decides its sub-site (:mod:`.subregions`):
    the canal or the disc when half of its voxels lie in it, else the process (spinous,
    costal, articular) when it is the part most of its voxels lie within
    ``subregion_near_mm`` of (None: the frame's rules decide)."""
    sub = lab.subregion
    code = PART_CODE
    inside = sub.ravel()[lesions.voxel_index]
    tot = np.maximum(np.bincount(lesions.voxel_label, minlength=lesions.n + 1), 1)
    out: list = [None] * len(ids)
    share = {}
    for name in ("canal", "cord", "disc"):
        share[name] = (np.bincount(lesions.voxel_label, weights=(inside == code[name]).astype(float),
                                   minlength=lesions.n + 1) / tot)[ids]
    offsets = neighbour_offsets(lab.box_geometry, params.subregion_near_mm)
    near_count = {}
    for name in ("spinous", "costal", "articular", "arch", "body", "endplate", "disc", "canal", "cord"):
        lut = np.zeros(256, dtype=bool)
        lut[code[name]] = True
        hit = near_values(lesions.voxel_index, sub, lut, offsets)
        near_count[name] = np.bincount(lesions.voxel_label, weights=hit.astype(float), minlength=lesions.n + 1)[ids]
    names = list(near_count)
    counts = np.stack([near_count[nm] for nm in names], axis=1)
    for k in range(len(ids)):
        if share["canal"][k] + share["cord"][k] >= 0.5:
            out[k] = "canal"
        elif share["disc"][k] >= 0.5:
            out[k] = "disc"
        elif counts[k].max() > 0:
            nm = names[int(np.argmax(counts[k]))]
            # near a process: that process decides; near the body, disc, end plate, arch or
            # canal without lying in it: the frame's rules (a ligament along the body, the
            # posterior longitudinal ligament, a foraminal deposit)
            out[k] = nm if nm in ("spinous", "costal", "articular") else None
    return out


def _subsite_from_part(part: str | None, y: float, wall: float, canal_half_y: float,
                       params: SpineParams) -> str | None:
    """The sub-site a SPINEPS part decides, or None where the frame's rules decide (arch,
    body, end plate, or no part near).  Near an articular process: the facet joint when
    behind ``facet_front_fraction`` of the canal's half depth, else the foramen in front
    of it."""
    if part == "canal":
        return "posterior_longitudinal_ligament" if y >= wall - params.pll_back_mm else "intracanal"
    if part == "articular":
        return "facet_joint" if y < -params.facet_front_fraction * canal_half_y else "foraminal"
    return {"disc": "intervertebral_disc", "spinous": "interspinous", "costal": "transverse_process"}.get(part)


def in_facet_zone(x, y, canal_half_x, canal_half_y, params: SpineParams):
    """Whether frame positions (mm, :meth:`SpineFrame.locate`) lie where the facet joints
    are: beside and behind the canal - lateral of the interspinous band, within
    ``facet_reach_mm`` of the canal's side, from ``facet_front_fraction`` of its half depth
    behind its centre to ``facet_reach_mm`` behind its back wall."""
    ax = np.abs(x)
    return ((ax > params.interspinous_half_width_mm) & (ax <= canal_half_x + params.facet_reach_mm)
            & (y < -params.facet_front_fraction * canal_half_y) & (y >= -canal_half_y - params.facet_reach_mm))


def assign_lesions(table: Table, lesions: LesionSet, frame: SpineFrame, lab: SpineLabels,
                   params: SpineParams) -> Assignment:
    """Level, segment, sub-site and pattern of every row of the measured lesion table
    (``lesions`` on the box grid of ``lab``)."""
    n = len(table)
    if n == 0:
        return Assignment([], [], [], [])
    P = np.array([[r["centroid_r_mm"], r["centroid_a_mm"], r["centroid_s_mm"]] for r in table.rows])
    loc = frame.locate(P)
    ids = np.array(table.column("lesion_id"))
    # disc label share and rib proximity, per lesion (sparse voxel lists)
    disc_share = np.zeros(n)
    if lab.disc is not None:
        in_disc = lab.disc.ravel()[lesions.voxel_index] > 0
        tot = np.bincount(lesions.voxel_label, minlength=lesions.n + 1)
        disc_share = (np.bincount(lesions.voxel_label, weights=in_disc.astype(float), minlength=lesions.n + 1)
                      / np.maximum(tot, 1))[ids]
    rib_near = np.zeros(n, dtype=bool)
    if lab.has_ribs:
        rib_mask = lab.category == CAT_RIB
        hit = near(lesions.voxel_index, rib_mask, neighbour_offsets(lab.box_geometry, params.rib_near_mm))
        rib_near = (np.bincount(lesions.voxel_label, weights=hit.astype(float), minlength=lesions.n + 1) > 0)[ids]

    part = _subregion_parts(lesions, lab, ids, params) if lab.subregion is not None else [None] * n
    x, y, wall = loc.x, loc.y, loc.wall_y
    chx, chy = loc.canal_half_x, loc.canal_half_y
    post_upper, post_nearest = _posterior_levels(frame, P)
    subsite, level = [], []
    for k in range(n):
        s = _subsite_from_part(part[k], y[k], wall[k], chy[k], params)
        if s is not None:
            pass
        elif disc_share[k] >= 0.5:
            s = "intervertebral_disc"
        elif y[k] > wall[k] + params.pll_front_mm:
            s = "intervertebral_disc" if (loc.disc_space[k] and loc.body_gap[k] < -1.0) \
                else "anterior_longitudinal_ligament"
        elif y[k] >= wall[k] - params.pll_back_mm and abs(x[k]) <= chx[k] + 1.0:
            s = "posterior_longitudinal_ligament"
        elif (x[k] / (chx[k] + 1.0)) ** 2 + (y[k] / (chy[k] + 1.0)) ** 2 <= 1.0:
            s = "intracanal"
        elif in_facet_zone(x[k], y[k], chx[k], chy[k], params):
            s = "facet_joint"
        elif abs(x[k]) <= chx[k] + params.foramen_depth_mm and y[k] >= -chy[k] - 2.0:
            s = "foraminal"
        elif abs(x[k]) <= params.interspinous_half_width_mm:
            s = "interspinous"
        else:
            s = "transverse_process"
        if s == "transverse_process":
            v = frame.vertebrae[int(post_nearest[k])]
            thoracic = is_thoracic(v.name)
            if thoracic and (rib_near[k] or abs(x[k]) >= params.costotransverse_fraction * loc.tp_reach[k]):
                s = "costotransverse"
        subsite.append(s)
        if SUBSITE_SEGMENT[s] == "posterior":
            level.append(frame.level_between(int(post_upper[k])))
        else:
            level.append(frame.level_between(int(loc.upper[k])))
    segment = [SUBSITE_SEGMENT[s] for s in subsite]
    pattern = classify_pattern(np.array(table.column("equivalent_diameter_mm"), float),
                               np.array(table.column("principal_axis_major_mm"), float),
                               np.array(table.column("principal_axis_mid_mm"), float), params)
    dropped = {}
    for k in range(n):
        if subsite[k] == "anterior_longitudinal_ligament" and loc.body_gap[k] > params.anterior_max_gap_mm:
            dropped[k] = "prevertebral"
        elif level[k] is None:
            dropped[k] = "outside_levels"
    return Assignment(level, segment, subsite, pattern, dropped, loc.body_gap)
