"""The spine map on real CT with real TotalSegmentator labels (../shared/data/external)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.core import image_io
from calcinosis.spine import pipeline

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def abdomen(totalseg_example):
    return pipeline.run_spine(totalseg_example / "example_ct.nii.gz",
                              vertebrae=totalseg_example / "example_seg_fast_force_split.nii.gz")


def test_real_ct_assessed_levels(abdomen):
    """Slices from about T11 to the sacrum: T11 is cut by the scan's top but present,
    T10 is not, so T10-T11 and above are not assessed."""
    assert abdomen.assessed == ["T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert abdomen.labels.convention.key == "totalsegmentator"
    assert abdomen.patient.rows[0]["coverage"] == "lumbar"
    status = {r["level"]: r["status"] for r in abdomen.levels.rows}
    assert status["T10-T11"] == "not_assessed" and status["C7-T1"] == "not_assessed"


def test_real_ct_reports_no_aortic_calcification(abdomen, totalseg_example):
    """The facts measured on this CT (shared data README): inside the aorta label dilated
    by one voxel there are components >= 130 HU, peaks up to ~713 HU, four of them on >= 2
    contiguous axial slices (the count depends on the connectivity used: 13 with face
    dilation and connectivity here) - vascular calcifications and enhanced lumen.  None of
    their voxels may be reported, nor anything inside the aorta dilated by a full voxel."""
    seg = image_io.load_label_image(totalseg_example / "example_seg_fast_force_split.nii.gz").layers[0]
    ct = abdomen.volume.array
    face = ndimage.generate_binary_structure(3, 1)
    aorta = ndimage.binary_dilation(seg == 52, structure=face)
    comp, n = ndimage.label(aorta & (ct >= 130), structure=face)
    spans = [len(np.unique(np.nonzero(comp == c)[0])) for c in range(1, n + 1)]
    assert n >= 9 and sum(s >= 2 for s in spans) >= 4   # what the data README describes is there
    assert max(ct[comp > 0]) >= 700
    reported = abdomen.full_grid_labels()
    for c in range(1, n + 1):
        assert not np.any(reported[comp == c]), f"aortic component {c} reported"
    wide = ndimage.binary_dilation(seg == 52, structure=np.ones((3, 3, 3), bool))
    assert not np.any(reported[wide])


def test_real_abdomen_level_names_not_checked_without_ribs(abdomen):
    """The example starts at T11 with 3 mm slices: no rib reaches out of its field of view
    there, so the names are not checked against the ribs - and not refused."""
    assert abdomen.inputs["vertebrae"]["rib_level_check"]["status"] == "not checked"


def test_real_ct_frame_is_anatomical(abdomen):
    """Lumbar lordosis on the real spine: the cranial axis leans back at L1-L2 and forward
    at L5 (from the labels only), and every canal sits behind its body."""
    geoms = {v.name: v for v in abdomen.frame.vertebrae}
    assert np.degrees(np.arcsin(geoms["L1"].u[1])) < -5 and np.degrees(np.arcsin(geoms["L5"].u[1])) > 10
    for v in abdomen.frame.vertebrae:
        assert (v.body - v.canal) @ v.a > 10.0


def test_real_dicom_with_flipped_header_labels_align(totalseg_example):
    """The 20-slice DICOM series and its label map stored with a flipped y axis: matched in
    physical space, the vertebra labels lie on bone; read by array index they would not
    (which the map refuses with an error rather than mapping nonsense)."""
    res = pipeline.run_spine(totalseg_example / "ct_dicom", vertebrae=totalseg_example / "example_seg_dicom.nii.gz")
    assert res.assessed == ["T11-T12"]
    lab = res.labels
    k, j, i = np.nonzero(lab.vert)
    hu = res.volume.array[k + lab.box.lo[0], j + lab.box.lo[1], i + lab.box.lo[2]]
    assert np.median(hu) > 150
    raw = image_io.load_label_image(totalseg_example / "example_seg_dicom.nii.gz").layers[0]
    assert raw.shape == res.volume.array.shape
    assert np.median(res.volume.array[(raw == 32) | (raw == 33)]) < 50   # index alignment: not bone
    assert not any("not bone" in "; ".join(p) for p in lab.problems.values())
    seg = image_io.load_label_image(totalseg_example / "example_seg_dicom.nii.gz",
                                    reference=res.volume.geometry).layers[0]
    aorta = ndimage.binary_dilation(seg == 52, structure=np.ones((3, 3, 3), bool))
    assert aorta.sum() > 1000 and not np.any(res.full_grid_labels()[aorta])


def test_real_ct_nothing_in_any_vessel_label(abdomen, totalseg_example):
    """Nothing reported inside any vessel the TotalSegmentator label map names (aorta,
    vena cava, portal/splenic vein, iliac arteries and veins ... read from the convention's
    value table), each dilated by a full voxel."""
    from calcinosis.spine.conventions import category, structure_names
    seg = image_io.load_label_image(totalseg_example / "example_seg_fast_force_split.nii.gz").layers[0]
    vessel_values = [v for v, n in structure_names("totalsegmentator").items() if category(n) in ("aorta", "vessel")]
    present = [v for v in vessel_values if (seg == v).any()]
    assert 52 in present and len(present) >= 2        # the aorta and at least one other vessel are labelled
    wide = ndimage.binary_dilation(np.isin(seg, present), structure=np.ones((3, 3, 3), bool))
    assert not np.any(abdomen.full_grid_labels()[wide])


def _map_with_labels_moved(totalseg_example, voxels: int, keep_edge: bool = True):
    """The map of the TotalSegmentator example with every vertebra label grown (into the
    background) or shrunk by ``voxels`` voxels (3 mm each on this CT); shrunk with
    ``keep_edge``, a label stays at the scan's edge (the image's edge is not the bone's)."""
    from calcinosis.core.image_io import LabelImage
    from calcinosis.spine import vertebrae
    from calcinosis.spine.conventions import category, structure_names
    from calcinosis.spine.params import SpineParams
    vol = image_io.load_image(totalseg_example / "example_ct.nii.gz")
    li = image_io.load_label_image(totalseg_example / "example_seg_fast_force_split.nii.gz", vol.geometry)
    seg = li.layers[0]
    values = [v for v, n in structure_names("totalsegmentator").items() if category(n) == "vertebra"]
    vm = np.isin(seg, values)
    out = seg.copy()
    if voxels > 0:
        _, ind = ndimage.distance_transform_edt(~vm, return_indices=True)
        grow = (seg == 0) & ndimage.binary_dilation(vm, iterations=voxels)
        out[grow] = seg[tuple(i[grow] for i in ind)]
    else:
        out[vm & ~ndimage.binary_erosion(vm, iterations=-voxels, border_value=int(keep_edge))] = 0
    assert (np.isin(out, values) != vm).sum() > 1000             # the labels did move
    lab = vertebrae.labels_from_label_image(LabelImage([out], li.geometry, li.segments), vol, "auto")
    return pipeline.map_spine(vol, lab, SpineParams())


@pytest.mark.parametrize("voxels", [1, -1])
def test_real_ct_labels_grown_or_shrunk_by_a_voxel(totalseg_example, voxels):
    """Deliverable 1 on a real CT: the label is a guide, not the border - with every vertebra
    label grown (into the background) or shrunk by one voxel (3 mm on this CT: the issue's
    2 mm is no change at all on this grid), the same levels are assessed and nothing is
    reported, as with the labels as given.  (Shrunk: the labels stay at the scan's edge - a
    model's label falls short of the bone's surface, not of the image's edge; T11, cut by the
    scan's top, would otherwise become a 0.14 cm3 sliver away from it, too small for a
    vertebra.)  Shrunk, 11 pieces of bone were reported before this session: thin processes
    the eroded label lost whole (``bone.cancellous``, ``attached``: 7 of them, 235-361 HU at
    their densest), a spinous and two articular processes of 540-1,593 mm3 averaging
    308-377 HU (``TRABECULAR_BODY_MIN_MM3``) and an 81 mm3 articular tip lying wholly against
    bone (``candidates.WHOLLY_AGAINST_FRACTION``)."""
    res = _map_with_labels_moved(totalseg_example, voxels)
    assert res.assessed == ["T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert len(res.table) == 0, [(r["level"], r["subsite"], r["volume_mm3"], r["max_intensity"]) for r in res.table.rows]


def test_real_ct_labels_eroded_away_from_the_scan_edge(totalseg_example):
    """Shrunk by a voxel on every side, the scan's edge included: T11, cut by the scan's top,
    becomes a sliver away from the edge, too small for a vertebra - T11-T12 is not assessed
    (a label check, with its reason), and still nothing is reported."""
    res = _map_with_labels_moved(totalseg_example, -1, keep_edge=False)
    assert res.assessed == ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert any("too small" in p for p in res.labels.problems.get("T11", []))
    assert len(res.table) == 0, [(r["level"], r["subsite"], r["volume_mm3"], r["max_intensity"]) for r in res.table.rows]


@pytest.fixture(scope="module")
def tcia(tcia_ct):
    return pipeline.run_spine(tcia_ct / "ct.nrrd", points=tcia_ct / "vertebra_points_lps.csv")


def test_contrast_ct_level_names_agree_with_the_ribs(tcia):
    """The reader's points on the real contrast CT against its ribs (spine.levelcheck): the
    last rib is at T12; the kidneys' enhanced cortex, the aorta and the pelvis are not taken
    for ribs (the same points renamed by two vertebrae are refused: test_spine_levelcheck)."""
    rc = tcia.inputs["vertebrae"]["rib_level_check"]
    assert rc["status"] == "consistent" and rc["last_rib_vertebra"] == "T12"
    assert not set(rc["vertebrae_with_rib"]) & {"L1", "L2", "L3"} and len(rc["vertebrae_with_rib"]) >= 4


def test_contrast_ct_does_not_warn_of_an_aorta_it_recognised(tcia):
    """The enhanced aorta of this CT is not one tube at 130 HU (its blood is ~135 HU with
    16 HU noise), but the vessels found by shape measured the blood: the warning that wall
    calcifications cannot be told from ligament ones (true without contrast and without an
    aorta label) would mislead here."""
    assert tcia.stats["blood_hu"] >= 110
    assert not any("no aorta label" in w for w in tcia.warnings), tcia.warnings


def test_contrast_ct_recognised_as_enhanced(tcia, tcia_ct):
    """The scan is recognised as enhanced (blood measured in the vessels found by shape)
    and its vessels are rejected as vessels; every body's interior (where its point was
    placed, in trabecular bone) is inside its vertebra mask, filled slice by slice."""
    from calcinosis.spine.points import read_points, vertebra_points
    assert tcia.stats["blood_hu"] is not None and tcia.stats["blood_hu"] >= 110
    rejected = tcia.stats["candidates_rejected"]
    assert rejected["vessel_lumen"] + rejected["blood_density"] + rejected["vessel_shape"] > 0
    lab = tcia.labels
    points, _, _ = vertebra_points(read_points(tcia_ct / "vertebra_points_lps.csv"))
    for name, ras in points.items():
        k, j, i = np.round(lab.box_geometry.ras_to_ijk(ras[None])[0][::-1]).astype(int)
        assert lab.names[lab.vert[k, j, i] - 1] == name if lab.vert[k, j, i] else False, name


def test_contrast_ct_reports_at_most_two(tcia):
    """The real contrast-enhanced CT with vertebrae given as points (T6 to S1): no spinal
    calcification is visible on it; the spine map once reported 17 there (14 the vena cava and
    the iliac vessels in front of L3-S1), then 10 (pieces of ribs, processes and the ilium's
    marrow the point masks miss: now bone by their density against their surroundings,
    ``spine.bone.cancellous``).  At most 2 may be reported (the issue's bound), every one
    faint (below 250 HU: nothing dense is mistaken), none of the bone pieces (no
    pseudo-tumoral, nothing of a rib's or the pelvis's size)."""
    rows = tcia.table.rows
    assert len(rows) <= 2, [(r["level"], r["subsite"], r["max_intensity"]) for r in rows]
    assert all(r["max_intensity"] < 250 and r["volume_mm3"] < 100 and r["pattern"] != "pseudotumoral" for r in rows)


def test_contrast_ct_reports_no_enhanced_vessel(tcia):
    """No reported calcification in or on an enhanced vessel: on this CT none is visible,
    so nothing may be reported.  The last two (a 239 HU spot in a rod 14 mm long between the
    aorta and T10-T11, a 198 HU one 12 mm long beside L3-L4 in the psoas; means 167 and
    151 HU, blood 130 HU, noise 13-16 HU) were segments of small enhanced vessels: thin rods
    at the blood's density with a noisy bright spot (``blood_density``, rule ``rod``)."""
    assert len(tcia.table) == 0, [(r["level"], r["subsite"], r["max_intensity"]) for r in tcia.table.rows]
