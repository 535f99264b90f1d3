"""Radiograph deposit detection (``detect.detect_xr`` / :mod:`calcinosis.hand.xr`).

Ground truth: the hand radiograph phantom (``phantom_hand.xr_phantom``): the PA projection
of the CT attenuation through cortical/trabecular bones, carpal bones, soft tissue, the
soft-tissue nodule (1.6 mm of tissue) each deposit raises, and the deposits (200-1500 HU
ellipsoids, exact chords), 0.2 mm pixels, noise SD 6.  Four synthetic patients (seeds
0-3), right and left hands.  A lesion is *found* when a kept candidate overlaps its true
shadow; a *false candidate* overlaps no shadow.  Sizes are the shadow's longer axis
(4 sqrt(largest eigenvalue of its pixel covariance), exact for a filled ellipse).

Targets (issue 3 and its radiograph brief), asserted on the four hands pooled:

* sensitivity >= 90% for subcutaneous deposits >= 2 mm whose shadow is clear of bone,
  >= 75% for all deposits >= 2 mm before the confidence cut of step 6 (which costs at most
  2 of those whose outline lies on them, 3 in all: see ``test_sensitivity_all_deposits``);
* at most 2 false candidates per hand;
* area: see ``test_outline_rule_on_the_exact_background`` (what the outline rule gives
  when the background under a deposit is known: within 10%) and
  ``test_detected_areas`` (what the detector achieves, with the reason it is less).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.core.geometry import Geometry
from calcinosis.core.phantoms import rotation_matrix
from calcinosis.core.volume import Volume
from calcinosis.hand import detect, phantom as phantom_hand, shapes
from calcinosis.hand import xr as xr_detect
from calcinosis.hand.detect import DetectParams
from calcinosis.hand.landmarks import landmarks_from_points
from hand_helpers import xr_phantom_detection
from phantom_cache import cached

HANDS = [("R", 0), ("L", 1), ("R", 2), ("L", 3)]


def shadow_major_axes(outlines: np.ndarray, spacing: float) -> dict[int, float]:
    """Longer axis (mm) of each lesion's true shadow (label = lesion id)."""
    out = {}
    for i, sl in enumerate(ndimage.find_objects(outlines), start=1):
        if sl is None:
            continue
        yy, xx = np.nonzero(outlines[sl] == i)
        cov = np.cov(np.stack([xx, yy]) * spacing) + np.eye(2) * spacing ** 2 / 12
        out[i] = 4.0 * float(np.sqrt(np.linalg.eigvalsh(cov)[-1]))
    return out


def score(ph: phantom_hand.ModalityPhantom, labels: np.ndarray) -> dict:
    """Found lesions, false candidates and one-to-one area errors for a label image."""
    outl = ph.outlines[0]
    sp = float(ph.geometry.spacing[0])
    found, false, per_candidate = set(), 0, {}
    for k in range(1, int(labels.max()) + 1):
        m = labels == k
        if not m.any():
            continue
        ids = np.unique(outl[m])
        ids = ids[ids > 0]
        if ids.size == 0:
            false += 1
        found |= {int(i) for i in ids}
        per_candidate[k] = (ids, float(m.sum()) * sp * sp)
    hits: dict[int, list] = {}
    for k, (ids, area) in per_candidate.items():
        for i in ids:
            hits.setdefault(int(i), []).append((k, ids, area))
    areas = {}
    for i, hs in hits.items():
        if len(hs) == 1 and hs[0][1].size == 1:
            areas[i] = hs[0][2]
    return {"found": found, "false": false, "areas": areas, "axes": shadow_major_axes(outl, sp)}


@pytest.fixture(scope="module")
def hands():
    """[(side, seed, phantom, detection with landmarks)] for the four hands."""
    out = []
    for side, seed in HANDS:
        ph = cached(phantom_hand.xr_phantom, side, seed)
        vol = Volume(ph.array.astype(np.float32), ph.geometry, {"modality": "XR"})
        out.append((side, seed, ph, vol, xr_phantom_detection(side, seed, placed_landmarks=True)))
    return out


def _pooled(hands):
    rows = []
    for side, seed, ph, vol, det in hands:
        sc = score(ph, det.lesions.labels[0])
        for t in ph.truth.rows:
            i = t["lesion_id"]
            rows.append({"hand": f"{side}{seed}", "id": i, "axis": sc["axes"].get(i, 0.0), "found": i in sc["found"],
                         "kind": t["kind"], "over_bone": bool(t["xr_overlaps_bone"]),
                         "over_lesion": bool(t["xr_overlaps_lesion"]), "truth_area": t["projected_area_mm2"],
                         "area": sc["areas"].get(i)})
    return rows


def test_sensitivity_subcutaneous_clear_of_bone(hands):
    rows = [r for r in _pooled(hands) if r["axis"] >= 2.0 and r["kind"] == "subcutaneous" and not r["over_bone"]]
    assert len(rows) >= 20
    rate = np.mean([r["found"] for r in rows])
    assert rate >= 0.90, [(r["hand"], r["id"]) for r in rows if not r["found"]]


def test_sensitivity_all_deposits(hands):
    """Steps 1-5 (every candidate kept, ``xr_min_confidence`` 0): >= 75% of the deposits
    >= 2 mm.  The operating point of step 6 (confidence >= 0.5, chosen for precision on real
    radiographs: 43 false candidates on the real normal hand -> 1) costs at most 2 of the
    deposits whose outline lies on them (at least half of it on the deposit).  Measured: 2 of
    75 (a 5.2 mm² periarticular deposit and a 9.3 mm² subcutaneous one, confidence below 0.5).
    A third, a 5.2 mm² periarticular deposit on R0, is touched at steps 1-5 only by a 23.7 mm²
    outline of the soft tissue beside the joint (6% of it on the deposit, no edge outline;
    confidence 0.72 while step 6 left the edge term out of such candidates, 0.49 now): not
    the deposit's outline.  Found at the default >= 72%."""
    rows = [r for r in _pooled(hands) if r["axis"] >= 2.0]
    assert len(rows) >= 60
    everything = [(side, seed, ph, vol, detect.detect_xr(vol, DetectParams(xr_min_confidence=0.0),
                                                         landmarks=landmarks_from_points(ph.landmarks)))
                  for side, seed, ph, vol, _ in hands]
    rows_all = [r for r in _pooled(everything) if r["axis"] >= 2.0]
    assert np.mean([r["found"] for r in rows_all]) >= 0.75
    on_deposit = {}
    for side, seed, ph, vol, det in everything:
        labels, truth = det.lesions.labels[0], ph.outlines[0]
        for i in np.unique(truth[labels > 0]):
            if i > 0:
                t = truth == i
                on_deposit[(f"{side}{seed}", int(i))] = max(
                    float((t & (labels == k)).sum()) / float((labels == k).sum())
                    for k in np.unique(labels[t]) if k > 0)
    lost = [(a["hand"], a["id"]) for a, b in zip(rows_all, rows) if a["found"] and not b["found"]]
    assert sum(on_deposit[k] >= 0.5 for k in lost) <= 2, [(k, round(on_deposit[k], 2)) for k in lost]
    assert len(lost) <= 3, lost
    assert np.mean([r["found"] for r in rows]) >= 0.72
    for side, seed, ph, vol, det in hands:
        assert det.confidence is not None and np.all(det.confidence >= 0.5)


def test_at_most_two_false_candidates_per_hand(hands):
    for side, seed, ph, vol, det in hands:
        sc = score(ph, det.lesions.labels[0])
        assert sc["false"] <= 2, (side, seed, sc["false"])


def test_detected_areas(hands):
    """What the detector's outlines achieve against the projected truth: lesions >= 3 mm
    found as one candidate each (shadows overlapping another lesion excluded).

    The outlines are drawn on the edge of the shadow (step 5, ``calcinosis.hand.xr.edge``): where the
    ridges support a closed contour around the deposit, seen from its own centre, its area
    is within a few percent (``test_edge_outline_finds_a_deposit_inside_its_nodule``: -0.6%
    to +2.5%).  The centre is searched (rays from a grid over the candidate and recast from
    the centre of every contour seen off-centre), which finds the deposits the outline's
    own centre missed: faint deposits off-centre in a bright soft-tissue nodule, deposits
    beside a bone end (``test_edge_outline_searches_the_centre_of_a_deposit_off_centre_in_its_nodule``).
    Measured on these four hands (README, hand section): 76% within 10% (35 of 46; 49%
    with the rays from the outline's centre only, 29% with the threshold outline), 80%
    within 30%.  What remains is physics, not the search: a 200-300 HU deposit in a
    nodule whose edge against air is as sharp and several times stronger has its own edge
    on fewer than 75% of the rays even from its true centre (R0:16, L1:16: the nodule's
    contour is kept, +76%, +130%; R2:12, +126%, where the deposit's edge is on 85% of the
    rays and the nodule's on all); small deposits over a joint or a bone end, whose edge is
    crossed by the cortices under them (the contour found is a bone end's or a piece of
    the deposit, -84% to +25%); and two of the three wrist deposits of 16-20 mm (-83%,
    -88%), over carpal bones whose own closed edges, inside the deposit's, are as well
    supported (preferring the enclosing contour would fix them and break a deposit
    off-centre in its nodule, so it is not done).  Asserted with a margin below what is
    measured (the choice among contours turns on a few rays of support): no systematic
    bias (median error within +-10%), at least 70% within 10% and 75% within 30%."""
    rows = [r for r in _pooled(hands) if r["axis"] >= 3.0 and not r["over_lesion"] and r["area"] is not None]
    assert len(rows) >= 40
    err = np.array([r["area"] / r["truth_area"] - 1 for r in rows])
    assert abs(np.median(err)) <= 0.10
    assert np.mean(np.abs(err) <= 0.10) >= 0.70
    assert np.mean(np.abs(err) <= 0.30) >= 0.75


def test_background_given_the_true_extent(hands):
    """The detector's background (linear interpolation across the deposit along the
    direction that best predicts the ring around it) drawn across each deposit's true
    shadow grown by 2 pixels, then the 0.2 outline rule: within 10% of the projected truth
    for most deposits >= 3 mm (bias of the rule -4%, +-0.5 pixel of outline).  The rest
    are deposits over joints and tufts, where no straight-line interpolation follows the
    bone end under them."""
    errs = []
    for side, seed, ph, vol, det in hands:
        s = ndimage.gaussian_filter(ph.array[0].astype(np.float32), 1.0)
        axes = shadow_major_axes(ph.outlines[0], 0.2)
        for t in ph.truth.rows:
            i = t["lesion_id"]
            if axes.get(i, 0) < 3.0 or t["xr_overlaps_lesion"]:
                continue
            shadow = ph.outlines[0] == i
            sl = tuple(slice(max(q.start - 30, 0), q.stop + 30) for q in ndimage.find_objects(shadow.astype(int))[0])
            S, m = s[sl], shadow[sl]
            bg, _, _ = xr_detect.directional_background(S, ndimage.binary_dilation(m, iterations=2))
            E = S - bg
            lab, _ = ndimage.label(E >= 0.2 * E[m].max())
            ids = np.unique(lab[m])
            errs.append(np.isin(lab, ids[ids > 0]).sum() * 0.04 / t["projected_area_mm2"] - 1)
    errs = np.array(errs)
    assert errs.size >= 40
    assert np.mean(np.abs(errs) <= 0.10) >= 0.65     # measured 71% (41 of 58)


def test_outline_rule_on_the_exact_background(hands):
    """The outline rule (excess over the background >= 0.2 x its peak, on the image
    smoothed by the detector's 1-pixel Gaussian) against the projected truth when the
    background is exact (the phantom without the deposits' own attenuation): an
    ellipsoid's shadow falls to zero as the square root of the distance to its edge, so
    the 0.2 level keeps 1 - 0.2² = 96% of it; the smoothing (0.2 mm) and the pixel grid
    add up to +-0.5 pixel along the outline (+-7% for a 3 mm shadow at 0.2 mm pixels).
    Tolerance 10%."""
    n = 0
    for side, seed, ph, vol, det in hands[:2]:
        lesion = phantom_hand.radiograph_lesion_image(ph.patient, ph.radiograph)
        noise = ph.radiograph.image - phantom_hand.render_radiograph(ph.patient, noise_sd=0.0, seed=seed).image
        excess = ndimage.gaussian_filter(lesion + noise, 1.0)
        axes = shadow_major_axes(ph.outlines[0], 0.2)
        for t in ph.truth.rows:
            i = t["lesion_id"]
            if axes.get(i, 0) < 3.0 or t["xr_overlaps_lesion"]:
                continue
            shadow = ph.outlines[0] == i
            peak = excess[shadow].max()
            lab, _ = ndimage.label(excess >= 0.2 * peak)
            ids = np.unique(lab[shadow])
            area = np.isin(lab, ids[ids > 0]).sum() * 0.04
            assert area == pytest.approx(t["projected_area_mm2"], rel=0.10), (side, seed, i)
            n += 1
    assert n >= 20


def test_rejected_candidates_are_recorded(hands):
    """Bone ends, tufts and carpal bones examined and dropped are counted by reason (seeds
    clearly symmetric about a digit's axis are skipped before being outlined)."""
    for side, seed, ph, vol, det in hands:
        rej = det.parameters["candidates_rejected"]
        skipped = det.parameters["seeds_skipped"]
        assert rej.get(xr_detect.REASON_SYMMETRIC, 0) + skipped[xr_detect.REASON_SYMMETRIC] >= 20
        assert rej.get(xr_detect.REASON_CARPAL, 0) >= 5
        assert det.parameters["bone_model"] == "landmarks"
        assert det.parameters["candidates_examined"] >= det.lesions.n + sum(rej.values())


def test_without_placed_landmarks_the_automatic_ones_build_the_bone_model(hands):
    """No landmarks and no laterality: the hand model's 20 landmarks give the bone tests their
    axes, the side is taken from the thumb (and a warning says it is a guess)."""
    side, seed, ph, vol, det = hands[0]
    bare = detect.detect_xr(vol, DetectParams())
    assert bare.parameters["bone_model"] == "landmarks"
    hm = bare.parameters["hand_model"]
    assert hm["side"] == side and hm["side_source"] == "thumb position (guessed)"
    assert len(hm["automatic_landmarks"]) == 20
    assert any("hand side not given" in w for w in bare.warnings)
    assert not any("without landmarks" in w for w in bare.warnings)


@pytest.fixture(scope="module")
def automatic(hands):
    """[(phantom, detection with the automatic landmarks only)] for the four hands (laterality
    given: the side is not guessed)."""
    return [(ph, xr_phantom_detection(side, seed, placed_landmarks=False)) for side, seed, ph, vol, det in hands]


def _without_axis_fit(mp):
    """The mirror test about the landmarks' own axes (no fit to the bone)."""
    from calcinosis.hand.xr import bone
    mp.setattr(bone.BoneModel, "fitted_axis", lambda self, s, patch, a, u: (a, u))


def test_automatic_landmarks_axis_fitted_to_the_bone(hands, automatic):
    """The mirror test fits each axis to the bone around the candidate (shift <= 1.2 mm, turn
    <= 6 degrees on a coarse grid, then refined to 0.025 mm and 0.5 degrees; the candidate and
    the 2 mm nodule around it left out): a bone end looks asymmetric about an axis a few
    tenths of a millimetre off.  Measured with the automatic landmarks on the four hands: 4
    false candidates (1, 1, 1, 1; 39 without the fit: 9, 8, 11, 11; 9 and 46 while a candidate
    without an edge outline left step 6's edge term out; 6 and 62 before the hand model's
    centre line was centred between the bone's edges, which moved the automatic landmarks; 29
    with the coarse grid alone, before the edge term of the confidence; 1 with the exact
    landmarks) and 54 deposits found (50 without the fit; 54 with the exact landmarks).
    Asserted on the first two hands (2 against 17): fewer than a third of the false
    candidates of the unfitted axes, no fewer deposits found."""
    fitted = unfitted = found_fitted = found_unfitted = 0
    for (side, seed, ph, vol, det), (_, auto) in list(zip(hands, automatic))[:2]:
        a = score(ph, auto.lesions.labels[0])
        with pytest.MonkeyPatch.context() as mp:
            _without_axis_fit(mp)
            v = Volume(vol.array, vol.geometry, {"modality": "XR", "laterality": side})
            b = score(ph, detect.detect_xr(v, DetectParams()).lesions.labels[0])
        fitted += a["false"]
        unfitted += b["false"]
        found_fitted += len(a["found"])
        found_unfitted += len(b["found"])
    assert fitted < unfitted / 3, (fitted, unfitted)
    assert found_fitted >= found_unfitted


def _landmarks_off_by(ph, mm: float, seed: int):
    """The phantom's landmarks, each moved ``mm`` in a random direction in the image plane
    (a reader's clicks)."""
    rng = np.random.default_rng(seed)
    out = []
    for name, p in ph.landmarks:
        p = np.asarray(p, float).copy()
        d = rng.normal(size=2)
        p[:2] += d / np.linalg.norm(d) * mm
        out.append((name, p))
    return landmarks_from_points(out)


def test_a_readers_landmarks_a_little_off_are_fitted_too(hands):
    """A reader clicks a joint's centre a millimetre off as easily as the hand model does: the
    axes of placed landmarks are fitted to the bone as the automatic ones are.  Each landmark
    moved 0.7 mm (random directions), measured on the four hands: 8 false candidates (2, 3, 0,
    3) and 52 deposits found; about the clicked axes unfitted 71 (19, 21, 15, 16) (the exact
    landmarks: 1 and 54; 9 and 76 while a candidate without an edge outline left step 6's
    edge term out).  Asserted on the first two hands (5 against 40): fewer than a third of the unfitted axes' false
    candidates, and at least 90% of the deposits the exact landmarks find (a deposit centred on
    a bone's axis is symmetric about it: an axis clicked off may keep it, the fitted one, like
    the exact one, may not)."""
    fitted = unfitted = found_fitted = found_exact = 0
    for k, (side, seed, ph, vol, det) in enumerate(hands[:2]):
        moved = _landmarks_off_by(ph, 0.7, k)
        a = score(ph, detect.detect_xr(vol, DetectParams(), landmarks=moved).lesions.labels[0])
        with pytest.MonkeyPatch.context() as mp:
            _without_axis_fit(mp)
            b = score(ph, detect.detect_xr(vol, DetectParams(), landmarks=moved).lesions.labels[0])
        fitted += a["false"]
        unfitted += b["false"]
        found_fitted += len(a["found"])
        found_exact += len(score(ph, det.lesions.labels[0])["found"])
    assert fitted < unfitted / 3, (fitted, unfitted)
    assert found_fitted >= 0.9 * found_exact, (found_fitted, found_exact)


def test_automatic_landmarks_as_good_as_placed_ones(automatic):
    """With the automatic landmarks at most 2 false candidates per hand.  Measured: 1, 1, 1, 1
    (0, 1, 0, 0 with the exact landmarks); 2, 2, 3, 2 while a candidate without an edge outline
    left step 6's edge term out (R2's three: soft tissue where two fingers overlap, at the
    skin's edge, between bone edges - no edge of their own, see
    ``test_a_candidate_without_an_edge_outline_counts_at_most_the_edge_bound``)."""
    for ph, auto in automatic:
        assert score(ph, auto.lesions.labels[0])["false"] <= 2


def test_region_limits_the_search(hands):
    side, seed, ph, vol, det = hands[0]
    # a region around two subcutaneous deposits clear of bone
    pick = [t for t in ph.truth.rows if t["kind"] == "subcutaneous" and not t["xr_overlaps_bone"]][:2]
    region = np.zeros(ph.outlines.shape, bool)
    for t in pick:
        region |= ndimage.binary_dilation(ph.outlines == t["lesion_id"], iterations=25)
    got = detect.detect_xr(vol, DetectParams(), region=region, landmarks=landmarks_from_points(ph.landmarks))
    labels = got.lesions.labels
    assert labels.any() and not (labels[~region]).any()
    sc = score(ph, labels[0])
    assert {t["lesion_id"] for t in pick} <= sc["found"]
    assert not any("without a region" in w for w in got.warnings)


def test_a_drawn_region_recovers_what_the_automatic_search_missed(hands):
    """Deposits the automatic search dropped (over joint lines, at the carpus, in bright
    nodules): a region drawn 2 mm around them is searched without the landmark bone
    tests (the user has pointed at them) and finds most of them."""
    missed_n = found_n = 0
    for side, seed, ph, vol, det in hands[:2]:
        sc = score(ph, det.lesions.labels[0])
        missed = [t["lesion_id"] for t in ph.truth.rows
                  if t["lesion_id"] not in sc["found"] and sc["axes"].get(t["lesion_id"], 0) >= 2.0]
        region = np.isin(ph.outlines, missed)
        region = ndimage.binary_dilation(region[0], iterations=10)[None]
        got = detect.detect_xr(vol, DetectParams(), region=region, landmarks=landmarks_from_points(ph.landmarks))
        assert "inside the drawn region" in got.parameters["bone_model"]
        found = score(ph, got.lesions.labels[0])["found"]
        missed_n += len(missed)
        found_n += len(set(missed) & found)
    assert missed_n >= 5
    assert found_n >= 2 * missed_n / 3


# ---------------------------------------------------------------------- building blocks
def test_evidence_counts_the_candidates_own_edge():
    """Step 6's evidence: ``(edge_support - 1)`` added (W_EDGE 1): a closed edge (1.0) costs
    nothing, a bone end's 0.8 costs 0.2 - enough to put a candidate of evidence 0.7 below the
    operating point (0.55) -, a support above 1 counts as 1, and without an edge outline (None,
    NaN) the term is left out."""
    import math
    from calcinosis.hand.xr import confidence as cf
    base = cf.candidate_evidence(10.0, 4.0)
    assert base == pytest.approx(math.log(2.0) + 0.5 * math.log(2.0))
    assert cf.candidate_evidence(10.0, 4.0, 1.0) == pytest.approx(base)
    assert cf.candidate_evidence(10.0, 4.0, 1.2) == pytest.approx(base)
    assert cf.candidate_evidence(10.0, 4.0, 0.8) == pytest.approx(base - 0.2)
    assert cf.candidate_evidence(10.0, 4.0, None) == cf.candidate_evidence(10.0, 4.0, float("nan")) == base
    # a candidate at an evidence of 0.7: kept with a closed edge, dropped with a bone end's
    blob = cf.BLOB_REF_NOISE_SD * math.exp(0.7)
    assert cf.candidate_confidence(blob, cf.AREA_REF_MM2, 1.0) > 0.5 > cf.candidate_confidence(blob, cf.AREA_REF_MM2, 0.8)


def test_a_candidate_without_an_edge_outline_counts_at_most_the_edge_bound():
    """Step 5 finds no contour on a candidate's outline with ``EDGE_SUPPORT``: its support is
    below that bound, so step 6 counts it at the bound - never more evidence than a candidate
    whose edge was found at the bound.  A smooth soft-tissue dome (Gaussian, 2.5 mm SD: no
    square-root edge) keeps no edge outline and gets exactly that confidence; a disk's shadow
    of the same peak (an ellipsoid's, with its edge) gets its own support of 1."""
    from calcinosis.hand.xr import candidates as xc, confidence as cf, edge
    px = 0.2
    yy, xx = np.mgrid[0:160, 0:160].astype(float)
    rng = np.random.default_rng(3)
    dome = 60.0 * np.exp(-((yy - 80) ** 2 + (xx - 80) ** 2) / (2 * (2.5 / px) ** 2))
    r2 = np.clip(1.0 - ((yy - 80) ** 2 + (xx - 80) ** 2) / (2.0 / px) ** 2, 0.0, None)
    disk = 60.0 * np.sqrt(r2)
    got = {}
    for name, img in (("dome", dome), ("disk", disk)):
        image = 1000.0 + img + rng.normal(0.0, 3.0, img.shape)
        cands, _ = xc.find_candidates(image.astype(np.float32), px, DetectParams(), None, None, None, None)
        kept = [c for c in cands if c.reason is None]
        assert len(kept) == 1, (name, len(kept))
        got[name] = kept[0]
    dome_c, disk_c = got["dome"], got["disk"]
    assert "edge_support" not in dome_c.details
    assert dome_c.confidence == pytest.approx(cf.candidate_confidence(
        dome_c.details["seed_blob_noise_sd"], dome_c.area_mm2, edge.EDGE_SUPPORT))
    assert dome_c.confidence < cf.candidate_confidence(dome_c.details["seed_blob_noise_sd"], dome_c.area_mm2)
    assert disk_c.details["edge_support"] >= 0.95
    assert disk_c.confidence == pytest.approx(cf.candidate_confidence(
        disk_c.details["seed_blob_noise_sd"], disk_c.area_mm2, disk_c.details["edge_support"]))


def test_an_outline_without_an_edge_over_a_joint_line_is_the_joint():
    """Step 5 then 4: a candidate with no edge outline whose outline reaches JOINT_SPAN_MM
    past a joint's line on both sides, within JOINT_SPAN_ACROSS_MM of the axis, is the
    joint (``REASON_JOINT``): a smooth dome (Gaussian, 2.5 mm SD) centred on the joint
    line 3 mm off the axis.  A disk's shadow (a deposit, with its edge) at the same place is
    kept.  The axis's base (the CMC) and tip are not tested; an outline on one side of the
    line or beyond the bone's width spans nothing; on a bent axis the line is across the
    direction from the point before to the point after."""
    from calcinosis.hand.xr import REASON_JOINT, candidates as xc
    from calcinosis.hand.xr.bone import JOINT_SPAN_ACROSS_MM, JOINT_SPAN_MM, BoneModel
    px = 0.2
    bones = BoneModel([np.array([[150.0, 80.0], [80.0, 80.0], [10.0, 80.0]])], px, ["index"], [1])
    # the MCP at row 80 (its line across the column axis), the base at row 150, the tip at row 10
    k = int(round(JOINT_SPAN_MM / px))
    w = int(round(JOINT_SPAN_ACROSS_MM / px))
    rows = np.r_[80 - k - 1, 80 + k + 1]
    assert bones.spanned_joint(rows, np.full(2, 80 + w - 1)) == "index MCP"
    assert bones.spanned_joint(rows, np.full(2, 80 + w + 2)) is None            # beyond the bone's width
    assert bones.spanned_joint(np.r_[80 - k - 1, 80 - k + 3], np.full(2, 80)) is None   # one side only
    assert bones.spanned_joint(np.r_[10 - k - 1, 10 + k + 1], np.full(2, 80)) is None   # the tip
    assert bones.spanned_joint(np.r_[150 - k - 1, 150 + k + 1], np.full(2, 80)) is None  # the base
    # a bent axis (a thumb: CMC, MCP, IP, tip), turning 45 degrees at the IP: its line is across
    # the direction from the MCP to the tip, so two points 2 mm along that direction on either
    # side span the IP, and two points 2 mm across it do not
    thumb = BoneModel([np.array([[150.0, 80.0], [110.0, 80.0], [70.0, 80.0], [30.0, 40.0]])], px, ["thumb"], [1])
    u = np.array([30.0 - 110.0, 40.0 - 80.0])
    u = u / np.linalg.norm(u) * (JOINT_SPAN_MM + 0.5) / px
    pts = np.array([70.0, 80.0]) + np.stack([u, -u])
    assert thumb.spanned_joint(pts[:, 0], pts[:, 1]) == "thumb IP"
    pts = np.array([70.0, 80.0]) + np.stack([[u[1], -u[0]], [-u[1], u[0]]])
    assert thumb.spanned_joint(pts[:, 0], pts[:, 1]) is None
    assert thumb.joint_name(0, 1) == "thumb MCP" and BoneModel([thumb.rays[0]], px).joint_name(0, 2) == "digit 0 joint 2"
    yy, xx = np.mgrid[0:160, 0:160].astype(float)
    cy, cx = 80.0, 80.0 + 3.0 / px
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    rng = np.random.default_rng(5)
    got = {}
    for name, img in (("dome", 60.0 * np.exp(-d2 / (2 * (2.5 / px) ** 2))),
                      ("disk", 60.0 * np.sqrt(np.clip(1.0 - d2 / (2.0 / px) ** 2, 0.0, None)))):
        image = (1000.0 + img + rng.normal(0.0, 3.0, img.shape)).astype(np.float32)
        cands, _ = xc.find_candidates(image, px, DetectParams(), None, None, bones, None)
        near = [c for c in cands if np.hypot(*(np.array(c.patch.coords()).mean(axis=1) - [cy, cx])) < 10]
        assert len(near) == 1, (name, [(c.reason, c.area_mm2) for c in near])
        got[name] = near[0]
    assert got["dome"].reason == REASON_JOINT and got["dome"].details["spanned_joint"] == "index MCP"
    assert "edge_support" not in got["dome"].details
    assert got["disk"].reason is None and got["disk"].details["edge_support"] >= 0.95


def _five_digit_bone_model(pixel_mm: float = 0.2):
    """Five vertical digits on an analysis grid (row, col), tips up, the thumb at the
    smallest column (so the radial side is towards smaller columns): MCP at row 300."""
    from calcinosis.hand.xr.bone import BoneModel
    rays, digits, mcp = [], [], []
    for digit, col in (("thumb", 100.0), ("index", 200.0), ("middle", 260.0), ("ring", 320.0), ("little", 380.0)):
        rows = [500.0, 300.0, 200.0, 100.0] if digit == "thumb" else [500.0, 300.0, 200.0, 150.0, 100.0]
        rays.append(np.array([[r, col] for r in rows]))
        digits.append(digit)
        mcp.append(1)
    return BoneModel(rays, pixel_mm, digits, mcp)


def test_sesamoid_sites_lie_beside_the_metacarpal_heads_on_their_own_side():
    """The thumb's two sesamoids (radial and ulnar), the index's radial and the little
    finger's ulnar one: beside the metacarpal head (5 mm across the axis, 3 mm proximal to
    the MCP landmark, 0.2 mm pixels); the other side of the index and little finger, the
    middle and ring fingers, a point over the axis, 12 mm across or 5 mm distal are no site."""
    bones = _five_digit_bone_model()
    mm = 1 / 0.2
    at = lambda col, across_mm, along_mm=-3.0: bones.sesamoid_site(np.array([300.0 - along_mm * mm, col + across_mm * mm]))
    assert at(100, -5) == "thumb MCP radial"
    assert at(100, +5) == "thumb MCP ulnar"
    assert at(200, -5) == "index MCP radial"
    assert at(200, +5) is None
    assert at(380, +5) == "little MCP ulnar"
    assert at(380, -5) is None
    assert at(260, -5) is None and at(320, +5) is None
    assert at(200, -0.5) is None and at(380, +12) is None and at(200, -5, along_mm=5.0) is None
    # the same hand mirrored (the thumb at the largest column): the sides follow the thumb
    mirrored = _five_digit_bone_model()
    mirrored.rays = [np.column_stack([r[:, 0], 480.0 - r[:, 1]]) for r in mirrored.rays]
    assert mirrored.sesamoid_site(np.array([315.0, 480.0 - 200 + 5 * mm])) == "index MCP radial"
    assert mirrored.sesamoid_site(np.array([315.0, 480.0 - 380 - 5 * mm])) == "little MCP ulnar"
    assert mirrored.sesamoid_site(np.array([315.0, 480.0 - 100 + 5 * mm])) == "thumb MCP radial"
    assert mirrored.sesamoid_site(np.array([315.0, 480.0 - 100 - 5 * mm])) == "thumb MCP ulnar"
    assert mirrored.sesamoid_site(np.array([315.0, 480.0 - 200 - 5 * mm])) is None
    # turned by 90 degrees (the digits along the columns): the same sites
    turned = _five_digit_bone_model()
    turned.rays = [np.column_stack([r[:, 1], 600.0 - r[:, 0]]) for r in turned.rays]
    assert turned.sesamoid_site(np.array([100.0 - 5 * mm, 600.0 - 315.0])) == "thumb MCP radial"
    assert turned.sesamoid_site(np.array([200.0 - 5 * mm, 600.0 - 315.0])) == "index MCP radial"
    assert turned.sesamoid_site(np.array([380.0 + 5 * mm, 600.0 - 315.0])) == "little MCP ulnar"
    # a thumb without its index: still a site, its side unnamed
    alone = _five_digit_bone_model()
    alone.digits = ["thumb", "", "", "", ""]
    assert alone.sesamoid_site(np.array([315.0, 100.0 + 5 * mm])) == "thumb MCP"


def test_a_compact_candidate_of_a_sesamoids_size_at_its_site_is_a_sesamoid():
    """bone_verdict drops a round candidate 5 mm across at the thumb's radial site as a
    sesamoid, keeps one 2 mm across there (a small deposit at the thumb's MCP: smaller than
    the thumb's sesamoids) and one of the same 5 mm elsewhere (it goes on to the symmetry test)."""
    from calcinosis.hand.xr.bone import REASON_SESAMOID, bone_verdict
    from calcinosis.hand.xr.patches import disk_patch
    bones = _five_digit_bone_model()
    shape = (600, 500)
    flat = np.zeros(shape, np.float32)
    params = DetectParams()

    def verdict(r, c, diameter_mm):
        patch = disk_patch(r, c, diameter_mm / 2 / 0.2, shape)
        details = {}
        return bone_verdict(bones, flat, patch, patch, 10.0, 1.0, 0.1, 0.2, params, details)[0], details

    reason, details = verdict(315.0, 75.0, 5.0)
    assert reason == REASON_SESAMOID and details["sesamoid_site"] == "thumb MCP radial"
    assert verdict(315.0, 75.0, 2.0)[0] != REASON_SESAMOID
    assert verdict(250.0, 175.0, 5.0)[0] != REASON_SESAMOID


def test_line_opening_keeps_long_structures_and_removes_compact_bumps():
    H, W = 120, 160
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    img = np.full((H, W), 100.0, np.float32)
    # a bar 3 px wide along 30 degrees, 90 px long, +50
    t = np.deg2rad(30.0)
    along = (xx - 40) * np.cos(t) + (yy - 60) * np.sin(t)
    across = -(xx - 40) * np.sin(t) + (yy - 60) * np.cos(t)
    bar = (np.abs(across) <= 1.5) & (along >= 0) & (along <= 90)
    img[bar] += 50.0
    disk = (yy - 30) ** 2 + (xx - 130) ** 2 <= 5.5 ** 2
    img[disk] += 80.0
    B = xr_detect.line_opening_background(img, 25.0)
    assert np.all(B <= img + 1e-4)                          # an opening never exceeds the image
    core = bar & (along >= 15) & (along <= 75) & (np.abs(across) <= 0.5)
    assert np.allclose(B[core], 150.0)                       # the bar (longer than 25 px) survives
    assert np.allclose(B[disk], 100.0)                       # the 11 px disk does not


def test_directional_background_follows_a_straight_structure():
    """Across a mask lying on a straight bright band on a tilted plane, the background
    interpolated along the band (the direction chosen by cross-validation) reproduces the
    image to within what digital lines allow (the pixel filled and the known pixels it is
    filled from each stray up to half a pixel from one straight line: one pixel times the
    band's steepest slope); a fill across the band does not."""
    H, W = 80, 80
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    t = np.deg2rad(60.0)
    across = -(xx - 40) * np.sin(t) + (yy - 40) * np.cos(t)
    sd = 6.0
    S = 200 + 0.5 * xx + 0.3 * yy + 120.0 * np.exp(-0.5 * (across / sd) ** 2)
    M = (yy - 40) ** 2 + (xx - 40) ** 2 <= 9 ** 2
    bg, theta, err = xr_detect.directional_background(S, M)
    assert abs(np.rad2deg(theta) % 180 - 60) <= 15
    max_slope = 120.0 * np.exp(-0.5) / sd
    assert np.max(np.abs(bg[M] - S[M])) <= 1.0 * max_slope
    lin0, _ = xr_detect.directional_fill(S, M, np.deg2rad(150.0))     # across the band
    assert np.max(np.abs(lin0[M] - S[M])) > 0.5 * 120


def test_mirror_test_tells_a_symmetric_bone_end_from_an_off_axis_deposit():
    H, W = 100, 100
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    # a 'bone' along the column axis x = 50 with a symmetric end cap, on a flat background
    img = 100 + 200.0 * ((np.abs(xx - 50) <= 12) & (yy >= 50)) + 150.0 * ((np.abs(xx - 50) <= 12) & (np.abs(yy - 52) <= 2))
    dep = 120.0 * np.sqrt(np.clip(1 - ((yy - 40) ** 2 + (xx - 60) ** 2) / 16.0, 0, None))
    bones = xr_detect.BoneModel([np.array([[95.0, 50.0], [10.0, 50.0]])], 0.2)
    cap = xr_detect.Patch(49, 38, np.ones((7, 25), bool))
    off = xr_detect.Patch(36, 56, ((yy - 40) ** 2 + (xx - 60) ** 2 <= 16)[36:45, 56:65])
    assert bones.mirror_excess(img, cap) < 1.0
    assert bones.mirror_excess(img + dep, off) > 0.5 * 120


def test_fine_pixels_are_analysed_on_a_0p2_mm_grid():
    """A 0.1 mm radiograph is averaged 2 x 2 for analysis and outlined back on its own
    pixels: the smooth-background lesions keep their areas within 10% (96% expected)."""
    rng = np.random.default_rng(3)
    sp, H, W = 0.1, 400, 900
    Y, X = np.mgrid[0:H, 0:W]
    img = 800 + 0.4 * X + 0.15 * Y
    offs = (np.arange(4) + 0.5) / 4 - 0.5
    truth, x = [], 60
    for n, d in enumerate([3.0, 4.0, 6.0]):
        semi = np.array([d / 2 * 1.2, d / 2, d / 2 * 0.9])
        R = rotation_matrix(rng.normal(size=3), 25 * n)
        c = np.array([x * sp, 0.0, 200 * sp])
        x += int(d / sp * 1.3) + 120
        acc = sum(shapes.ellipsoid_chord(c, semi, R, np.stack([(X + du) * sp, np.full(X.shape, -50.0), (Y + dv) * sp], -1),
                                         np.array([0.0, 1.0, 0.0])) for du in offs for dv in offs) / offs.size ** 2
        img = img + 40.0 * acc
        nrm = R.T @ np.array([0.0, 1.0, 0.0])
        a, b, cc = semi
        truth.append((c, np.pi * np.sqrt((b * cc * nrm[0]) ** 2 + (a * cc * nrm[1]) ** 2 + (a * b * nrm[2]) ** 2)))
    img = img + rng.normal(0, 8, img.shape)
    g = Geometry.create((W, H, 1), (sp, sp, 1.0), (0, 0, 0), np.diag([-1.0, -1.0, 1.0]))
    det = detect.detect_xr(Volume(img[None].astype(np.float32), g, {"modality": "XR"}), DetectParams())
    assert det.parameters["analysis_pixel_mm"] == pytest.approx(0.2)
    assert det.lesions.n == len(truth)
    lab = det.lesions.labels[0]
    for c, area in truth:
        k = lab[int(round(c[2] / sp)), int(round(c[0] / sp))]
        assert k > 0
        assert (lab == k).sum() * sp * sp == pytest.approx(area, rel=0.10)


def test_edge_outline_finds_a_deposit_inside_its_nodule():
    """Step 5 on rendered ellipsoids (exact chords, 4 x 4 points per 0.2 mm pixel, noise SD
    6) on a tilted plane, each inside a wider soft-tissue ellipsoid ('nodule': 1.2-2.5 mm
    larger semi-axes, off-centre by 0.36 mm, 0-57 image units per mm of chord against the
    deposit's 12-60): the innermost contour the edge ridges support is the deposit's, and
    its area is within 5% of the analytic projection (measured -0.6% to +2.5%: the ridge
    offset of 0.72 pixel is right to about 0.1 pixel, the pixel grid adds +-0.5 pixel along
    the outline).  The 0.2-of-peak rule on the same images keeps much of the nodule."""
    rng = np.random.default_rng(5)
    sp, H, W = 0.2, 120, 120
    Y, X = np.mgrid[0:H, 0:W].astype(float)
    offs = (np.arange(4) + 0.5) / 4 - 0.5

    def render(semi, R, c):
        return sum(shapes.ellipsoid_chord(c, np.asarray(semi), R,
                                          np.stack([(X + du) * sp, np.full(X.shape, -50.0), (Y + dv) * sp], -1),
                                          np.array([0.0, 1.0, 0.0])) for du in offs for dv in offs) / offs.size ** 2

    threshold_errors = []
    for n, (d, wider, contrast, nod) in enumerate([(3.0, 1.2, 30.0, 57.0), (4.0, 2.5, 20.0, 57.0),
                                                   (6.0, 1.8, 12.0, 40.0), (10.0, 2.0, 25.0, 57.0),
                                                   (3.5, 1.5, 60.0, 0.0)]):
        semi = np.array([d / 2 * 1.25, d / 2, d / 2 * 0.85])
        R = rotation_matrix(rng.normal(size=3), 40 * n)
        c = np.array([60 * sp + 0.07, 0.0, 60 * sp - 0.05])
        dep = render(semi, R, c)
        nodule = render(semi + wider, R, c + np.array([0.3, 0.0, -0.2]))
        img = 600 + 1.5 * X - 0.8 * Y + contrast * dep + nod * nodule + rng.normal(0, 6, X.shape)
        nrm = R.T @ np.array([0.0, 1.0, 0.0])
        a, b, cc = semi
        area = np.pi * np.sqrt((b * cc * nrm[0]) ** 2 + (a * cc * nrm[1]) ** 2 + (a * b * nrm[2]) ** 2)
        s = ndimage.gaussian_filter(img.astype(np.float32), 1.0)
        # started off-centre, reaching well beyond the nodule
        got = xr_detect.edge_outline(s, 61.3, 59.2, (d / 2 + wider) / sp + 10, xr_detect.noise_sigma(img), None)
        assert got is not None
        patch, info = got
        assert info["edge_support"] >= xr_detect.EDGE_SUPPORT
        assert patch.count() * sp * sp == pytest.approx(area, rel=0.05), (d, wider)
        excess = s - ndimage.gaussian_filter((600 + 1.5 * X - 0.8 * Y).astype(np.float32), 1.0)
        lab, _ = ndimage.label(excess >= 0.2 * excess.max())
        threshold_errors.append((lab == lab[60, 60]).sum() * sp * sp / area - 1)
    assert max(threshold_errors) > 0.5         # what the edge avoids: the nodule inside the 0.2 level


def test_edge_outline_searches_the_centre_of_a_deposit_off_centre_in_its_nodule():
    """A faint deposit (15-30 image units per mm of chord) 1.3-1.7 mm off the centre of a
    round soft-tissue nodule 3 mm wider (57 per mm): rays cast from the nodule's centre
    alone (where the candidate's outline is centred) find the nodule's edge; the centre
    search (rays from a grid over the candidate, recast from the centre of every contour
    seen off-centre) finds the deposit's, equally supported from its own centre and
    smaller, within 5% of its projected area."""
    rng = np.random.default_rng(11)
    sp, H, W = 0.2, 140, 140
    Y, X = np.mgrid[0:H, 0:W].astype(float)
    offs = (np.arange(4) + 0.5) / 4 - 0.5

    def render(semi, R, c):
        return sum(shapes.ellipsoid_chord(c, np.asarray(semi), R,
                                          np.stack([(X + du) * sp, np.full(X.shape, -50.0), (Y + dv) * sp], -1),
                                          np.array([0.0, 1.0, 0.0])) for du in offs for dv in offs) / offs.size ** 2

    centre_only = []
    for n, (d, shift, contrast) in enumerate([(4.0, (1.2, 0.8), 20.0), (5.0, (-1.5, 0.6), 15.0),
                                              (3.5, (0.4, -1.4), 30.0)]):
        semi = np.array([d / 2 * 1.2, d / 2, d / 2 * 0.9])
        R = rotation_matrix(rng.normal(size=3), 30 * n)
        cn = np.array([70 * sp, 0.0, 70 * sp])
        dep = render(semi, R, cn + np.array([shift[0], 0.0, shift[1]]))
        nodule = render(np.full(3, d / 2 + 3.0), np.eye(3), cn)
        img = 600 + 1.0 * X + contrast * dep + 57.0 * nodule + rng.normal(0, 6, X.shape)
        nrm = R.T @ np.array([0.0, 1.0, 0.0])
        a, b, cc = semi
        area = np.pi * np.sqrt((b * cc * nrm[0]) ** 2 + (a * cc * nrm[1]) ** 2 + (a * b * nrm[2]) ** 2)
        s = ndimage.gaussian_filter(img.astype(np.float32), 1.0)
        sigma = xr_detect.noise_sigma(img)
        rn = (d / 2 + 3.0) / sp
        outline = xr_detect.Patch(0, 0, (Y - 70) ** 2 + (X - 70) ** 2 <= rn ** 2).trimmed()   # the nodule
        only = xr_detect.edge_outline(s, 70.0, 70.0, rn + 10, sigma, None)
        centre_only.append(only[0].count() * sp * sp / area - 1)
        got = xr_detect.edge_outline(s, 70.0, 70.0, rn + 10, sigma, None, outline=outline, search=outline)
        assert got is not None
        assert got[1]["edge_support"] >= xr_detect.EDGE_SUPPORT
        assert got[0].count() * sp * sp == pytest.approx(area, rel=0.05), (d, shift)
    assert max(centre_only) > 2.0            # from the nodule's centre: the nodule's edge
