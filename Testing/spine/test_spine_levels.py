"""Vertebral levels from every kind of input, and what happens when the input is bad."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calcinosis.core import image_io, parallel, segnrrd
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry, orientation_code
from calcinosis.core.image_io import LabelImage, Segment
from calcinosis.core.volume import Volume
from calcinosis.spine import conventions as conv
from calcinosis.spine import frame, phantom, pipeline, points, vertebrae
from calcinosis.spine.anatomy import LEVELS
from calcinosis.spine.params import SpineParams

from spine_helpers import expected_assessed, get_phantom, labels_of, mapped, score, volume_of

TS = conv.structure_names("totalsegmentator")
TS_VALUE = {v: k for k, v in TS.items()}


# ---------------------------------------------------------------------- convention detection
def _stack(values, step_mm=25.0, top=500.0):
    """Value -> S position, the first value most cranial."""
    return {v: top - n * step_mm for n, v in enumerate(values)}


def test_detects_each_convention_from_values_and_order():
    ts = [TS_VALUE[n] for n in ("T12", "L1", "L2", "L3", "L4", "L5", "S1")]   # 32 … 26: value falls caudally
    assert conv.detect_convention({v: 1 for v in ts}, _stack(ts, 35)).key == "totalsegmentator"
    verse = list(range(20, 25))  # L1..L5, value rises caudally: TotalSegmentator reads organs, TotalSpineSeg gaps
    assert conv.detect_convention({v: 1 for v in verse}, _stack(verse, 37)).key == "verse"
    tss = [21, 22, 23, 24, 25, 72, 73]   # T1..T5 with two discs
    choice = conv.detect_convention({v: 1 for v in tss}, {21: 500, 72: 489, 22: 478, 73: 467, 23: 456,
                                                           24: 434, 25: 412})
    assert choice.key == "totalspineseg"


def test_same_values_read_by_their_order_along_the_spine():
    """Values 27-31 are L5…L1 for TotalSegmentator and T7…T11 for TotalSpineSeg: which one
    the map picks follows where the labels lie (cranial vertebrae higher)."""
    vals = [27, 28, 29, 30, 31]
    assert conv.detect_convention({v: 1 for v in vals}, _stack(vals[::-1], 37)).key == "totalsegmentator"
    assert conv.detect_convention({v: 1 for v in vals}, _stack(vals, 25)).key == "totalspineseg"


def test_same_order_told_apart_by_vertebra_spacing():
    """21-25 are T1-T5 (TotalSpineSeg) or L2-L6 (VerSe), stacked the same way: adult
    spacing (about 21 mm for T1-T5, 37 mm for lumbar) decides."""
    vals = [21, 22, 23, 24, 25]
    assert conv.detect_convention({v: 1 for v in vals}, _stack(vals, 21)).key == "totalspineseg"
    assert conv.detect_convention({v: 1 for v in vals}, _stack(vals, 37)).key == "verse"


def test_unknown_values_are_named():
    with pytest.raises(conv.ConventionError, match="200"):
        conv.detect_convention({27: 1, 28: 1, 200: 1}, {27: 0.0, 28: 30.0, 200: 10.0})
    with pytest.raises(conv.ConventionError, match=r"values 60, 63 are not in the VerSe"):
        conv.detect_convention({20: 1, 60: 1, 63: 1}, {20: 0.0, 60: 1.0, 63: 2.0}, given="verse")


def test_a_single_ambiguous_value_asks_for_the_convention():
    with pytest.raises(conv.ConventionError, match="--convention"):
        conv.detect_convention({27: 5}, {27: 0.0})


def test_phantom_label_maps_detected_in_all_three_conventions():
    for coverage, convention in (("tap", "totalsegmentator"), ("lumbar", "totalspineseg"), ("chest", "verse"),
                                 ("lumbar", "spineps")):
        res = mapped(coverage, convention)
        assert res.labels.convention.key == convention
    assert mapped("lumbar", "totalspineseg").labels.has_discs
    assert mapped("lumbar", "spineps").labels.has_discs


def test_spineps_instances_read_with_discs_and_end_plates():
    """SPINEPS instance masks use VerSe's vertebra numbers plus discs 100 + the vertebra
    above (119 = T12-L1, 124 = L5-S1) and the end plates facing a disc 200 + it (bone):
    detected only when such a value is present - without one the map is VerSe's."""
    vals = [19, 20, 21, 119, 120, 219, 220]          # T12, L1, L2, the discs and end plates between
    pos = {19: 100.0, 119: 84.0, 219: 86.0, 20: 68.0, 120: 50.0, 220: 52.0, 21: 32.0}
    choice = conv.detect_convention({v: 1 for v in vals}, pos)
    assert choice.key == "spineps"
    table = conv.structure_names("spineps")
    assert table[119] == "disc:T12-L1" and table[124] == "disc:L5-S1" and table[107] == "disc:C7-T1"
    assert conv.category(table[219]) == "bone" and table[26] == "sacrum"
    plain = [19, 20, 21]
    assert conv.detect_convention({v: 1 for v in plain}, _stack(plain, 37)).key == "verse"


def test_given_convention_that_does_not_fit_is_an_error():
    r = get_phantom("lumbar")
    with pytest.raises(conv.ConventionError, match="not in the VerSe convention"):
        labels_of(r, convention="verse")


# ---------------------------------------------------------------------- problems in the labels
def _relabel(labels, mapping):
    out = labels.copy()
    for src, dst in mapping.items():
        out[labels == src] = dst
    return out


def test_missing_vertebra_warned_and_its_levels_not_assessed():
    r = get_phantom("chest")
    lab_arr = _relabel(r.labels, {TS_VALUE["T8"]: 0})
    res = pipeline.map_spine(volume_of(r), labels_of(r, lab_arr))
    assert any("not contiguous" in w and "T8" in w for w in res.warnings)
    assert "T7-T8" not in res.assessed and "T8-T9" not in res.assessed
    assert "T6-T7" in res.assessed and "T9-T10" in res.assessed
    assert all(row["level"] not in ("T7-T8", "T8-T9") for row in res.table.rows)


def test_duplicated_vertebra_warned_and_its_levels_not_assessed():
    """T10's label value replaced by T8's: T8 is labelled on two bodies."""
    r = get_phantom("chest")
    lab_arr = _relabel(r.labels, {TS_VALUE["T10"]: TS_VALUE["T8"]})
    lab = labels_of(r, lab_arr)
    assert "T8" in lab.problems
    assert any("T8" in w and "two separate bodies" in w for w in lab.warnings)
    res = pipeline.map_spine(volume_of(r), lab)
    for lv in ("T7-T8", "T8-T9", "T9-T10", "T10-T11"):
        assert lv not in res.assessed
    assert "T6-T7" in res.assessed and "T11-T12" in res.assessed


def test_duplicated_segment_names_warned():
    r = get_phantom("lumbar")
    values = [v for v in np.unique(r.labels) if v]
    segs = [Segment(TS.get(int(v), f"x{v}"), int(v)) for v in values]
    segs = [s if s.name != "L3" else Segment("L2", s.label_value) for s in segs]   # two segments named L2
    segs = [Segment(f"vertebrae_{s.name}" if s.name in ("L1", "L2", "L4", "L5", "T12") else s.name, s.label_value)
            for s in segs]
    li = LabelImage([r.labels], r.geometry, segs)
    lab = vertebrae.labels_from_label_image(li, volume_of(r), "auto")
    assert lab.convention.key == "names"
    assert "L2" in lab.problems and any("L2" in w and "more than one segment" in w for w in lab.warnings)


def test_vertebrae_out_of_order_warned():
    r = get_phantom("chest")
    lab_arr = _relabel(r.labels, {TS_VALUE["T8"]: TS_VALUE["T9"], TS_VALUE["T9"]: TS_VALUE["T8"]})
    lab = labels_of(r, lab_arr)
    fr = frame.build_frame(lab)
    assert "T8" not in fr.order and "T9" not in fr.order
    assert any("out of anatomical order" in w for w in lab.warnings)


def test_label_map_without_vertebrae_is_an_error():
    r = get_phantom("lumbar")
    only_aorta = np.where(r.labels == TS_VALUE["aorta"], r.labels, 0).astype(np.uint8)
    with pytest.raises(InputError, match="no vertebra"):
        labels_of(r, only_aorta, convention="totalsegmentator")
    with pytest.raises(InputError, match="empty"):
        labels_of(r, np.zeros_like(r.labels))


def test_labels_outside_the_ct_are_an_error():
    r = get_phantom("lumbar")
    g = r.geometry
    far = Geometry.create(g.size_ijk, g.spacing, np.asarray(g.origin_ras) + [0, 0, 900.0], g.direction)
    with pytest.raises(InputError, match="inside the CT's field of view"):
        labels_of(r, geometry=far)


def test_labels_not_on_bone_are_an_error():
    """A label map of another scan (here: shifted 45 mm to the side) does not lie on bone."""
    r = get_phantom("lumbar")
    g = r.geometry
    shifted = Geometry.create(g.size_ijk, g.spacing, np.asarray(g.origin_ras) + [45.0, 0, 0], g.direction)
    with pytest.raises(InputError, match="do not lie on bone"):
        labels_of(r, geometry=shifted)


# ---------------------------------------------------------------------- other grids
def test_labels_on_another_grid_are_resampled_in_physical_space(tmp_path):
    """The label map written on a coarser PIR grid (2 mm) gives the same levels and the
    accuracy still holds (2 mm labels blur the vertebra edges by up to a voxel)."""
    r = get_phantom("lumbar")
    g = r.geometry
    d = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    corners = g.corners_ras()
    c = corners.mean(axis=0)
    sp = np.array([2.0, 2.0, 2.0])
    size = np.ceil(np.abs((corners - c) @ d).max(axis=0) * 2 / sp).astype(int) + 1
    pir = Geometry.create(size, sp, c - d @ ((size - 1) * sp / 2), d)
    assert orientation_code(pir) == "PIR"
    coarse = image_io.resample_labels(r.labels, g, pir)
    path = tmp_path / "labels_pir.nii.gz"
    image_io.write_image(coarse, pir, path)
    li = image_io.load_label_image(path)
    assert li.geometry.same_grid(pir, tol_mm=1e-3)
    vol = volume_of(r)
    lab = vertebrae.labels_from_label_image(li, vol, "auto")
    res = pipeline.map_spine(vol, lab, SpineParams(vertebra_margin_mm=2.0, bone_margin_mm=2.0))
    assert res.assessed == expected_assessed(r.labels, "totalsegmentator")
    s = score(r, res)
    assert s["level_rate"] >= 0.95 and s["segment_rate"] >= 0.90, s["wrong"]


def test_verse_sample_pir_body_centres_match_its_centroids(verse_sample):
    """The VerSe sample (PIR, 1 x 1 x 2 mm) with its published body centroids (voxel
    coordinates of that grid): the body centres the frame finds agree within 4 mm (median
    2.5 mm), on its own grid and after resampling onto an axial LPS grid.  Tolerance: the
    frame's body centre is the middle of the body's extent (front surface to posterior
    wall, endplate to endplate), VerSe's the body's centre of mass, which differ by a few
    mm on a kidney-shaped, 2 mm-sliced body (about 10% of its depth).  The whole mask's
    centroid lies > 6 mm away (the arch pulls it back), so the test tells them apart."""
    li = image_io.load_label_image(verse_sample / "sub-verse004_seg-vert_msk.nii.gz")
    assert orientation_code(li.geometry) == "PIR"
    ctd = json.loads((verse_sample / "sub-verse004_seg-subreg_ctd.json").read_text())
    names = {16 + n: v for n, v in enumerate(["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"])}
    truth = {names[c["label"]]: li.geometry.ijk_to_ras(np.array([c["X"], c["Y"], c["Z"]])) for c in ctd[1:]}
    g = li.geometry
    lo, hi = g.corners_ras().min(axis=0), g.corners_ras().max(axis=0)
    sp = np.array([1.0, 1.0, 1.5])
    axial = Geometry.create(np.ceil((hi - lo) / sp).astype(int), sp, (hi[0], hi[1], lo[2]),
                            np.diag([-1.0, -1.0, 1.0]))   # the usual DICOM axial grid (LPS)
    assert orientation_code(axial) == "LPS"
    for grid in (g, axial):
        arr = image_io.resample_labels(li.layers[0], g, grid) if grid is not g else li.layers[0]
        vol = Volume(np.where(arr > 0, 400, 40).astype(np.int16), grid, {"modality": "CT"})
        lab = vertebrae.labels_from_label_image(LabelImage([arr], grid, []), vol, "auto")
        assert lab.convention.key == "verse"
        fr = frame.build_frame(lab)
        assert fr.assessed_levels() == ["T9-T10", "T10-T11", "T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4",
                                        "L4-L5"]
        err = {v.name: float(np.linalg.norm(v.body - truth[v.name])) for v in fr.vertebrae}
        assert max(err.values()) <= 4.0 and np.median(list(err.values())) <= 2.5, err
        assert all(np.linalg.norm(v.centroid - truth[v.name]) > 6.0 for v in fr.vertebrae)


# ---------------------------------------------------------------------- segment names and points
def test_segmentation_with_vertebra_names_gives_the_same_map(tmp_path):
    r = get_phantom("lumbar")
    values = sorted(int(v) for v in np.unique(r.labels) if v)
    names = []
    for n, v in enumerate(values):
        name = TS[v]
        if conv.category(name) == "vertebra":
            name = f"vertebrae_{name}" if n % 2 else name   # both spellings
        names.append(name)
    path = tmp_path / "vertebrae.seg.nrrd"
    segnrrd.write_seg_nrrd(r.labels, r.geometry, path, names, [(0.5, 0.5, 0.5)] * len(names), label_values=values)
    vol = volume_of(r)
    li = image_io.load_label_image(path)
    lab = vertebrae.labels_from_label_image(li, vol, "auto")
    assert lab.convention.key == "names"
    assert lab.has_aorta and lab.has_ribs
    res_names = pipeline.map_spine(vol, lab)
    res_map = mapped("lumbar")
    assert res_names.assessed == res_map.assessed
    key = ("level", "segment", "subsite", "pattern", "voxel_count")
    assert [tuple(row[k] for k in key) for row in res_names.table.rows] == \
        [tuple(row[k] for k in key) for row in res_map.table.rows]


def test_point_files_read_in_ras(tmp_path):
    pts = [("T12", np.array([1.0, -40.0, 300.0])), ("L1", np.array([2.0, -38.0, 270.0]))]
    mrk = points.write_points_mrk_json(pts, tmp_path / "p.mrk.json")
    back = points.read_points(mrk)
    assert [p[0] for p in back] == ["T12", "L1"]
    np.testing.assert_allclose(back[0][1], pts[0][1])
    data = json.loads(mrk.read_text())
    assert data["markups"][0]["coordinateSystem"] == "LPS"
    np.testing.assert_allclose(data["markups"][0]["controlPoints"][0]["position"], [-1.0, 40.0, 300.0])
    (tmp_path / "ras.csv").write_text("label,r,a,s\nT12,1,-40,300\nL1,2,-38,270\n")
    (tmp_path / "lps.csv").write_text("label,l,p,s\nT12,-1,40,300\nL1,-2,38,270\n")
    for f in ("ras.csv", "lps.csv"):
        got = points.read_points(tmp_path / f)
        np.testing.assert_allclose(got[1][1], pts[1][1])
    (tmp_path / "bad.csv").write_text("name,x,y\nT12,1,2\n")
    with pytest.raises(InputError, match="label"):
        points.read_points(tmp_path / "bad.csv")
    found, warns, dup = points.vertebra_points(pts + [("L1", np.zeros(3)), ("banana", np.zeros(3))])
    assert dup == {"L1"} and "L1" not in found and any("banana" in w for w in warns)


def test_points_one_per_body_map_the_phantom():
    """Point-list input: vertebrae segmented from the CT around the body points.  Levels
    and segments hold the issue's thresholds; sub-sites are looser (ribs fused to the
    vertebrae at the bone threshold stretch the transverse-process reach, so
    costotransverse can read as transverse_process): >= 80% here."""
    from calcinosis.spine import phantom
    r = get_phantom("tap")
    vol = volume_of(r)
    found, _, _ = points.vertebra_points(phantom.vertebra_body_points(r.phantom, r.geometry))
    lab = vertebrae.labels_from_points(found, vol)
    res = pipeline.map_spine(vol, lab)
    assert res.assessed == LEVELS
    s = score(r, res)
    assert s["level_rate"] >= 0.95 and s["segment_rate"] >= 0.90 and s["subsite_rate"] >= 0.80, s["wrong"]
    assert s["vascular_reported"] == []


def test_transitional_vertebra_warned_and_levels_beside_it_not_assessed():
    """S1 labelled L6 in VerSe (a lumbarised S1): L5-L6 and L6-S1 are not levels of the map."""
    r = get_phantom("lumbar", "verse")
    lab_arr = r.labels.copy()
    lab_arr[r.labels == 26] = 25   # VerSe sacrum (S1 and below) -> L6
    lab = labels_of(r, lab_arr)
    res = pipeline.map_spine(volume_of(r), lab)
    assert any("transitional vertebra L6" in w for w in res.warnings)
    assert "L5-S1" not in res.assessed and "L4-L5" in res.assessed


def test_segment_names_as_slicer_totalsegmentator_writes_them():
    from calcinosis.spine.anatomy import parse_disc_name, parse_vertebra_name
    for text, want in (("T8 Vertebra", "T8"), ("vertebrae_T8", "T8"), ("T8", "T8"), ("Vertebra L01", "L1"),
                       ("sacrum", "S1"), ("aorta", None), ("T8-T9 intervertebral disc", None)):
        assert parse_vertebra_name(text) == want, text
    assert parse_disc_name("T8-T9 intervertebral disc") == "T8-T9"
    assert parse_disc_name("disc_L5_S1") == "L5-S1"


def test_panel_entry_takes_points_or_labels():
    from calcinosis.spine import phantom
    r = get_phantom("lumbar")
    vol = volume_of(r)
    pts = [(n, p) for n, p in phantom.vertebra_body_points(r.phantom, r.geometry)] + [("L9", None)]
    lab = vertebrae.spine_labels(vol, points=pts)
    assert lab.convention.key == "points" and "L3" in lab.names
    with pytest.raises(InputError, match="not both"):
        vertebrae.spine_labels(vol, LabelImage([r.labels], r.geometry, []), pts)
    aorta = r.labels == TS_VALUE["aorta"]
    lab2 = vertebrae.spine_labels(vol, LabelImage([np.where(aorta, 0, r.labels).astype(np.uint8)], r.geometry, []),
                                  aorta_mask=aorta)
    assert lab2.has_aorta


def test_totalsegmentator_v1_maps_are_not_misread():
    """TotalSegmentator before v2 numbered the vertebrae 18-41 (L5…C1): every one of its values
    is also a v2 value, where 26-41 mean S1…T3 - eight vertebrae off.  Read through the
    extra v1 table, the map picks v1 (more values read as vertebrae in order, adult spacing)
    and maps the phantom with the issue's accuracy."""
    r = get_phantom("lumbar", "totalsegmentator_v1")
    assert set(np.unique(r.labels)) <= set(range(0, 105))
    assert conv.unknown_values(np.unique(r.labels)[1:], "totalsegmentator") == []   # v2 knows them all too
    res = mapped("lumbar", "totalsegmentator_v1")
    assert res.labels.convention.key == "totalsegmentator_v1"
    assert res.assessed == expected_assessed(r.labels, "totalsegmentator_v1")
    s = score(r, res)
    assert s["level_rate"] >= 0.95 and s["subsite_rate"] >= 0.85, s["wrong"]


@pytest.mark.parametrize("with_other_value_inside_range", [False, True])
def test_vertebra_extent_slab_by_slab_equals_the_whole_volume_mask(monkeypatch, with_other_value_inside_range):
    """The spine box comes from per-axis extents computed in axial slabs; they must equal
    the extents of the whole-volume mask whatever the slab size (range test and look-up
    table paths)."""
    rng = np.random.default_rng(4)
    layer = np.zeros((37, 23, 29), dtype=np.uint8)
    for v, (k, j, i) in zip((26, 27, 30), ((3, 4, 5), (20, 11, 2), (36, 22, 28))):
        layer[k, j, i] = v
    layer[rng.integers(0, 37, 40), rng.integers(0, 23, 40), rng.integers(0, 29, 40)] = 90   # not a vertebra
    lut = np.zeros(91, dtype=np.int16)
    lut[[26, 27, 30]] = [1, 2, 3]
    mapping = {(0, 26): "L5", (0, 27): "L4", (0, 30): "L1", (0, 90): "aorta"}
    if with_other_value_inside_range:
        mapping[(0, 28)] = "aorta"
        layer[10, 10, 10] = 28
    whole = lut[layer] > 0
    expected = [whole.any(axis=tuple(a for a in range(3) if a != axis)) for axis in range(3)]
    for slab_voxels, n_threads in ((1, 1), (1, 3), (23 * 29 * 5, 2), (1 << 22, 2)):
        monkeypatch.setattr(vertebrae, "SLAB_VOXELS", slab_voxels)
        parallel.set_threads(n_threads)
        try:
            got = vertebrae._vertebra_extent(layer, lut, mapping, 0)
        finally:
            parallel.set_threads(None)
        for axis in range(3):
            np.testing.assert_array_equal(got[axis], expected[axis])


def test_labels_built_alike_on_any_number_of_threads():
    """The label passes are split over threads (slabs, one vertebra per task): one thread
    and three must give the same arrays, vertebra voxels, problems and warnings, in the
    same order (a duplicated vertebra gives a problem to record)."""
    r = get_phantom("chest")
    lab_arr = _relabel(r.labels, {TS_VALUE["T10"]: TS_VALUE["T8"]})
    built = []
    for n_threads in (1, 3):
        parallel.set_threads(n_threads)
        try:
            built.append(labels_of(r, lab_arr))
        finally:
            parallel.set_threads(None)
    one, three = built
    assert one.box == three.box and one.names == three.names
    for attr in ("vert", "category", "disc"):
        a, b = getattr(one, attr), getattr(three, attr)
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    v1, v3 = one.vertebra_voxels(), three.vertebra_voxels()
    assert list(v1) == list(v3)
    for name in v1:
        np.testing.assert_array_equal(v1[name], v3[name])
        # and the cache holds what a plain whole-array search gives
        np.testing.assert_array_equal(v1[name], np.flatnonzero(one.vert == one.names.index(name) + 1))
    assert one.problems == three.problems and "T8" in one.problems
    assert one.warnings == three.warnings and one.truncated == three.truncated


def test_labels_coarser_than_the_ct_give_the_same_calcifications():
    """Issue 12: a label map on a 1.3 mm grid over a 0.8 mm CT (TotalSegmentator's own
    1.5 mm model resampled, say) once gave 62-64 calcifications instead of 45 - the label's
    staircase border left bone outside it.  Bone is decided from the CT now: the same
    calcifications are found as with exact labels, at the same levels, and nothing else."""
    spec = phantom.PhantomSpec(coverage="lumbar", spacing=(0.8, 0.8, 1.25), size_xy=None, seed=3,
                               convention="totalsegmentator")
    ph = phantom.build_phantom(spec)
    r = phantom.render_phantom(ph, phantom.default_geometry(ph))
    g = r.geometry
    sp = np.array([1.3, 1.3, 1.3])
    size = np.ceil(np.asarray(g.size_ijk) * np.asarray(g.spacing) / sp).astype(int)
    coarse_g = Geometry.create(size, sp, g.origin_ras, g.direction)
    coarse = image_io.resample_labels(r.labels, g, coarse_g)
    vol = volume_of(r)
    exact = pipeline.map_spine(vol, labels_of(r), SpineParams())
    res = pipeline.map_spine(vol, vertebrae.labels_from_label_image(LabelImage([coarse], coarse_g, []), vol, "auto"),
                             SpineParams())
    s_exact, s = score(r, exact), score(r, res)
    assert len(res.table) == len(exact.table) and s["found"] == s_exact["found"] >= 0.95 * s["n"]
    assert not s["false_positives"] and s["level_rate"] == 1.0, s["wrong"]
