"""The radiograph detector: calcific deposits on a PA hand radiograph, against a background
that follows bones, skin edges and soft-tissue swellings (numpy/scipy only).

Six steps, one module each; the algorithm is described once, in
``docs/methods/hand-detection.md`` (radiographs):

1. :mod:`.seeds` - bright blobs of the image and of its line-opening top-hat
   (:mod:`.background` holds the backgrounds);
2. and 3. :mod:`.outline` - the outline against a directional background, then the dense
   core inside the soft-tissue nodule;
4. :mod:`.bone` - bone is not calcinosis (elongation, mirror symmetry about a digit's
   axis, the carpus);
5. :mod:`.edge` - the outline of a kept candidate redrawn on the edge of its shadow;
6. :mod:`.confidence` - how sure the detector is, and the operating point (chosen for
   precision on real radiographs).

:func:`.candidates.find_candidates` chains them over the seeds; :mod:`.patches` holds the
masks they pass to one another.  What a single projection cannot tell is listed in
``docs/hand.md``.
"""

from .background import block_mean, directional_background, fill_blank, directional_fill, line_opening_background, noise_sigma
from .bone import REASON_CARPAL, REASON_ELONGATED, REASON_JOINT, REASON_SESAMOID, REASON_SYMMETRIC, BoneModel
from .candidates import ANALYSIS_SPACING_MM, NODULE_MM, REASON_LOW_CONFIDENCE, XRCandidate, find_candidates
from .confidence import candidate_confidence, candidate_evidence
from .edge import (EDGE_SUPPORT, EdgeContour, centred_contours, choose_contour, edge_contour, edge_hypotheses,
                   edge_outline, edge_ridges, edge_step, ellipse_radii, fit_conic, ray_profiles, snap_contour)
from .outline import dense_core, fit_nested_domes, outline_against_background
from .patches import Patch
from .seeds import SEED_SCALES_MM, blobness

__all__ = ["noise_sigma", "block_mean", "fill_blank", "line_opening_background", "directional_fill", "directional_background",
           "blobness", "Patch", "outline_against_background", "fit_nested_domes", "dense_core", "ray_profiles",
           "edge_ridges", "fit_conic", "ellipse_radii", "snap_contour", "edge_hypotheses", "edge_contour", "EdgeContour",
           "centred_contours", "choose_contour", "edge_outline", "edge_step", "BoneModel", "XRCandidate",
           "find_candidates", "SEED_SCALES_MM", "ANALYSIS_SPACING_MM", "NODULE_MM", "EDGE_SUPPORT",
           "REASON_ELONGATED", "REASON_SYMMETRIC", "REASON_CARPAL", "REASON_SESAMOID", "REASON_JOINT", "REASON_LOW_CONFIDENCE", "candidate_confidence",
           "candidate_evidence"]
