"""The hand model from the image (:mod:`calcinosis.hand.handmodel`) and what the radiograph
detector gains from it (issue 11).

Ground truth: the phantom radiographs' true landmarks (joint centres and tuft ends of the
model hand) and lesion table; on the real normal hand, the landmarks placed by eye in
``landmarks_lps.csv`` (estimated spacing, ±10%) and the fact that it has no calcinosis.

Tolerances: a landmark within 5 mm (the issue's figure: about half a phalanx's width, the
distance within which a lesion keeps its zone).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.core.geometry import Geometry
from calcinosis.core.volume import Volume
from calcinosis.hand import detect, handmodel, phantom as phantom_hand
from calcinosis.hand.detect import DetectParams
from calcinosis.hand.landmarks import AUTOMATIC_DESCRIPTION, landmarks_from_points
from calcinosis.hand.pipeline import measure_hand
from calcinosis.hand.xr.background import noise_sigma
from calcinosis.hand.xr.candidates import REASON_LOW_CONFIDENCE
from hand_helpers import xr_phantom_detection
from phantom_cache import cached

HANDS = [("R", 0), ("L", 1), ("R", 2), ("L", 3)]
REAL_SPACING_MM = 0.104


def _auto_errors_mm(model, geometry, truth: dict, pixel_mm: float) -> dict:
    out = {}
    for d in model.digits:
        for name, rc in d.points.items():
            lab = f"{d.name}_{name}"
            if lab in truth:
                ijk = geometry.ras_to_ijk(np.asarray(truth[lab], float)[None])[0]
                out[lab] = float(np.linalg.norm(model.to_input_rc(rc) - np.array([ijk[1], ijk[0]])) * pixel_mm)
    return out


@pytest.fixture(scope="module")
def phantoms():
    return [(side, seed, cached(phantom_hand.xr_phantom, side, seed)) for side, seed in HANDS]


def test_automatic_landmarks_on_the_phantom_radiographs(phantoms):
    """Every digit found and named, and >= 95% of the 80 landmarks within 5 mm of the true
    ones (measured: 79 of 80; the one miss is a thumb CMC over the carpus)."""
    errs = []
    for side, seed, ph in phantoms:
        model = handmodel.build_hand_model(ph.array[0].astype(np.float32), float(ph.geometry.spacing[0]))
        assert sorted(d.name for d in model.digits) == sorted(["thumb", "index", "middle", "ring", "little"])
        truth = {lab.split("_", 1)[1]: p for lab, p in ph.landmarks}
        e = _auto_errors_mm(model, ph.geometry, truth, float(ph.geometry.spacing[0]))
        assert len(e) == 20, (side, seed, sorted(set(truth) - set(e)))
        errs += list(e.values())
    errs = np.array(errs)
    assert np.mean(errs <= 5.0) >= 0.95, np.round(np.sort(errs)[-6:], 1)


def test_automatic_landmarks_assign_digits_and_zones_on_the_phantom(phantoms):
    """Without a placed point: the found lesions' digit as the truth's in 100% of cases and
    their zone in >= 95% (issue 11's target)."""
    digit_ok, zone_ok, n = 0, 0, 0
    for side, seed, ph in phantoms:
        vol = Volume(ph.array.astype(np.float32), ph.geometry, {"modality": "XR", "laterality": side})
        det = xr_phantom_detection(side, seed, placed_landmarks=False)
        assert len(det.landmarks.automatic) == 20
        res = measure_hand(vol, "XR", det.lesions, det.landmarks, detection=det)
        outl = ph.outlines[0]
        lab = det.lesions.labels[0]
        truth = {r["lesion_id"]: r for r in ph.truth.rows}
        for row in res.lesions_table.rows:
            ids = np.unique(outl[lab == row["lesion_id"]])
            ids = [int(i) for i in ids if i > 0]
            if len(ids) != 1:
                continue
            t = truth[ids[0]]
            n += 1
            digit_ok += row["digit"] == t["digit"]
            zone_ok += row["zone"] == t["zone"]
    assert n >= 40
    assert digit_ok == n, (digit_ok, n)
    assert zone_ok >= 0.95 * n, (zone_ok, n)


def test_tissue_noise_ignores_collimation_and_the_air_outside():
    """A collimated radiograph (60% of the pixels exactly 0) keeps the noise estimate of its
    tissue (true SD 6; the estimate is within 25%: curvature of the soft tissue adds a little);
    over the whole image it would be far too low (the collimation's zero differences: about
    3.4 with the clipped SD, about 0 with the median absolute deviation once used)."""
    ph = cached(phantom_hand.xr_phantom, "R", 0)
    img = ph.array[0].astype(np.float32).copy()
    h, w = img.shape
    img[: int(0.35 * h)] = 0.0
    img[:, : int(0.3 * w)] = 0.0
    assert (img == 0).mean() > 0.5
    assert noise_sigma(img) < 0.7 * 6.0                 # what an estimate over the whole image sees
    model = handmodel.build_hand_model(img, float(ph.geometry.spacing[0]))
    tissue = model.upsample(model.hand & model.tissue & ~ndimage.binary_dilation(model.bone, iterations=2), img.shape)
    assert noise_sigma(img, tissue) == pytest.approx(6.0, rel=0.25)


def test_markers_and_collimation_are_not_searched():
    """A lead marker (a bright letter in the air) and a collimated border give no candidate;
    the deposits inside the hand are found as on the clean image (one may change with the
    noise estimate)."""
    ph = cached(phantom_hand.xr_phantom, "L", 1)
    img = ph.array[0].astype(np.float32).copy()
    sp = float(ph.geometry.spacing[0])
    air = float(np.median(img[:20, :20]))
    marker = np.zeros(img.shape, bool)
    clear = ndimage.distance_transform_edt(img < air + 100.0) * sp          # mm of air around
    clear[:, : int(20 / sp)] = 0
    r0, c0 = np.unravel_index(int(np.argmax(clear)), img.shape)
    assert clear[r0, c0] >= 15.0
    r0, c0 = r0 - int(5 / sp), c0 - int(3 / sp)
    marker[r0:r0 + int(10 / sp), c0:c0 + int(2 / sp)] = True            # an "L": a bar and a foot
    marker[r0 + int(8 / sp):r0 + int(10 / sp), c0:c0 + int(7 / sp)] = True
    img[marker] = air + 2500.0
    img[:, : int(5 / sp)] = 0.0                                           # collimated strip
    det = detect.detect_xr(Volume(img[None], ph.geometry, {"modality": "XR", "laterality": "L"}), DetectParams())
    lab = det.lesions.labels[0]
    hand = det.hand_model.upsample(det.hand_model.hand, img.shape)
    assert not (lab[ndimage.binary_dilation(marker, iterations=10)] > 0).any()
    assert not (lab[:, : int(5 / sp) + 2] > 0).any()
    assert not (lab[~ndimage.binary_dilation(hand, iterations=int(1.5 / sp))] > 0).any()
    found = {int(i) for i in np.unique(ph.outlines[0][lab > 0]) if i > 0}
    clean = xr_phantom_detection("L", 1, placed_landmarks=False).lesions.labels[0]
    found_clean = {int(i) for i in np.unique(ph.outlines[0][clean > 0]) if i > 0}
    assert len(found) >= len(found_clean) - 1, (sorted(found), sorted(found_clean))


# ---------------------------------------------------------------------- the real normal hand
def _real(real_hand_xr):
    from PIL import Image
    img = np.asarray(Image.open(real_hand_xr / "normal-hand-pa.jpg").convert("L")).astype(np.float32)
    geom = Geometry.create((img.shape[1], img.shape[0], 1), (REAL_SPACING_MM, REAL_SPACING_MM, 1.0), (0, 0, 0),
                           np.diag([-1.0, -1.0, 1.0]))
    placed = {}
    with open(real_hand_xr / "landmarks_lps.csv") as f:
        for r in csv.DictReader(f):
            placed[r["label"].split("_", 1)[1]] = np.array([-float(r["l"]), -float(r["p"]), float(r["s"])])
    return img, geom, placed


def test_real_hand_automatic_landmarks_within_5mm_of_the_placed_ones(real_hand_xr):
    """Issue 11: >= 90% of the automatic landmarks within 5 mm of those placed by eye
    (measured 19 of 20; the middle MCP 5.7 mm off; the index and middle MCP 9-14 mm off before
    the centre line was centred between the bone's edges)."""
    img, geom, placed = _real(real_hand_xr)
    model = handmodel.build_hand_model(img, REAL_SPACING_MM)
    assert [d.name for d in model.digits] == ["thumb", "index", "middle", "ring", "little"]
    e = _auto_errors_mm(model, geom, placed, REAL_SPACING_MM)
    assert len(e) == 20
    assert sum(v <= 5.0 for v in e.values()) >= 18, {k: round(v, 1) for k, v in e.items()}
    # the lead marker ("Sin", top left) is not part of the hand
    assert not model.hand[: int(12 / model.pixel_mm), : int(25 / model.pixel_mm)].any()


@pytest.mark.parametrize("placed", [True, False], ids=["placed landmarks", "automatic landmarks"])
def test_real_normal_hand_reports_at_most_two_lesions(real_hand_xr, placed):
    """The real normal adult hand has no calcinosis: at the default operating point (step 6,
    confidence >= 0.5) at most 2 lesions are reported, with its placed landmarks and with
    the automatic ones (measured: 1 each, at the thumb's IP joint, confidence 0.56; 2 - the
    thumb's distal phalanx too - before the edge term of the confidence; 1 - the tuft of the
    thumb, 0.84 - with the noise measured by the median absolute deviation, which on this
    8-bit image read 2.27 instead of 3.04; 79 and 188 before the hand model, 43 and 39 before
    step 6).  Every candidate steps 1-5 keep is false here, and with the cut off
    (``xr_min_confidence`` 0) they come back (20 and 19; 24 and 23 dropped by the cut)."""
    img, geom, points = _real(real_hand_xr)
    lm = landmarks_from_points([(f"L_{k}", v) for k, v in points.items()]) if placed else None
    vol = Volume(img[None], geom, {"modality": "XR", "laterality": "L"})
    det = detect.detect_xr(vol, DetectParams(), landmarks=lm)
    assert det.lesions.n <= 2
    assert det.confidence is not None and len(det.confidence) == det.lesions.n
    assert np.all((det.confidence >= 0.5) & (det.confidence <= 1.0))
    rejected = det.parameters["candidates_rejected"]
    assert rejected.get(REASON_LOW_CONFIDENCE, 0) >= 20
    if placed:     # (once: the same candidates come back either way)
        everything = detect.detect_xr(vol, DetectParams(xr_min_confidence=0.0), landmarks=lm)
        assert everything.lesions.n >= 15
        assert np.nanmin(everything.confidence) < 0.5


def test_centre_line_is_pulled_to_the_middle_between_the_bones_edges():
    """A bone 8 mm wide whose marrow (excess 40) is fainter than its cortices (100, 1.5 mm
    each), with a bone mask that holds the cortices only (as the hand's one threshold does
    over a proximal phalanx): from a point on the inner side of the left cortex the centre line
    is pulled to the bone's middle, 2.5 mm to the right (within one 0.4 mm pixel) - not back
    onto the cortex, the nearest run of the mask, where the line stayed before; a bone wider
    than the window (a palm) moves it nowhere."""
    apx = 0.4
    x = (np.arange(120) - 20) * apx              # mm; the bone from 0 to 8 mm
    profile = np.where((x >= 0) & (x < 8), 40.0, 0.0)
    profile[((x >= 0) & (x < 1.5)) | ((x >= 6.5) & (x < 8))] = 100.0
    excess = np.tile(profile, (60, 1)).astype(np.float32)
    bone = excess >= 70
    p = np.array([30.0, 20.0 + round(1.4 / apx)])      # (row, col) on the left cortex's inner side
    nrm = np.array([0.0, 1.0])
    off = handmodel.bone_centre_offset(excess, bone, p, nrm, apx)
    centre_col = 20.0 + 4.0 / apx - 0.5
    assert off is not None, "no centre found"
    assert off > 0 and abs(p[1] + off - centre_col) * apx <= apx, (off, p[1] + off, centre_col)
    wide = np.tile(np.where(x >= 0, 60.0, 0.0), (60, 1)).astype(np.float32)
    assert handmodel.bone_centre_offset(wide, wide >= 30, np.array([30.0, 40.0]), nrm, apx) is None


def test_real_hand_from_the_command_line_writes_the_automatic_landmarks(real_hand_xr, tmp_path):
    """Without placed landmarks the result's point list holds the 20 automatic landmarks,
    each described as automatic, in LPS as Slicer writes; the lesions get digits and their
    detection confidence (at the operating point or above); at most 2 false ones (188 were
    reported before the hand model)."""
    from calcinosis.cli.main import main
    out = tmp_path / "o"
    code = main(["hand", str(real_hand_xr / "normal-hand-pa.jpg"), "--spacing", "0.104,0.104", "--modality", "xr",
                 "--laterality", "L", "-o", str(out), "-q"])
    assert code == 0
    doc = json.loads((out / "landmarks.mrk.json").read_text())
    cps = doc["markups"][0]["controlPoints"]
    assert len(cps) == 20 and all(cp["description"] == AUTOMATIC_DESCRIPTION for cp in cps)
    assert all(cp["label"].startswith("L_") for cp in cps)
    prov = json.loads((out / "provenance.json").read_text())
    hm = prov["parameters"]["detection"]["hand_model"]
    assert hm["side"] == "L" and hm["side_source"] == "image laterality"
    with open(out / "lesions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) <= 2
    assert all(r["digit"] != "" for r in rows)
    with open(out / "lesion_assignment.csv") as f:
        details = list(csv.DictReader(f))
    assert len(details) == len(rows) and all(0.5 <= float(r["detection_confidence"]) <= 1 for r in details)


# ---------------------------------------------------------------------- CT
def test_ct_hand_model_landmarks_on_the_phantom_cts():
    """The CT projected along the palm's normal is a radiograph of the hand: every digit
    found on the four phantom CTs, the thumb on the side of its hand, and >= 90% of the 80
    automatic landmarks, lifted to the depth of their bone, within 5 mm (3D) of the true
    ones (measured: 74 of 80, at most 6.3 mm: thumb CMCs over the carpus, little MCPs)."""
    from calcinosis.hand import handmodel_ct
    errs = []
    for side, seed in HANDS:
        ph = cached(phantom_hand.ct_phantom, side, seed)
        hu = ph.array.astype(np.float32)
        model, proj = handmodel_ct.ct_hand_model(hu, ph.geometry)
        assert sorted(d.name for d in model.digits) == sorted(["thumb", "index", "middle", "ring", "little"])
        assert handmodel.hand_side(None, None, model)[0] == side
        auto = dict(handmodel_ct.ct_model_landmarks(hu, ph.geometry, model, proj, side))
        truth = dict(ph.landmarks)
        assert set(auto) == set(truth)
        errs += [float(np.linalg.norm(auto[k] - truth[k])) for k in truth]
    errs = np.array(errs)
    assert np.mean(errs <= 5.0) >= 0.90, np.round(np.sort(errs)[-8:], 1)


def test_ct_without_landmarks_assigns_digits_and_zones(tmp_path):
    """``calcinosis hand CT`` without a landmark file: the hand model's landmarks give every
    lesion matched to the truth its digit (100%) and zone (>= 95%; measured 76 of 76 on the
    four phantom hands), are written as landmarks.mrk.json, and provenance says so."""
    from hand_helpers import matched, read, run_cli
    n = digit_ok = zone_ok = 0
    for side, seed in HANDS[:2]:
        d = tmp_path / f"{side}{seed}"
        assert run_cli("phantom", "hand-ct", "--side", side, "--seed", str(seed), "-o", d / "ph", "-q") == 0
        assert run_cli("hand", d / "ph" / "ct", "-o", d / "out", "-q") == 0
        for t, m in matched(read(d / "out" / "lesions.csv"), read(d / "ph" / "truth.csv")):
            if m is None:
                continue
            n += 1
            digit_ok += m["digit"] == t["digit"]
            zone_ok += m["zone"] == t["zone"]
        doc = json.loads((d / "out" / "landmarks.mrk.json").read_text())
        assert len(doc["markups"][0]["controlPoints"]) == 20
        hm = json.loads((d / "out" / "provenance.json").read_text())["parameters"]["hand_model"]
        assert hm["side"] == side and len(hm["automatic_landmarks"]) == 20
    assert n >= 30
    assert digit_ok == n and zone_ok >= 0.95 * n, (digit_ok, zone_ok, n)


@pytest.mark.parametrize("gain", [0.4, 1.0, 3.0])
def test_digit_tip_is_the_half_maximum_edge_of_its_own_distal_phalanx(gain):
    """``handmodel.distal_bone``: along a centre line from the fingertip, the excess rises
    over the tuft's edge to the distal phalanx's level; the tip is where it reaches half of
    that level, whatever the level (a grey-level curve scales a thin phalanx's excess, and
    the hand's single bone threshold once missed it)."""
    step = handmodel.STEP_MM
    x = np.arange(0, 60.0, step)
    edge_mm = 4.0
    excess = gain * 10.0 * np.clip((x - (edge_mm - 1.5)) / 3.0, 0, 1)       # a 3 mm ramp centred at 4 mm
    excess[(x > 18) & (x < 21)] *= 0.5                                   # the DIP joint space
    on = handmodel.distal_bone(excess)
    first = int(np.argmax(on))
    assert abs(x[first] - edge_mm) <= step
    assert on[x > 25].all() and not on[x < edge_mm - step].any()
    assert not handmodel.distal_bone(np.zeros(50)).any()


def test_noise_estimate_follows_the_noise_of_an_8_bit_image():
    """A sloping 8-bit image with Gaussian noise of SD 1.0-1.6 grey levels, rounded to whole
    levels (the rounding adds 1/12 to the variance): the estimate is within 8% of the noise
    of the stored image and grows with it.  The median absolute deviation once used took
    a few values only (the differences of integers are multiples of 0.5) and stood still or
    jumped by 20% between them - on the real hand turned by 5 degrees, every candidate's
    confidence rose with such a jump."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:300]
    slope = 40.0 + 0.3 * xx + 0.1 * yy
    estimates = []
    for sd in (1.0, 1.15, 1.3, 1.45, 1.6):
        img = np.round(slope + rng.normal(0.0, sd, slope.shape))
        stored = np.sqrt(sd ** 2 + 1.0 / 12.0)
        est = noise_sigma(img)
        assert est == pytest.approx(stored, rel=0.08), (sd, est, stored)
        estimates.append(est)
    assert np.all(np.diff(estimates) > 0)
