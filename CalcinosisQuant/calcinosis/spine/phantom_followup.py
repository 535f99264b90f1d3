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


def spine_followup_pair(spec: PhantomSpec, changes: dict[int, str],
                        rotation: tuple[Sequence[float], float] = ((0.0, 0.0, 1.0), 5.0),
                        shift_mm: Sequence[float] = (4.0, -3.0, 6.0)) -> tuple[RenderedPhantom, RenderedPhantom,
                                                                                Table, dict]:
    """(baseline render, follow-up render - its arrays on the baseline's grid header, truth in
    the follow-up image's RAS -, the true changes, the pose).  ``changes``: baseline
    calcification number -> grown, shrunk, stable (default) or resolved."""
    ph = build_phantom(spec)
    base = render_phantom(ph)
    fu_ph = copy.deepcopy(ph)
    kept, table = [], Table(CHANGE_COLUMNS, name="changes", description="True calcification changes")
    for n, c in enumerate(ph.calcifications, start=1):
        kind = changes.get(n, "stable")
        if kind == "resolved":
            table.append({"baseline_lesion_id": n, "change": kind, "kind": c.kind, "level": c.level or None})
            continue
        if kind not in VOLUME_FACTORS:
            raise ValueError(f"calcification {n}: change {kind!r} is not grown, shrunk, stable or resolved")
        new = copy.deepcopy(c)
        for lobe in new.lobes:
            lobe.semi = np.asarray(lobe.semi, float) * VOLUME_FACTORS[kind] ** (1.0 / 3.0)
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
            "shift_mm": t.tolist(), "centre_ras_mm": centre.tolist()}
    return base, fu, table, pose
