"""The radiograph detector on the hard phantom (``phantom_xr_hard``: trabecular texture
calibrated on a real radiograph, subchondral bone ends, tufts, sesamoids, a lead marker,
text, collimation), normal hands (every reported lesion is false) and the same hands with
deposits.  What step 6 (the confidence and its operating point, chosen on the real normal
hand) does here, checked independently of the image it was chosen on."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core.volume import Volume
from calcinosis.hand import detect
from calcinosis.hand import phantom_xr_hard as hx
from calcinosis.hand.detect import DetectParams
from calcinosis.hand.landmarks import landmarks_from_points

from test_hand_xr_detect import score

HANDS = [("R", 0), ("L", 1)]


def _run(ph, min_confidence: float):
    vol = Volume(ph.array.astype(np.float32), ph.geometry, {"modality": "XR"})
    return detect.detect_xr(vol, DetectParams(xr_min_confidence=min_confidence),
                            landmarks=landmarks_from_points(ph.landmarks))


@pytest.fixture(scope="module")
def normal_runs():
    """[(phantom, detection at the operating point, detection of every candidate)], normal hands."""
    out = []
    for side, seed in HANDS:
        ph = hx.hard_xr_phantom(side, seed, lesions=False)
        out.append((ph, _run(ph, DetectParams().xr_min_confidence), _run(ph, 0.0)))
    return out


def test_operating_point_drops_most_false_candidates_of_a_hard_normal_hand(normal_runs):
    """Measured: 17 false candidates on the two normal hands before the cut, 2 after (2 and
    0: heads and bases of phalanges with their plate; 18 and 3 before an outline without an
    edge over a whole MCP was taken for the joint, which drops it before the cut; 20 and 8
    before the sesamoid sites, the refined axis fit and the edge term of the confidence; 21
    before the noise was a clipped SD; 25 and 12 before the collimated border was filled,
    which added the distal radius and ulna).
    Asserted: at most 60% remain, and every one kept is at or above the operating point."""
    before = sum(everything.lesions.n for _, _, everything in normal_runs)
    after = sum(det.lesions.n for _, det, _ in normal_runs)
    assert before >= 15
    assert after <= 0.6 * before, (after, before)
    for _, det, _ in normal_runs:
        assert np.all(det.confidence >= 0.5)


def test_hard_normal_hand_reports_at_most_two_lesions(normal_runs):
    """Measured: 2 and 0 (the bright parts of two phalanx ends under their plate, confidence
    0.72 and 0.79); 3 and 0 before an outline without an edge of its own that spans a joint
    line was taken for the joint (``xr.bone.REASON_JOINT``: a 193 mm2 outline over the index
    MCP - the two bone ends, the radial sesamoid and the soft tissue beside them -,
    confidence 1.0 by its area)."""
    from calcinosis.hand.xr import REASON_JOINT
    for _, det, _ in normal_runs:
        assert det.lesions.n <= 2
    assert sum(det.parameters["candidates_rejected"].get(REASON_JOINT, 0) for _, det, _ in normal_runs) >= 1


def _sesamoids_under_lesions(ph, det) -> int:
    labels = det.lesions.labels[0]
    return sum(bool(labels[it.rows, it.cols][it.footprint()].any()) for it in ph.items if it.kind == "sesamoid")


def test_sesamoids_are_not_reported(normal_runs):
    """The hard phantom's seven sesamoids (two at each thumb MCP, one radial to each index MCP,
    one ulnar to each little-finger MCP; hidden where a lesion is in the way): a compact
    candidate of a sesamoid's size at a sesamoid's site is dropped (``xr.bone.sesamoid_site``).
    Measured on the two normal hands: no sesamoid under a reported lesion (1 - a whole MCP
    joint's outline of 193 mm2 - before an outline without an edge spanning a joint line was
    taken for the joint; 2 before the edge term of the confidence, 4 without the sites), and 4
    candidates dropped as sesamoids.  Asserted: at most 2, and at least 3 dropped for that
    reason."""
    from calcinosis.hand.xr import REASON_SESAMOID
    under = sum(_sesamoids_under_lesions(ph, det) for ph, det, _ in normal_runs)
    dropped = sum(det.parameters["candidates_rejected"].get(REASON_SESAMOID, 0) for _, det, _ in normal_runs)
    assert under <= 2, under
    assert dropped >= 3, dropped


def test_operating_point_keeps_the_deposits_of_a_hard_hand():
    """The deposits of the hard right hand (seed 0, 20 deposits): at the operating point 12 of
    the 15 found before the cut are found, with 3 false candidates (4 before the edge term of
    the confidence, 6 before the collimated border was filled; measured; with the edge term's
    weight at 2 only 10 would be kept).  Asserted: the cut
    keeps at least 75% of those found, finds nothing new, and drops false candidates."""
    ph = hx.hard_xr_phantom("R", 0)
    at_op, everything = _run(ph, DetectParams().xr_min_confidence), _run(ph, 0.0)
    s_op, s_all = score(ph, at_op.lesions.labels[0]), score(ph, everything.lesions.labels[0])
    assert len(s_all["found"]) >= 10
    assert s_op["found"] <= s_all["found"]
    assert len(s_op["found"]) >= 0.75 * len(s_all["found"]), (sorted(s_op["found"]), sorted(s_all["found"]))
    assert s_op["false"] < s_all["false"]


def test_a_bone_cut_by_the_collimation_is_not_a_deposit(normal_runs):
    """The distal radius and ulna run into the collimated (blank) border, as on most hand
    radiographs.  The backgrounds once saw them end in a black wall, and their last
    centimetre was reported (2 lesions per normal hand, confidence 1.0, measured); the blank
    border is now filled with the nearest image (``xr.background.fill_blank``).  Asserted:
    nothing reported within 15 mm of the exposed field's edge."""
    for ph, det, _ in normal_runs:
        r0, r1, c0, c1 = ph.exposed
        labels = np.asarray(det.lesions.labels[0])
        rows, cols = np.nonzero(labels)
        margin = 15.0 / float(ph.geometry.spacing[0])
        near = (rows < r0 + margin) | (rows >= r1 - margin) | (cols < c0 + margin) | (cols >= c1 - margin)
        assert not near.any(), sorted(set(labels[rows[near], cols[near]].tolist()))


def test_fill_blank_gives_each_blank_pixel_its_nearest_image_value():
    from calcinosis.hand.xr import fill_blank
    rng = np.random.default_rng(3)
    a = rng.normal(size=(30, 40)).astype(np.float32)
    blank = np.zeros(a.shape, bool)
    blank[:5] = True
    blank[:, 35:] = True
    out = fill_blank(np.where(blank, 0, a), blank)
    assert np.array_equal(out[~blank], a[~blank])
    assert np.array_equal(out[:5, 10], np.full(5, a[5, 10]))          # straight on from the image's edge
    assert np.array_equal(out[20, 35:], np.full(5, a[20, 34]))
    assert out[0, 39] == a[5, 34]                                      # the corner: the nearest image pixel
    assert np.array_equal(fill_blank(a, np.zeros(a.shape, bool)), a)
