"""Shared helpers of the spine tests: phantoms made once per session, the map run on
them in memory, and the score against the phantom's ground truth.

The score is independent of the map's own bookkeeping: each true calcification is
found in the map by the voxels it covers (the phantom's truth voxels, coverage >= 0.5),
and its level, segment, sub-site and pattern are compared with the truth.  A true
calcification the map missed counts as wrong for every field.
"""

from __future__ import annotations

import functools

import numpy as np

from calcinosis.core.geometry import Geometry
from calcinosis.core.image_io import LabelImage
from calcinosis.core.phantoms import rotation_matrix
from calcinosis.core.volume import Volume
from calcinosis.spine import phantom, pipeline, vertebrae
from calcinosis.spine.anatomy import LEVELS
from calcinosis.spine.conventions import category, structure_names
from calcinosis.spine.params import SpineParams
from phantom_cache import cached

#: Test phantoms: 1 mm in-plane over a field of view fitted to the spine, 1.25 mm slices.
TEST_SPACING = (1.0, 1.0, 1.25)
FIELDS = ("level", "segment", "subsite", "pattern")


@functools.lru_cache(maxsize=None)
def get_phantom(coverage: str = "tap", convention: str = "totalsegmentator", seed: int = 0, grid: str = "axial",
                contrast: bool = True) -> phantom.RenderedPhantom:
    return cached(make_phantom, coverage, convention, seed, grid, contrast)


def make_phantom(coverage: str, convention: str, seed: int, grid: str, contrast: bool) -> phantom.RenderedPhantom:
    spec = phantom.PhantomSpec(coverage=coverage, spacing=TEST_SPACING, size_xy=None, seed=seed,
                               convention=convention, contrast=contrast)
    ph = phantom.build_phantom(spec)
    g0 = phantom.default_geometry(ph)
    if grid == "axial":
        return phantom.render_phantom(ph, g0)
    if grid == "oblique":
        d, sp = rotation_matrix((1, 1, 0.3), 14) @ g0.direction, g0.spacing
    elif grid == "pir":  # i -> posterior, j -> inferior, k -> right, as the VerSe sample
        d, sp = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float), (1.0, 1.25, 1.0)
    else:
        raise ValueError(grid)
    corners = g0.corners_ras()
    c = corners.mean(axis=0)
    size = np.ceil((np.abs((corners - c) @ d).max(axis=0) * 2) / np.asarray(sp)).astype(int) + 2
    g = Geometry.create(size, sp, c - d @ ((size - 1) * np.asarray(sp) / 2), d)
    return phantom.render_phantom(ph, g)


@functools.lru_cache(maxsize=None)
def get_hard_phantom(coverage: str = "tap", seed: int = 0, spacing: tuple = TEST_SPACING,
                     convention: str = "totalsegmentator") -> phantom.RenderedPhantom:
    return cached(make_hard_phantom, coverage, seed, tuple(spacing), convention)


def make_hard_phantom(coverage: str, seed: int, spacing: tuple, convention: str) -> phantom.RenderedPhantom:
    """A phantom with the cases real anatomy has (:mod:`calcinosis.spine.phantom_hard`):
    calcifications against bone, thin discs, osteophytes, veins, noisy shoulders,
    vertebra labels off by up to 1 mm plus a local wobble."""
    from calcinosis.spine import phantom_hard
    spec = phantom.PhantomSpec(coverage=coverage, spacing=spacing, size_xy=None, seed=seed, convention=convention,
                               **phantom_hard.hard_spec_kwargs())
    ph = phantom.build_phantom(spec)
    return phantom.render_phantom(ph, phantom.default_geometry(ph))


@functools.lru_cache(maxsize=None)
def mapped_hard(coverage: str = "tap", seed: int = 0, spacing: tuple = TEST_SPACING,
                convention: str = "totalsegmentator") -> pipeline.SpineResult:
    r = get_hard_phantom(coverage, seed, spacing, convention)
    return pipeline.map_spine(volume_of(r), labels_of(r), SpineParams())


def touching_recall(r: phantom.RenderedPhantom, s: dict) -> tuple[int, int]:
    """(found, placed) of the calcifications placed against bone."""
    from calcinosis.spine.phantom_hard import is_touching
    names = [row["name"] for row in r.truth.rows if row["kind"] == "spinal" and is_touching(row["name"])]
    missed = {w[0] for w in s["wrong"] if w[1] == "missed"}
    return sum(n not in missed for n in names), len(names)


def volume_of(r: phantom.RenderedPhantom) -> Volume:
    return Volume(r.ct, r.geometry, {"modality": "CT", "intensity_unit": "HU"})


def labels_of(r: phantom.RenderedPhantom, labels: np.ndarray | None = None, geometry: Geometry | None = None,
              convention: str = "auto") -> vertebrae.SpineLabels:
    vol = volume_of(r)
    li = LabelImage([r.labels if labels is None else labels], geometry or r.geometry, [])
    lab = vertebrae.labels_from_label_image(li, vol, convention)
    return lab


@functools.lru_cache(maxsize=None)
def mapped(coverage: str = "tap", convention: str = "totalsegmentator", seed: int = 0, grid: str = "axial",
           contrast: bool = True) -> pipeline.SpineResult:
    """The map of :func:`get_phantom`'s phantom (computed once per run and code version)."""
    return cached(map_phantom, coverage, convention, seed, grid, contrast)


def map_phantom(coverage: str, convention: str, seed: int, grid: str, contrast: bool) -> pipeline.SpineResult:
    r = get_phantom(coverage, convention, seed, grid, contrast)
    return pipeline.map_spine(volume_of(r), labels_of(r), SpineParams())


def score(r: phantom.RenderedPhantom, res: pipeline.SpineResult) -> dict:
    full = res.full_grid_labels()
    out = {"n": 0, "found": 0, "vascular_reported": [], "osteophytes_reported": [], "matched": set(), "wrong": []}
    for f in FIELDS:
        out[f] = 0
    for row, vox in zip(r.truth.rows, r.truth_voxels):
        ids = full.ravel()[vox]
        ids = ids[ids > 0]
        if row["kind"] != "spinal":      # vascular wall calcifications, osteophytes: never reported
            if ids.size:
                out[f"{row['kind']}s_reported" if row["kind"] == "osteophyte" else "vascular_reported"].append(
                    row["name"])
                out["matched"].update(int(i) for i in np.unique(ids))
            continue
        out["n"] += 1
        if ids.size == 0:
            out["wrong"].append((row["name"], "missed"))
            continue
        lid = int(np.bincount(ids).argmax())
        out["matched"].add(lid)
        out["found"] += 1
        det = res.table.rows[lid - 1]
        assert det["lesion_id"] == lid
        for f in FIELDS:
            if det[f] == row[f]:
                out[f] += 1
            else:
                out["wrong"].append((row["name"], f, det[f]))
    out["false_positives"] = [row for row in res.table.rows if row["lesion_id"] not in out["matched"]]
    for f in ("found",) + FIELDS:
        out[f"{f}_rate"] = out[f] / out["n"] if out["n"] else float("nan")
    return out


def expected_assessed(labels: np.ndarray, convention: str) -> list[str]:
    """Levels whose two vertebrae both have voxels in the label map (straight from the
    label values, not through the map's code)."""
    names = structure_names(convention)
    present = set()
    for v in np.unique(labels):
        n = names.get(int(v))
        if n is None:
            continue
        if category(n) == "vertebra":
            present.add(n)
        if n == "sacrum" and convention != "totalsegmentator":
            present.add("S1")
    return [lv for lv in LEVELS if all(x in present for x in lv.split("-"))]


def write_spineps_case(r: phantom.RenderedPhantom, sub: np.ndarray, folder) -> tuple:
    """The CT, the SPINEPS instance mask and its sub-region mask of a phantom as files
    (ct.nrrd, seg-vert.nii.gz, seg-spine.nii.gz) -> their paths."""
    from calcinosis.core import image_io
    paths = (folder / "ct.nrrd", folder / "seg-vert.nii.gz", folder / "seg-spine.nii.gz")
    for arr, path in zip((r.ct, r.labels, sub), paths):
        image_io.write_image(arr, r.geometry, path)
    return paths
