"""``calcinosis phantom KIND``: synthetic images with exact ground truth.

Each phantom family registers its kinds from its own module (:data:`FAMILIES`) with
``register(kind_subparsers)``.
"""

from __future__ import annotations

import importlib

#: the modules of the phantom families, in the order ``phantom --help`` lists their kinds
FAMILIES = ("phantoms_hand", "phantoms_simple", "phantoms_spine")


def register(sub) -> None:
    p = sub.add_parser("phantom", help="write a synthetic image with its ground truth",
                       description="Write a phantom image (DICOM/NRRD/PNG) and truth.csv with the exact lesion "
                                   "sizes and positions, for tests, demos and checking a pipeline.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    for name in FAMILIES:
        importlib.import_module(f"{__package__}.{name}").register(kinds)
