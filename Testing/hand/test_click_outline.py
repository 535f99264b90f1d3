"""One-click outlines (``calcinosis.hand.click``, the Segment Editor effect's logic, and
``calcinosis hand IMAGE --seeds``) against the hand phantoms' analytic truth.

Each deposit is clicked at its true centre (radiograph: the centre projected into the image's
RAS, as the truth table gives it), on two synthetic hands (right, seed 0; left, seed 1).
Sizes are compared with the truth: radiograph area with the analytic projected area, CT and
MRI volume with the analytic volume.  Which deposits, and the tolerances:

* **radiograph** - subcutaneous deposits >= 2 mm (smallest diameter) whose shadow overlaps no
  other deposit's: the edge of an ellipsoid's shadow is found to about 0.1 pixel and the
  pixel grid adds +-0.5 pixel along the outline (+-7% for a 3 mm shadow at 0.2 mm pixels),
  so 10%; measured on these hands -6% to +9% and +12% for one faint deposit (297 HU) in its
  soft-tissue nodule over a phalanx, whose own edge is weaker than the nodule's.  Asserted:
  90% within 10%, all within 15%.  Deposits < 2 mm span fewer than 10 analysis pixels: not
  asserted.  Periarticular deposits over a joint are crossed by bone edges as sharp as their
  own (docs/hand.md, *What the tool cannot know*): measured 7 of 12 within 10%, asserted half;
* **CT** - deposits >= 3 mm within 10% (partial volume: the half-max outline is right to a
  fraction of a 0.5 mm voxel, as the detector's test asserts), >= 2 mm within 15% (the same
  half-voxel layer is a larger share of a smaller deposit; measured -14% to -1%);
* **MRI** - voids >= 4 mm within 15% (1.5 mm slices: the partial-volume layer is a whole
  slice; the detector's own tolerance with drawn regions), below the truth on average (as
  study 1 found MRI volumes below CT's); every subcutaneous void >= 2 mm is outlined.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from calcinosis.core.errors import InputError
from calcinosis.core.pointlists import markups_csv_text, markups_json_text, read_point_list
from calcinosis.hand import click
from calcinosis.hand import phantom as phantom_hand
from calcinosis.hand.click import NothingFound, outline_at_point

from hand_helpers import read, run_cli
from phantom_cache import cached

HANDS = [("R", 0), ("L", 1)]


def centre(row) -> np.ndarray:
    return np.array([row["center_r_mm"], row["center_a_mm"], row["center_s_mm"]])


def clicked(ph, offset_mm: float = 0.0, seed: int = 0) -> list[tuple[dict, float | None]]:
    """(truth row, relative size error or None when nothing was outlined) per deposit."""
    rng = np.random.default_rng(seed)
    out = []
    for r in ph.truth.rows:
        p = centre(r)
        if offset_mm:           # in the R-A plane (a radiograph's plane)
            ang = rng.uniform(0.0, 2.0 * np.pi)
            p = p + offset_mm * np.array([np.cos(ang), np.sin(ang), 0.0])
        truth = r["projected_area_mm2"] if ph.geometry.is_2d else r["volume_mm3"]
        try:
            o = outline_at_point(ph.array, ph.geometry, p, ph.modality, label=r["name"])
        except NothingFound:
            out.append((r, None))
            continue
        out.append((r, o.size / truth - 1.0))
    return out


@pytest.fixture(scope="module")
def xr_hands():
    return [cached(phantom_hand.xr_phantom, side, seed) for side, seed in HANDS]


@pytest.fixture(scope="module")
def ct_hands():
    return [cached(phantom_hand.ct_phantom, side, seed) for side, seed in HANDS]


@pytest.fixture(scope="module")
def mr_hands():
    return [cached(phantom_hand.mr_phantom, side, seed) for side, seed in HANDS]


def _subcutaneous_clear(r) -> bool:
    return r["kind"] == "subcutaneous" and r["min_diameter_mm"] >= 2.0 and not r["xr_overlaps_lesion"]


# ---------------------------------------------------------------------- radiograph
def test_radiograph_click_gives_the_projected_area(xr_hands):
    errors = {}
    for (side, seed), ph in zip(HANDS, xr_hands):
        for r, e in clicked(ph):
            if _subcutaneous_clear(r):
                errors[(side, r["name"])] = e
    assert len(errors) >= 20
    assert all(e is not None for e in errors.values()), [k for k, e in errors.items() if e is None]
    within = [k for k, e in errors.items() if abs(e) <= 0.10]
    assert len(within) >= 0.9 * len(errors), {k: round(e, 3) for k, e in errors.items()}
    assert max(abs(e) for e in errors.values()) <= 0.15, {k: round(e, 3) for k, e in errors.items()}


def test_radiograph_click_half_a_millimetre_off_centre(xr_hands):
    """A reader clicks near, not at, the middle: 0.5 mm off (a sixth to a third of the radius
    of a 3-6 mm deposit), the same deposits, 90% still within 10%."""
    errors = {}
    for (side, seed), ph in zip(HANDS, xr_hands):
        for r, e in clicked(ph, offset_mm=0.5, seed=seed):
            if _subcutaneous_clear(r):
                errors[(side, r["name"])] = e
    ok = [k for k, e in errors.items() if e is not None and abs(e) <= 0.10]
    assert len(ok) >= 0.9 * len(errors), {k: e for k, e in errors.items()}


def test_radiograph_periarticular_deposits_are_harder(xr_hands):
    """Deposits >= 2 mm at a joint, whose shadow lies on the joint's bone ends (the limit
    docs/hand.md states): at least half within 10%, none missing."""
    errors = []
    for (side, seed), ph in zip(HANDS, xr_hands):
        for r, e in clicked(ph):
            if r["kind"] == "periarticular" and r["min_diameter_mm"] >= 2.0 and not r["xr_overlaps_lesion"]:
                errors.append(e)
    assert len(errors) >= 10
    assert all(e is not None for e in errors)
    assert np.mean([abs(e) <= 0.10 for e in errors]) >= 0.5


def test_radiograph_outline_is_the_deposit_where_it_was_clicked(xr_hands):
    """The outline covers the true shadow (the phantom's outline image) and its centroid is
    the deposit's."""
    ph = xr_hands[0]
    r = next(r for r in ph.truth.rows if r["name"] == "lesion_19")      # 12-16 mm, over bone
    o = outline_at_point(ph.array, ph.geometry, centre(r), "XR", label="big")
    shadow = ph.outlines[0] == r["lesion_id"]
    mine = o.full_mask()[0]
    assert (mine & shadow).sum() / shadow.sum() >= 0.95
    assert (mine & ~shadow).sum() / shadow.sum() <= 0.05
    assert np.linalg.norm(o.centroid_ras[:2] - centre(r)[:2]) <= 0.3
    assert o.unit == "mm2" and o.method == "edge"
    row = o.measurement()
    assert row["area_mm2"] == pytest.approx(o.size) and "centroid_r_mm" in row and row["label"] == "big"


# ---------------------------------------------------------------------- CT and MRI
def test_ct_click_gives_the_volume_with_bone_removed(ct_hands):
    checked = 0
    for (side, seed), ph in zip(HANDS, ct_hands):
        for r, e in clicked(ph):
            if r["min_diameter_mm"] < 2.0:
                continue
            assert e is not None, (side, r["name"])
            tol = 0.10 if r["min_diameter_mm"] >= 3.0 else 0.15
            assert abs(e) <= tol, (side, r["name"], r["kind"], round(e, 3))
            checked += 1
    assert checked >= 30


def test_ct_click_on_bone_or_soft_tissue_says_so(ct_hands):
    ph = ct_hands[0]
    lm = dict(ph.landmarks)
    shaft = (np.asarray(lm["R_middle_PIP"]) + np.asarray(lm["R_middle_DIP"])) / 2     # the middle phalanx
    with pytest.raises(NothingFound, match=r"point 'bone' \(R .*\): lies on bone"):
        outline_at_point(ph.array, ph.geometry, shaft, "CT", label="bone")
    web = (np.asarray(lm["R_middle_MCP"]) + np.asarray(lm["R_ring_MCP"])) / 2       # between the knuckles
    assert min(np.linalg.norm(centre(r) - web) for r in ph.truth.rows) > 10.0
    with pytest.raises(NothingFound, match=r"point 'web' .*no voxel at or above 130 HU"):
        outline_at_point(ph.array, ph.geometry, web, "CT", label="web")


def test_mri_click_gives_the_void_volume(mr_hands):
    big, subcutaneous = [], []
    for (side, seed), ph in zip(HANDS, mr_hands):
        for r, e in clicked(ph):
            if r["min_diameter_mm"] >= 4.0:
                assert e is not None and abs(e) <= 0.15, (side, r["name"], e)
                big.append(e)
            if r["kind"] == "subcutaneous" and r["min_diameter_mm"] >= 2.0:
                subcutaneous.append(e)
    assert len(big) >= 6
    assert np.mean(big) < 0.0
    assert subcutaneous and all(e is not None for e in subcutaneous)


def test_mri_click_in_soft_tissue_finds_no_void(mr_hands):
    ph = mr_hands[0]
    lm = dict(ph.landmarks)
    web = (np.asarray(lm["R_middle_MCP"]) + np.asarray(lm["R_ring_MCP"])) / 2
    with pytest.raises(NothingFound, match=r"point 'web' .*no signal void there"):
        outline_at_point(ph.array, ph.geometry, web, "MRI", label="web")


def test_radiograph_click_in_soft_tissue_finds_nothing(xr_hands):
    ph = xr_hands[0]
    lm = dict(ph.landmarks)
    web = (np.asarray(lm["R_middle_MCP"]) + np.asarray(lm["R_ring_MCP"])) / 2
    with pytest.raises(NothingFound, match=r"point 'web' .*no radiograph deposit there"):
        outline_at_point(ph.array, ph.geometry, web, "XR", label="web")


def test_points_outside_the_image_and_wrong_modalities_are_one_line_errors(ct_hands, xr_hands):
    ct, xr = ct_hands[0], xr_hands[0]
    far = ct.geometry.corners_ras().max(axis=0) + 30.0
    with pytest.raises(InputError, match=r"^point 'p7' \(R .* mm\) lies outside the image \(\d+\.\d mm beyond") as e:
        outline_at_point(ct.array, ct.geometry, far, "CT", label="p7")
    assert "\n" not in str(e.value) and not isinstance(e.value, NothingFound)
    with pytest.raises(InputError, match="2D image cannot be a CT"):
        outline_at_point(xr.array, xr.geometry, centre(xr.truth.rows[0]), "CT")
    with pytest.raises(InputError, match="3D image .* cannot be a radiograph"):
        outline_at_point(ct.array, ct.geometry, centre(ct.truth.rows[0]), "XR")
    with pytest.raises(InputError, match="modality: expected XR, CT or MRI"):
        outline_at_point(ct.array, ct.geometry, centre(ct.truth.rows[0]), "PET")


def test_naming_like_the_module(ct_hands):
    from calcinosis.hand.landmarks import landmarks_from_points

    ph = ct_hands[0]
    r = ph.truth.rows[0]
    o = outline_at_point(ph.array, ph.geometry, centre(r), "CT")
    a = click.outline_assignment(o, landmarks_from_points(ph.landmarks))
    assert (a["side"], a["digit"], a["zone"], a["kind"]) == (r["side"], r["digit"], r["zone"], r["kind"])
    n = click.next_lesion_number(["3 R index PIP periarticular", "Segment_1", "12 L thumb MCP"])
    name, color = click.segment_label(n, a)
    assert name == f"13 {r['side']} {r['digit']} {r['zone']} {r['kind']}" and len(color) == 3
    assert click.segment_label(1)[0] == "1 unknown unassigned"


# ---------------------------------------------------------------------- calcinosis hand --seeds
def _seeds_file(path, rows, extra=()):
    """A point list at the deposits' centres: ``.mrk.json`` (LPS on disk, as Slicer writes it)
    or Slicer's markups ``.csv`` (label,r,a,s: RAS)."""
    points = [(f"d{r['lesion_id']}", centre(r)) for r in rows] + list(extra)
    path.write_text(markups_csv_text(points) if path.suffix == ".csv" else markups_json_text(points, name="seeds"))
    return path


def test_cli_seeds_one_lesion_per_point_measured_like_a_normal_run(hand_data, tmp_path, capsys):
    xr = hand_data / "xr"
    truth = read(xr / "truth.csv")
    seeds = _seeds_file(tmp_path / "seeds.mrk.json", truth.rows)
    out = tmp_path / "out"
    assert run_cli("hand", xr / "xr.dcm", "--seeds", seeds, "--landmarks", xr / "landmarks.mrk.json", "-o", out,
                   "-q") == 0
    lesions = read(out / "lesions.csv")
    assert len(lesions) == len(truth)                       # one row per seed, in the seeds' order
    for m, t in zip(lesions.rows, truth.rows):
        assert m["source_segment"] == f"seed d{t['lesion_id']}"
        if _subcutaneous_clear(t):
            assert np.hypot(m["centroid_r_mm"] - t["center_r_mm"], m["centroid_a_mm"] - t["center_a_mm"]) <= 0.3
            assert m["area_mm2"] == pytest.approx(t["projected_area_mm2"], rel=0.15), t["name"]
        if t["kind"] == "subcutaneous":
            assert (m["digit"], m["zone"]) == (t["digit"], t["zone"]), t["name"]
    hand = read(out / "hand.csv")
    assert hand.rows[0]["lesion_count"] == len(truth)
    assert hand.rows[0]["total_area_mm2"] == pytest.approx(sum(r["area_mm2"] for r in lesions.rows))
    for f in ("digits.csv", "lesion_assignment.csv", "lesions.seg.nrrd", "lesion_labels.nrrd"):
        assert (out / f).exists()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["inputs"]["seeds"]["n_points"] == len(truth) and prov["inputs"]["seeds"]["input_id"]
    assert "path" not in prov["inputs"]["seeds"] and "seeds.mrk.json" not in json.dumps(prov)
    det = prov["parameters"]["detection"]
    assert "one outline per point" in det["method"]
    assert [s["label"] for s in det["seeds"]] == [f"d{r['lesion_id']}" for r in truth.rows]
    assert [s["lesion_id"] for s in det["seeds"]] == list(range(1, len(truth) + 1))


def test_cli_seeds_a_point_without_a_deposit_is_a_warning(hand_data, tmp_path, capsys):
    ct = hand_data / "ct"
    truth = read(ct / "truth.csv")
    lm = dict(read_point_list(ct / "landmarks.mrk.json"))
    web = (lm["R_middle_MCP"] + lm["R_ring_MCP"]) / 2
    seeds = _seeds_file(tmp_path / "s.csv", truth.rows[:2], [("web", web), ("again", centre(truth.rows[0]))])
    assert run_cli("hand", ct / "ct", "--seeds", seeds, "-o", tmp_path / "o", "-q") == 0
    err = capsys.readouterr().err
    assert "seeds: point 'web' (R " in err and "no voxel at or above 130 HU" in err
    assert "point 'again' (R " in err and "inside the outline of point 'd1'" in err
    lesions = read(tmp_path / "o" / "lesions.csv")
    assert [r["source_segment"] for r in lesions.rows] == ["seed d1", "seed d2"]
    for m, t in zip(lesions.rows, truth.rows[:2]):
        assert m["volume_mm3"] == pytest.approx(t["volume_mm3"], rel=0.15)


def test_cli_bad_seeds_files_exit_2_with_one_line(hand_data, tmp_path, capsys):
    xr = hand_data / "xr" / "xr.dcm"
    empty = tmp_path / "empty.mrk.json"
    empty.write_text(markups_json_text([("unplaced", None)]))
    broken = tmp_path / "broken.mrk.json"
    broken.write_text("{ not json")
    for seeds, expect in ((empty, "empty.mrk.json: no placed point"), (broken, "broken.mrk.json: not valid JSON"),
                          (tmp_path / "missing.mrk.json", "missing.mrk.json: seeds file not found")):
        out = tmp_path / f"o-{seeds.stem}"
        assert run_cli("hand", xr, "--seeds", seeds, "-o", out) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expect in err, err
        assert not out.exists()
    assert run_cli("hand", xr, "--seeds", empty, "--mask", hand_data / "xr" / "outlines.seg.nrrd",
                   "-o", tmp_path / "o-mask") == 2
    assert "give one of them" in capsys.readouterr().err


# ---------------------------------------------------------------------- MRML (slicer-core)
@pytest.mark.mrml
def test_effect_logic_adds_the_outline_as_a_new_segment(mrml_scene, ct_hands, xr_hands):
    """The effect's logic on real MRML: a click (world RAS) on a volume node -> a new segment,
    named like the module's lesions, whose voxels are the outline's; the next click numbers
    the next lesion; under a linear transform the click is in world coordinates and the
    outline goes into a segmentation in the segmentation's own coordinates."""
    import slicer

    from calcinosis import mrml
    from calcinosis.core.volume import Volume
    from calcinosis.mrml import click_outline

    ph = ct_hands[0]
    vnode = mrml.node_from_volume(Volume(ph.array, ph.geometry, {"modality": "CT", "intensity_unit": "HU"}), "ct")
    seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(vnode)
    landmarks = mrml.markups_from_points(ph.landmarks, "HandLandmarks")
    r1, r2 = ph.truth.rows[0], ph.truth.rows[6]
    o1 = click_outline.outline_at_world_point(vnode, centre(r1), "auto")
    sid = click_outline.add_outline_segment(seg, o1, landmarks)
    assert seg.GetSegmentation().GetSegment(sid).GetName() == \
        f"1 {r1['side']} {r1['digit']} {r1['zone']} {r1['kind']}"
    back = mrml.label_image_from_segmentation(seg, ph.geometry)
    assert np.array_equal(back.union(), o1.full_mask())
    assert o1.size == pytest.approx(r1["volume_mm3"], rel=0.10)
    o2 = click_outline.outline_at_world_point(vnode, centre(r2), "CT")
    sid2 = click_outline.add_outline_segment(seg, o2)
    assert seg.GetSegmentation().GetSegment(sid2).GetName().startswith("2 ")
    assert click_outline.outline_text("2 x", o2).endswith("mm³ (threshold, bone removed)")
    # onto the modifier labelmap of the Segment Editor (here: the segmentation's whole grid)
    ref = mrml.segmentations.oriented_image(ph.geometry)
    img = click_outline.outline_labelmap(o2, ref)
    assert img.GetExtent() == ref.GetExtent()
    assert int(mrml.segmentations.image_array(img).sum()) == int(o2.mask.sum())
    # a radiograph node: area, the edge method
    xr = xr_hands[0]
    xnode = mrml.node_from_volume(Volume(xr.array, xr.geometry, {"modality": "XR"}), "xr")
    rx = xr.truth.rows[0]
    ox = click_outline.outline_at_world_point(xnode, centre(rx), "XR")
    assert ox.size == pytest.approx(rx["projected_area_mm2"], rel=0.10) and ox.method == "edge"
    # transforms: the click is in world coordinates, the outline on the grid moved with its node,
    # and written into a segmentation in the segmentation's own coordinates
    import vtk

    t = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 25.0)
    t.SetMatrixTransformToParent(shift)
    vnode.SetAndObserveTransformNodeID(t.GetID())
    moved = click_outline.outline_at_world_point(vnode, centre(r1) + [25.0, 0, 0], "CT")
    assert np.array_equal(moved.mask, o1.mask) and moved.box == o1.box
    with pytest.raises(NothingFound, match="no voxel at or above"):
        click_outline.outline_at_world_point(vnode, centre(r1), "CT")      # the old place: 25 mm off now
    seg2 = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    seg2.SetAndObserveTransformNodeID(t.GetID())                          # moved with the image
    click_outline.add_outline_segment(seg2, moved)
    assert np.array_equal(mrml.label_image_from_segmentation(seg2, moved.geometry).union(), moved.full_mask())
    img = click_outline.outline_labelmap(moved, node=seg2)                # in seg2's coordinates: the old grid
    assert np.allclose(_image_to_world(img), ph.geometry.ijk_to_ras_matrix())


def _image_to_world(img) -> np.ndarray:
    import vtk

    m = vtk.vtkMatrix4x4()
    img.GetImageToWorldMatrix(m)
    return np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)])
