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
    """Measured: 25 false candidates on the two normal hands before the cut, 12 after (8 and
    4: sesamoids, flared bone ends with their plate, spots over the distal radius and ulna).
    Asserted: at most 60% remain, and every one kept is at or above the operating point."""
    before = sum(everything.lesions.n for _, _, everything in normal_runs)
    after = sum(det.lesions.n for _, det, _ in normal_runs)
    assert before >= 15
    assert after <= 0.6 * before, (after, before)
    for _, det, _ in normal_runs:
        assert np.all(det.confidence >= 0.5)


@pytest.mark.xfail(strict=True, reason="issue 11 open: on the hard phantom's normal hands 4-8 false lesions per hand "
                                       "remain at the operating point (sesamoids, flared bone ends with their "
                                       "subchondral plate, the distal radius and ulna); the real normal hand gives 1")
def test_hard_normal_hand_reports_at_most_two_lesions(normal_runs):
    for _, det, _ in normal_runs:
        assert det.lesions.n <= 2


def test_operating_point_keeps_the_deposits_of_a_hard_hand():
    """The deposits of the hard right hand (seed 0, 20 deposits): before the cut 14 are found
    with 8 false candidates, at the operating point 11 with 6 (measured).  Asserted: the cut
    keeps at least 75% of those found, finds nothing new, and drops false candidates."""
    ph = hx.hard_xr_phantom("R", 0)
    at_op, everything = _run(ph, DetectParams().xr_min_confidence), _run(ph, 0.0)
    s_op, s_all = score(ph, at_op.lesions.labels[0]), score(ph, everything.lesions.labels[0])
    assert len(s_all["found"]) >= 10
    assert s_op["found"] <= s_all["found"]
    assert len(s_op["found"]) >= 0.75 * len(s_all["found"]), (sorted(s_op["found"]), sorted(s_all["found"]))
    assert s_op["false"] < s_all["false"]
