"""A hand model from the image itself: where the hand is (apart from markers, text and
collimation), where its bones are, each digit's centre line and joints, and from them
automatic landmarks the reader reviews in Slicer (docs/methods/hand-model.md).

Works on a 2D image where the hand is brighter than the air around it and the bones
brighter than the soft tissue: a PA radiograph, or a CT/MRI projected along the palm's
normal (:func:`project_volume`).  Arrays and explicit pixel sizes in, arrays and points out.

Steps (model grid of about :data:`MODEL_PIXEL_MM`):

1. *tissue*: pixels with signal - constant areas (collimation, burnt-in blanks) are not;
2. *hand*: above the valley between the air's histogram mode and the tissue's, the largest
   piece (lead markers, text and stickers are separate pieces), holes filled;
3. *bone*: brighter than the soft tissue around it - the image minus its grey opening
   inside the hand by a disk wider than a phalanx (:data:`SOFT_TISSUE_DISK_MM`), above
   Otsu's threshold of that excess;
4. *digits*: what an opening by a disk wider than a finger (:data:`PALM_DISK_MM`) removes
   from the hand; the thumb is the digit whose base lies farthest from the others';
5. *centre lines*: from the fingertip proximally, re-centred on the bone every step;
6. *joints*: the narrow dark gaps across the centre line (black top-hat of the profile
   along it), chosen together so that the phalanges' lengths keep the typical proportions
   (:data:`~calcinosis.hand.assign.PROPORTIONS`, a common scale free).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy import ndimage

from .anatomy import digit_points

#: the model works on pixels of about this size (mm)
MODEL_PIXEL_MM = 0.4
#: a disk this wide (radius, mm) is wider than any phalanx: the grey opening by it inside
#: the hand is the soft tissue without the bones
SOFT_TISSUE_DISK_MM = 5.0

#: a disk this wide (radius, mm) fits in the palm and the forearm but not in a finger
PALM_DISK_MM = 12.0
#: a digit piece shorter than this (mm) is not a digit (a sliver along the palm's edge)
MIN_DIGIT_MM = 25.0
#: centre-line step (mm) and the half-width of the band averaged across it (mm)
STEP_MM = 0.5
BAND_MM = 1.5
#: the centre line is pulled toward the centre of the bone it is on - the bone whose densest
#: point within RECENTRE_MM across the line is highest - by RECENTRE_GAIN of the offset per
#: step; that bone's edges are where its excess falls below RECENTRE_FRACTION of that point,
#: looked for within RECENTRE_WINDOW_MM either side (a proximal phalanx is 8-12 mm wide at its
#: base; where an edge lies beyond, the line is not moved); its direction follows the last
#: DIRECTION_BASE_MM by DIRECTION_GAIN per step
RECENTRE_MM = 3.0
RECENTRE_GAIN = 0.3
RECENTRE_WINDOW_MM = 7.0
RECENTRE_FRACTION = 0.3
DIRECTION_BASE_MM = 10.0
DIRECTION_GAIN = 0.1
#: a joint space is a dip narrower than this window (mm) in the profile along the digit
JOINT_WINDOW_MM = 5.0
#: the tip of a digit's distal phalanx: where the excess along its centre line first
#: reaches this fraction of the phalanx's level (the upper quartile over the line's first
#: TIP_PLATEAU_MM from the fingertip)
TIP_FRACTION = 0.5
TIP_PLATEAU_MM = 20.0
#: phalanx / metacarpal lengths may differ from the typical proportions by this fraction
#: (after a common scale between these bounds)
MAX_PROPORTION_ERROR = 0.4
SCALE_RANGE = (0.65, 1.5)
#: the deepest dips tried as joints
MAX_JOINT_CANDIDATES = 24
#: squares of one exact value this wide (mm) are not tissue (collimation, blanks); smaller
#: flat patches occur in tissue on 8-bit images
CONSTANT_WINDOW_MM = 3.0


@dataclass
class DigitModel:
    name: str                         # thumb, index, ... (after ordering)
    centreline: np.ndarray            # (n, 2) row, col on the model grid, distal first, STEP_MM apart
    points: dict                      # point name -> (row, col) on the model grid
    base: np.ndarray                  # (row, col) of the digit piece's proximal end
    length_mm: float
    fit_error: float | None = None    # largest proportion error of the chosen joints (None: not found)


@dataclass
class HandModel2D:
    """Masks on the model grid (``k`` input pixels per model pixel) and the digits."""
    pixel_mm: float
    k: int
    tissue: np.ndarray
    hand: np.ndarray
    bone: np.ndarray
    soft: np.ndarray                  # soft-tissue level (image units) under every hand pixel
    image: np.ndarray                 # the smoothed model-grid image
    digits: list = field(default_factory=list)
    thumb_side: str | None = None     # "right" / "left": where the thumb lies in the image columns
    warnings: list = field(default_factory=list)

    def to_input_rc(self, rc) -> np.ndarray:
        """Model-grid (row, col) -> input-image (row, col) (pixel centres)."""
        return (np.asarray(rc, float) + 0.5) * self.k - 0.5

    def upsample(self, mask: np.ndarray, shape) -> np.ndarray:
        """A model-grid mask on the input grid of ``shape``."""
        big = np.repeat(np.repeat(mask, self.k, axis=0), self.k, axis=1)
        out = np.zeros(shape, bool)
        h, w = min(shape[0], big.shape[0]), min(shape[1], big.shape[1])
        out[:h, :w] = big[:h, :w]
        return out


# ---------------------------------------------------------------------- small tools
def disk(radius_px: float) -> np.ndarray:
    r = max(int(round(radius_px)), 1)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return xx * xx + yy * yy <= r * r


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a sample (the upper edge of the last bin of the lower class)."""
    v = np.asarray(values, float).ravel()
    if v.size == 0 or v.min() == v.max():
        return float(v.max()) if v.size else 0.0
    h, e = np.histogram(v, bins)
    c = 0.5 * (e[:-1] + e[1:])
    w0 = np.cumsum(h)
    w1 = w0[-1] - w0
    s0 = np.cumsum(h * c)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    return float(e[1:][np.argmax(w0 * w1 * (m0 - m1) ** 2)])


#: the valley between air and tissue lies below this fraction of the air's peak (the air
#: itself is uneven - the heel effect, scatter - and its histogram has shoulders and
#: secondary modes that a first dip would take for the valley)
AIR_VALLEY_FRACTION = 0.25


def air_tissue_threshold(values: np.ndarray) -> float:
    """The valley above the air's mode: the first minimum of the smoothed histogram after
    its highest peak in the lower half of the range (air is the commonest value of a hand
    radiograph; tissue is brighter) that lies below :data:`AIR_VALLEY_FRACTION` of that peak
    (seen on the real normal hand mirrored, or with its grey levels bent by a gamma of 0.7:
    the first dip was a shoulder of the air's own peak, and the hand took in half the air)."""
    v = np.asarray(values, float).ravel()
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi <= lo:
        return float(lo)
    h, e = np.histogram(v, 128, (lo, hi))
    hs = ndimage.gaussian_filter1d(h.astype(float), 1.5)
    i = int(np.argmax(hs[:64]))
    j = i + 1
    while j < len(hs) - 1 and not (hs[j] <= hs[j - 1] and hs[j] < hs[j + 1]
                                   and hs[j] < AIR_VALLEY_FRACTION * hs[i]):
        j += 1
    if j >= len(hs) - 1:          # no valley: fall back on Otsu
        return otsu_threshold(v)
    return float(e[j])


def constant_areas(image: np.ndarray, pixel_mm: float, window_mm: float = CONSTANT_WINDOW_MM) -> np.ndarray:
    """Pixels inside a square ``window_mm`` wide of one exact value, the image's lowest or
    highest: collimation, blanked text, padding - no tissue there.  (Not any flat area: JPEG
    compression flattens smooth air into plateaus of one value each, a staircase of them;
    on the real normal hand at quality 40 they covered 43% of the image, the air's peak
    left the histogram and the hand's outline became its bones'.)"""
    img = np.asarray(image)
    w = max(int(round(window_mm / pixel_mm)), 3)
    lo = ndimage.minimum_filter(img, w)
    same = (ndimage.maximum_filter(img, w) == lo) & ((lo == img.min()) | (lo == img.max()))
    return ndimage.maximum_filter(same, w)


def _block_mean(image: np.ndarray, k: int) -> np.ndarray:
    from .xr.background import block_mean
    return block_mean(image, k)


# ---------------------------------------------------------------------- steps 1-3
def hand_masks(img: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                            np.ndarray, int, float]:
    """(tissue, hand, bone, soft level, smoothed image, k, model pixel mm) on the model grid."""
    k = max(1, int(round(MODEL_PIXEL_MM / pixel_mm)))
    apx = pixel_mm * k
    const_full = constant_areas(img, pixel_mm)
    a = _block_mean(img, k)
    tissue = ~(_block_mean(const_full.astype(np.float32), k) > 0.0)
    s = ndimage.gaussian_filter(a, 0.6 / apx)
    vals = s[tissue] if tissue.sum() > 100 else s.ravel()
    t = air_tissue_threshold(vals)
    fg = (s > t) & tissue
    lab, n = ndimage.label(fg)
    if n == 0:
        hand = np.zeros(s.shape, bool)
    else:
        sz = np.bincount(lab.ravel())
        sz[0] = 0
        hand = ndimage.binary_fill_holes(lab == int(sz.argmax()))
    big = float(s.max()) + 1.0
    fp = disk(SOFT_TISSUE_DISK_MM / apx)
    soft = ndimage.grey_dilation(ndimage.grey_erosion(np.where(hand, s, big), footprint=fp), footprint=fp)
    soft = np.where(hand, np.minimum(soft, s), s)
    excess = s - soft
    bone = np.zeros(s.shape, bool)
    if hand.sum() > 100:
        bone = (excess > otsu_threshold(excess[hand])) & hand
    return tissue, hand, bone, soft, s, k, apx


# ---------------------------------------------------------------------- steps 4-6
def digit_pieces(hand: np.ndarray, apx: float) -> tuple[list[dict], np.ndarray]:
    """The digits' pieces (what a palm-sized opening removes) and the palm mask."""
    palm = ndimage.binary_opening(hand, disk(PALM_DISK_MM / apx))
    fingers = ndimage.binary_opening(hand & ~palm, disk(2.0 / apx))
    lab, n = ndimage.label(fingers)
    if not palm.any():
        return [], palm
    pc = np.array(ndimage.center_of_mass(palm))
    out = []
    for i in range(1, n + 1):
        yy, xx = np.nonzero(lab == i)
        if yy.size < 10:
            continue
        P = np.stack([yy, xx], 1).astype(float)
        c = P.mean(0)
        w, v = np.linalg.eigh(np.cov(P.T))
        u = v[:, -1]
        if (c - pc) @ u < 0:
            u = -u
        proj = (P - c) @ u
        length = float((proj.max() - proj.min()) * apx)
        if length < MIN_DIGIT_MM:
            continue
        out.append({"centre": c, "u": u, "tip": c + u * proj.max(), "base": c + u * proj.min(),
                    "length_mm": length})
    return out, palm


def order_digits(pieces: list[dict]) -> tuple[list[tuple[str, dict]], str | None]:
    """Names for up to five digit pieces: the thumb is the piece whose base lies farthest
    from the other bases; the others follow by their distance from the thumb."""
    from .anatomy import DIGITS
    if len(pieces) < 2:
        return [], None
    bases = np.array([p["base"] for p in pieces])
    dist = np.linalg.norm(bases[:, None] - bases[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    if len(pieces) == 5:
        thumb = int(np.argmax(dist.min(axis=1)))
        rest = sorted((i for i in range(5) if i != thumb), key=lambda i: dist[thumb, i])
        named = [("thumb", pieces[thumb])] + [(DIGITS[1 + n], pieces[i]) for n, i in enumerate(rest)]
        side = "right" if pieces[thumb]["centre"][1] > np.mean([pieces[i]["centre"][1] for i in rest]) else "left"
        return named, side
    return [], None


def bone_centre_offset(excess: np.ndarray, bone: np.ndarray, p: np.ndarray, nrm: np.ndarray,
                       apx: float) -> float | None:
    """Where the centre of the bone under point ``p`` lies across the line (along ``nrm``, in
    model pixels), or None: the densest bone point within RECENTRE_MM of ``p``, and the run of
    excess at or above RECENTRE_FRACTION of it that holds that point - the bone between its two
    outer edges, marrow included - when both edges lie within RECENTRE_WINDOW_MM.  (The
    nearest run of the bone mask alone was the cortex the line was on: over a proximal phalanx
    the line followed one cortex, left the bone before the MCP, and the index's and middle
    finger's MCP were taken 9-15 mm off on the real hand.)"""
    wide = np.arange(-RECENTRE_WINDOW_MM / apx, RECENTRE_WINDOW_MM / apx + 1.0)
    q = p[None] + wide[:, None] * nrm[None]
    e = ndimage.map_coordinates(excess, q.T, order=1, mode="nearest")
    on_bone = ndimage.map_coordinates(bone.astype(np.float32), q.T, order=1, mode="constant") > 0.5
    near = (np.abs(wide) * apx <= RECENTRE_MM) & on_bone
    if not near.any() or e[near].max() <= 0:
        return None
    j = int(np.flatnonzero(near)[np.argmax(e[near])])
    runs, _ = ndimage.label(e >= RECENTRE_FRACTION * e[j])
    sel = np.flatnonzero(runs == runs[j])
    if sel[0] == 0 or sel[-1] == len(wide) - 1:
        return None
    return 0.5 * float(wide[sel[0]] + wide[sel[-1]])


def trace_centreline(excess: np.ndarray, bone: np.ndarray, hand: np.ndarray, start: np.ndarray,
                     u_distal: np.ndarray, length_mm: float, apx: float) -> np.ndarray:
    """From ``start`` (the fingertip) proximally, ``STEP_MM`` at a time, each point moved a
    little toward the centre of the bone it is on (:func:`bone_centre_offset`); the direction
    follows the last :data:`DIRECTION_BASE_MM` slowly, so that a neighbouring bone cannot
    pull the line off its own.  Stops where the line leaves the hand."""
    p = np.asarray(start, float).copy()
    u = -np.asarray(u_distal, float)
    step = STEP_MM / apx
    base = max(int(DIRECTION_BASE_MM / STEP_MM), 2)
    pts = []
    shape = np.array(hand.shape)
    for _ in range(int(length_mm / STEP_MM)):
        ij = np.round(p).astype(int)
        if np.any(ij < 0) or np.any(ij >= shape) or (len(pts) > 10 and not hand[ij[0], ij[1]]):
            break
        nrm = np.array([-u[1], u[0]])
        off = bone_centre_offset(excess, bone, p, nrm, apx)
        if off is not None:
            p = p + RECENTRE_GAIN * off * nrm
        pts.append(p.copy())
        if len(pts) > base:
            d = pts[-1] - pts[-1 - base]
            nd = np.linalg.norm(d)
            if nd > 0:
                u = (1.0 - DIRECTION_GAIN) * u + DIRECTION_GAIN * d / nd
                u /= np.linalg.norm(u)
        p = p + u * step
    return np.array(pts) if pts else np.zeros((0, 2))


def band_profile(image: np.ndarray, line: np.ndarray, apx: float) -> np.ndarray:
    """Mean of ``image`` across the line (±BAND_MM) at every point of it."""
    n = len(line)
    t = np.gradient(line, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    nrm = np.stack([-t[:, 1], t[:, 0]], 1)
    offs = np.linspace(-BAND_MM / apx, BAND_MM / apx, 7)
    q = line[:, None, :] + offs[None, :, None] * nrm[:, None, :]
    v = ndimage.map_coordinates(image, q.reshape(-1, 2).T, order=1, mode="nearest").reshape(n, len(offs))
    return v.mean(axis=1)


def distal_bone(excess_along: np.ndarray) -> np.ndarray:
    """Which points of a centre line (fingertip first) lie on bone, judged against the
    digit's own distal phalanx: at or above :data:`TIP_FRACTION` of its level (the upper
    quartile of the excess over the line's first :data:`TIP_PLATEAU_MM`) - the half-maximum
    edge of the tuft.  Not the hand's bone mask: its single threshold is set by the thick
    bones, and a grey-level curve that darkens the image (a gamma of 1.4 on the real normal
    hand) left the thin distal phalanges of the index and little finger below it, so their
    joints were taken one along."""
    n = max(int(round(TIP_PLATEAU_MM / STEP_MM)), 3)
    head = excess_along[:n]
    level = float(np.percentile(head, 75)) if head.size else 0.0
    if level <= 0:
        return np.zeros(len(excess_along), bool)
    return excess_along >= TIP_FRACTION * level


def find_joints(profile: np.ndarray, on_bone: np.ndarray, digit: str) -> tuple[dict, float | None]:
    """Indices along the centre line (STEP_MM apart, distal first) of the tip and the
    joints of one digit, chosen together (see module docstring); (points, proportion error)."""
    from .assign import PROPORTIONS
    names = list(digit_points(digit))[::-1]          # tip first
    prop = np.asarray(PROPORTIONS[digit], float)[::-1]
    seg = prop[:-1] - prop[1:]                       # typical lengths, tip -> proximal (mm)
    # the tip: the first point on bone (three in a row)
    tip = None
    for j in range(len(on_bone) - 3):
        if on_bone[j] and on_bone[j + 1] and on_bone[j + 2]:
            tip = j
            break
    if tip is None:
        return {}, None
    win = max(int(round(JOINT_WINDOW_MM / STEP_MM)), 3)
    closed = ndimage.grey_closing(profile, size=win)
    gap = closed - profile
    cand = [j for j in range(tip + 4, len(gap) - 1)
            if gap[j] > 0 and gap[j] >= gap[j - 1] and gap[j] >= gap[j + 1]]
    if len(cand) < len(seg):
        return {"tip": tip}, None
    depth = np.asarray(gap, float)
    scale_sd = float(np.median(depth[cand])) + 1e-9
    best, best_err = None, None
    best_score = -np.inf
    cand = np.asarray(sorted(sorted(cand, key=lambda j: -gap[j])[:MAX_JOINT_CANDIDATES]))
    pos_mm = cand * STEP_MM
    tip_mm = tip * STEP_MM
    for combo in combinations(range(len(cand)), len(seg)):
        at = np.r_[tip_mm, pos_mm[list(combo)]]
        L = np.diff(at)
        s = float(L @ seg / (seg @ seg))
        if not SCALE_RANGE[0] <= s <= SCALE_RANGE[1]:
            continue
        err = float(np.max(np.abs(L / (s * seg) - 1.0)))
        if err > MAX_PROPORTION_ERROR:
            continue
        score = float(np.sum(depth[cand[list(combo)]]) / scale_sd) * (1.0 - err)
        if score > best_score:
            best_score, best, best_err = score, combo, err
    if best is None:
        return {"tip": tip}, None
    out = {"tip": tip}
    for name, c in zip(names[1:], best):
        out[name] = int(cand[c])
    return out, best_err


def build_hand_model(img: np.ndarray, pixel_mm: float) -> HandModel2D:
    """Steps 1-6 on a 2D image (``pixel_mm`` its square pixel size)."""
    img = np.asarray(img, np.float32)
    tissue, hand, bone, soft, s, k, apx = hand_masks(img, pixel_mm)
    model = HandModel2D(apx, k, tissue, hand, bone, soft, s)
    if not hand.any():
        model.warnings.append("hand model: no hand found (nothing brighter than the air)")
        return model
    pieces, palm = digit_pieces(hand, apx)
    named, thumb_side = order_digits(pieces)
    model.thumb_side = thumb_side
    if not named:
        model.warnings.append(f"hand model: {len(pieces)} digits found, not 5 - no automatic landmarks "
                              "(fingers touching or folded, or not a PA view of one hand?)")
        return model
    excess = s - soft
    for name, piece in named:
        extra = 60.0 if name == "thumb" else 70.0
        line = trace_centreline(excess, bone, hand, piece["tip"], piece["u"], piece["length_mm"] + extra, apx)
        if len(line) < 10:
            model.warnings.append(f"hand model: the {name}'s centre line could not be followed")
            continue
        prof = band_profile(s, line, apx)
        on_bone = distal_bone(ndimage.map_coordinates(excess, line.T, order=1))
        idx, err = find_joints(prof, on_bone, name)
        pts = {nm: line[j] for nm, j in idx.items()}
        model.digits.append(DigitModel(name, line, pts, piece["base"], piece["length_mm"], err))
        missing = [p for p in digit_points(name) if p not in pts]
        if missing:
            model.warnings.append(f"hand model: {name} {', '.join(missing)} not found")
    return model


def model_landmarks(model: HandModel2D, geometry, side: str) -> list[tuple[str, np.ndarray]]:
    """The model's points as ``[(label, RAS)]`` on a 2D image's geometry (input grid)."""
    out = []
    for d in model.digits:
        for name, rc in d.points.items():
            r, c = model.to_input_rc(rc)
            ras = geometry.ijk_to_ras(np.array([[c, r, 0.0]]))[0]
            out.append((f"{side}_{d.name}_{name}", ras))
    return out


#: on a PA hand radiograph displayed as radiographs are (the patient's right hand on the
#: viewer's left, the thumbs toward the middle), a right hand's thumb lies toward the
#: image's right
THUMB_SIDE_OF_RIGHT_HAND = "right"


def complete_landmarks(placed, model: HandModel2D, laterality: str | None, points_for_side):
    """The placed landmarks completed by the model's (``points_for_side(side)`` gives them as
    ``[(label, RAS)]``): (landmarks - ``placed`` itself when the model cannot help -, the
    side, where the side came from, warnings)."""
    from .landmarks import with_automatic
    side, source = hand_side(laterality, placed, model)
    if side is None or not model.digits:
        return placed, side, source, []
    merged = with_automatic(placed, points_for_side(side))
    warnings = []
    if source.endswith("(guessed)") and (placed is None or not placed.points):
        warnings.append(f"hand side not given (no landmarks, no DICOM laterality, no --laterality): taken as {side} "
                        "from the thumb's position on a conventionally displayed PA view; a mirrored image would "
                        "flip it - give --laterality")
    return merged, side, source, warnings


def hand_side(laterality: str | None, placed, model: HandModel2D) -> tuple[str | None, str]:
    """Which hand the automatic landmarks belong to, and where that came from: the placed
    landmarks' side, else the image's laterality (DICOM or --laterality), else the thumb's
    position on a conventionally displayed PA view (a mirrored image would flip it)."""
    sides = placed.sides if placed is not None else []
    if len(sides) == 1:
        return sides[0], "placed landmarks"
    if laterality in ("L", "R"):
        return laterality, "image laterality"
    if model.thumb_side is None:
        return None, "none"
    return ("R" if model.thumb_side == THUMB_SIDE_OF_RIGHT_HAND else "L"), "thumb position (guessed)"
