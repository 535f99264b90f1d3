"""A realistic ("hard") PA hand radiograph: the synthetic patient of :mod:`.phantom` with
what real radiographs show and the smooth phantom does not - each item with exact truth.

The hand, its lesions and the projection are those of :mod:`.phantom` (same patient for the
same side and seed, same pixel scale: offset + gain x line integral of mu).  On top, each
switchable:

* ``texture``: trabecular texture inside the projected marrow, a band-limited random net
  (spots ~0.4-1.5 mm), stronger in the heads and bases than mid-shaft; its amplitude is
  **calibrated** on a real normal hand radiograph (:data:`REAL_CALIBRATION`, measured by
  :func:`texture_statistics`, which the tests run on both images);
* ``bone_ends``: a dense subchondral plate (0.8-1.5 mm) at each articular end of every
  metacarpal and phalanx (the joint spaces of the model stay open between them);
* ``tufts``: a dense, widened, irregular tip on each distal phalanx;
* ``sesamoids``: two at the thumb MCP, one at the index and one at the little-finger MCP,
  palmar to the metacarpal head (they overlap it on a PA view);
* ``marker`` / ``text``: a lead side marker ("R"/"L", saturating) in its plastic holder and a
  burned-in annotation line, in the air of the exposed field;
* ``collimation``: everything outside the exposed rectangle exactly 0;
* ``swelling``: a broad soft-tissue bulge beside a finger joint (gout-like; not calcinosis).

Added solids (plates, tufts, sesamoids, swelling) are projected exactly like the anatomy:
their excess attenuation over what the renderer puts at each point (a union, never a double
count), sampled along A.  None of them touches a lesion (clearance checked in 3D), so every
lesion's own shadow, area and contrast stay those of the lesion truth; only
``xr_overlaps_bone`` and ``gap_to_bone_mm`` are recomputed with the added bone.

The image is held on a canvas wider than the hand (air around it, the forearm below) at
:data:`WHITE_LEVEL` (12-bit detector range), so markers saturate and collimation can be
cut.  The distractor table (:data:`DISTRACTOR_COLUMNS`) gives each item's kind, centre and
extent in the image's RAS: the bounding box of the pixels it changes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from calcinosis.core.geometry import Geometry
from calcinosis.core.tables import Column, Table

from . import phantom as ph
from .shapes import EllipsoidSolid, RoundedCylinder

# ---------------------------------------------------------------------- calibration (real radiograph)
#: How the texture is measured (:func:`texture_statistics`), on the real image and on the phantom alike:
#: the image is resampled to a 0.2 mm grid (the detector's analysis grid); for each measured
#: bone (proximal and middle phalanges of the fingers, the thumb's proximal phalanx, between
#: the joint landmarks) cross-sections every 0.25 mm are taken perpendicular to the
#: joint-to-joint line, the two cortical edges found on each (steepest rise and fall of the
#: profile smoothed by 0.3 mm), giving the bone's local centre and half-width w.  On the
#: band-pass image (Gaussian 0.2 mm minus Gaussian 0.6 mm) the standard deviation is taken in
#: the core (|x| <= 0.45 w: marrow, no cortex) of the shaft (35-65% of the length) and of the
#: ends (3-7 mm from either joint centre: heads and bases), and in the soft tissue beside the
#: shaft (1.5-2.5 mm outside each edge: the noise).  The texture is the core's band-pass SD
#: with the soft tissue's removed in quadrature.  The *step* is the cortex-to-soft-tissue
#: step of the shaft: the smoothed profile's maximum between the edges minus the soft-tissue
#: mean.  Ratios to the step are per bone; the calibration is their median.
MEASURE_GRID_MM = 0.2
BANDPASS_SIGMAS_MM = (0.2, 0.6)
EDGE_SMOOTH_MM = 0.3
CORE_FRACTION = 0.45
SHAFT_FRACTION = (0.35, 0.65)
END_ZONE_MM = (3.0, 7.0)
SOFT_BAND_MM = (1.5, 2.5)
SECTION_STEP_MM = 0.25
SECTION_HALF_MM = 8.0
MEASURED_BONES = (("index", "MCP", "PIP"), ("index", "PIP", "DIP"), ("middle", "MCP", "PIP"),
                  ("middle", "PIP", "DIP"), ("ring", "MCP", "PIP"), ("ring", "PIP", "DIP"),
                  ("little", "MCP", "PIP"), ("little", "PIP", "DIP"), ("thumb", "MCP", "IP"))

#: Measured on ``real-hand-xr-normal/normal-hand-pa.jpg`` (8-bit JPEG, 0.104 mm/px as estimated,
#: the landmarks placed by eye) with :func:`texture_statistics`, 9 bones; medians (range):
#: step 89.4 (63-103) grey levels; texture / step in the shaft 0.0215 (0.018-0.042), in the
#: heads and bases 0.0603 (0.039-0.099); soft-tissue band-pass SD / step 0.0062 (0.004-0.010).
#: ``detector_noise_ratio``: the radiograph detector's own noise estimate on that image
#: (``noise_sd_estimate`` 2.27, from neighbour differences in the soft tissue) / the step.
REAL_CALIBRATION = {"step": 89.4, "texture_shaft_ratio": 0.0215, "texture_end_ratio": 0.0603,
                    "noise_bandpass_ratio": 0.0062, "detector_noise_ratio": 0.0254}
#: the texture amplitude is ratio x step x this (shaft, ends): measured with
#: :func:`texture_statistics`, the phantom's bones add band-pass variance of their own (the
#: cortex's and the flares' edges within the filter's reach, the short middle phalanges' ends
#: reaching into their shaft zone), as the real bones do; these factors (found once by measuring
#: the phantoms of seeds 0-2, both sides) bring the measured medians to the real ones (within
#: 7%; the band-pass noise within 11%)
TEXTURE_AMPLITUDE_FACTOR = (0.92, 1.03)
#: the detector's noise estimator (difference to the mean of the two horizontal neighbours)
#: gives sqrt(1.5) x the SD of white noise
DETECTOR_NOISE_GAIN = float(np.sqrt(1.5))

# ---------------------------------------------------------------------- appearance
WHITE_LEVEL = 4095.0             # 12-bit detector: markers saturate here; the 16-bit file keeps these values
CANVAS_PAD_MM = (20.0, 20.0, 20.0)   # air added above the fingertips, on the thumb side, on the other side
FOREARM_MM = 25.0                # the canvas reaches this far proximal to the radiocarpal joint
COLLIMATION_MM = (6.0, 8.0, 6.0, 6.0)  # blanked borders: top, bottom, left, right (mm from the canvas edge)
#: trabecular texture: field spots (band of the generating filter), head zone and the fade to the shaft
TEXTURE_SIGMAS_MM = (0.18, 0.55)
TEXTURE_NET_WIDTH = 0.55         # the net: exp(-f^2 / (2 w^2)) of a unit band-limited field f (bright lines)
END_ZONE_DIAMETERS = 1.0         # heads and bases: within one bone diameter of an end
END_RAMP_MM = 4.0
PLATE_MM = (0.8, 1.5)            # subchondral plate thickness
PLATE_HU = 1750.0
TUFT_HU = (1400.0, 650.0)        # shell, core
SESAMOID_HU = (1700.0, 900.0)
SESAMOID_SHELL_MM = 0.5
SWELLING_SEMI_MM = (7.5, 4.5, 5.5)   # along the digit, lateral, palmar
MARKER_MM = (7.0, 11.0)          # letter height, holder side
MARKER_HOLDER_TISSUE_MM = 3.0    # the plastic holder attenuates like this much soft tissue
TEXT_HEIGHT_MM = 2.2
TEXT_LEVEL = 0.92                # x WHITE_LEVEL
CLEARANCE_MM = 0.3               # added solids keep this far from every lesion

KINDS = ("trabecular", "bone_end", "tuft", "sesamoid", "marker", "text", "collimation", "swelling")
#: which kind a point on several footprints is attributed to (most specific first)
KIND_PRIORITY = ("marker", "text", "sesamoid", "tuft", "bone_end", "swelling", "trabecular", "collimation")

DISTRACTOR_COLUMNS = [
    Column("distractor_id", "int", "", "Distractor number"),
    Column("kind", "string", "", "trabecular, bone_end, tuft, sesamoid, marker, text, collimation or swelling"),
    Column("name", "string", "", "What it is (bone, end, digit)"),
    Column("digit", "string", "", "Digit it belongs to (empty for none)"),
    Column("center_r_mm", "double", "mm", "Centre of its footprint's bounding box, R, in this image's RAS"),
    Column("center_a_mm", "double", "mm", "Centre of its footprint's bounding box, A, in this image's RAS"),
    Column("center_s_mm", "double", "mm", "S in this image's RAS (0: the image plane)"),
    Column("extent_r_mm", "double", "mm", "Width of the bounding box of the pixels it changes, along R"),
    Column("extent_a_mm", "double", "mm", "Height of that bounding box, along A"),
    Column("area_mm2", "double", "mm2", "Area of the pixels it changes"),
    Column("peak_contrast", "double", "", "Largest change it makes to a pixel (image units, before noise)"),
    Column("notes", "string", "", "Details (thickness, size, text)"),
]


@dataclass
class Distractor:
    distractor_id: int
    kind: str
    name: str
    digit: str
    rows: slice
    cols: slice
    contribution: np.ndarray      # its own change to the pixels of (rows, cols) (image units); collimation: mask
    notes: str = ""
    solid: object | None = None   # added bone solid (RAS), for the lesions' gap to bone

    def footprint(self) -> np.ndarray:
        return self.contribution != 0


@dataclass
class HardXrPhantom(ph.ModalityPhantom):
    """A :class:`~calcinosis.hand.phantom.ModalityPhantom` (modality XR) with its distractors."""

    distractors: Table | None = None
    items: list = field(default_factory=list)
    layers: dict = field(default_factory=dict)       # kind -> own contribution on the whole canvas (image units)
    exposed: tuple = ()                              # exposed field: (row0, row1, col0, col1), end-exclusive
    noise_sd: float = 0.0
    settings: dict = field(default_factory=dict)
    base: np.ndarray | None = None                   # the anatomy and lesions alone (image units, no noise)
    clean: np.ndarray | None = None                  # base + every distractor but the overlays, before noise

    def image(self) -> np.ndarray:
        return self.array[0]


# ---------------------------------------------------------------------- canvas and rendering
def _canvas(patient_env: ph.HandPatient, spacing: float, pad=CANVAS_PAD_MM, forearm_mm: float = FOREARM_MM):
    """(r_max, s_max, rows, cols, a_lo, a_hi): a grid over the hand's envelope (fat layer, no
    lesions) widened by ``pad`` (top, thumb side, other side) and down to the forearm."""
    lo, hi = ph.hand_bounds(patient_env)
    pose = patient_env.hand.pose
    thumb_r = pose.point((-30.0, 0.0, 0.0))[0] - pose.point((0.0, 0.0, 0.0))[0]   # R direction of the thumb
    pad_top, pad_thumb, pad_other = pad
    pad_plus_r, pad_minus_r = (pad_thumb, pad_other) if thumb_r > 0 else (pad_other, pad_thumb)
    r_max, r_min = hi[0] + pad_plus_r, lo[0] - pad_minus_r
    s_max = hi[2] + pad_top
    s_min = pose.point((0.0, -forearm_mm, 0.0))[2]
    cols = int(np.ceil((r_max - r_min) / spacing)) + 1
    rows = int(np.ceil((s_max - s_min) / spacing)) + 1
    return float(r_max), float(s_max), rows, cols, float(lo[1] - 12.0), float(hi[1] + 12.0)


def _render(patient: ph.HandPatient, r_max, s_max, rows, cols, a_lo, a_hi, spacing, dz=0.5, chunk_rows=96):
    """Line integral of mu along A on the canvas (as :func:`phantom.render_radiograph`, with
    the lesions' exact chords), no offset, gain or noise."""
    nz = int(np.ceil((a_hi - a_lo) / dz)) + 1
    image = np.zeros((rows, cols))
    direction = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    for r0 in range(0, rows, chunk_rows):
        nr = min(chunk_rows, rows - r0)
        g = Geometry.create((cols, nr, nz), (spacing, spacing, dz), (r_max, a_lo, s_max - r0 * spacing), direction)
        hu = ph.render_anatomy(patient, g, "CT", with_lesions=False)
        image[r0:r0 + nr] = (ph.MU_WATER_PER_MM * (1.0 + hu / 1000.0)).sum(axis=0) * dz
    image += ph.lesion_line_integrals(patient, r_max, s_max, a_lo, spacing, image.shape)
    return image


def _mu(hu):
    return ph.MU_WATER_PER_MM * (1.0 + np.asarray(hu) / 1000.0)


def _window(xr: ph.Radiograph, lo, hi, pad_mm: float = 0.6):
    rows, cols = xr.image.shape
    sp = xr.spacing
    c0 = max(int(np.floor((xr.r_max - hi[0] - pad_mm) / sp)), 0)
    c1 = min(int(np.ceil((xr.r_max - lo[0] + pad_mm) / sp)), cols - 1)
    q0 = max(int(np.floor((xr.s_max - hi[2] - pad_mm) / sp)), 0)
    q1 = min(int(np.ceil((xr.s_max - lo[2] + pad_mm) / sp)), rows - 1)
    if c1 < c0 or q1 < q0:
        return None
    return q0, q1, c0, c1


def _project_excess(patient: ph.HandPatient, xr: ph.Radiograph, solids, target, box, dz: float | None = None,
                    within=None, replace: bool = False):
    """Image units added by raising the attenuation to ``target(pts, cov)`` HU inside the union
    of ``solids`` wherever the rendered anatomy is less dense (never a double count), or, with
    ``replace``, by setting it to the target there (the bone's own end remodelled).
    ``within(pts)``: an extra boolean restriction."""
    lo, hi = box
    win = _window(xr, lo, hi)
    if win is None:
        return None
    dz = float(np.clip(xr.spacing, 0.1, 0.4)) if dz is None else dz
    q0, q1, c0, c1 = win
    a0, a1 = lo[1] - 0.6, hi[1] + 0.6
    nz = int(np.ceil((a1 - a0) / dz)) + 1
    direction = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    g = Geometry.create((c1 - c0 + 1, q1 - q0 + 1, nz), (xr.spacing, xr.spacing, dz),
                        (xr.r_max - c0 * xr.spacing, a0, xr.s_max - q0 * xr.spacing), direction)
    hu = ph.render_anatomy(patient, g, "CT", with_lesions=False)
    pts = ph._grid_points(g, np.zeros(3, int), np.asarray(g.size_ijk) - 1)
    sdf = np.min([s.sdf(pts) for s in solids], axis=0)
    cov = np.clip(0.5 - sdf / xr.spacing, 0.0, 1.0)
    if within is not None:
        cov = cov * within(pts)
    t = target(pts, cov)
    diff = _mu(t) - _mu(hu)
    excess = cov * (diff if replace else np.maximum(diff, 0.0))
    img = ph.XR_GAIN * excess.sum(axis=0) * dz
    return slice(q0, q1 + 1), slice(c0, c1 + 1), img


def _chord(solid, xr: ph.Radiograph, dz: float | None = None):
    """Length (mm) of each pixel's ray inside ``solid`` (partial-volume ramp), on its window."""
    dz = float(np.clip(xr.spacing, 0.1, 0.4)) if dz is None else dz
    lo, hi = solid.bbox()
    win = _window(xr, lo, hi)
    if win is None:
        return None
    q0, q1, c0, c1 = win
    a = np.arange(lo[1] - 0.6, hi[1] + 0.6 + dz, dz)
    R = xr.r_max - np.arange(c0, c1 + 1) * xr.spacing
    S = xr.s_max - np.arange(q0, q1 + 1) * xr.spacing
    out = np.zeros((q1 - q0 + 1, c1 - c0 + 1))
    for k0 in range(0, len(a), 16):
        ak = a[k0:k0 + 16]
        pts = np.stack(np.broadcast_arrays(R[None, :, None], ak[None, None, :], S[:, None, None]), axis=-1)
        cov = np.clip(0.5 - solid.sdf(pts.astype(np.float32)) / xr.spacing, 0.0, 1.0)
        out += cov.sum(axis=-1) * dz
    return slice(q0, q1 + 1), slice(c0, c1 + 1), out


# ---------------------------------------------------------------------- anatomy helpers
def _tubular_bones(hand: ph.HandModel):
    """(bone, digit, segment index, number of segments) for metacarpals and phalanges."""
    out = []
    for b in hand.bones:
        parts = b.name.split("_")
        if len(parts) == 3 and parts[1] in hand.rays and isinstance(b.outer, RoundedCylinder):
            d = parts[1]
            segs = (("metacarpal", "proximal", "distal") if d == "thumb"
                    else ("metacarpal", "proximal", "middle", "distal"))
            out.append((b, d, segs.index(parts[2]), len(segs)))
    return out


def _lesion_clear(solid, patient: ph.HandPatient, clearance: float = CLEARANCE_MM) -> bool:
    """No lesion within ``clearance`` of ``solid`` (or, for a lesion nearer than that to the
    model's bone, none nearer to the solid than to that bone)."""
    lo, hi = solid.bbox()
    for les in patient.lesions:
        e = les.half_extent()
        if np.any(les.center + e < lo - clearance - 0.5) or np.any(les.center - e > hi + clearance + 0.5):
            continue
        need = min(clearance, les.gap_to_bone_mm)
        if float(np.min(solid.sdf(les.surface_points(800)))) < need - 1e-9:
            return False
        lo, hi = solid.bbox()
        if np.all(les.center > lo - 1) and np.all(les.center < hi + 1) and solid.sdf(les.center[None])[0] < 0:
            return False
    return True


@dataclass(frozen=True)
class _Union:
    parts: tuple

    def sdf(self, pts):
        return np.min([p.sdf(pts) for p in self.parts], axis=0)

    def bbox(self):
        boxes = [p.bbox() for p in self.parts]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


@dataclass(frozen=True)
class _Slab:
    """Points of a bone within ``thickness`` of its end face (``end`` 0: at p0, 1: at p1)."""

    bone: RoundedCylinder
    end: int
    thickness: float

    def sdf(self, pts):
        a, b = np.asarray(self.bone.p0, float), np.asarray(self.bone.p1, float)
        u = (b - a) / np.linalg.norm(b - a)
        face, sgn = (a, 1.0) if self.end == 0 else (b, -1.0)
        depth = (pts - face.astype(pts.dtype)) @ (sgn * u).astype(pts.dtype)    # >= 0 inside the bone
        slab = np.maximum(-depth, depth - self.thickness)
        return np.maximum(self.bone.sdf(pts), slab)

    def bbox(self):
        a, b = np.asarray(self.bone.p0, float), np.asarray(self.bone.p1, float)
        u = (b - a) / np.linalg.norm(b - a)
        face = a if self.end == 0 else b
        inner = face + (self.thickness if self.end == 0 else -self.thickness) * u
        r = self.bone.radius
        return np.minimum(face, inner) - r, np.maximum(face, inner) + r


# ---------------------------------------------------------------------- texture
def _texture_field(shape, spacing: float, rng) -> np.ndarray:
    """A trabecular net: bright lines along the zero crossings of a band-limited random field,
    scaled so that its band-pass (:data:`BANDPASS_SIGMAS_MM`) SD is 1."""
    s1, s2 = (s / spacing for s in TEXTURE_SIGMAS_MM)
    w = rng.standard_normal(shape)
    f = ndimage.gaussian_filter(w, s1) - ndimage.gaussian_filter(w, s2)
    f /= f.std()
    net = np.exp(-f ** 2 / (2 * TEXTURE_NET_WIDTH ** 2))
    net -= net.mean()
    b1, b2 = (s / spacing for s in BANDPASS_SIGMAS_MM)
    bp = ndimage.gaussian_filter(net, b1) - ndimage.gaussian_filter(net, b2)
    return net / bp.std()


def bone_step(bone: ph.Bone, segment: int | None = None, digit: str = "", pixel_mm: float = MEASURE_GRID_MM) -> float:
    """The shaft's cortex-to-soft-tissue step (image units) as :func:`texture_statistics`
    measures it: the maximum of the section's profile (the bone's excess over soft tissue - a
    cortical shell around marrow - on the digit's soft tissue: a tissue cylinder in a fat
    layer, as :func:`phantom.build_hand` makes them), smoothed as the measurement smooths it
    (0.3 mm Gaussian and the pixel), minus the mean of the profile 1.5-2.5 mm beside the bone.
    Without ``segment`` the soft tissue is left out and nothing is smoothed (the bone's excess)."""
    r = bone.outer.radius
    ri = r - bone.cortex_mm
    h = 0.01
    x = np.arange(-(r + SOFT_BAND_MM[1] + 3.0), r + SOFT_BAND_MM[1] + 3.0 + h / 2, h)

    def chord(rad):
        return 2 * np.sqrt(np.maximum(rad * rad - x * x, 0.0))

    mu_t, mu_c, mu_m = _mu(ph.CT_HU["tissue"]), _mu(bone.cortical_hu), _mu(ph.CT_HU["marrow"])
    prof = (mu_c - mu_t) * (chord(r) - chord(ri)) + (mu_m - mu_t) * chord(ri)
    inside = np.abs(x) <= r
    if segment is None:
        return float(ph.XR_GAIN * prof[inside].max())
    if segment == 0:
        rt, rf = (10.5, 13.0) if digit == "thumb" else (9.5, 12.0)
    else:
        rt, rf = r + 2.4, r + 5.2
    mu_f = _mu(ph.CT_HU["fat"])
    prof = prof + mu_t * chord(rt) + mu_f * (chord(rf) - chord(rt))
    sigma = np.sqrt(EDGE_SMOOTH_MM ** 2 + pixel_mm ** 2 / 12.0) / h
    prof = ndimage.gaussian_filter1d(prof, sigma, mode="nearest")
    beside = (np.abs(x) >= r + SOFT_BAND_MM[0]) & (np.abs(x) <= r + SOFT_BAND_MM[1])
    return float(ph.XR_GAIN * (prof[inside].max() - prof[beside].mean()))


def _texture_layer(patient, xr, rng, shaft_ratio, end_ratio, ref_step, items, next_id):
    """Texture of every bone: amplitude = ratio x the bone's step (shaft ratio mid-shaft,
    end ratio within one diameter of an end), weighted by the marrow chord."""
    field_ = _texture_field(xr.image.shape, xr.spacing, rng)
    layer = np.zeros(xr.image.shape)
    tubular = {id(b): (d, k, n) for b, d, k, n in _tubular_bones(patient.hand)}
    for b in patient.hand.bones:
        inner = b.inner
        res = _chord(inner, xr)
        if res is None:
            continue
        rs, cs, ch = res
        if isinstance(inner, RoundedCylinder):
            w = ch / (2.0 * inner.radius)
            a = np.asarray(b.outer.p0, float)
            bb = np.asarray(b.outer.p1, float)
            length = float(np.linalg.norm(bb - a))
            q = np.stack(np.meshgrid(xr.s_max - np.arange(rs.start, rs.stop) * xr.spacing,
                                     xr.r_max - np.arange(cs.start, cs.stop) * xr.spacing, indexing="ij"), -1)
            p0, p1 = np.array([a[2], a[0]]), np.array([bb[2], bb[0]])
            t = np.clip(((q - p0) @ (p1 - p0)) / float((p1 - p0) @ (p1 - p0)), 0.0, 1.0)
            if id(b) in tubular:
                d_end = np.minimum(t, 1.0 - t) * length
            else:   # radius, ulna: only the distal end (at p1) is on the image
                d_end = (1.0 - t) * length
            zone = 2.0 * b.outer.radius * END_ZONE_DIAMETERS
            frac = np.clip((zone + END_RAMP_MM - d_end) / END_RAMP_MM, 0.0, 1.0)
            step = bone_step(b, tubular[id(b)][1], tubular[id(b)][0]) if id(b) in tubular else ref_step
            lo_, hi_ = shaft_ratio * TEXTURE_AMPLITUDE_FACTOR[0], end_ratio * TEXTURE_AMPLITUDE_FACTOR[1]
            amp = step * (lo_ + (hi_ - lo_) * frac)
        else:  # carpal bones: cancellous throughout
            w = ch / (2.0 * min(inner.semi))
            amp = ref_step * end_ratio * TEXTURE_AMPLITUDE_FACTOR[1]
        contrib = amp * np.clip(w, 0.0, 1.0) * field_[rs, cs]
        layer[rs, cs] += contrib
        items.append(Distractor(next_id(), "trabecular", f"{b.name} texture", tubular.get(id(b), ("",))[0],
                                rs, cs, contrib, f"shaft {shaft_ratio:.4f}, ends {end_ratio:.4f} x step"))
    return layer


# ---------------------------------------------------------------------- bone ends, tufts, sesamoids, swelling
#: flared ends: extra lateral and palmar half-width at the face (in bone radii) and the flare's
#: length (in radii); the width grows as (1 - depth / length)^2 toward the face
HEAD_FLARE = (0.36, 0.12, 2.2)
BASE_FLARE = (0.50, 0.18, 2.4)
FLARE_HU = (1300.0, 280.0)       # shell, core (the marrow's value): the end's cortex thins to the face
FLARE_SHELL_MM = 0.45            # shell at the face (the shaft's cortex where the flare starts)


@dataclass(frozen=True)
class _FlaredEnd:
    """The end of a bone widened toward its face: within ``length`` of the face, radial
    extent ``r (1 + d g)`` laterally and ``r (1 + p g)`` palmarly, ``g = (1 - depth/length)^2``."""

    face: tuple
    u_in: tuple          # unit, from the face into the bone
    e_lat: tuple
    e_palm: tuple
    radius: float
    d_lat: float
    d_palm: float
    length: float

    def _coords(self, pts):
        dt = pts.dtype if pts.dtype in (np.float32, np.float64) else np.float64
        rel = pts - np.asarray(self.face, dt)
        depth = rel @ np.asarray(self.u_in, dt)
        x = rel @ np.asarray(self.e_lat, dt)
        y = rel @ np.asarray(self.e_palm, dt)
        g = np.clip(1.0 - depth / self.length, 0.0, 1.0) ** 2
        return depth, x, y, g

    def radial_sdf(self, pts):
        """Distance to the flared side surface only (negative inside)."""
        depth, x, y, g = self._coords(pts)
        sl, sp = 1.0 + self.d_lat * g, 1.0 + self.d_palm * g
        q = np.sqrt((x / sl) ** 2 + (y / sp) ** 2)
        return (q - self.radius) * np.minimum(sl, sp)

    def sdf(self, pts):
        depth = self._coords(pts)[0]
        return np.maximum(self.radial_sdf(pts), np.maximum(-depth, depth - self.length))

    def shell_mm(self, pts, cortex_mm: float):
        depth = self._coords(pts)[0]
        return FLARE_SHELL_MM + (cortex_mm - FLARE_SHELL_MM) * np.clip(depth / self.length, 0.0, 1.0)

    def bbox(self):
        f, u = np.asarray(self.face, float), np.asarray(self.u_in, float)
        ext = self.radius * (1.0 + max(self.d_lat, self.d_palm))
        ends = np.stack([f, f + self.length * u])
        return ends.min(axis=0) - ext, ends.max(axis=0) + ext


def _flare(b: ph.Bone, ray: ph.Ray, end: int, scale: float) -> _FlaredEnd:
    a, bb = np.asarray(b.outer.p0, float), np.asarray(b.outer.p1, float)
    u = (bb - a) / np.linalg.norm(bb - a)
    r = b.outer.radius
    dl, dp, length = HEAD_FLARE if end == 1 else BASE_FLARE
    face, u_in = (bb, -u) if end == 1 else (a, u)
    e_palm = ray.e_palm - (ray.e_palm @ u) * u
    e_palm /= np.linalg.norm(e_palm)
    e_lat = np.cross(u, e_palm)
    return _FlaredEnd(tuple(face), tuple(u_in), tuple(e_lat), tuple(e_palm), r, dl * scale, dp * scale,
                      min(length * r, 0.45 * float(np.linalg.norm(bb - a))))


def _plates(patient, clear_patient, xr, rng, items, next_id, notes, flares: bool = True):
    """Each articular end: a flared end (head or base, where it keeps clear of the lesions)
    and a dense subchondral plate at its face."""
    layer = np.zeros(xr.image.shape)
    for b, d, k, n in _tubular_bones(patient.hand):
        ends = (0, 1) if k < n - 1 else (0,)        # the distal phalanx's tip has a tuft, no joint
        for end in ends:
            t = float(rng.uniform(*PLATE_MM))
            slab = _Slab(b.outer, end, t)
            flare, used = None, 0.0
            if flares:
                for scale in (1.0, 0.6, 0.3):
                    cand = _flare(b, patient.hand.rays[d], end, scale)
                    if _lesion_clear(cand, clear_patient):
                        flare, used = cand, scale
                        break
            solids = [slab] if flare is None else [slab, flare]

            def target(pts, cov, slab=slab, flare=flare, cortex=b.cortex_mm):
                if flare is None:
                    return np.full(cov.shape, PLATE_HU, np.float32)
                inner = flare.radial_sdf(pts) + flare.shell_mm(pts, cortex)
                ci = np.clip(0.5 - inner / 0.2, 0.0, 1.0)
                fl = FLARE_HU[0] * (1 - ci) + FLARE_HU[1] * ci
                return np.where(slab.sdf(pts) <= 0, PLATE_HU, fl).astype(np.float32)

            lo, hi = slab.bbox()
            if flare is not None:
                flo, fhi = flare.bbox()
                lo, hi = np.minimum(lo, flo), np.maximum(hi, fhi)
            res = _project_excess(patient, xr, solids, target, (lo, hi), replace=True)
            if res is None:
                continue
            rs, cs, img = res
            layer[rs, cs] += img
            which = ("base" if end == 0 else "head")
            fl_note = "no flare (a lesion is near)" if flare is None else f"flare x{used:g}"
            items.append(Distractor(next_id(), "bone_end", f"{b.name} {which}", d, rs, cs, img,
                                    f"subchondral plate {t:.2f} mm, {PLATE_HU:.0f} HU; {fl_note}", solid=flare))
    return layer


def _tuft_solid(patient, d, rng) -> _Union:
    ray = patient.hand.rays[d]
    r = ray.radii[-1]
    tip = ray.points["tip"]
    frame = tuple(map(tuple, np.stack([ray.e_lat, ray.e_palm, ray.u], axis=1)))
    parts = [EllipsoidSolid(tuple(tip - 2.2 * ray.u), (r + 1.2, 0.65 * r, 2.4), frame)]
    for _ in range(5):
        side = rng.choice([-1.0, 1.0])
        ang = rng.uniform(0.15, 1.2)                 # from the lateral rim toward the distal end
        pos = tip - 2.2 * ray.u + side * (r + 1.0) * np.cos(ang) * ray.e_lat + 2.3 * np.sin(ang) * ray.u
        s = rng.uniform(0.45, 0.8)
        parts.append(EllipsoidSolid(tuple(pos), (s, 0.6 * s, s * 1.2), frame))
    return _Union(tuple(parts))


def _shell_target(solid_parts_inner, hu):
    shell, core = hu

    def target(pts, cov):
        inner = np.min([s.sdf(pts) for s in solid_parts_inner], axis=0)
        ci = np.clip(0.5 - inner / 0.2, 0.0, 1.0)
        return (shell * (1 - ci) + core * ci).astype(np.float32)
    return target


def _tufts(patient, clear_patient, xr, rng, items, next_id, notes):
    layer = np.zeros(xr.image.shape)
    for d in ph.DIGITS:
        solid = _tuft_solid(patient, d, rng)
        scale_note = ""
        if not _lesion_clear(solid, clear_patient):
            solid = _Union(solid.parts[:1])        # without its irregular rim
            scale_note = " (rim left out: a lesion is near)"
            if not _lesion_clear(solid, clear_patient):
                notes.append(f"tuft of the {d} left out: a lesion lies within {CLEARANCE_MM} mm")
                continue
        inner = [p.shrunk(0.45) for p in solid.parts]
        res = _project_excess(patient, xr, list(solid.parts), _shell_target(inner, TUFT_HU), solid.bbox())
        if res is None:
            continue
        rs, cs, img = res
        layer[rs, cs] += img
        items.append(Distractor(next_id(), "tuft", f"{patient.hand.side}_{d} tuft", d, rs, cs, img,
                                f"{len(solid.parts)} parts{scale_note}", solid=solid))
    return layer


#: (digit, lateral offset in radii (toward the little finger +), semi-axes mm (along, lateral, palmar))
SESAMOIDS = (("thumb", -0.95, (2.9, 2.3, 2.1)), ("thumb", 0.95, (2.6, 2.0, 1.9)),
             ("index", -0.8, (1.7, 1.4, 1.3)), ("little", 0.8, (1.6, 1.3, 1.2)))


def _sesamoids(patient, clear_patient, xr, items, next_id, notes):
    layer = np.zeros(xr.image.shape)
    hand = patient.hand
    for d, lat, semi in SESAMOIDS:
        ray = hand.rays[d]
        r = ray.radii[0]
        frame = tuple(map(tuple, np.stack([ray.u, ray.e_lat, ray.e_palm], axis=1)))
        chosen = None
        for f in (1.0, 0.8, 0.6, 0.45):                   # toward the axis if a lesion is in the way
            for along in (-2.6, -1.8, -3.4, -1.0):
                x = lat * f * r
                c = ray.points["MCP"] + along * ray.u + x * ray.e_lat
                # palmar to the head: clear of the bone by 0.4 mm
                c = c + (np.sqrt(max(r * r - x * x, 0.0)) + semi[2] + 0.4) * ray.e_palm
                s = EllipsoidSolid(tuple(c), semi, frame)
                if hand.bone_sdf(_ellipsoid_surface(s)).min() > 0.05 and _lesion_clear(s, clear_patient):
                    chosen = s
                    break
            if chosen is not None:
                break
        if chosen is None:
            notes.append(f"sesamoid at the {d} MCP left out: no place clear of the lesions")
            continue
        inner = [chosen.shrunk(SESAMOID_SHELL_MM)]
        res = _project_excess(patient, xr, [chosen], _shell_target(inner, SESAMOID_HU), chosen.bbox())
        rs, cs, img = res
        layer[rs, cs] += img
        side = "radial" if (lat < 0) else "ulnar"
        items.append(Distractor(next_id(), "sesamoid", f"{hand.side}_{d} MCP {side} sesamoid", d, rs, cs, img,
                                f"semi-axes {semi[0]}, {semi[1]}, {semi[2]} mm", solid=chosen))
    return layer


def _ellipsoid_surface(s: EllipsoidSolid, n: int = 600) -> np.ndarray:
    k = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * k / n)
    theta = np.pi * (1 + 5 ** 0.5) * k
    sph = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)
    return np.asarray(s.center) + (sph * np.asarray(s.semi)) @ s.R.T


#: joints a swelling is put beside, in order of preference (the first one clear of lesions)
SWELLING_SITES = (("middle", "PIP", 1.0), ("ring", "PIP", -1.0), ("index", "PIP", -1.0), ("little", "PIP", 1.0),
                  ("middle", "MCP", 1.0), ("ring", "DIP", 1.0))


def _swelling(patient, clear_patient, xr, items, next_id, notes):
    layer = np.zeros(xr.image.shape)
    hand = patient.hand
    for d, j, sgn in SWELLING_SITES:
        ray = hand.rays[d]
        r = ray.radii[1]
        c = ray.points[j] + sgn * (r + 3.2) * ray.e_lat - 0.8 * ray.e_palm
        frame = tuple(map(tuple, np.stack([ray.u, ray.e_lat, ray.e_palm], axis=1)))
        s = EllipsoidSolid(tuple(c), SWELLING_SEMI_MM, frame)
        if not _lesion_clear(s, clear_patient, 3.0):
            continue
        res = _project_excess(patient, xr, [s], lambda p, cv: np.full(cv.shape, ph.CT_HU["tissue"], np.float32),
                              s.bbox())
        rs, cs, img = res
        layer[rs, cs] += img
        items.append(Distractor(next_id(), "swelling", f"{hand.side}_{d} {j} soft-tissue swelling", d, rs, cs, img,
                                "soft tissue (40 HU) over fat and air, no calcification"))
        return layer
    notes.append("swelling left out: every candidate joint has a lesion within 3 mm")
    return layer


# ---------------------------------------------------------------------- marker, text, collimation
def _glyph_strokes(letter: str):
    """Strokes of a sans-serif capital in a unit box (x right, y down)."""
    if letter == "L":
        return [[(0.2, 0.0), (0.2, 1.0), (0.85, 1.0)]]
    if letter == "R":
        return [[(0.2, 1.0), (0.2, 0.0), (0.58, 0.0), (0.75, 0.06), (0.83, 0.16), (0.85, 0.26), (0.83, 0.36),
                 (0.75, 0.45), (0.58, 0.5), (0.2, 0.5)], [(0.5, 0.5), (0.88, 1.0)]]
    raise ValueError(f"no glyph for {letter!r}")


def _coverage_from_drawing(draw_fn, h_px: int, w_px: int, oversample: int = 8) -> np.ndarray:
    from PIL import Image, ImageDraw
    im = Image.new("L", (w_px * oversample, h_px * oversample), 0)
    draw_fn(ImageDraw.Draw(im), oversample)
    a = np.asarray(im, dtype=np.float64) / 255.0
    return a.reshape(h_px, oversample, w_px, oversample).mean(axis=(1, 3))


def marker_coverage(letter: str, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """(holder, letter) coverage maps (0..1) of the lead side marker on a ``spacing`` grid."""
    h_mm, box_mm = MARKER_MM
    n = int(np.ceil(box_mm / spacing))
    lw = 0.16 * h_mm / spacing

    def holder(draw, o):
        draw.rounded_rectangle([0, 0, n * o - 1, n * o - 1], radius=int(1.2 / spacing * o), fill=255)

    def glyph(draw, o):
        hpx = h_mm / spacing
        x0 = (n - 0.72 * hpx) / 2
        y0 = (n - hpx) / 2
        for stroke in _glyph_strokes(letter):
            pts = [((x0 + x * 0.72 * hpx) * o, (y0 + y * hpx) * o) for x, y in stroke]
            draw.line(pts, fill=255, width=max(int(lw * o), 1), joint="curve")
    return _coverage_from_drawing(holder, n, n), _coverage_from_drawing(glyph, n, n)


def text_coverage(text: str, spacing: float) -> np.ndarray:
    """Burned-in annotation text, :data:`TEXT_HEIGHT_MM` tall, as coverage (0..1)."""
    from PIL import Image, ImageDraw, ImageFont
    size = 48
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:            # Pillow < 10.1: the small bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = font.getbbox(text)
    im = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(im).text((2 - left, 2 - top), text, fill=255, font=font)
    h = max(int(round(TEXT_HEIGHT_MM / spacing * (bottom - top + 4) / max(bottom - top, 1))), 3)
    w = max(int(round(im.width * h / im.height)), 3)
    return np.asarray(im.resize((w, h), Image.LANCZOS), dtype=np.float64).clip(0, 255) / 255.0


def _free_spot(free: np.ndarray, h: int, w: int, target_rc) -> tuple[int, int] | None:
    """Top-left corner of an h x w box of ``free`` pixels whose centre is nearest to ``target_rc``."""
    busy = np.pad(np.cumsum(np.cumsum(~free, axis=0), axis=1), ((1, 0), (1, 0)))
    if free.shape[0] < h or free.shape[1] < w:
        return None
    count = busy[h:, w:] - busy[:-h, w:] - busy[h:, :-w] + busy[:-h, :-w]
    idx = np.argwhere(count == 0)
    if len(idx) == 0:
        return None
    centre = idx + np.array([h / 2, w / 2])
    k = int(np.argmin(np.linalg.norm(centre - np.asarray(target_rc, float), axis=1)))
    return int(idx[k][0]), int(idx[k][1])


# ---------------------------------------------------------------------- the phantom
def hard_xr_phantom(side: str = "R", seed: int = 0, spacing: float = 0.2, lesions: bool = True,
                    noise_sd: float | None = None, texture: bool = True, bone_ends: bool = True, tufts: bool = True,
                    sesamoids: bool = True, marker: bool = True, text: bool | str = True,
                    collimation: bool = True, collimation_mm=COLLIMATION_MM, swelling: bool = False,
                    calibration: dict | None = None) -> HardXrPhantom:
    """The hard radiograph of the synthetic patient (``side``, ``seed``): see the module
    docstring.  ``lesions=False``: the same hand, canvas and noise without calcinosis (every
    reported lesion is false).  ``noise_sd`` (image units) defaults to the real radiograph's
    noise relative to the bone step (:data:`REAL_CALIBRATION`); ``text``: True for the default
    line or the text itself; ``collimation_mm``: top, bottom, left, right borders blanked."""
    if side not in ("R", "L"):
        raise ValueError(f"side must be R or L, got {side!r}")
    if not (0.05 <= spacing <= 1.0):
        raise ValueError(f"spacing must be 0.05-1 mm, got {spacing}")
    cal = dict(REAL_CALIBRATION if calibration is None else calibration)
    full = ph.make_patient(side, seed)
    patient = full if lesions else ph.HandPatient(full.hand, [], seed, ["normal hand: no lesions"])
    envelope = ph.HandPatient(full.hand, [], seed)
    r_max, s_max, rows, cols, _, _ = _canvas(envelope, spacing)
    lo_full, hi_full = ph.hand_bounds(full)          # the A range every ray crosses (lesions included)
    a_lo, a_hi = float(lo_full[1]), float(hi_full[1])
    # the exposed field
    c_top, c_bottom, c_left, c_right = (tuple(collimation_mm) if collimation else (0.0, 0.0, 0.0, 0.0))
    f_r0, f_r1 = int(round(c_top / spacing)), rows - int(round(c_bottom / spacing))
    f_c0, f_c1 = int(round(c_left / spacing)), cols - int(round(c_right / spacing))
    if f_r1 - f_r0 < rows // 2 or f_c1 - f_c0 < cols // 2:
        raise ValueError(f"collimation margins {c_top:g}, {c_bottom:g}, {c_left:g}, {c_right:g} mm leave less than "
                         f"half of the {rows * spacing:.0f} x {cols * spacing:.0f} mm image exposed")
    line = _render(patient, r_max, s_max, rows, cols, a_lo, a_hi, spacing)
    base = ph.XR_OFFSET + ph.XR_GAIN * line
    geom = Geometry.create((cols, rows, 1), (spacing, spacing, 1.0), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    xr = ph.Radiograph(base.copy(), geom, spacing, r_max, s_max)
    items: list[Distractor] = []
    notes: list[str] = list(patient.notes)
    counter = iter(range(1, 10 ** 6))

    def next_id():
        return next(counter)

    layers: dict[str, np.ndarray] = {}
    tubular = _tubular_bones(full.hand)
    # the step the measurement finds on the phalanges it measures (all but the distal ones)
    ref_step = float(np.median([bone_step(b, k, d) for b, d, k, n in tubular if 0 < k < n - 1]))
    if texture:
        layers["trabecular"] = _texture_layer(patient, xr, np.random.default_rng([seed, 7102]),
                                              cal["texture_shaft_ratio"], cal["texture_end_ratio"], ref_step,
                                              items, next_id)
    if bone_ends:
        layers["bone_end"] = _plates(patient, full, xr, np.random.default_rng([seed, 7103]), items, next_id, notes)
    if tufts:
        layers["tuft"] = _tufts(patient, full, xr, np.random.default_rng([seed, 7104]), items, next_id, notes)
    if sesamoids:
        layers["sesamoid"] = _sesamoids(patient, full, xr, items, next_id, notes)
    if swelling:
        layers["swelling"] = _swelling(patient, full, xr, items, next_id, notes)
    image = base + sum(layers.values()) if layers else base.copy()
    # what lies in the air of the exposed field (the same for the normal hand: its lesions' places are kept)
    body = line > 1e-3
    for les in full.lesions:
        e = les.half_extent() + 1.6 + 1.0
        c = xr.to_image_ras(les.center)[0]
        q0, q1 = int((-c[1] - e[2]) / spacing), int((-c[1] + e[2]) / spacing) + 1
        k0, k1 = int((-c[0] - e[0]) / spacing), int((-c[0] + e[0]) / spacing) + 1
        body[max(q0, 0):q1 + 1, max(k0, 0):k1 + 1] = True
    # where nothing is: air of the exposed field, 3 mm from the body and lesions' swellings
    free = ~ndimage.binary_dilation(body, iterations=max(int(3.0 / spacing), 1))
    free[:f_r0 + int(2 / spacing)] = False
    free[f_r1 - int(2 / spacing):] = False
    free[:, :f_c0 + int(2 / spacing)] = False
    free[:, f_c1 - int(2 / spacing):] = False
    # columns increase toward -R: the thumb's column side
    thumb_col_high = (r_max - full.hand.rays["thumb"].points["tip"][0]) > cols * spacing / 2
    # noise (the anatomy's and the plastic holder's), then what saturates or is burned in
    if noise_sd is None:
        noise_sd = cal["detector_noise_ratio"] / DETECTOR_NOISE_GAIN * ref_step
    overlays = []          # (item, rows, cols, coverage, level) applied after the noise
    if marker:
        holder, glyph = marker_coverage(side, spacing)
        n = holder.shape[0]
        # as a technologist puts it: above the fingertips on the little finger's side
        target = (f_r0, f_c0 if thumb_col_high else f_c1)
        spot = _free_spot(free, n, n, target)
        if spot is None:
            notes.append("marker left out: no free air in the exposed field")
        else:
            r0, c0 = spot
            rs, cs = slice(r0, r0 + n), slice(c0, c0 + n)
            plastic = ph.XR_GAIN * _mu(ph.CT_HU["tissue"]) * MARKER_HOLDER_TISSUE_MM * holder
            image[rs, cs] += plastic
            free[max(r0 - int(2 / spacing), 0):r0 + n + int(2 / spacing),
                 max(c0 - int(2 / spacing), 0):c0 + n + int(2 / spacing)] = False
            item = Distractor(next_id(), "marker", f"lead side marker {side}", "", rs, cs, plastic.copy(),
                              f"letter {MARKER_MM[0]} mm in a {MARKER_MM[1]} mm holder; letter at the white level")
            items.append(item)
            overlays.append((item, glyph, WHITE_LEVEL))
    if text:
        words = text if isinstance(text, str) else f"{side}  PA  PHANTOM {seed}"
        cov = text_coverage(words, spacing)
        h, w = cov.shape
        target = (f_r1, f_c0 if not thumb_col_high else f_c1)
        spot = _free_spot(free, h, w, target) or _free_spot(free, h, w, (f_r0, cols / 2))
        if spot is None:
            notes.append("text left out: no free air in the exposed field wide enough")
        else:
            r0, c0 = spot
            item = Distractor(next_id(), "text", "burned-in annotation", "", slice(r0, r0 + h), slice(c0, c0 + w),
                              np.zeros((h, w)), words)
            items.append(item)
            overlays.append((item, cov, TEXT_LEVEL * WHITE_LEVEL))
    clean = image.copy()
    image = image + np.random.default_rng([seed, 7105]).normal(0.0, noise_sd, size=image.shape)
    for item, cov, level in overlays:
        sub = image[item.rows, item.cols]
        new = sub * (1 - cov) + level * cov
        item.contribution = item.contribution + (new - sub)
        image[item.rows, item.cols] = new
    image = np.clip(image, 0.0, WHITE_LEVEL)
    if collimation:
        outside = np.ones((rows, cols), bool)
        outside[f_r0:f_r1, f_c0:f_c1] = False
        image[outside] = 0.0
        items.append(Distractor(next_id(), "collimation", "collimated border (constant 0)", "", slice(0, rows),
                                slice(0, cols), outside.astype(np.float64),
                                f"exposed rows {f_r0}-{f_r1 - 1}, columns {f_c0}-{f_c1 - 1}; borders (top, bottom, "
                                f"left, right) {c_top:g}, {c_bottom:g}, {c_left:g}, {c_right:g} mm"))
        _check_collimation_spares(patient, xr, outside)
    arr = np.round(image).astype(np.uint16)[None]
    xr = ph.Radiograph(image, geom, spacing, r_max, s_max)
    truth = ph.truth_table(patient, xr.to_image_ras, xr)
    _update_bone_truth(truth, patient, xr, items)
    lms = [(lab, xr.to_image_ras(pos)[0]) for lab, pos in full.hand.landmarks()]
    outlines = np.zeros((rows, cols), np.uint16)
    for les in patient.lesions:
        sl, m = ph.lesion_shadow(les, xr)
        outlines[sl][m] = les.lesion_id
    table = distractor_table(items, xr)
    settings = {"side": side, "seed": seed, "spacing_mm": spacing, "lesions": lesions, "noise_sd": float(noise_sd),
                "texture": texture, "bone_ends": bone_ends, "tufts": tufts, "sesamoids": sesamoids, "marker": marker,
                "text": bool(text), "collimation": collimation, "collimation_mm": list(map(float, collimation_mm)),
                "swelling": swelling, "calibration": cal, "reference_bone_step": ref_step,
                "white_level": WHITE_LEVEL, "notes": notes}
    patient.notes = notes
    return HardXrPhantom("XR", arr, geom, truth, lms, patient, outlines=outlines[None], radiograph=xr,
                         distractors=table, items=items, layers=layers, exposed=(f_r0, f_r1, f_c0, f_c1),
                         noise_sd=float(noise_sd), settings=settings, base=base, clean=clean)


def _check_collimation_spares(patient, xr, outside) -> None:
    for les in patient.lesions:
        sl, m = ph.lesion_shadow(les, xr)
        if outside[sl][m].any():
            raise ValueError(f"collimation covers lesion {les.lesion_id}: use smaller margins")


def _update_bone_truth(truth: Table, patient, xr, items) -> None:
    """``xr_overlaps_bone`` and ``gap_to_bone_mm`` with the added bone (tufts, sesamoids)."""
    added = [d for d in items if d.solid is not None]
    if not added:
        return
    mask = np.zeros(xr.image.shape, bool)
    for d in added:
        mask[d.rows, d.cols] |= d.footprint()
    by_id = {les.lesion_id: les for les in patient.lesions}
    for row in truth.rows:
        les = by_id[row["lesion_id"]]
        sl, m = ph.lesion_shadow(les, xr)
        if mask[sl][m].any():
            row["xr_overlaps_bone"] = 1
        surf = les.surface_points(1500)
        gap = min(float(np.min(d.solid.sdf(surf))) for d in added)
        if gap < row["gap_to_bone_mm"]:
            row["gap_to_bone_mm"] = max(gap, 0.0)


def distractor_table(items: list[Distractor], xr: ph.Radiograph) -> Table:
    t = Table(DISTRACTOR_COLUMNS, name="distractors",
              description="What the hard radiograph phantom adds that is not calcinosis (image RAS, mm)")
    sp = xr.spacing
    for d in items:
        fp = d.footprint()
        if not fp.any():
            continue
        rr, cc = np.nonzero(fp)
        r0, r1 = rr.min() + d.rows.start, rr.max() + d.rows.start
        c0, c1 = cc.min() + d.cols.start, cc.max() + d.cols.start
        # image RAS of pixel (row, col): R = -col * sp, A = -row * sp (origin 0, direction diag(-1, -1, 1))
        t.append({"distractor_id": d.distractor_id, "kind": d.kind, "name": d.name, "digit": d.digit,
                  "center_r_mm": -(c0 + c1) / 2 * sp, "center_a_mm": -(r0 + r1) / 2 * sp, "center_s_mm": 0.0,
                  "extent_r_mm": (c1 - c0 + 1) * sp, "extent_a_mm": (r1 - r0 + 1) * sp,
                  "area_mm2": float(fp.sum()) * sp * sp, "peak_contrast": float(np.max(np.abs(d.contribution))),
                  "notes": d.notes})
    return t


def kind_at(table: Table, r_mm: float, a_mm: float, margin_mm: float = 1.0) -> str:
    """The most specific distractor kind whose box (widened by ``margin_mm``) holds the point
    (image RAS), or ``""``."""
    hits = [row["kind"] for row in table.rows
            if abs(r_mm - row["center_r_mm"]) <= row["extent_r_mm"] / 2 + margin_mm
            and abs(a_mm - row["center_a_mm"]) <= row["extent_a_mm"] / 2 + margin_mm
            and row["kind"] != "collimation"]
    for k in KIND_PRIORITY:
        if k in hits:
            return k
    return ""


# ---------------------------------------------------------------------- measurement (real and phantom)
def texture_statistics(image: np.ndarray, spacing: float, points_rc: dict) -> dict:
    """Trabecular texture, soft-tissue noise and cortex step of a PA hand radiograph (method:
    see :data:`MEASURE_GRID_MM`).  ``points_rc``: ``(digit, point) -> (row, col)`` in pixels
    of ``image`` (joint centres).  Returns ``{"bones": [...], "median": {...}}`` with, per
    bone, ``step``, ``noise``, ``texture_shaft``, ``texture_end`` and their ratios to the step."""
    img = np.asarray(image, np.float64)
    z = spacing / MEASURE_GRID_MM
    if z < 0.999:
        img = ndimage.zoom(ndimage.gaussian_filter(img, 0.425 / z), z, order=1)
        scale = z
    else:
        scale = 1.0
    sp = spacing / scale
    pts = {k: np.asarray(v, float) * scale for k, v in points_rc.items()}
    sm = ndimage.gaussian_filter(img, EDGE_SMOOTH_MM / sp)
    b1, b2 = (s / sp for s in BANDPASS_SIGMAS_MM)
    bp = ndimage.gaussian_filter(img, b1) - ndimage.gaussian_filter(img, b2)
    xs = np.arange(-SECTION_HALF_MM, SECTION_HALF_MM + 1e-9, sp)
    bones = []
    for d, a, b in MEASURED_BONES:
        if (d, a) not in pts or (d, b) not in pts:
            continue
        p0, p1 = pts[(d, a)], pts[(d, b)]
        length = float(np.linalg.norm(p1 - p0)) * sp
        u = (p1 - p0) / np.linalg.norm(p1 - p0)
        n = np.array([-u[1], u[0]])
        shaft, ends, soft, steps = [], [], [], []
        for s in np.arange(END_ZONE_MM[0], length - END_ZONE_MM[0] + 1e-9, SECTION_STEP_MM):
            c = p0 + u * s / sp
            line = c[:, None] + n[:, None] * xs[None] / sp
            prof = ndimage.map_coordinates(sm, line, order=1, mode="nearest")
            g = np.gradient(prof, sp)
            neg = xs < 0
            xl = xs[neg][np.argmax(g[neg])]
            xr_ = xs[~neg][np.argmin(g[~neg])]
            cen, w = (xl + xr_) / 2, (xr_ - xl) / 2
            if w < 1.5:
                continue
            x = xs - cen
            core = np.abs(x) <= CORE_FRACTION * w
            beside = (np.abs(x) >= w + SOFT_BAND_MM[0]) & (np.abs(x) <= w + SOFT_BAND_MM[1])
            vals = ndimage.map_coordinates(bp, line, order=1, mode="nearest")
            f = s / length
            if SHAFT_FRACTION[0] <= f <= SHAFT_FRACTION[1] and beside.any():
                shaft.append(vals[core])
                soft.append(vals[beside])
                steps.append(float(prof[np.abs(x) <= w].max() - prof[beside].mean()))
            if s <= END_ZONE_MM[1] or s >= length - END_ZONE_MM[1]:
                ends.append(vals[core])
        if not shaft or not ends:
            continue
        step = float(np.median(steps))
        noise = float(np.concatenate(soft).std())
        t_shaft = float(np.sqrt(max(np.concatenate(shaft).var() - noise ** 2, 0.0)))
        t_end = float(np.sqrt(max(np.concatenate(ends).var() - noise ** 2, 0.0)))
        bones.append({"digit": d, "bone": f"{a}-{b}", "length_mm": length, "step": step, "noise": noise,
                      "texture_shaft": t_shaft, "texture_end": t_end, "noise_ratio": noise / step,
                      "texture_shaft_ratio": t_shaft / step, "texture_end_ratio": t_end / step})
    keys = ("step", "noise_ratio", "texture_shaft_ratio", "texture_end_ratio")
    med = {k: float(np.median([b[k] for b in bones])) if bones else float("nan") for k in keys}
    return {"bones": bones, "median": med}


def landmarks_rc(points, spacing: float) -> dict:
    """``(digit, point) -> (row, col)`` from ``[(label, image RAS)]`` of a radiograph loaded
    with origin 0 and direction diag(-1, -1, 1)."""
    out = {}
    for label, p in points:
        _, d, pt = label.split("_", 2)
        out[(d, pt)] = np.array([-p[1] / spacing, -p[0] / spacing])
    return out


def read_landmarks_lps_csv(path: str | Path, spacing: float) -> dict:
    """``(digit, point) -> (row, col)`` from a ``label,l,p,s`` CSV of a radiograph loaded with
    origin 0 (L = column x spacing, P = row x spacing)."""
    out = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            _, d, pt = r["label"].split("_", 2)
            out[(d, pt)] = np.array([float(r["p"]) / spacing, float(r["l"]) / spacing])
    return out


__all__ = ["hard_xr_phantom", "HardXrPhantom", "Distractor", "DISTRACTOR_COLUMNS", "KINDS", "KIND_PRIORITY",
           "REAL_CALIBRATION", "texture_statistics", "landmarks_rc", "read_landmarks_lps_csv", "kind_at",
           "distractor_table", "bone_step", "marker_coverage", "text_coverage"]
