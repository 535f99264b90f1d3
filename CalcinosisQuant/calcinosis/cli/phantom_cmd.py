"""``calcinosis phantom KIND``: synthetic images with exact ground truth.

Each phantom family registers its kinds from its own ``phantoms_*.py`` module with
``register(kind_subparsers)`` (found by :mod:`.registry`).
"""

from __future__ import annotations

from .registry import discover


ORDER = 80


def register(sub) -> None:
    p = sub.add_parser("phantom", help="write a synthetic image with its ground truth",
                       description="Write a phantom image (DICOM/NRRD/PNG) and truth.csv with the exact lesion "
                                   "sizes and positions, for tests, demos and checking a pipeline.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    for module in discover(prefix="phantoms_"):
        module.register(kinds)
