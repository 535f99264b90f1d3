"""The same spine at a follow-up scan (issue 14): each calcification grown, shrunk, stable or
resolved, and the patient lying differently in the scanner - with the exact truth of every
change.

The follow-up phantom keeps the baseline's anatomy and scales each changed calcification's
lobes about their own centres (volume x :data:`VOLUME_FACTORS`); a resolved one is left out.
The pose change is a rigid motion of the patient: the scan is drawn on a grid turned by
``rotation`` about the scan's centre and moved by ``shift_mm``, and written with the unmoved
grid's header, so a point ``p`` of the patient lies at ``R^T (p - c - t) + c`` in the
follow-up image.  Functional: a spec and the changes in; both renders and the changes out.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import numpy as np

from calcinosis.core.geometry import Geometry
from calcinosis.core.phantoms import rotation_matrix
from calcinosis.core.tables import Column, Table

from .phantom import PhantomSpec, RenderedPhantom, build_phantom, default_geometry, render_phantom

VOLUME_FACTORS = {"grown": 1.8, "shrunk": 0.45, "stable": 1.0}

CHANGE_COLUMNS = [
    Column("baseline_lesion_id", "int", "", "Calcification number in the baseline truth"),
    Column("followup_lesion_id", "int", "", "Its number in the follow-up truth (empty: resolved)"),
    Column("change", "string", "", "resolved, grown, shrunk or stable"),
    Column("kind", "string", "", "spinal or vascular"),
    Column("level", "string", "", "Disco-vertebral level"),
]


def _bend_spine(ph, vertebra: str, degrees: float) -> dict:
    """Turn ``vertebra`` and every vertebra caudal to it by ``degrees`` about the lateral axis
    through its upper end plate (a change of lordosis between scans), with the calcifications
    of the levels below it; in place.  Returns what was bent."""
    names = [v.name for v in ph.vertebrae]
    k = names.index(vertebra)
    top = ph.vertebrae[k]
    pivot = top.frame.origin + (top.H / 2.0) * top.frame.u
    Q = rotation_matrix(top.frame.r, degrees)
    for v in ph.vertebrae[k:]:
        f = v.frame
        f.origin = Q @ (f.origin - pivot) + pivot
        f.r, f.a, f.u = Q @ f.r, Q @ f.a, Q @ f.u
    moved_levels = [f"{a}-{b}" for a, b in zip(names[k:], names[k + 1:])]
    for c in ph.calcifications:
        if c.level in moved_levels:      # new lobes: a primitive's box is computed when it is made
            c.lobes = [dataclasses.replace(lobe, center=Q @ (np.asarray(lobe.center, float) - pivot) + pivot,
                                           axes=Q @ np.asarray(lobe.axes, float)) for lobe in c.lobes]
    return {"vertebra": vertebra, "degrees": float(degrees), "pivot_ras_mm": pivot.tolist(), "levels": moved_levels}


def spine_followup_pair(spec: PhantomSpec, changes: dict[int, str],
                        rotation: tuple[Sequence[float], float] = ((0.0, 0.0, 1.0), 5.0),
                        shift_mm: Sequence[float] = (4.0, -3.0, 6.0),
                        bend: tuple[str, float] | None = None) -> tuple[RenderedPhantom, RenderedPhantom, Table, dict]:
    """(baseline render, follow-up render - its arrays on the baseline's grid header, truth in
    the follow-up image's RAS -, the true changes, the pose).  ``changes``: baseline
    calcification number -> grown, shrunk, stable (default) or resolved.  ``bend`` (vertebra,
    degrees): that vertebra and those below it also turned at its upper end plate - the
    vertebrae moved against each other between the scans."""
    ph = build_phantom(spec)
    base = render_phantom(ph)
    fu_ph = copy.deepcopy(ph)
    bent = _bend_spine(fu_ph, *bend) if bend is not None else None
    kept, table = [], Table(CHANGE_COLUMNS, name="changes", description="True calcification changes")
    for n, c in enumerate(fu_ph.calcifications, start=1):
        kind = changes.get(n, "stable")
        if kind == "resolved":
            table.append({"baseline_lesion_id": n, "change": kind, "kind": c.kind, "level": c.level or None})
            continue
        if kind not in VOLUME_FACTORS:
            raise ValueError(f"calcification {n}: change {kind!r} is not grown, shrunk, stable or resolved")
        new = copy.deepcopy(c)
        new.lobes = [dataclasses.replace(lobe, semi=np.asarray(lobe.semi, float) * VOLUME_FACTORS[kind] ** (1.0 / 3.0))
                     for lobe in new.lobes]
        kept.append(new)
        table.append({"baseline_lesion_id": n, "followup_lesion_id": len(kept), "change": kind, "kind": c.kind,
                      "level": c.level or None})
    fu_ph.calcifications = kept
    g = default_geometry(ph)
    size = np.array(g.size_ijk)
    sp = np.array(g.spacing)
    centre = np.asarray(g.origin_ras, float) + g.direction @ ((size - 1) * sp / 2.0)
    R = rotation_matrix(np.asarray(rotation[0], float), float(rotation[1]))
    t = np.asarray(shift_mm, float)
    scanned = Geometry.create(size, sp, R @ (np.asarray(g.origin_ras) - centre) + centre + t, R @ g.direction)
    fu = render_phantom(fu_ph, scanned)
    for row in fu.truth.rows:
        if row["center_r_mm"] is None:
            continue
        p = np.array([row["center_r_mm"], row["center_a_mm"], row["center_s_mm"]])
        q = R.T @ (p - centre - t) + centre
        row.update({"center_r_mm": float(q[0]), "center_a_mm": float(q[1]), "center_s_mm": float(q[2])})
    fu.geometry = g              # the arrays as the scanner wrote them: the unmoved header
    pose = {"rotation_axis": list(map(float, rotation[0])), "rotation_deg": float(rotation[1]),
            "shift_mm": t.tolist(), "centre_ras_mm": centre.tolist(), "bend": bent}
    return base, fu, table, pose
