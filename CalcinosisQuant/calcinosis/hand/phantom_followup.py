"""The same hand at a follow-up visit (issue 14): each lesion grown, shrunk, stable or
resolved, new ones placed, and the hand lying differently in the scanner - with the exact
truth of every change.

The follow-up patient keeps the baseline's hand and lesions (centre, shape, density) and
scales each lesion's volume by its change (:data:`VOLUME_FACTORS`); new lesions are placed by
the baseline's own rules (:func:`calcinosis.hand.phantom._propose`, ``_accept``).  The pose
change is a rigid motion of the hand in the scanner: the scan is drawn on a grid rotated by
``rotation`` about the hand's centre and moved by ``shift_mm``, and written with the
unmoved grid's header - so in the follow-up image a point ``p`` of the hand lies at
``R^T (p - c - t) + c``.  Registration has to find that motion.

Functional: a baseline patient and the changes in; the follow-up image, its truth and the
table of true changes out.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import numpy as np

from calcinosis.core.geometry import Geometry
from calcinosis.core.phantoms import rotation_matrix
from calcinosis.core.tables import Column, Table

from .phantom import (HandPatient, ModalityPhantom, Site, _accept, _joint_list, _propose, add_noise,
                      hand_bounds, render_anatomy, truth_table)

#: volume x this for each change (the ±25% classes: +80% grown, -55% shrunk)
VOLUME_FACTORS = {"grown": 1.8, "shrunk": 0.45, "stable": 1.0}
#: the follow-up scan's field reaches this far beyond the hand (mm), room for the pose change
FOLLOWUP_MARGIN_MM = 14.0
#: volume of a new lesion (mm³)
NEW_LESION_MM3 = 40.0

CHANGE_COLUMNS = [
    Column("baseline_lesion_id", "int", "", "Lesion number in the baseline truth (empty: new)"),
    Column("followup_lesion_id", "int", "", "Lesion number in the follow-up truth (empty: resolved)"),
    Column("change", "string", "", "new, resolved, grown, shrunk or stable"),
    Column("side", "string", "", "Hand"),
    Column("digit", "string", "", "Digit"),
    Column("baseline_volume_mm3", "double", "mm3", "True volume at baseline"),
    Column("followup_volume_mm3", "double", "mm3", "True volume at follow-up"),
]


def followup_patient(baseline: HandPatient, changes: dict[int, str], new_sites: Sequence[Site] = (),
                     seed: int = 1) -> tuple[HandPatient, Table]:
    """The follow-up patient: baseline lesion ``id`` changed as ``changes[id]`` (grown,
    shrunk, stable - the default - or resolved), then one new lesion at each of
    ``new_sites``; lesions numbered afresh.  Returns the patient and the true changes."""
    rng = np.random.default_rng(seed)
    changed = Table(CHANGE_COLUMNS, name="changes", description="True lesion changes baseline -> follow-up")
    lesions = []
    for les in baseline.lesions:
        kind = changes.get(les.lesion_id, "stable")
        if kind not in VOLUME_FACTORS and kind != "resolved":
            raise ValueError(f"lesion {les.lesion_id}: change {kind!r} is not grown, shrunk, stable or resolved")
        if kind == "resolved":
            changed.append({"baseline_lesion_id": les.lesion_id, "change": "resolved", "side": les.side,
                            "digit": les.digit, "baseline_volume_mm3": les.volume_mm3, "followup_volume_mm3": 0.0})
            continue
        new = copy.deepcopy(les)
        new.semi = tuple(float(s) * VOLUME_FACTORS[kind] ** (1.0 / 3.0) for s in les.semi)
        new.lesion_id = len(lesions) + 1
        new.name = f"lesion_{new.lesion_id:02d}"
        lesions.append(new)
        changed.append({"baseline_lesion_id": les.lesion_id, "followup_lesion_id": new.lesion_id, "change": kind,
                        "side": les.side, "digit": les.digit, "baseline_volume_mm3": les.volume_mm3,
                        "followup_volume_mm3": new.volume_mm3})
    joints = _joint_list(baseline.hand)
    for site in new_sites:
        n = len(lesions) + 1
        placed = None
        for _ in range(4000):
            cand = _propose(baseline.hand, site, NEW_LESION_MM3, rng, n)
            if cand is not None and _accept(baseline.hand, cand, site, lesions, joints):
                placed = cand
                break
        if placed is None:
            raise RuntimeError(f"could not place a new lesion at {site}")
        lesions.append(placed)
        changed.append({"followup_lesion_id": n, "change": "new", "side": placed.side, "digit": placed.digit,
                        "baseline_volume_mm3": 0.0, "followup_volume_mm3": placed.volume_mm3})
    return HandPatient(baseline.hand, lesions, seed), changed


#: a finger is bent at the joint of it that no lesion comes nearer to along its axis than this (mm)
BEND_CLEARANCE_MM = 2.0


def bend_joint(patient: HandPatient, digit: str) -> str:
    """The joint of ``digit`` (MCP, PIP, DIP / IP) with the most room: the largest distance
    along the finger from the joint to the nearest lesion's extent."""
    ray = patient.hand.rays[digit]
    base = ray.points["CMC"]
    best, room = None, -np.inf
    for joint in [j for j in ("MCP", "PIP", "DIP", "IP") if j in ray.points]:
        s = float((ray.points[joint] - base) @ ray.u)
        gap = np.inf
        for les in patient.lesions:
            if les.site_digit != digit and les.digit != digit:
                continue
            c = float((les.center - base) @ ray.u)
            r = float(np.max(np.abs(les.half_extent())))
            gap = min(gap, max(abs(c - s) - r, 0.0))
        if gap > room:
            best, room = joint, gap
    if room < BEND_CLEARANCE_MM:
        raise RuntimeError(f"no joint of the {digit} finger clear of its lesions by {BEND_CLEARANCE_MM} mm")
    return best


def bent_patient(patient: HandPatient, digit: str, degrees: float) -> tuple[HandPatient, dict]:
    """The patient with ``digit`` bent (flexed about its lateral axis) by ``degrees`` at
    :func:`bend_joint`: every bone and soft-tissue piece of the finger beyond the joint, its
    landmarks and its lesions turned about the joint.  Returns (patient, what was bent)."""
    hand = copy.deepcopy(patient.hand)
    ray = hand.rays[digit]
    joint = bend_joint(patient, digit)
    J = np.asarray(ray.points[joint], float)
    s_j = float((J - ray.points["CMC"]) @ ray.u)
    Q = rotation_matrix(ray.e_lat, degrees)

    def beyond(p) -> bool:
        rel = np.asarray(p, float) - ray.points["CMC"]
        along = float(rel @ ray.u)
        return along >= s_j - 0.01 and float(np.linalg.norm(rel - along * ray.u)) < 0.01

    def turn(p):
        return tuple(float(v) for v in Q @ (np.asarray(p, float) - J) + J)

    def turned(shape):
        if hasattr(shape, "p0") and beyond(shape.p0) and beyond(shape.p1):
            return dataclasses.replace(shape, p0=turn(shape.p0), p1=turn(shape.p1))
        return shape

    hand.bones = [dataclasses.replace(b, outer=turned(b.outer)) for b in hand.bones]
    hand.fat = [turned(f) for f in hand.fat]
    hand.tissue = [turned(t) for t in hand.tissue]
    for name in list(ray.points):
        if name != joint and beyond(ray.points[name]):
            ray.points[name] = np.asarray(turn(ray.points[name]))
    if hasattr(hand, "_fat_capsules"):
        del hand._fat_capsules
    lesions, moved = [], []
    for les in patient.lesions:
        new = copy.deepcopy(les)
        if (les.site_digit == digit or les.digit == digit) and float((les.center - patient.hand.rays[digit].points["CMC"])
                                                                       @ patient.hand.rays[digit].u) > s_j:
            new.center = np.asarray(turn(les.center))
            new.R = Q @ les.R
            moved.append(les.lesion_id)
        lesions.append(new)
    return HandPatient(hand, lesions, patient.seed), {"digit": digit, "joint": joint, "degrees": float(degrees),
                                                      "moved_lesions": moved}


def ct_followup_phantom(baseline: HandPatient, changes: dict[int, str], new_sites: Sequence[Site] = (),
                        rotation: tuple[tuple[float, float, float], float] = ((0.0, 0.0, 1.0), 8.0),
                        shift_mm: Sequence[float] = (5.0, -4.0, 3.0), spacing=(0.5, 0.5, 0.5),
                        noise_sd: float = 18.0, seed: int = 1,
                        flexion: tuple[str, float] | None = None) -> tuple[ModalityPhantom, Table, dict]:
    """The follow-up CT: (the phantom - truth and landmarks in the follow-up image's RAS -,
    the true changes, the pose: ``rotation`` (axis, degrees) about the hand's centre and
    ``shift_mm``, with the matrix and centre).  ``flexion`` (digit, degrees): that finger
    also bent at its joint with the most room (:func:`bent_patient`) - the fingers moved
    between the visits, as they do."""
    patient, changed = followup_patient(baseline, changes, new_sites, seed)
    bend = None
    if flexion is not None:
        patient, bend = bent_patient(patient, *flexion)
    lo, hi = hand_bounds(patient)
    lo, hi = lo - FOLLOWUP_MARGIN_MM, hi + FOLLOWUP_MARGIN_MM
    sp = np.asarray(spacing, float)
    direction = np.diag([-1.0, -1.0, 1.0])
    size = np.ceil((hi - lo) / sp).astype(int) + 1
    centre = (lo + hi) / 2.0
    origin = centre - direction @ ((size - 1) * sp / 2.0)
    written = Geometry.create(size, sp, origin, direction)
    R = rotation_matrix(np.asarray(rotation[0], float), float(rotation[1]))
    t = np.asarray(shift_mm, float)
    scanned = Geometry.create(size, sp, R @ (origin - centre) + centre + t, R @ direction)
    image = render_anatomy(patient, scanned, "CT")
    arr = add_noise(image, "CT", noise_sd, seed)
    arr = np.clip(np.round(arr), -1024, 3071).astype(np.int16)

    def to_image(p):
        return (R.T @ (np.atleast_2d(np.asarray(p, float)) - centre - t).T).T + centre

    truth = truth_table(patient, to_image)
    landmarks = [(label, to_image(p)[0]) for label, p in patient.hand.landmarks()]
    pose = {"rotation_axis": list(map(float, rotation[0])), "rotation_deg": float(rotation[1]),
            "shift_mm": t.tolist(), "centre_ras_mm": centre.tolist(), "matrix": R.tolist(), "flexion": bend}
    return ModalityPhantom("CT", arr, written, truth, landmarks, patient), changed, pose


def xr_followup_phantom(baseline: HandPatient, changes: dict[int, str], new_sites: Sequence[Site] = (),
                        angle_deg: float = 6.0, shift_mm: Sequence[float] = (4.0, -3.0), spacing: float = 0.2,
                        noise_sd: float = 6.0, seed: int = 1) -> tuple[ModalityPhantom, Table, dict]:
    """The follow-up PA radiograph: the follow-up patient (:func:`followup_patient`)
    projected, then the hand turned by ``angle_deg`` in the detector's plane about the
    image's centre and moved by ``shift_mm`` (columns, rows): it lay differently on the
    detector.  Truth and landmarks in the follow-up image's RAS."""
    from scipy import ndimage

    from .phantom import XR_OFFSET, lesion_shadow, render_radiograph
    patient, changed = followup_patient(baseline, changes, new_sites, seed)
    xr = render_radiograph(patient, spacing, noise_sd=0.0, seed=seed)
    rows, cols = xr.image.shape
    ctr = np.array([(rows - 1) / 2.0, (cols - 1) / 2.0])
    a = np.deg2rad(angle_deg)
    M = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])        # (row, col) turned
    shift_px = np.array([shift_mm[1], shift_mm[0]]) / spacing

    def moved(rc):
        return (M @ (np.atleast_2d(rc) - ctr).T).T + ctr + shift_px

    # output pixel y shows input pixel M^T (y - ctr - shift) + ctr
    image = ndimage.affine_transform(xr.image, M.T, offset=ctr - M.T @ (ctr + shift_px), order=1, mode="constant",
                                     cval=XR_OFFSET)
    image += np.random.default_rng(seed + 29).normal(0.0, noise_sd, image.shape)
    outlines = np.zeros(xr.image.shape, np.uint16)
    for les in patient.lesions:
        sl, m = lesion_shadow(les, xr)
        outlines[sl][m] = les.lesion_id
    outlines = ndimage.affine_transform(outlines, M.T, offset=ctr - M.T @ (ctr + shift_px), order=0)

    def to_image(p):
        ras = xr.to_image_ras(p)                        # (-col * spacing, -row * spacing, 0)
        rc = np.stack([-ras[:, 1] / spacing, -ras[:, 0] / spacing], axis=1)
        out = moved(rc)
        return np.stack([-out[:, 1] * spacing, -out[:, 0] * spacing, np.zeros(len(out))], axis=1)

    truth = truth_table(patient, to_image, xr)
    landmarks = [(label, to_image(pos)[0]) for label, pos in patient.hand.landmarks()]
    arr = np.clip(np.round(image), 0, 65535).astype(np.uint16)[None]
    pose = {"angle_deg": float(angle_deg), "shift_mm": [float(v) for v in shift_mm]}
    return (ModalityPhantom("XR", arr, xr.geometry, truth, landmarks, patient, outlines=outlines[None], radiograph=xr),
            changed, pose)


__all__ = ["VOLUME_FACTORS", "CHANGE_COLUMNS", "followup_patient", "ct_followup_phantom", "bent_patient",
           "xr_followup_phantom"]
