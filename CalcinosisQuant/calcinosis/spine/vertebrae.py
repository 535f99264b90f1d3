"""Vertebra inputs on the CT grid: from a label map (TotalSegmentator, TotalSpineSeg, VerSe), a segmentation
whose segment names carry the vertebra, or one point per vertebral body.

Everything ends in a :class:`SpineLabels`: a box of the CT grid around the spine
(work never touches voxels far from it), and inside the box one small array with the
vertebra of each voxel and one with the category of the other structures the map
needs (aorta and other vessels, ribs and other bones, organs, discs, spinal cord).
Labels on another grid are matched in physical space (nearest neighbour), never by
array index.

Problems are reported, not hidden: a label map with no vertebrae, or whose vertebrae
fall outside the CT, is an error; a vertebra given twice (two separate bodies with one
label, or two segments/points with one name), out of anatomical order, or whose voxels
do not look like bone on this CT is *unusable*: a warning says so and the levels next to
it are not assessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from calcinosis.core import image_io, parallel
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import AXIS_S, Geometry
from calcinosis.core.image_io import LabelImage
from calcinosis.core.progress import Progress, report
from calcinosis.core.volume import Volume

from . import conventions as conv
from .anatomy import LEVELS, TRANSITIONAL, VERTEBRAE, order_number, parse_disc_name, parse_vertebra_name

# category codes inside the box
CAT_NONE, CAT_AORTA, CAT_VESSEL, CAT_RIB, CAT_BONE, CAT_ORGAN, CAT_CORD = 0, 1, 2, 3, 4, 5, 6
#: category codes fit in 3 bits (the box look-up packs them beside the vertebra code)
CATEGORY_CODES = {"aorta": CAT_AORTA, "vessel": CAT_VESSEL, "rib": CAT_RIB, "bone": CAT_BONE,
                  "organ": CAT_ORGAN, "cord": CAT_CORD}

#: When the only caudal neighbour of L5 is a sacrum label, the part of it within this
#: distance (mm, along the spine) of its cranial end stands for S1.
SACRUM_S1_HEIGHT_MM = 30.0
#: A whole (not cut) vertebra smaller than this (mm³) is not a vertebra (C7 is about 15 cm³).
MIN_VERTEBRA_MM3 = 3000.0
#: A vertebra whose voxels (75th percentile) are below this on the CT does not look like bone.
BONE_CHECK_HU = 120.0


@dataclass(frozen=True)
class Box:
    """A box of the CT grid: numpy index ranges [lo, hi) along k, j, i."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.lo, self.hi))  # type: ignore[return-value]

    def geometry(self, full: Geometry) -> Geometry:
        """The box as a grid of its own (same spacing and axes, origin at its first voxel)."""
        origin = full.kji_to_ras(np.asarray(self.lo, float))
        return Geometry.create((self.shape[2], self.shape[1], self.shape[0]), full.spacing, origin, full.direction)


@dataclass
class SpineLabels:
    """The spine's structures on a box of the CT grid.

    ``vert[k, j, i]`` (box array) is 0 or the 1-based index of the vertebra in
    ``names``; ``category`` holds the CAT_* code of the other structures; ``disc`` is 0
    or the 1-based index of a level in :data:`~.anatomy.LEVELS` (TotalSpineSeg discs)."""

    geometry: Geometry
    box: Box
    names: list[str]
    vert: np.ndarray
    category: np.ndarray
    disc: np.ndarray | None = None
    source: str = "label map"
    convention: conv.ConventionChoice | None = None
    problems: dict[str, list[str]] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    voxels_cache: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    subregion: np.ndarray | None = None     # SPINEPS sub-region part codes (:mod:`.subregions`)
    subregion_parts: list[str] | None = None   # the parts that mask holds

    @property
    def box_geometry(self) -> Geometry:
        return self.box.geometry(self.geometry)

    @property
    def has_aorta(self) -> bool:
        return parallel.any_where(self.category, lambda c: c == CAT_AORTA)

    @property
    def has_ribs(self) -> bool:
        return parallel.any_where(self.category, lambda c: c == CAT_RIB)

    @property
    def has_discs(self) -> bool:
        return self.disc is not None and bool(np.any(self.disc))

    def vertebra_voxels(self) -> dict[str, np.ndarray]:
        """{name: sorted flat indices into the box} for every vertebra present (computed
        once: ``vert`` is final when the labels are built; code that changes it afterwards
        must set ``voxels_cache = None``)."""
        if self.voxels_cache is None:
            vert = np.ascontiguousarray(self.vert)
            plane = int(np.prod(vert.shape[1:]))
            parts = parallel.over_slabs(lambda a, b: np.flatnonzero(vert[a:b]) + a * plane, vert.shape[0], 8,
                                        plane=plane)
            idx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            codes = vert.ravel()[idx]
            order = np.argsort(codes, kind="stable")
            idx, codes = idx[order], codes[order]
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if codes.size else np.zeros(0, int)
            ends = np.r_[starts[1:], codes.size]
            self.voxels_cache = {self.names[int(codes[s]) - 1]: idx[s:e] for s, e in zip(starts, ends)}
        return self.voxels_cache

    def mask_of(self, categories: tuple[int, ...], vertebrae: bool = True) -> "LabelMask":
        """The voxels of these CAT_* codes (and of every vertebra) as a mask read window by
        window (:class:`LabelMask`)."""
        return LabelMask(self.vert if vertebrae else None, self.category, categories)

    def usable(self, name: str) -> bool:
        return name not in self.problems

    def add_problem(self, name: str, reason: str) -> None:
        self.problems.setdefault(name, []).append(reason)


class LabelMask:
    """A mask of labelled structures on the spine's box, computed only for the windows
    asked for (``mask[window]``, a tuple of slices): the box holds tens of millions of
    voxels and its whole-box masks cost 30-100 ms each, while their readers (the tests of
    one candidate at a time) look at a few small windows.  Reads the label arrays at the
    time of the look-up."""

    def __init__(self, vert: np.ndarray | None, category: np.ndarray, categories: tuple[int, ...]):
        self.vert = vert
        self.category = category
        self.categories = tuple(int(c) for c in categories)
        self.shape = category.shape

    def __getitem__(self, window) -> np.ndarray:
        cat = self.category[window]
        out = self.vert[window] > 0 if self.vert is not None else np.zeros(cat.shape, dtype=bool)
        for c in self.categories:
            out |= cat == c
        return out


# ---------------------------------------------------------------------- the box
def spine_box(flat_vertebra_index: np.ndarray, geometry: Geometry, margin_mm: float) -> Box:
    """Index box around the vertebra voxels, grown by ``margin_mm`` on every side."""
    if flat_vertebra_index.size == 0:
        raise InputError("no vertebra voxels on the CT grid")
    kji = np.unravel_index(flat_vertebra_index, geometry.shape)
    lo, hi = [], []
    for axis in range(3):
        grow = int(np.ceil(margin_mm / geometry.spacing_along_array_axis(axis)))
        lo.append(max(0, int(kji[axis].min()) - grow))
        hi.append(min(geometry.shape[axis], int(kji[axis].max()) + 1 + grow))
    return Box(tuple(lo), tuple(hi))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- from a label image
def _structure_of_segments(label_image: LabelImage, convention: str, source: str, s_positions) -> tuple[
        dict[tuple[int, int], str], conv.ConventionChoice, list[str], set[str]]:
    """{(layer, value): structure name}, the convention, warnings, names given twice."""
    warnings: list[str] = []
    named = [s for s in label_image.segments if not s.name.startswith("label_")]
    use_names = convention == "names" or (convention == "auto" and named and any(
        parse_vertebra_name(s.name) for s in named))
    mapping: dict[tuple[int, int], str] = {}
    duplicated: set[str] = set()
    if use_names:
        seen: dict[str, int] = {}
        ignored = []
        for s in label_image.segments:
            name = _structure_from_segment_name(s.name)
            if name is None:
                ignored.append(s.name)
                continue
            mapping[(s.layer, s.label_value)] = name
            seen[name] = seen.get(name, 0) + 1
        duplicated = {n for n, c in seen.items() if c > 1 and conv.category(n) == "vertebra"}
        if not any(conv.category(n) == "vertebra" for n in mapping.values()) and not any(
                n == "sacrum" for n in mapping.values()):
            raise InputError(f"{source}: no segment name carries a vertebra (expected names like vertebrae_T8 or T8; "
                             f"found {', '.join(s.name for s in label_image.segments[:8]) or 'no segments'})")
        if ignored:
            warnings.append(f"{source}: segments {', '.join(ignored[:6])}{' …' if len(ignored) > 6 else ''} name no "
                            "structure the spine map uses; ignored")
        return mapping, conv.ConventionChoice("names", "names"), warnings, duplicated
    if len(label_image.layers) != 1:
        raise InputError(f"{source}: a segmentation with overlapping segments needs segment names that carry the "
                         "vertebra (vertebrae_T8, T8); its label values cannot be read by a convention")
    counts = {s.label_value: 1 for s in label_image.segments}
    choice = conv.detect_convention(counts, s_positions, source, None if convention == "auto" else convention)
    table = conv.structure_names(choice.key)
    for s in label_image.segments:
        if s.label_value in table:
            mapping[(0, s.label_value)] = table[s.label_value]
    return mapping, choice, warnings, duplicated


def _structure_from_segment_name(name: str) -> str | None:
    if name.strip().lower() == "sacrum":  # the whole sacrum; it stands for S1 only when S1 is absent
        return "sacrum"
    v = parse_vertebra_name(name)
    if v is not None:
        return v
    d = parse_disc_name(name)
    if d is not None:
        return f"disc:{d}"
    n = name.strip().lower().replace(" ", "_").replace("-", "_")
    if n in ("aorta", "aorta_abdominal", "aorta_thoracic"):
        return "aorta"
    if n in ("spinal_cord", "spinal_canal", "cord"):
        return n if n != "cord" else "spinal_cord"
    known = set(conv.structure_names("totalsegmentator").values())
    if n in known:
        return n
    return None


@dataclass
class LabelValues:
    """The values of a label map on its own grid (one pass per layer, see :func:`label_values`)."""

    counts: dict[tuple[int, int], int]      # (layer, value) -> voxels; background (0) left out
    s_positions: dict[int, float]           # value of layer 0 -> S (mm) of its centroid along the slice axis


def label_values(label_image: LabelImage, source: str = "label map") -> LabelValues:
    """Which values a label map holds and where they lie along S (what convention detection
    needs), from one histogram pass per layer."""
    geom_native = label_image.geometry
    axis = geom_native.axial_axis
    s_positions: dict[int, float] = {}
    native_counts: dict[tuple[int, int], int] = {}
    for layer_no, layer in enumerate(label_image.layers):
        if layer.size == 0:
            continue
        max_value = int(layer.max())
        if max_value > 100000:
            raise InputError(f"{source}: label value {max_value} is implausibly large for a label map")
        hist = conv.value_histogram_along_axis(layer, axis, max_value)
        counts = hist.sum(axis=0)
        for v in np.flatnonzero(counts):
            if v:
                native_counts[(layer_no, int(v))] = int(counts[v])
        if layer_no == 0:
            s_positions = conv.value_s_positions(hist, geom_native, axis)
    return LabelValues(native_counts, s_positions)


def labels_from_label_image(label_image: LabelImage, volume: Volume, convention: str = "auto",
                            margin_mm: float = 40.0, source: str = "label map",
                            progress: Progress | None = None, values: LabelValues | None = None) -> SpineLabels:
    """:class:`SpineLabels` from a label map or segmentation read on *its own* grid.

    ``convention``: 'auto', 'names', or a key of :data:`~.conventions.CONVENTIONS`;
    ``values``: :func:`label_values` of ``label_image``, when already counted."""
    if convention not in ("auto", "names") + conv.CONVENTIONS:
        raise InputError(f"--convention: expected auto, names, {', '.join(conv.CONVENTIONS)}; got {convention!r}")
    report(progress, 0.0, "reading label values")
    geom_native = label_image.geometry
    if values is None:
        values = label_values(label_image, source)
    native_counts, s_positions = values.counts, values.s_positions
    if not native_counts:
        raise InputError(f"{source}: the label map is empty (no labels at all); a vertebra label map is needed")
    # segments: those actually present
    present = {(s.layer, s.label_value) for s in label_image.segments}
    segs = [s for s in label_image.segments if (s.layer, s.label_value) in native_counts]
    if not segs or not present:
        from calcinosis.core.image_io import Segment
        segs = [Segment(f"label_{v}", v, layer) for (layer, v) in sorted(native_counts)]
    li = LabelImage(label_image.layers, geom_native, segs, label_image.source)
    mapping, choice, warnings, duplicated = _structure_of_segments(li, convention, source, s_positions)
    report(progress, 0.2, f"convention: {choice.title}")

    names_native = {mapping[k] for k in mapping if k in native_counts}
    vert_native = sorted({n for n in names_native if conv.category(n) == "vertebra"}, key=order_number)
    if not vert_native and "sacrum" not in names_native:
        raise InputError(f"{source}: holds no vertebra labels ({choice.title}); a vertebra label map is needed")

    # resample each layer onto the CT grid (physical space)
    target = volume.geometry
    layers = []
    for layer in label_image.layers:
        if geom_native.same_grid(target):
            layers.append(layer)
        else:
            layers.append(image_io.resample_labels(layer, geom_native, target))
    report(progress, 0.45, "labels on the CT grid")
    lab = _build(layers, mapping, target, volume, choice, source, margin_mm, duplicated, warnings)
    lost = [n for n in vert_native if n not in lab.names]
    if lost:
        lab.warnings.append(f"{source}: vertebrae {', '.join(lost)} lie outside the CT's field of view")
    check_vertebrae(lab, volume)
    report(progress, 1.0, f"{len(lab.names)} vertebrae")
    return lab


def _build(layers: list[np.ndarray], mapping: dict[tuple[int, int], str], target: Geometry, volume: Volume,
           choice: conv.ConventionChoice, source: str, margin_mm: float, duplicated: set[str],
           warnings: list[str]) -> SpineLabels:
    # vertebra codes per layer value (sacrum stands for S1 when there is no S1)
    all_names = set(mapping.values())
    has_s1 = "S1" in all_names
    vert_names = sorted({n for n in all_names if conv.category(n) == "vertebra"}, key=order_number)
    sacrum_as_s1 = (not has_s1) and "sacrum" in all_names
    if sacrum_as_s1:
        vert_names.append("S1")
    code_of = {n: c + 1 for c, n in enumerate(vert_names)}
    luts_vert, luts_cat, luts_disc = [], [], []
    for layer_no, layer in enumerate(layers):
        max_value = max([v for (ln, v) in mapping if ln == layer_no] + [0])
        lv = np.zeros(max(max_value, int(layer.max()) if layer.size else 0) + 1, dtype=np.int16)
        lc = np.zeros(lv.size, dtype=np.uint8)
        ld = np.zeros(lv.size, dtype=np.int16)
        for (ln, v), name in mapping.items():
            if ln != layer_no or v >= lv.size:
                continue
            cat = conv.category(name)
            if cat == "vertebra":
                lv[v] = code_of[name]
            elif name == "sacrum" and sacrum_as_s1:
                lv[v] = code_of["S1"]
            elif cat == "disc":
                lvl = name[5:]
                if lvl in LEVELS:
                    ld[v] = LEVELS.index(lvl) + 1
            elif cat in CATEGORY_CODES:
                lc[v] = CATEGORY_CODES[cat]
        luts_vert.append(lv)
        luts_cat.append(lc)
        luts_disc.append(ld)
    # where the vertebrae are on the full grid: one pass per layer, slab by slab
    hits = [np.zeros(n, dtype=bool) for n in target.shape]
    for layer_no, (layer, lv) in enumerate(zip(layers, luts_vert)):
        if layer.size:
            for axis, h in enumerate(_vertebra_extent(layer, lv, mapping, layer_no)):
                hits[axis] |= h
    if not hits[0].any():
        raise InputError(f"{source}: none of its vertebrae lies inside the CT's field of view (the label map does "
                         "not belong to this CT, or covers another region)")
    box = box_from_hits(hits, target, margin_mm)
    sl = box.slices
    vert = category = disc = None
    for layer, lv, lc, ld in zip(layers, luts_vert, luts_cat, luts_disc):
        sub = layer[sl]
        if sub.dtype.kind == "i" and sub.size and sub.min() < 0:
            sub = np.clip(sub, 0, None)
        v, c, d = _look_up(sub, lv, lc, ld)
        if vert is None:
            vert, category, disc = v, c, d
            continue
        np.maximum(vert, v, out=vert)
        category = np.where(category == 0, c, category)
        if d is not None:
            disc = d if disc is None else np.maximum(disc, d)
    if len(layers) > 1:   # a vertebra in one layer is not also another structure
        category[vert > 0] = CAT_NONE
    lab = SpineLabels(target, box, vert_names, vert, category, disc if disc is not None and disc.any() else None,
                      source, choice,
                      warnings=list(warnings))
    for n in duplicated:
        lab.add_problem(n, "given by more than one segment")
        lab.warnings.append(f"{source}: vertebra {n} is given by more than one segment; "
                            "levels next to it are not assessed")
    if sacrum_as_s1:
        _trim_sacrum_to_s1(lab, code_of["S1"])
    _drop_absent(lab)
    return lab


def _look_up(sub: np.ndarray, lv: np.ndarray, lc: np.ndarray,
             ld: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The vertebra code, category and disc level of each voxel of ``sub`` (one layer's
    label values), through the layer's look-up tables, slab by slab on several threads.
    One look-up serves both first tables (vertebra code x 8 + category), then is split:
    a gather over the box costs several times the arithmetic."""
    both_lut = lv * 8 + lc
    v = np.empty(sub.shape, dtype=both_lut.dtype)
    c = np.empty(sub.shape, dtype=np.uint8)
    d = np.empty(sub.shape, dtype=ld.dtype) if ld.any() else None

    def part(a: int, b: int) -> None:
        both = both_lut[sub[a:b]]
        np.right_shift(both, 3, out=v[a:b])
        np.bitwise_and(both, 7, out=c[a:b], casting="unsafe")
        if d is not None:
            d[a:b] = ld[sub[a:b]]

    parallel.over_slabs(part, sub.shape[0], min_slab=8, plane=int(np.prod(sub.shape[1:])))
    return v, c, d


def _vertebra_mask(layer: np.ndarray, lut: np.ndarray, mapping: dict, layer_no: int) -> np.ndarray:
    """Where ``layer`` holds a vertebra value (``lut[value] > 0``): a value-range test when
    the vertebra values form a range holding nothing else, else a look-up table."""
    vals = np.flatnonzero(lut)
    if vals.size == 0:
        return np.zeros(layer.shape, dtype=bool)
    lo, hi = int(vals.min()), int(vals.max())
    others = [v for (ln, v) in mapping if ln == layer_no and lo <= v <= hi and not lut[v]]
    if not others and np.issubdtype(layer.dtype, np.integer):
        if layer.dtype == np.uint8 and hi < 256:
            return (layer - np.uint8(lo)) <= np.uint8(hi - lo)   # wraps below lo: one pass
        return (layer >= lo) & (layer <= hi)
    return lut[np.clip(layer, 0, lut.size - 1)] > 0


#: Axial slabs of this many voxels bound the temporaries of :func:`_vertebra_extent`.
SLAB_VOXELS = 1 << 22


def _vertebra_extent(layer: np.ndarray, lut: np.ndarray, mapping: dict, layer_no: int) -> list[np.ndarray]:
    """Per array axis, which indices hold a vertebra voxel.  Computed slab by slab: a
    full-volume mask would be allocated afresh on every run, which costs more than the
    test itself on a large CT."""
    step = max(1, SLAB_VOXELS // max(1, layer[0].size))
    hits = [np.zeros(n, dtype=bool) for n in layer.shape]

    def part(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        h1, h2 = np.zeros(layer.shape[1], dtype=bool), np.zeros(layer.shape[2], dtype=bool)
        for k0 in range(a, b, step):
            m = _vertebra_mask(layer[k0:min(k0 + step, b)], lut, mapping, layer_no)
            rows = m.any(axis=2)
            hits[0][k0:min(k0 + step, b)] = rows.any(axis=1)
            h1 |= rows.any(axis=0)
            h2 |= m.any(axis=1).any(axis=0)
        return h1, h2

    for h1, h2 in parallel.over_slabs(part, layer.shape[0], min_slab=step):
        hits[1] |= h1
        hits[2] |= h2
    return hits


def box_from_hits(hits: list[np.ndarray], geometry: Geometry, margin_mm: float) -> Box:
    """Index box around the indices marked on each array axis, grown by ``margin_mm``."""
    lo, hi = [], []
    for axis, h in enumerate(hits):
        hit = np.flatnonzero(h)
        grow = int(np.ceil(margin_mm / geometry.spacing_along_array_axis(axis)))
        lo.append(max(0, int(hit[0]) - grow))
        hi.append(min(geometry.shape[axis], int(hit[-1]) + 1 + grow))
    return Box(tuple(lo), tuple(hi))  # type: ignore[arg-type]


def _drop_absent(lab: SpineLabels) -> None:
    """Keep only the vertebrae that have voxels in the box (renumbering ``vert``)."""
    lab.voxels_cache = None
    present = lab.vertebra_voxels()
    if not present:
        raise InputError(f"{lab.source}: none of its vertebrae lies inside the CT's field of view")
    if len(present) == len(lab.names):
        return
    old = lab.names
    keep = [n for n in old if n in present]
    remap = np.zeros(len(old) + 1, dtype=np.int16)
    for new_code, name in enumerate(keep, start=1):
        remap[old.index(name) + 1] = new_code
    lab.vert = remap[lab.vert]
    lab.names = keep
    lab.voxels_cache = None


def _trim_sacrum_to_s1(lab: SpineLabels, code: int) -> None:
    """Keep as S1 only the cranial part of a whole-sacrum label; the rest becomes bone."""
    idx = np.flatnonzero(lab.vert.ravel() == code)
    if idx.size == 0:
        return
    g = lab.box_geometry
    ras = g.kji_to_ras(np.stack(np.unravel_index(idx, lab.vert.shape), axis=1))
    s = ras @ AXIS_S
    rest = idx[s < s.max() - SACRUM_S1_HEIGHT_MM]
    lab.vert.ravel()[rest] = 0
    lab.category.ravel()[rest] = CAT_BONE
    lab.inputs["sacrum_as_S1"] = f"cranial {SACRUM_S1_HEIGHT_MM:g} mm of the sacrum label stand for S1"


# ---------------------------------------------------------------------- checks shared by all sources
def check_vertebrae(lab: SpineLabels, volume: Volume, min_fragment_mm3: float = 1000.0) -> None:
    """Duplicated vertebrae (two separate bodies with one label), truncation by the scan's
    edge, labels that are not bone on this CT, and gaps in the sequence."""
    g = lab.box_geometry
    voxel_mm3 = g.voxel_volume_mm3
    vox = lab.vertebra_voxels()
    ax = volume.geometry.axial_axis

    def inspect(name: str) -> tuple[tuple | None, bool, float | None]:
        """(two bodies: (big, second, ds) or None, truncated, 75th HU percentile)."""
        idx = vox[name]
        kji = np.unravel_index(idx, lab.vert.shape)
        lo = [int(a.min()) for a in kji]
        hi = [int(a.max()) + 1 for a in kji]
        sub = np.zeros([h - l for l, h in zip(lo, hi)], dtype=bool)
        sub[tuple(a - l for a, l in zip(kji, lo))] = True
        comp, n = ndimage.label(sub, structure=np.ones((3, 3, 3), bool))
        two = None
        if n > 1:
            sizes = np.bincount(comp.ravel())[1:] * voxel_mm3
            order = np.argsort(sizes)[::-1]
            big, second = sizes[order[0]], sizes[order[1]]
            # two vertebra-sized bodies one above the other (not a process cut off by the scan's edge)
            if second >= max(min_fragment_mm3, 0.5 * big):
                c1 = np.array(ndimage.center_of_mass(sub, comp, int(order[0]) + 1)) + lo
                c2 = np.array(ndimage.center_of_mass(sub, comp, int(order[1]) + 1)) + lo
                r1, r2 = g.kji_to_ras(c1), g.kji_to_ras(c2)
                ds = float(abs((r1 - r2) @ AXIS_S))
                if ds > 10.0:
                    two = (big, second, ds)
        # truncated by the scan's edge along the axial axis
        truncated = lo[ax] + lab.box.lo[ax] == 0 or hi[ax] + lab.box.lo[ax] == volume.geometry.shape[ax]
        hu = volume.array[kji[0] + lab.box.lo[0], kji[1] + lab.box.lo[1], kji[2] + lab.box.lo[2]]
        return two, truncated, float(np.percentile(hu, 75)) if hu.size else None

    bad_bone = []
    # one vertebra per task on several threads; the findings are recorded in the vertebrae's order
    for name, (two, truncated, p75) in zip(vox, parallel.parallel_map(inspect, list(vox))):
        if two is not None:
            big, second, ds = two
            lab.add_problem(name, f"label found on two separate bodies {ds:.0f} mm apart along S")
            lab.warnings.append(f"{lab.source}: vertebra {name} is labelled on two separate bodies "
                                f"({big / 1000:.1f} and {second / 1000:.1f} cm³, {ds:.0f} mm apart "
                                "along the spine); levels next to it are not assessed")
        if truncated:
            lab.truncated.add(name)
        if p75 is not None and p75 < BONE_CHECK_HU:
            bad_bone.append((name, p75))
    small = [(n, idx.size * voxel_mm3 / 1000) for n, idx in vox.items()
             if n not in lab.truncated and idx.size * voxel_mm3 < MIN_VERTEBRA_MM3]
    if small and len(small) >= max(2, (len(vox) + 1) // 2):
        raise InputError(f"{lab.source}: its 'vertebrae' are far too small for vertebrae ({len(small)} of {len(vox)} "
                         f"under {MIN_VERTEBRA_MM3 / 1000:g} cm³, e.g. {small[0][0]} {small[0][1]:.2f} cm³): is this a "
                         "vertebra label map?")
    for name, cm3 in small:
        lab.add_problem(name, f"too small for a vertebra ({cm3:.2f} cm³)")
        lab.warnings.append(f"{lab.source}: vertebra {name} is too small for a vertebra ({cm3:.2f} cm³, not cut by "
                            "the scan's edge); levels next to it are not assessed")
    if bad_bone and len(bad_bone) >= max(2, (len(vox) + 1) // 2):
        raise InputError(f"{lab.source}: the vertebra labels do not lie on bone in this CT (75th percentile "
                         f"{np.median([b for _, b in bad_bone]):.0f} HU inside {len(bad_bone)} of {len(vox)} "
                         "vertebrae); the label map belongs to another scan or is misaligned")
    for name, p75 in bad_bone:
        lab.add_problem(name, f"its voxels are not bone on this CT (75th percentile {p75:.0f} HU)")
        lab.warnings.append(f"{lab.source}: vertebra {name} does not lie on bone in this CT (75th percentile "
                            f"{p75:.0f} HU < {BONE_CHECK_HU:g}); levels next to it are not assessed")
    check_sequence(lab)


def check_sequence(lab: SpineLabels) -> None:
    """Warn about vertebrae missing between present ones (the levels are not assessed)."""
    present = sorted(lab.names, key=order_number)
    regular = [n for n in present if n in VERTEBRAE]
    for a, b in zip(regular[:-1], regular[1:]):
        ia, ib = VERTEBRAE.index(a), VERTEBRAE.index(b)
        if ib - ia > 1:
            missing = VERTEBRAE[ia + 1:ib]
            transitional = [n for n in present if order_number(a) < order_number(n) < order_number(b)]
            if transitional:
                lab.warnings.append(f"{lab.source}: transitional vertebra {', '.join(transitional)} between {a} and "
                                    f"{b}; levels next to it are not in the map and not assessed")
                continue
            lab.warnings.append(f"{lab.source}: vertebra labels are not contiguous: {', '.join(missing)} missing "
                                f"between {a} and {b}; the levels between them are not assessed")
    for n in present:
        if n in TRANSITIONAL and not any(n in w for w in lab.warnings):
            lab.warnings.append(f"{lab.source}: transitional vertebra {n}; levels next to it are not assessed")


# ---------------------------------------------------------------------- from points
def labels_from_points(points: dict[str, np.ndarray], volume: Volume, bone_hu: float = 200.0,
                       margin_mm: float = 40.0, source: str = "point list", duplicated: set[str] | None = None,
                       warnings: list[str] | None = None) -> SpineLabels:
    """Vertebra masks made from the CT around one point per vertebral body.

    Bone is the CT at or above ``bone_hu`` with its enclosed cavities filled (the
    trabecular core of a body enclosed by its cortex; the canal, open along the spine,
    stays empty); it is cut into vertebrae by the planes half-way between consecutive
    body points, perpendicular to the line joining them, limited to 90 mm from that line (a lumbar spinous process reaches 80 mm behind its body point),
    and each vertebra is the bone connected to its body point; a piece cut off from its
    body by a plane goes to the vertebra it touches, and the rest of the bone continuous
    with the vertebrae (ribs, pelvis) is "other bone".  Calcifications touching bone at
    that threshold become part of it: a label map gives better results."""
    warnings = list(warnings or [])
    geom = volume.geometry
    inside = {n: p for n, p in points.items() if geom.contains_ras(p[None])[0]}
    for n in sorted(set(points) - set(inside), key=order_number):
        warnings.append(f"{source}: point {n} lies outside the CT; ignored")
    names = sorted(inside, key=order_number)
    if not names:
        raise InputError(f"{source}: no vertebra point lies inside the CT")
    P = np.array([inside[n] for n in names])
    ijk = np.round(geom.ras_to_ijk(P)).astype(int)
    kji = ijk[:, ::-1]
    flat = np.ravel_multi_index(tuple(np.clip(kji[:, a], 0, geom.shape[a] - 1) for a in range(3)), geom.shape)
    box = spine_box(flat, geom, margin_mm + 30.0)
    g = box.geometry(geom)
    ct = volume.array[box.slices]
    bone = ct >= bone_hu
    # the body's trabecular interior: enclosed in 3D, or by the cortex ring of an axial
    # slice (in 3D it leaks through the discs) when its CT is marrow's, not the canal's
    filled = fill_enclosed(bone) | fill_marrow_by_slice(bone, ct, g.axial_axis)
    bone_idx = np.flatnonzero(filled)
    ras = g.kji_to_ras(np.stack(np.unravel_index(bone_idx, filled.shape), axis=1))
    # axis through the points, planes half-way between consecutive points
    if len(names) == 1:
        axes = np.array([[0.0, 0.0, 1.0]])
    else:
        d = np.gradient(P, axis=0)
        axes = -d / np.linalg.norm(d, axis=1, keepdims=True)  # cranial direction (names cranial->caudal)
    code = np.zeros(len(ras), dtype=np.int16)
    best = np.full(len(ras), np.inf)
    half_heights = []
    for n in range(len(names)):
        if len(names) == 1:
            half_heights.append(15.0)
        else:
            nb = [abs((P[m] - P[n]) @ axes[n]) for m in (n - 1, n + 1) if 0 <= m < len(names)]
            half_heights.append(0.5 * min(nb))
    for n in range(len(names)):
        rel = ras - P[n]
        along = rel @ axes[n]
        radial = np.linalg.norm(rel - np.outer(along, axes[n]), axis=1)
        ok = (np.abs(along) <= half_heights[n] * 1.05) & (radial <= 90.0)
        score = np.abs(along) / half_heights[n]
        better = ok & (score < best)
        code[better] = n + 1
        best[better] = score[better]
    vert = np.zeros(filled.shape, dtype=np.int16)
    vert.ravel()[bone_idx] = code
    # the body point's component of each slab; a piece of a slab cut off from its body
    # (a spinous process reaching down into the next vertebra's slab) goes to the
    # vertebra it touches across the plane; bone touching none (ribs, pelvis) is dropped
    pieces = []
    for n in range(len(names)):
        m = vert == n + 1
        comp, k = ndimage.label(m)
        if k > 1:
            p_kji = np.round(g.ras_to_ijk(P[n])[::-1]).astype(int)
            p_kji = np.clip(p_kji, 0, np.array(m.shape) - 1)
            keep = comp[tuple(p_kji)]
            if keep == 0:
                keep = int(np.argmax(np.bincount(comp.ravel())[1:]) + 1)
            objs = ndimage.find_objects(comp)
            for c in range(1, k + 1):
                if c != keep and objs[c - 1] is not None:
                    piece = comp[objs[c - 1]] == c
                    # bone has cortex; an enhanced vessel (blood up to 400 HU) does not
                    if np.percentile(ct[objs[c - 1]][piece], 90) >= CORTEX_HU:
                        pieces.append((objs[c - 1], piece))
            vert[m & (comp != keep)] = 0
    _reattach_pieces(vert, pieces)
    category = np.zeros(vert.shape, dtype=np.uint8)
    # bone continuous with a vertebra but left outside it by the slab planes or the
    # 90 mm limit (a rib, the pelvis, a process's end) is bone, not a calcification
    # (bone by its cortex - at least 400 HU, filled like the bodies - so that enhanced
    # blood, up to 400 HU, touching a vertebra is not taken for bone)
    cortex = ct >= CORTEX_HU
    other = (fill_enclosed(cortex) | fill_marrow_by_slice(cortex, ct, g.axial_axis)) & (vert == 0)
    comp, k = ndimage.label(other | (vert > 0))
    if k:
        joined = np.zeros(k + 1, dtype=bool)
        joined[np.unique(comp[vert > 0])] = True
        joined[0] = False
        category[joined[comp] & other] = CAT_BONE
    lab = SpineLabels(geom, box, list(names), vert, category, None, source,
                      conv.ConventionChoice("points", "points"), warnings=warnings)
    for n in sorted(duplicated or []):
        lab.add_problem(n, "given by more than one point")
    lab.inputs["bone_threshold_hu"] = bone_hu
    _drop_absent(lab)
    check_vertebrae(lab, volume)
    return lab


#: a piece of "bone" whose densest tenth is below this has no cortex: enhanced blood
#: (up to 400 HU), not bone
CORTEX_HU = 400.0


def fill_marrow_by_slice(bone: np.ndarray, ct: np.ndarray, axis: int, marrow_min_hu: float = 60.0) -> np.ndarray:
    """Per axial slice, the holes of ``bone`` (regions not reaching the slice's border)
    whose mean CT value is at least ``marrow_min_hu``: trabecular marrow inside a cortex
    ring.  The canal (CSF and cord, 0-40 HU) and fat stay empty."""
    out = np.zeros(bone.shape, dtype=bool)
    for k in range(bone.shape[axis]):
        b = np.take(bone, k, axis=axis)
        if not b.any():
            continue
        holes = ndimage.binary_fill_holes(b) & ~b
        if not holes.any():
            continue
        lab, n = ndimage.label(holes)
        mean = ndimage.mean(np.take(ct, k, axis=axis), lab, np.arange(1, n + 1))
        keep = np.r_[False, np.asarray(mean) >= marrow_min_hu]
        sl = [slice(None)] * 3
        sl[axis] = k
        out[tuple(sl)] = keep[lab]
    return out


def _reattach_pieces(vert: np.ndarray, pieces: list) -> None:
    """Give each cut-off piece (its bounding slices and mask) the vertebra code it touches
    most (26 neighbours), repeatedly while some piece finds a neighbour."""
    todo = list(pieces)
    while todo:
        left = []
        for sl, m in todo:
            grow = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
            sub = vert[grow]
            local = np.zeros(sub.shape, dtype=bool)
            off = tuple(s.start - g.start for s, g in zip(sl, grow))
            local[tuple(slice(o, o + d) for o, d in zip(off, m.shape))] = m
            ring = ndimage.binary_dilation(local, structure=np.ones((3, 3, 3), bool)) & ~local
            codes = sub[ring]
            codes = codes[codes > 0]
            if codes.size:
                sub[local] = np.bincount(codes).argmax()
            else:
                left.append((sl, m))
        if len(left) == len(todo):
            break
        todo = left


def fill_enclosed(mask: np.ndarray) -> np.ndarray:
    """The mask with every background region that does not reach the array's border
    filled (3D enclosed cavities), via one labelling of the background."""
    comp, n = ndimage.label(~mask)
    if n == 0:
        return mask
    border = np.zeros(n + 1, dtype=bool)
    for ax in range(3):
        for end in (0, -1):
            border[np.unique(np.take(comp, end, axis=ax))] = True
    border[0] = True
    return mask | ~border[comp]


# ---------------------------------------------------------------------- loading
def load_spine_labels(volume: Volume, vertebrae: str | Path | None = None, convention: str = "auto",
                      points: str | Path | None = None, margin_mm: float = 40.0, aorta: str | Path | None = None,
                      bone_hu: float = 200.0, progress: Progress | None = None,
                      label_image: LabelImage | None = None, values: LabelValues | None = None,
                      subregions: str | Path | None = None) -> SpineLabels:
    """Read the vertebra input (label map / segmentation, or point list) for a CT.
    ``label_image``: the label map ``vertebrae`` already read (:func:`read_label_map`),
    ``values`` its :func:`label_values`; ``subregions``: a SPINEPS sub-region mask."""
    from .points import read_points, vertebra_points
    if (vertebrae is None) == (points is None):
        raise InputError("give the vertebrae either as a label map/segmentation (--vertebrae) or as a point list "
                         "(--points), not both")
    if vertebrae is not None:
        path = Path(vertebrae)
        li = label_image if label_image is not None else read_label_map(path)
        lab = labels_from_label_image(li, volume, convention, margin_mm, source=path.name, progress=progress,
                                      values=values if label_image is not None else None)
    else:
        path = Path(points)
        pts = read_points(path)
        found, warns, dup = vertebra_points(pts, path.name)
        if not found and not dup:
            raise InputError(f"{path}: no point names a vertebra (labels like T8, L1 expected)")
        lab = labels_from_points(found, volume, bone_hu, margin_mm, path.name, dup, warns)
    if aorta is not None:
        add_aorta_mask(lab, aorta)
    if subregions is not None:
        add_subregions(lab, subregions)
    return lab


def add_subregions(lab: SpineLabels, path: str | Path) -> None:
    """Read a SPINEPS sub-region mask onto the box (:mod:`.subregions`); its canal and discs
    also mark the canal and the disc spaces where the vertebra input has none."""
    from .subregions import read_subregions
    lab.subregion, lab.subregion_parts = read_subregions(path, lab.geometry, lab.box.slices)


def spine_labels(volume: Volume, label_image: LabelImage | None = None, points: list | None = None,
                 convention: str = "auto", aorta_mask: np.ndarray | None = None, bone_hu: float = 200.0,
                 margin_mm: float = 40.0, source: str | None = None,
                 progress: Progress | None = None) -> SpineLabels:
    """One entry for every vertebra input, in the form the Slicer panel has them: a
    :class:`~calcinosis.core.image_io.LabelImage` on its own grid (a label map node, or
    ``mrml.label_image_from_segmentation`` with the segment names kept), or a point list
    ``[(label, ras or None)]`` (``mrml.points_from_markups``).  ``aorta_mask``: an optional
    boolean array on the CT grid."""
    from .points import vertebra_points
    if (label_image is None) == (points is None):
        raise InputError("give the vertebrae either as a label map/segmentation or as a point list, not both")
    if label_image is not None:
        lab = labels_from_label_image(label_image, volume, convention, margin_mm, source or "vertebra labels",
                                      progress)
    else:
        name = source or "point list"
        found, warns, dup = vertebra_points(points, name)
        if not found and not dup:
            raise InputError(f"{name}: no point names a vertebra (labels like T8, L1 expected)")
        lab = labels_from_points(found, volume, bone_hu, margin_mm, name, dup, warns)
    if aorta_mask is not None:
        if aorta_mask.shape != volume.geometry.shape:
            raise InputError("aorta mask: not on the CT grid")
        m = aorta_mask[lab.box.slices].astype(bool)
        lab.category[m & (lab.vert == 0)] = CAT_AORTA
    return lab


def read_label_map(path: str | Path) -> LabelImage:
    """A label map or segmentation on its own grid.  Plain label maps (NIfTI, NRRD, MHA)
    are read here without listing their values (a full-volume ``unique`` costs most of a
    second on a 512 x 512 x 600 map; :func:`labels_from_label_image` counts the values in
    the same pass that finds where they lie); everything else goes through
    :func:`calcinosis.core.image_io.load_label_image`."""
    import SimpleITK as sitk
    path = Path(path)
    name = path.name.lower()
    plain = name.endswith((".nii", ".nii.gz", ".mha", ".mhd")) or (name.endswith(".nrrd")
                                                                   and not name.endswith(".seg.nrrd"))
    if not path.is_file() or not plain:
        return image_io.load_label_image(path)
    from calcinosis.core import segnrrd
    if name.endswith(".nrrd") and segnrrd.is_segmentation_nrrd(path):
        return image_io.load_label_image(path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        raise InputError(f"{path}: cannot read ({str(e).strip().splitlines()[-1][:120]})") from None
    if img.GetNumberOfComponentsPerPixel() != 1 or img.GetDimension() != 3:
        return image_io.load_label_image(path)
    arr, geom = image_io.sitk_to_array_and_geometry(img)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError(f"{path}: label map holds non-integer values; a label map needs whole numbers")
        arr = arr.astype(np.int32)
    elif arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise InputError(f"{path}: label map holds negative values ({int(arr.min())})")
    return LabelImage([arr], geom, [], source=str(path))


def add_aorta_mask(lab: SpineLabels, path: str | Path) -> None:
    """Mark the voxels of a separate aorta mask (any non-zero label) as aorta."""
    li = image_io.load_label_image(path, reference=lab.geometry)
    m = li.union()[lab.box.slices]
    if not m.any():
        lab.warnings.append(f"{Path(path).name}: the aorta mask holds no voxel near the spine")
    lab.category[m & (lab.vert == 0)] = CAT_AORTA
