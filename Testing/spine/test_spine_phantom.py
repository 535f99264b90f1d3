"""The spine phantom is what it claims: anatomy, densities, noise, partial volume,
coverage, label conventions and a truth that is consistent with the image."""

from __future__ import annotations

import numpy as np

from calcinosis.spine import conventions as conv
from calcinosis.spine import phantom
from calcinosis.spine.anatomy import SUBSITE_SEGMENT

from spine_helpers import get_phantom

TS = {v: k for k, v in conv.structure_names("totalsegmentator").items()}


def _present(r, convention="totalsegmentator"):
    names = conv.structure_names(convention)
    return {names[int(v)] for v in np.unique(r.labels) if int(v) in names}


def test_tap_anatomy_and_labels():
    r = get_phantom("tap")
    present = _present(r)
    for v in ["C7"] + [f"T{n}" for n in range(1, 13)] + [f"L{n}" for n in range(1, 6)] + ["S1"]:
        assert v in present
    assert {f"rib_left_{n}" for n in range(1, 13)} <= present and {f"rib_right_{n}" for n in range(1, 13)} <= present
    assert {"aorta", "iliac_artery_left", "iliac_artery_right", "spinal_cord", "sacrum"} <= present
    assert "C6" not in present
    assert r.geometry.spacing[2] == 1.25


def test_coverages_cut_the_spine_where_the_study_says():
    chest, lumbar = _present(get_phantom("chest")), _present(get_phantom("lumbar"))
    assert {"C7", "T1", "T12", "L1"} <= chest and not {"L2", "L3", "L4", "L5", "S1"} & chest
    assert {"T12", "L1", "L5", "S1"} <= lumbar and not {"T10", "T9", "C7"} & lumbar


def test_densities_noise_and_partial_volume():
    r = get_phantom("lumbar")
    ct = r.ct.astype(float)
    lab = r.labels
    vert = np.isin(lab, [TS[n] for n in ("L1", "L2", "L3", "L4")])
    assert 150 < np.median(ct[vert]) < 400 and ct[vert].max() > 600        # trabecular core, cortex
    lumen = lab == TS["aorta"]
    assert 180 < np.median(ct[lumen]) < 300                                  # contrast-enhanced
    # noise: soft tissue far from every structure (a slab in front of the spine, below the aorta)
    soft = (np.abs(ct - 40) < 80) & (lab == 0)
    assert 9 < ct[soft].std() < 20                                            # 12 HU requested, + partial volume
    # partial volume: the vertebra's rim holds values between soft tissue and cortex
    from scipy import ndimage
    rim = vert & ~ndimage.binary_erosion(vert)
    between = (ct[rim] > 150) & (ct[rim] < 600)
    assert between.mean() > 0.3
    plain = get_phantom("lumbar", contrast=False)
    assert abs(np.median(plain.ct[plain.labels == TS["aorta"]]) - 40) < 15


def test_conventions_of_the_label_map():
    tss = get_phantom("lumbar", "totalspineseg")
    names = conv.structure_names("totalspineseg")
    present = {names[int(v)] for v in np.unique(tss.labels) if v}
    assert {"disc:L1-L2", "disc:L4-L5", "disc:L5-S1", "spinal_cord", "spinal_canal", "sacrum", "L3"} <= present
    verse = get_phantom("chest", "verse")
    assert set(np.unique(verse.labels)) <= set(range(0, 29))
    assert conv.unknown_values(np.unique(verse.labels)[1:], "verse") == []


def test_truth_is_consistent_with_the_image():
    r = get_phantom("tap")
    spinal = [(row, vox) for row, vox in zip(r.truth.rows, r.truth_voxels) if row["kind"] == "spinal"]
    assert len(spinal) >= 40
    bone = np.isin(r.labels, [TS[n] for n in TS if conv.category(n) in ("vertebra", "rib")])
    vessel = np.isin(r.labels, [TS["aorta"], TS["iliac_artery_left"], TS["iliac_artery_right"]])
    for row, vox in spinal:
        assert SUBSITE_SEGMENT[row["subsite"]] == row["segment"]
        assert vox.size > 0
        assert not bone.ravel()[vox].any() and not vessel.ravel()[vox].any(), row["name"]
        assert r.ct.ravel()[vox].max() >= 300                                 # dense enough to be seen
        eq = np.cbrt(6 * row["volume_mm3"] / np.pi)
        if row["pattern"] == "pseudotumoral":
            assert eq >= 8.0 and row["segment"] in ("intracanal", "posterior")
        if row["pattern"] == "linear":
            assert row["subsite"] == "anterior_longitudinal_ligament" and row["diameter_mm"] >= 11
        if row["pattern"] == "punctate":
            assert eq < 6.5
    for row, vox in zip(r.truth.rows, r.truth_voxels):
        if row["kind"] == "vascular" and vox.size:   # on the wall, against the lumen (if in the field of view)
            from scipy import ndimage
            m = np.zeros(r.ct.shape, bool)
            m.ravel()[vox] = True
            assert (ndimage.binary_dilation(m, iterations=2) & vessel).any(), row["name"]


def test_curvature_and_rotation_of_the_built_spine():
    ph = get_phantom("tap").phantom
    tilt = {v.name: np.degrees(np.arcsin(v.frame.u[1])) for v in ph.vertebrae}
    assert tilt["T1"] > 15 and abs(tilt["T7"]) < 3
    assert tilt["T12"] < -10 and tilt["L5"] > 15       # kyphosis then lordosis
    rot = [np.degrees(np.arctan2(v.frame.a[0], v.frame.a[1])) for v in ph.vertebrae]
    assert max(abs(x) for x in rot) > 3.5


def test_same_seed_same_phantom():
    a = phantom.make_spine_phantom("lumbar", spacing=(2.0, 2.0, 2.5), size_xy=None, seed=3)
    b = phantom.make_spine_phantom("lumbar", spacing=(2.0, 2.0, 2.5), size_xy=None, seed=3)
    c = phantom.make_spine_phantom("lumbar", spacing=(2.0, 2.0, 2.5), size_xy=None, seed=4)
    assert np.array_equal(a.ct, b.ct) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.ct, c.ct)
