"""Step 6 of the radiograph detector: how sure the detector is that a kept candidate is a
deposit, and the operating point (docs/methods/hand-detection.md, radiographs, step 6).

Steps 1-5 keep, on a real radiograph, spots of trabecular bone, subchondral bone ends,
tufts and sesamoids that the phantom's smooth bones never showed.  What tells a deposit
from them is measured per candidate in two numbers the detector already has:

* ``blob`` - the seed's scale-normalised curvature (:func:`.seeds.blobness`) in units of
  BLOB_REF_NOISE_SD noise SDs (the default contrast threshold; fixed, so that a user's
  ``--threshold`` does not move the confidence): a deposit is a compact dome, curved in
  every direction; a trabecular spot, a subchondral plate or the rim of a bone end curves
  weakly, or in one direction only;
* ``area_mm2`` - the outline's area: at the same curvature a larger shadow is more
  evidence, as for a matched filter, whose signal-to-noise grows with the square root of
  the area it integrates.

Hence the evidence ``log(blob) + 0.5 log(area / 2 mm²)`` (zero for a 2 mm² candidate at the
default threshold's curvature), and the confidence a logistic curve of it, 0.5 at the
operating point; a candidate is kept at ``xr_min_confidence`` (default 0.5, the operating
point) or above.

The operating point is set for precision on real images (measured; the numbers and the
picture are in docs/methods/hand-detection.md, step 6): on the real normal adult hand
radiograph (no calcinosis, ``../shared/data/external/real-hand-xr-normal``) the candidates
steps 1-5 keep - all false - reach an evidence of 0.46 except one (0.96, the tuft of
the thumb); of the 105 true deposits they keep on the four phantom hands, two lie below
0.67 (0.13 and 0.22: large faint deposits 2 mm under the skin, their domes on its slope).
The operating point is the middle of that gap, 0.55; on the hard phantom
(:mod:`calcinosis.hand.phantom_xr_hard`) it halves the false candidates of normal hands.  The contrast in noise SDs was tried as a third
number and dropped: it separated no better than the curvature it goes with.
"""

from __future__ import annotations

import math

#: the blob response is counted in units of this many noise SDs
BLOB_REF_NOISE_SD = 5.0
#: weight of log(area / AREA_REF_MM2) in the evidence (matched filter: 0.5)
W_AREA = 0.5
AREA_REF_MM2 = 2.0
#: the evidence at the operating point (confidence 0.5)
EVIDENCE_AT_OPERATING_POINT = 0.55
#: width of the logistic curve (evidence units): confidence 0.27 / 0.73 at -/+ one width
CONFIDENCE_WIDTH = 0.25


def candidate_evidence(blob_noise_sd: float, area_mm2: float) -> float:
    """Evidence that a candidate is a deposit: log(blob) + W_AREA log(area / AREA_REF_MM2),
    blob = ``blob_noise_sd`` / BLOB_REF_NOISE_SD (natural logarithms; non-positive inputs
    are no evidence at all: -inf)."""
    if not (blob_noise_sd > 0 and area_mm2 > 0):
        return -math.inf
    return math.log(blob_noise_sd / BLOB_REF_NOISE_SD) + W_AREA * math.log(area_mm2 / AREA_REF_MM2)


def candidate_confidence(blob_noise_sd: float, area_mm2: float) -> float:
    """Confidence in [0, 1] that a candidate is a deposit: a logistic curve of
    :func:`candidate_evidence`, 0.5 at the operating point."""
    e = candidate_evidence(blob_noise_sd, area_mm2)
    if e == -math.inf:
        return 0.0
    z = (e - EVIDENCE_AT_OPERATING_POINT) / CONFIDENCE_WIDTH
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
