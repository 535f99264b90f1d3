"""The lesion engine: from an image (or a user's segmentation) to a set of lesions.

Two ways in:

(a) :func:`candidate_mask` - an intensity window (at or above a threshold for CT and
    radiographs, at or below for MRI signal voids), inside an optional region and
    outside an optional exclusion mask;
(b) :func:`lesions_from_segmentation` - a segmentation the user already made (binary
    or multi-label, one or several layers).  It is read, never modified.

Then :func:`split_lesions` finds connected lesions (``face`` connectivity = Slicer's
Islands effect default, or ``full``), drops those below a minimum size given in mm³
(3D) or mm² (2D) - never voxels - and, optionally, those not present on at least N
contiguous axial slices.

The result is a :class:`LesionSet`: a label image plus the *sparse* list of lesion
voxels (flat index and label).  Everything downstream (measurement, assignment)
works on the sparse list, so no step makes one pass over the full volume per lesion,
and the label image is built once, in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import parallel
from .defaults import CONNECTIVITIES  # noqa: F401 (re-exported)
from .errors import InputError
from .geometry import Geometry
from .progress import Progress, report


@dataclass(frozen=True)
class LesionParams:
    """Parameters of lesion finding; all of them go into the provenance record.

    ``min_size`` is in mm³ for 3D images and mm² for 2D images.  ``min_slices`` is the
    number of contiguous axial slices a lesion must span (1 = no rule).
    ``split_islands`` applies to user segmentations: each island of a segment becomes
    its own lesion (True) or each segment is one lesion (False)."""

    threshold_low: float | None = None
    threshold_high: float | None = None
    below: bool = False
    connectivity: str = "face"
    min_size: float = 1.0
    min_slices: int = 1
    split_islands: bool = True

    def validate(self) -> None:
        if self.connectivity not in CONNECTIVITIES:
            raise InputError(f"--connectivity: expected one of {', '.join(CONNECTIVITIES)}, got {self.connectivity!r}")
        if not (self.min_size >= 0) or not np.isfinite(self.min_size):
            raise InputError(f"--min-size: expected a size >= 0 in mm³ (3D) or mm² (2D), got {self.min_size!r}")
        if int(self.min_slices) != self.min_slices or self.min_slices < 1:
            raise InputError(f"--min-slices: expected a whole number >= 1, got {self.min_slices!r}")
        if self.threshold_high is not None:
            if self.threshold_low is None:
                raise InputError("--threshold: a range needs both ends, LOW:HIGH")
            if self.threshold_high < self.threshold_low:
                raise InputError(f"--threshold: HIGH ({self.threshold_high:g}) is below LOW ({self.threshold_low:g})")
            if self.below:
                raise InputError("--threshold LOW:HIGH is a window; --below only goes with a single threshold")

    def to_dict(self) -> dict:
        return {
            "threshold_low": self.threshold_low, "threshold_high": self.threshold_high,
            "threshold_direction": "window" if self.threshold_high is not None else ("below" if self.below else "above"),
            "connectivity": self.connectivity, "min_size": self.min_size, "min_slices": int(self.min_slices),
            "split_islands": self.split_islands,
        }


def parse_threshold(text: str) -> tuple[float, float | None]:
    """'130' -> (130, None); '130:3000' -> (130, 3000)."""
    parts = str(text).split(":")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"--threshold: expected LOW or LOW:HIGH (numbers), got {text!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise InputError(f"--threshold: expected finite numbers, got {text!r}")
    if len(vals) == 1:
        return vals[0], None
    if len(vals) == 2:
        return vals[0], vals[1]
    raise InputError(f"--threshold: expected LOW or LOW:HIGH, got {text!r}")


@dataclass
class LesionSet:
    """Lesions on an image grid.

    ``labels[k, j, i]`` holds 0 or the lesion id (1..n).  ``voxel_index`` (sorted flat
    indices into ``labels``) and ``voxel_label`` list every lesion voxel; where user
    segments overlap, a voxel is listed once per lesion.  ``source`` names, per lesion
    (index id-1), the segment or rule it came from."""

    labels: np.ndarray
    geometry: Geometry
    voxel_index: np.ndarray
    voxel_label: np.ndarray
    source: list[str] = field(default_factory=list)
    params: LesionParams = field(default_factory=LesionParams)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.source)

    def voxel_kji(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.unravel_index(self.voxel_index, self.geometry.shape)

    def counts(self) -> np.ndarray:
        """Voxel count per lesion (index id-1)."""
        return np.bincount(self.voxel_label, minlength=self.n + 1)[1:]


# ---------------------------------------------------------------------- (a) threshold
def candidate_mask(array: np.ndarray, low: float, high: float | None = None, below: bool = False,
                   region: np.ndarray | None = None, exclude: np.ndarray | None = None) -> np.ndarray:
    """Voxels in the intensity window: ``low <= v`` (``<= high``), or ``v <= low`` with
    ``below``; restricted to ``region`` and outside ``exclude`` (boolean arrays on the
    same grid)."""
    if region is not None:
        _check_same_shape(region, array, "region")
    if exclude is not None:
        _check_same_shape(exclude, array, "exclusion mask")
    mask = np.empty(array.shape, dtype=bool)

    def slab(k0: int, k1: int) -> None:   # slabs along the first axis, on both cores
        a, m = array[k0:k1], mask[k0:k1]
        if below:
            np.less_equal(a, low, out=m)
        else:
            np.greater_equal(a, low, out=m)
            if high is not None:
                m &= a <= high
        if region is not None:
            m &= region[k0:k1].astype(bool, copy=False)
        if exclude is not None:
            m &= ~exclude[k0:k1].astype(bool, copy=False)

    parallel.over_slabs(slab, array.shape[0], min_slab=8)
    return mask


def _check_same_shape(a: np.ndarray, ref: np.ndarray, what: str) -> None:
    if a.shape != ref.shape:
        raise InputError(f"{what} has shape {a.shape}, the image {ref.shape}; resample it onto the image grid first")


def _structure(connectivity: str, is_2d: bool) -> np.ndarray:
    rank_conn = 1 if connectivity == "face" else 3
    s = ndimage.generate_binary_structure(3, rank_conn)
    if is_2d:
        s[0] = False
        s[2] = False
    return s


def label_components(mask: np.ndarray, connectivity: str, is_2d: bool = False) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask: (labels uint16 or int32, count)."""
    structure = _structure(connectivity, is_2d)
    out = np.empty(mask.shape, dtype=np.uint16)
    try:
        n = ndimage.label(mask, structure=structure, output=out)
    except RuntimeError:  # more than 65535 components: needs a wider type
        out = np.empty(mask.shape, dtype=np.int32)
        n = ndimage.label(mask, structure=structure, output=out)
    return out, int(n)


def label_sparse_components(flat: np.ndarray, shape: tuple[int, ...], connectivity: str) -> tuple[np.ndarray, int]:
    """Connected components of the voxels at the flat indices ``flat`` (sorted, unique)
    of an array of ``shape``, without a pass over that array: (label of each voxel,
    1..n; count).  Labels are numbered as :func:`label_components` numbers them (in
    raster order of each component's first voxel), so the two agree voxel for voxel;
    for a few thousand voxels in a large box this costs milliseconds instead of a
    labelling of the whole box."""
    flat = np.asarray(flat, dtype=np.int64)
    n = flat.size
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    if np.any(flat[1:] <= flat[:-1]):
        raise ValueError("label_sparse_components: flat indices must be sorted and unique")
    shape = tuple(int(s) for s in shape)
    coords = np.stack(np.unravel_index(flat, shape), axis=1)
    strides = np.array([int(np.prod(shape[a + 1:])) for a in range(len(shape))], dtype=np.int64)
    if len(shape) != 3:
        raise ValueError("label_sparse_components: a 3D shape (k, j, i) is needed")
    structure = _structure(connectivity, False)   # a (1, rows, cols) image has no neighbours along k
    centre = np.array(structure.shape) // 2
    # half of the neighbourhood (offsets after the centre in raster order): each edge once
    offsets = [o - centre for o in np.argwhere(structure) if tuple(o - centre) > (0,) * len(shape)]
    src, dst = [], []
    for off in offsets:
        nb = coords + off
        inside = np.all((nb >= 0) & (nb < np.array(shape)), axis=1)
        a = np.flatnonzero(inside)
        target = flat[a] + int(off @ strides)
        pos = np.minimum(np.searchsorted(flat, target), n - 1)
        hit = flat[pos] == target
        src.append(a[hit])
        dst.append(pos[hit])
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    src_all, dst_all = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(src_all.size, dtype=np.int8), (src_all, dst_all)), shape=(n, n))
    count, comp = connected_components(graph, directed=False)
    # renumber in order of each component's first voxel (``flat`` is sorted)
    _, first = np.unique(comp, return_index=True)
    rank = np.empty(count, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(1, count + 1)
    return rank[comp], int(count)


def split_lesions(mask: np.ndarray, geometry: Geometry, params: LesionParams,
                  progress: Progress | None = None) -> LesionSet:
    """Connected lesions of a candidate mask, filtered by physical size and slice span."""
    params.validate()
    report(progress, 0.0, "labelling connected lesions")
    labels, n = label_components(mask, params.connectivity, geometry.is_2d)
    report(progress, 0.5, f"{n} candidate components")
    idx = np.flatnonzero(labels)
    lab = labels.ravel()[idx].astype(np.int64)
    sources = ["threshold"] * n
    return _filter_and_relabel(labels, geometry, idx, lab, sources, params, progress)


# ---------------------------------------------------------------------- (b) segmentation
def lesions_from_segmentation(label_image, geometry: Geometry, params: LesionParams,
                              progress: Progress | None = None) -> LesionSet:
    """Lesions from a user's segmentation (a :class:`~calcinosis.core.image_io.LabelImage`
    already on the image grid).  Each segment's islands become lesions
    (``split_islands``), or each segment is one lesion.  The input is not modified."""
    params.validate()
    if label_image.geometry.shape != geometry.shape:
        raise InputError("segmentation is not on the image grid; resample it first")
    dtype = np.int32
    labels = np.zeros(geometry.shape, dtype=dtype)
    all_idx, all_lab, sources = [], [], []
    overlap = False
    segs = label_image.segments
    for s_no, seg in enumerate(segs):
        report(progress, 0.8 * s_no / max(len(segs), 1), f"segment {seg.name}")
        layer = label_image.layers[seg.layer]
        seg_mask = layer == seg.label_value
        if params.split_islands:
            comp, m = label_components(seg_mask, params.connectivity, geometry.is_2d)
            idx = np.flatnonzero(comp)
            lab = comp.ravel()[idx].astype(np.int64)
        else:
            idx = np.flatnonzero(seg_mask)
            m = 1 if idx.size else 0
            lab = np.ones(idx.size, dtype=np.int64)
        if m == 0:
            continue
        base = len(sources)
        lab = lab + base
        flat = labels.ravel()
        if np.any(flat[idx] != 0):
            overlap = True
        flat[idx] = lab
        all_idx.append(idx)
        all_lab.append(lab)
        sources += [seg.name] * m
    if all_idx:
        idx = np.concatenate(all_idx)
        lab = np.concatenate(all_lab)
        order = np.argsort(idx, kind="stable")
        idx, lab = idx[order], lab[order]
    else:
        idx = np.zeros(0, dtype=np.int64)
        lab = np.zeros(0, dtype=np.int64)
    lesions = _filter_and_relabel(labels, geometry, idx, lab, sources, params, progress)
    if overlap:
        lesions.notes.append("segments overlap: voxels in several segments count in each lesion; "
                             "the output label map shows the last one")
    return lesions


# ---------------------------------------------------------------------- shared filtering
def longest_slice_runs(lab: np.ndarray, slice_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label 1..n: (first slice, last slice, longest run of contiguous occupied slices)."""
    first = np.full(n + 1, -1, dtype=np.int64)
    last = np.full(n + 1, -1, dtype=np.int64)
    runs = np.zeros(n + 1, dtype=np.int64)
    if lab.size == 0:
        return first[1:], last[1:], runs[1:]
    stride = int(slice_index.max()) + 2
    key = np.unique(lab.astype(np.int64) * stride + slice_index.astype(np.int64))
    L, S = key // stride, key % stride
    # occupied (label, slice) pairs are sorted by label then slice
    starts = np.r_[True, (L[1:] != L[:-1]) | (S[1:] != S[:-1] + 1)]
    run_id = np.cumsum(starts) - 1
    run_len = np.bincount(run_id)
    run_label = L[starts]
    np.maximum.at(runs, run_label, run_len)
    lab_start = np.r_[True, L[1:] != L[:-1]]
    lab_end = np.r_[L[1:] != L[:-1], True]
    first[L[lab_start]] = S[lab_start]
    last[L[lab_end]] = S[lab_end]
    return first[1:], last[1:], runs[1:]


def _filter_and_relabel(labels: np.ndarray, geometry: Geometry, idx: np.ndarray, lab: np.ndarray,
                        sources: list[str], params: LesionParams, progress: Progress | None) -> LesionSet:
    n = len(sources)
    counts = np.bincount(lab, minlength=n + 1)[1:] if n else np.zeros(0, dtype=np.int64)
    unit = geometry.pixel_area_mm2 if geometry.is_2d else geometry.voxel_volume_mm3
    size = counts * unit
    # a tiny tolerance so that a size exactly at the limit is kept despite rounding
    keep = size >= params.min_size * (1 - 1e-9)
    notes = []
    if params.min_slices > 1:
        if geometry.is_2d:
            notes.append("min_slices ignored: a 2D image has no axial slices")
        else:
            axis = geometry.axial_axis
            slice_index = np.unravel_index(idx, geometry.shape)[axis]
            _, _, runs = longest_slice_runs(lab, slice_index, n)
            keep &= runs >= params.min_slices
    report(progress, 0.8, f"{int(keep.sum())} of {n} components kept")
    remap = np.zeros(n + 1, dtype=np.int64)
    remap[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    new_lab = remap[lab]
    flat = labels.ravel()
    if labels.dtype.itemsize < 4 and int(keep.sum()) > np.iinfo(labels.dtype).max:
        raise RuntimeError("label type too small")  # cannot happen: relabelling only shrinks ids
    flat[idx] = new_lab.astype(labels.dtype, copy=False)
    sel = new_lab > 0
    kept_sources = [s for s, k in zip(sources, keep) if k]
    out = LesionSet(labels, geometry, idx[sel], new_lab[sel], kept_sources, params, notes)
    report(progress, 1.0, f"{out.n} lesions")
    return out
