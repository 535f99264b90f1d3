"""SPINEPS sub-region masks (``*_seg-spine_msk``): the parts of each vertebra, the canal and
the discs, used for the segment and sub-site of a calcification when given.

SPINEPS writes two label maps: the instance mask (one value per vertebra, read as the
``spineps`` convention of ``--vertebrae``) and the sub-region (semantic) mask, read here
(``--subregions``).  Its values: 41 vertebral arch, 42 spinous process, 43 / 44 costal
(transverse) process left / right, 45-48 superior / inferior articular processes, 49
vertebral body border, 50 vertebral body, 60 spinal cord, 61 spinal canal, 62 end plate,
100 intervertebral disc, 26 sacrum.  Each value is read as one of the parts in
:data:`PARTS`; the mask is matched to the CT in physical space (nearest neighbour) like
every label map.

How the parts are used (:func:`calcinosis.spine.assign.assign_lesions`): the part a
calcification lies in or nearest to (within ``subregion_near_mm``) decides - canal or cord:
intracanal segment (posterior longitudinal ligament when in its band at the body's back,
else intracanal); disc: intervertebral disc; spinous process: interspinous; costal process:
transverse process (costotransverse at a thoracic vertebra by the usual rule); articular
process: facet_joint (posterior segment; the study shows facet-joint deposits but names
no sub-site for them) when behind the canal's front part, foraminal in front of it; arch,
body, end plate: the geometric rules of the frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calcinosis.core import image_io
from calcinosis.core.errors import InputError
from calcinosis.core.image_io import LabelImage

#: part codes (0 = none)
PARTS = ("arch", "spinous", "costal", "articular", "body", "cord", "canal", "endplate", "disc", "sacrum")
PART_CODE = {name: k + 1 for k, name in enumerate(PARTS)}
#: SPINEPS sub-region value -> part
SPINEPS_SUBREGIONS = {41: "arch", 42: "spinous", 43: "costal", 44: "costal", 45: "articular", 46: "articular",
                      47: "articular", 48: "articular", 49: "body", 50: "body", 60: "cord", 61: "canal",
                      62: "endplate", 100: "disc", 26: "sacrum"}


def looks_like_subregions(values) -> bool:
    """Whether a label map's values are those of a SPINEPS sub-region mask (and not of a
    vertebra instance mask): all known here, with at least three of the vertebra parts."""
    vals = {int(v) for v in values if int(v) != 0}
    parts = vals & {41, 42, 43, 44, 45, 46, 47, 48, 49, 50}
    return bool(vals) and vals <= set(SPINEPS_SUBREGIONS) and len(parts) >= 3


def part_lut() -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for v, name in SPINEPS_SUBREGIONS.items():
        lut[v] = PART_CODE[name]
    return lut


def read_subregions(path: str | Path, reference, box_slices) -> tuple[np.ndarray, list[str]]:
    """The sub-region mask file ``path`` on the CT grid ``reference`` (a Geometry), cut to
    the spine's box: (part codes uint8, the parts it holds)."""
    path = Path(path)
    return subregions_on_box(image_io.load_label_image(path), reference, box_slices, path.name)


def subregions_on_box(li: LabelImage, reference, box_slices, source: str) -> tuple[np.ndarray, list[str]]:
    """A sub-region mask on its own grid (a file read, or the panel's label map node) on
    the CT grid ``reference``, cut to the spine's box: (part codes uint8, the parts it holds).
    Values that are not SPINEPS sub-regions are an error naming them."""
    values = set()
    for layer in li.layers:
        values |= {int(v) for v in np.unique(layer)}
    values.discard(0)
    unknown = sorted(values - set(SPINEPS_SUBREGIONS))
    if unknown:
        shown = ", ".join(str(v) for v in unknown[:8]) + (" …" if len(unknown) > 8 else "")
        raise InputError(f"{source}: not a SPINEPS sub-region mask (seg-spine): values {shown} are none of "
                         f"{', '.join(str(v) for v in sorted(SPINEPS_SUBREGIONS))}")
    if not values:
        raise InputError(f"{source}: the sub-region mask is empty")
    layer = li.layers[0]
    if not li.geometry.same_grid(reference):
        layer = image_io.resample_labels(layer, li.geometry, reference)
    sub = layer[box_slices]
    if sub.dtype != np.uint8:
        sub = np.where((sub >= 0) & (sub <= 255), sub, 0).astype(np.uint8)
    codes = part_lut()[sub]
    present = sorted({SPINEPS_SUBREGIONS[v] for v in values}, key=PARTS.index)
    if not codes.any():
        raise InputError(f"{source}: the sub-region mask holds no voxel near the spine of this CT (another "
                         "scan's?)")
    return codes, present
