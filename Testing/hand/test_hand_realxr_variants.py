"""The real normal hand radiograph (``../shared/data/external/real-hand-xr-normal``), changed
as other radiographs of the same hand would be: the other hand (mirrored), turned on the
detector, a coarser detector, stronger JPEG compression, another grey-level curve.  Nothing
in the anatomy changed, so the hand model must find the same hand and its landmarks, and the
detector must not find deposits that are not there (issue 11: at most 2 on a normal hand).

Before this session the mirrored hand and the hand with a gamma of 0.7 lost their digits (the
first dip of the histogram was a shoulder of the air's own peak and the hand took in half the
air; now the valley must lie well below the air's peak, ``handmodel.AIR_VALLEY_FRACTION``), and
71 and 49 lesions were reported; at JPEG quality 40 the air, flattened into plateaus of one
value each, was taken for collimation and the hand's outline became its bones' (now only flat
areas at the image's lowest or highest value are, ``handmodel.constant_areas``); with a gamma
of 1.4 the thin distal phalanges fell below the hand's one bone threshold and the index's and
little finger's joints were taken one along (now each digit's tip is judged against its own
distal phalanx, ``handmodel.distal_bone``).

The detector reported 5-10 on six of the eight variants: every candidate's evidence is counted
in noise SDs, and the noise, measured by the median absolute deviation of 8-bit differences,
jumped between the few values that median can take (2.27 on the original, 1.82 turned by 5
degrees).  Measured now by a clipped SD (``xr.background.noise_sigma``: 3.04 on the original),
it reported at most 2 on five of the eight and 3-4 on three; the thumb's sesamoid, one of the
false ones on three, is now dropped by its site (``xr.bone.sesamoid_site``): at most 2 on six,
3 on two (bone ends at the joints, a tuft).  With the candidate's own edge counted in its
confidence (``xr.confidence``), and a missing edge outline counted at the edge bound: at most 2
on all eight (measured 1, 1, 2, 0, 1, 1, 1, 1; the original gives 1).  Tried and not better (measured on
504 candidates of these variants, the phantom hands and the hard phantom): the noise measured
on a 2 x 2 coarser grid, the noise or the blob response's spread around each candidate, the
noise at the candidate's grey level."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from calcinosis.core.geometry import Geometry
from calcinosis.core.volume import Volume
from calcinosis.hand import detect, handmodel
from calcinosis.hand.detect import DetectParams

pytestmark = pytest.mark.realdata

SPACING_MM = 0.104


def _jpeg(im, quality):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    from PIL import Image
    return Image.open(buf).convert("L")


def _variant(real_hand_xr, name):
    """(image array, pixel mm, laterality, landmarks {name: (row, col)}) of one variant."""
    from PIL import Image
    src = Image.open(real_hand_xr / "normal-hand-pa.jpg").convert("L")
    W, H = src.size
    pts = {}
    with open(real_hand_xr / "landmarks_lps.csv") as f:
        for r in csv.DictReader(f):           # LPS on a grid with i -> L, j -> P: pixel = l, p over the spacing
            pts[r["label"].split("_", 1)[1]] = np.array([float(r["p"]), float(r["l"])]) / SPACING_MM
    side, sp, im = "L", SPACING_MM, src
    if name == "mirrored (the right hand)":
        im, side = src.transpose(Image.FLIP_LEFT_RIGHT), "R"
        pts = {k: np.array([r, W - 1 - c]) for k, (r, c) in pts.items()}
    elif name.startswith("turned"):
        deg = float(name.split()[1])
        im = src.rotate(deg, resample=Image.BILINEAR, fillcolor=0)     # counter-clockwise about the centre
        a = np.radians(deg)
        out = {}
        for k, (r, c) in pts.items():
            x, y = c + 0.5 - W / 2, r + 0.5 - H / 2
            out[k] = np.array([-x * np.sin(a) + y * np.cos(a) + H / 2 - 0.5,
                               x * np.cos(a) + y * np.sin(a) + W / 2 - 0.5])
        pts = out
    elif name.startswith("detector"):
        sp = float(name.split()[1])
        s = SPACING_MM / sp
        im = src.resize((round(W * s), round(H * s)), Image.LANCZOS)
        pts = {k: (v + 0.5) * s - 0.5 for k, v in pts.items()}
    elif name.startswith("JPEG"):
        im = _jpeg(src, int(name.split()[-1]))
    elif name.startswith("gamma"):
        g = float(name.split()[1])
        im = src.point(lambda v: int(round(255 * (v / 255) ** g)))
    return np.asarray(im).astype(np.float32), sp, side, pts


VARIANTS = ["mirrored (the right hand)", "turned 5 degrees", "turned -8 degrees", "detector 0.15 mm", "detector 0.2 mm",
            "JPEG quality 40", "gamma 0.7 (brighter)", "gamma 1.4 (darker)"]


def _gap(name: str, reason: str):
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason="issue 11 open: " + reason))



#: variants whose detection is a known gap (name -> reason, a strict xfail); none at present
DETECT_GAPS: dict = {}
DETECT_CASES = [_gap(n, DETECT_GAPS[n]) if n in DETECT_GAPS else n for n in VARIANTS]


@pytest.mark.parametrize("name", VARIANTS)
def test_hand_model_finds_the_same_hand(real_hand_xr, name):
    """Five digits, named from the thumb, on the right side; >= 19 of the 20 automatic
    landmarks within 5 mm of the placed ones carried along (measured: 19 on each, the middle
    MCP 5.3-5.7 mm off; 18 on seven of the nine, the index and middle MCP 4-15 mm off, before
    the centre line was centred between the bone's edges, ``handmodel.bone_centre_offset``)."""
    img, sp, side, placed = _variant(real_hand_xr, name)
    model = handmodel.build_hand_model(img, sp)
    assert [d.name for d in model.digits] == ["thumb", "index", "middle", "ring", "little"], model.warnings
    assert model.thumb_side == ("right" if side == "L" else "left")      # (where the thumb lies in the image)
    errors = {}
    for d in model.digits:
        for pt, rc in d.points.items():
            lab = f"{d.name}_{pt}"
            if lab in placed:
                errors[lab] = float(np.linalg.norm(model.to_input_rc(rc) - placed[lab]) * sp)
    assert len(errors) == 20
    assert sum(e <= 5.0 for e in errors.values()) >= 19, {k: round(v, 1) for k, v in errors.items()}


def _detect(img, sp, side):
    g = Geometry.create((img.shape[1], img.shape[0], 1), (sp, sp, 1.0), (0, 0, 0), np.diag([-1.0, -1.0, 1.0]))
    return detect.detect_xr(Volume(img[None], g, {"modality": "XR", "laterality": side}), DetectParams())


@pytest.mark.parametrize("name", DETECT_CASES)
def test_normal_hand_reports_at_most_two_lesions(real_hand_xr, name):
    """Issue 11's bound on a normal hand, on each variant (without placed landmarks)."""
    img, sp, side, _ = _variant(real_hand_xr, name)
    det = _detect(img, sp, side)
    assert det.lesions.n <= 2, (name, det.lesions.n, np.round(det.confidence, 2).tolist())
