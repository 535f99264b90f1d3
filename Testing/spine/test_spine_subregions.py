"""SPINEPS sub-region masks (calcinosis.spine.subregions): read beside the instance mask and
used for the segment and sub-site.  Ground truth: the phantom's sub-sites (each placed in
a named sub-site) and its sub-region mask made from the same primitives the CT is
painted from (phantom.subregion_labels)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.core.errors import InputError
from calcinosis.spine import phantom, pipeline, vertebrae
from calcinosis.spine.conventions import ConventionError
from calcinosis.spine.params import SpineParams

from spine_helpers import get_hard_phantom, get_phantom, labels_of, score, volume_of, write_spineps_case


@functools.lru_cache(maxsize=None)
def spineps_phantom(hard: bool):
    r = get_hard_phantom("tap", 0, (1.0, 1.0, 1.25), "spineps") if hard else get_phantom("tap", "spineps")
    return r, phantom.subregion_labels(r)


def _with_subregions(r, sub, tmp_path, name="subregions.nii.gz"):
    path = tmp_path / name
    image_io.write_image(sub, r.geometry, path)
    lab = labels_of(r, convention="spineps")
    vertebrae.add_subregions(lab, path)
    return lab


def test_phantom_subregion_mask_has_spineps_values_on_the_vertebrae():
    r, sub = spineps_phantom(False)
    assert set(np.unique(sub)) == {0, 26, 41, 42, 43, 44, 49, 60, 61, 100}
    # every vertebra voxel has a part; the canal and discs lie outside the vertebrae
    assert np.all(sub[r.labels > 0][np.isin(r.labels[r.labels > 0], list(range(1, 26)))] > 0)
    assert not np.any(np.isin(sub[r.labels == 0], (41, 42, 43, 44, 49)))


@pytest.mark.parametrize("hard", [False, True])
def test_subregions_keep_every_sub_site(tmp_path, hard):
    """With the sub-region mask the sub-sites are as right as with the frame alone: all of
    them on the plain phantom, and on the hard one no fewer (bone-touching calcifications
    at every sub-site)."""
    r, sub = spineps_phantom(hard)
    vol = volume_of(r)
    frame_only = score(r, pipeline.map_spine(vol, labels_of(r, convention="spineps"), SpineParams()))
    res = pipeline.map_spine(vol, _with_subregions(r, sub, tmp_path), SpineParams())
    s = score(r, res)
    assert s["subsite_rate"] >= frame_only["subsite_rate"] and s["segment_rate"] >= frame_only["segment_rate"]
    if not hard:
        assert s["subsite_rate"] == 1.0, s["wrong"]


def test_subregions_decide_the_sub_site(tmp_path):
    """The mask is used, not only read: with the spinous processes relabelled as costal
    processes, the interspinous calcifications lying against a spinous process become
    transverse-process (or, in the thorax, costotransverse) ones; those between the
    processes, further than ``subregion_near_mm`` from them, and all others do not change."""
    r, sub = spineps_phantom(False)
    swapped = sub.copy()
    swapped[sub == 42] = 43
    res = pipeline.map_spine(volume_of(r), _with_subregions(r, swapped, tmp_path), SpineParams())
    s = score(r, res)
    wrong = [w for w in s["wrong"] if w[1] == "subsite"]
    interspinous = [row["name"] for row in r.truth.rows if row["kind"] == "spinal" and row["subsite"] == "interspinous"]
    assert interspinous and wrong and {w[0] for w in wrong} <= set(interspinous)
    assert {w[2] for w in wrong} <= {"transverse_process", "costotransverse"}


def test_command_line_reads_the_subregions_and_records_them(cli, tmp_path):
    r, sub = spineps_phantom(False)
    write_spineps_case(r, sub, tmp_path)
    code, _, err = cli("spine", tmp_path / "ct.nrrd", "--vertebrae", tmp_path / "seg-vert.nii.gz", "--subregions",
                       tmp_path / "seg-spine.nii.gz", "-o", tmp_path / "out", "-q")
    assert code == 0, err
    import json
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text(encoding="utf-8"))
    assert prov["inputs"]["subregions"]["kind"] == "SPINEPS sub-region mask"
    assert prov["inputs"]["subregions"]["parts"] == ["arch", "spinous", "costal", "body", "cord", "canal", "disc",
                                                     "sacrum"]
    assert prov["parameters"]["subregion_near_mm"] == 3.0 or "subregion_near_mm" in json.dumps(prov["parameters"])
    # the masks swapped: the sub-region mask as --vertebrae, the instance mask as --subregions
    code, _, err = cli("spine", tmp_path / "ct.nrrd", "--vertebrae", tmp_path / "seg-spine.nii.gz", "-o",
                       tmp_path / "x", "-q")
    assert code == 2 and "SPINEPS sub-region mask" in err and "--subregions" in err and err.count("\n") == 1
    code, _, err = cli("spine", tmp_path / "ct.nrrd", "--vertebrae", tmp_path / "seg-vert.nii.gz", "--subregions",
                       tmp_path / "seg-vert.nii.gz", "-o", tmp_path / "x", "-q")
    assert code == 2 and "seg-vert.nii.gz: not a SPINEPS sub-region mask" in err
    code, _, err = cli("spine", tmp_path / "ct.nrrd", "--points", tmp_path / "seg-vert.nii.gz", "--subregions",
                       tmp_path / "seg-spine.nii.gz", "-o", tmp_path / "x", "-q")
    assert code == 2 and "--subregions" in err
    assert not (tmp_path / "x").exists()


def test_subregion_errors(tmp_path):
    r, sub = spineps_phantom(False)
    lab = labels_of(r, convention="spineps")
    empty = tmp_path / "empty.nii.gz"
    image_io.write_image(np.zeros_like(sub), r.geometry, empty)
    with pytest.raises(InputError, match="empty"):
        vertebrae.add_subregions(lab, empty)
    with pytest.raises(ConventionError, match="SPINEPS sub-region mask"):
        labels_of(r, sub)
