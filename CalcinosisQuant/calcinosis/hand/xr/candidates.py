"""Steps 1-5 of the radiograph detector chained over the seeds: every candidate looked at,
kept or dropped with its reason (docs/methods/hand-detection.md, radiographs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from calcinosis.core.progress import Progress, report

from .background import noise_sigma
from .confidence import candidate_confidence
from .bone import REASON_JOINT, REASON_SYMMETRIC, BoneModel, bone_verdict, carpal_contrast_level, symmetric_seed
from .edge import EDGE_SUPPORT, edge_step
from .outline import GROW_PX, dense_core, outline_against_background
from .patches import Patch, aspect_ratio, disk_patch
from .seeds import Seed, edge_radius, find_seeds, ring_contrast

#: analysis pixel (mm): finer images are averaged down to about this size
ANALYSIS_SPACING_MM = 0.2
#: soft tissue a deposit raises around it (mm): no second candidate is seeded that close
NODULE_MM = 2.0
#: a candidate's outline starts as a disk this much wider than where the azimuthal profile
#: around its seed falls most steeply (the edge of the deposit or of its nodule), plus a margin (px)
START_DISK_SCALE = 1.4
START_DISK_MARGIN_PX = 2.0
#: the outline threshold's floor: this multiple of the noise SD after smoothing
FLOOR_NOISE_K = 2.5
#: smallest outline (pixels) that is a candidate
MIN_PATCH_PX = 3
#: a bump more than this fraction inside earlier candidates is one of them seen again
MAX_TAKEN_FRACTION = 0.3
#: a seed is tried once: pixels this close to a tried seed are not tried again
TRIED_RADIUS_PX = 2
SKIPPED_NO_CONTRAST = "no contrast against the ring around the seed"
REASON_LOW_CONFIDENCE = "confidence below the operating point (--min-confidence)"


@dataclass
class XRCandidate:
    patch: Patch              # outline on the analysis grid
    peak: float               # peak excess over its background (image units)
    area_mm2: float
    aspect: float
    reason: str | None        # None: kept; else why it was dropped
    details: dict
    carpal: bool = False      # lies at the carpus (landmarks)
    confidence: float = float("nan")   # step 6: how sure the detector is that it is a deposit (0-1)


@dataclass(frozen=True)
class NoiseModel:
    """The image noise and what follows from it."""
    sigma: float              # pixel noise SD of the analysis image
    smoothed_sd: float        # noise SD after the detector's 1-pixel Gaussian
    contrast_threshold: float # a candidate's peak excess must reach this (image units)

    @property
    def outline_floor(self) -> float:
        return FLOOR_NOISE_K * self.smoothed_sd

    @classmethod
    def of(cls, image: np.ndarray, params, min_contrast: float | None,
           tissue: np.ndarray | None = None) -> "NoiseModel":
        sigma = noise_sigma(image, tissue)
        smoothed_sd = sigma / (2.0 * np.sqrt(np.pi))
        threshold = min_contrast if min_contrast is not None else params.xr_noise_k * max(sigma, 1e-6)
        return cls(sigma, smoothed_sd, threshold)


def allowed_mask(region: np.ndarray | None, exclude: np.ndarray | None) -> np.ndarray | None:
    """Where candidates may lie: inside ``region``, outside ``exclude`` (None: everywhere)."""
    allowed = None if region is None else region.copy()
    if exclude is not None:
        allowed = ~exclude if allowed is None else (allowed & ~exclude)
    return allowed


def outline_candidate(smoothed: np.ndarray, seed: Seed, ring_px: float, noise: NoiseModel, pixel_mm: float,
                      params, allowed: np.ndarray | None, taken: np.ndarray):
    """Steps 2-3 for one seed: (bump outline, final outline - the dense core when there is
    one -, details), or None when the seed gives no candidate."""
    max_px = params.xr_max_lesion_mm / pixel_mm
    fraction = params.xr_edge_fraction
    r, c = seed.row, seed.col
    radius = START_DISK_SCALE * edge_radius(smoothed, r, c, min(max_px / 2.0, 4.0 * ring_px)) + START_DISK_MARGIN_PX
    start = disk_patch(r, c, radius, smoothed.shape)
    if allowed is not None:
        start.local &= allowed[start.window]
    bump = outline_against_background(smoothed, start, (r, c), fraction, noise.outline_floor, allowed,
                                      grow_limit=GROW_PX)
    if bump is None or bump.peak < noise.contrast_threshold or bump.patch.count() < MIN_PATCH_PX:
        return None
    if max(bump.patch.local.shape) > max_px:
        return None
    if taken[bump.patch.window][bump.patch.local].mean() > MAX_TAKEN_FRACTION:
        return None
    core = dense_core(smoothed, bump, fraction, noise.outline_floor, allowed)
    details = {"bump_area_mm2": float(bump.patch.count() * pixel_mm ** 2),
               "seed_blob": seed.strength / noise.contrast_threshold,
               "seed_blob_noise_sd": seed.strength / max(noise.sigma, 1e-9)}
    final = bump
    if core is not None and core[0].patch.count() >= MIN_PATCH_PX and core[0].peak >= noise.contrast_threshold:
        final = core[0]
        details.update(core[1])
    return bump, final, details


def find_candidates(img: np.ndarray, pixel_mm: float, params, region: np.ndarray | None,
                    exclude: np.ndarray | None, bones: BoneModel | None, min_contrast: float | None,
                    progress: Progress | None = None, tissue: np.ndarray | None = None,
                    min_confidence: float = 0.0) -> tuple[list[XRCandidate], dict]:
    """Steps 1-6 on the analysis grid.  Returns every candidate looked at (kept ones have
    ``reason`` None) and what was estimated (noise - over ``tissue`` when given -, contrast
    threshold).  Candidates whose confidence (step 6) is below ``min_confidence`` are
    dropped (with the reason :data:`REASON_LOW_CONFIDENCE`)."""
    noise = NoiseModel.of(img, params, min_contrast, tissue)
    smoothed = ndimage.gaussian_filter(np.asarray(img, np.float32), 1.0)
    allowed = allowed_mask(region, exclude)
    seeds = find_seeds(img, smoothed, pixel_mm, params.xr_background_mm, noise.contrast_threshold, allowed, progress)
    taken = np.zeros(smoothed.shape, bool)      # pixels of earlier candidates (and of kept ones' nodules)
    tried = np.zeros(smoothed.shape, bool)
    candidates: list[XRCandidate] = []
    max_px = params.xr_max_lesion_mm / pixel_mm
    skipped = {SKIPPED_NO_CONTRAST: 0, REASON_SYMMETRIC: 0}
    for n, seed in enumerate(seeds):
        if n % 25 == 0:
            report(progress, 0.4 + 0.55 * n / max(len(seeds), 1), f"outlining candidates ({n}/{len(seeds)} seeds)")
        r, c = seed.row, seed.col
        if taken[r, c] or tried[r, c]:
            continue
        tried[max(r - TRIED_RADIUS_PX, 0):r + TRIED_RADIUS_PX + 1, max(c - TRIED_RADIUS_PX, 0):c + TRIED_RADIUS_PX + 1] = True
        contrast, ring_px = ring_contrast(smoothed, seed, pixel_mm)
        if contrast < 0.5 * noise.contrast_threshold:
            skipped[SKIPPED_NO_CONTRAST] += 1
            continue
        if bones is not None and symmetric_seed(bones, smoothed, r, c, ring_px / 2.0, contrast, noise.smoothed_sd,
                                                params):
            skipped[REASON_SYMMETRIC] += 1
            continue
        outlined = outline_candidate(smoothed, seed, ring_px, noise, pixel_mm, params, allowed, taken)
        if outlined is None:
            continue
        bump, final, details = outlined
        patch = Patch(final.patch.r0, final.patch.c0, final.patch.local & ~taken[final.patch.window]).trimmed()
        if patch.count() < MIN_PATCH_PX:
            continue
        aspect = aspect_ratio(patch)
        reason, carpal = bone_verdict(bones, smoothed, patch, bump.patch, final.peak, aspect, noise.smoothed_sd,
                                      pixel_mm, params, details)
        threshold_patch = patch
        confidence = float("nan")
        if reason is None:   # step 5: the outline of a kept candidate is redrawn on the edge of its shadow
            patch = edge_step(smoothed, patch, bump.patch, noise.sigma, allowed, taken, pixel_mm, max_px, details)
            # step 6: how sure; below the operating point the candidate is dropped
            # without an edge outline (no support recorded) no contour on the outline reached
            # EDGE_SUPPORT: counted at that bound
            support = details.get("edge_support")
            confidence = candidate_confidence(details["seed_blob_noise_sd"], patch.count() * pixel_mm ** 2,
                                              EDGE_SUPPORT if support is None else support)
            joint = bones.spanned_joint(*patch.coords()) if bones is not None and support is None else None
            if joint is not None:     # no edge of its own, over both ends of a joint: the joint
                details["spanned_joint"] = joint
                reason = REASON_JOINT
            elif confidence < min_confidence:
                reason = REASON_LOW_CONFIDENCE
        candidates.append(XRCandidate(patch, final.peak, float(patch.count() * pixel_mm ** 2), aspect, reason,
                                      details, carpal, confidence))
        taken[threshold_patch.window] |= threshold_patch.local
        if reason is None and bones is not None:
            # the soft-tissue nodule around a deposit seeds nothing more: its bump and a disk
            # reaching NODULE_MM beyond it (without landmarks a kept candidate may be a bone
            # end, which must not hide a deposit next to it)
            ys, xs = bump.patch.coords()
            nodule = disk_patch(ys.mean(), xs.mean(), np.sqrt(bump.patch.count() / np.pi) + NODULE_MM / pixel_mm,
                                smoothed.shape)
            taken[nodule.window] |= nodule.local
        taken[patch.window] |= patch.local
    carpal_level = carpal_contrast_level(candidates, params)
    report(progress, 0.97, f"{sum(c.reason is None for c in candidates)} candidates kept")
    return candidates, {"noise_sd_estimate": noise.sigma, "threshold_used": noise.contrast_threshold,
                        "n_seeds": len(seeds), "seeds_skipped": skipped, "carpal_contrast_level": carpal_level}
