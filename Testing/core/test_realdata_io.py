"""Real files nobody here made (../shared/data/external): they load with the right geometry,
and label maps align with their CT through physical space.  Skipped with a reason on a fresh
clone; required in CI (see conftest)."""

import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from calcinosis.core import image_io
from calcinosis.core.geometry import orientation_code

pytestmark = pytest.mark.realdata


def test_real_dicom_series_jpeg2000_loads_with_header_geometry(totalseg_example):
    folder = totalseg_example / "ct_dicom"
    vol = image_io.load_image(folder)
    assert vol.modality == "CT" and vol.geometry.size_ijk == (512, 512, 20)
    assert vol.geometry.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    # independent route: read every header with pydicom and compare slice positions (LPS -> RAS)
    headers = sorted((pydicom.dcmread(str(f), stop_before_pixels=True) for f in folder.iterdir()),
                     key=lambda d: float(d.ImagePositionPatient[2]))
    for k in (0, 7, 19):
        ipp = np.array([float(v) for v in headers[k].ImagePositionPatient])
        np.testing.assert_allclose(vol.geometry.ijk_to_ras(np.array([0, 0, k], float)), ipp * [-1, -1, 1], atol=1e-3)
    assert "JPEG 2000" in vol.meta["dicom"]["TransferSyntax"]
    # decoded HU: air near -1000 (rescale intercept applied), bone and contrast well above 300
    a = vol.array
    assert a.min() <= -1000 and a.max() > 1000
    assert -1100 < np.percentile(a, 5) < -800
    # nothing identifying is kept
    assert "PatientName" not in vol.meta["dicom"] and "PatientID" not in vol.meta["dicom"]


def test_flipped_header_label_map_aligns_with_its_ct(totalseg_example):
    """example_seg_dicom.nii.gz stores the CT's grid with y flipped.  Matched through physical
    space its vertebrae sit on bone; matched by array index they would not."""
    vol = image_io.load_image(totalseg_example / "ct_dicom")
    path = totalseg_example / "example_seg_dicom.nii.gz"
    lab = image_io.load_label_image(path, reference=vol.geometry).layers[0]
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert raw.shape == lab.shape
    vertebrae = (lab >= 26) & (lab <= 50)
    assert vertebrae.sum() > 1000
    hu_aligned = vol.array[vertebrae].mean()
    hu_by_index = vol.array[(raw >= 26) & (raw <= 50)].mean()
    assert hu_aligned > 200, "vertebral bone is dense"
    assert hu_by_index < hu_aligned - 150, "reading the array by index would misplace the labels"
    # the exact index shuffle and SimpleITK's physical resampling agree voxel for voxel
    src = image_io.load_label_image(path)
    via_sitk = sitk.GetArrayFromImage(sitk.Resample(
        sitk.ReadImage(str(path)), image_io.array_to_sitk(np.zeros(vol.array.shape, np.uint8), vol.geometry),
        sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    np.testing.assert_array_equal(image_io.resample_labels(src.layers[0], src.geometry, vol.geometry), via_sitk)


def test_nifti_ct_and_labels_share_a_grid(totalseg_example):
    vol = image_io.load_image(totalseg_example / "example_ct.nii.gz", modality="ct")
    assert vol.geometry.size_ijk == (122, 101, 112) and vol.geometry.spacing == pytest.approx((3, 3, 3))
    # header direction (-1,-1,1) in LPS is RAS identity
    np.testing.assert_allclose(vol.geometry.direction, np.eye(3), atol=1e-6)
    assert orientation_code(vol.geometry) == "RAS"
    lab = image_io.load_label_image(totalseg_example / "example_seg_fast_force_split.nii.gz", reference=vol.geometry)
    values = {s.label_value for s in lab.segments}
    assert {25, 26, 27, 28, 29, 30, 31, 32, 33, 52, 79} <= values
    layer = lab.layers[0]
    vertebrae = (layer >= 26) & (layer <= 33)
    aorta = layer == 52
    assert vol.array[vertebrae].mean() > 150, "vertebral labels sit on bone"
    assert -50 < vol.array[aorta].mean() < 400, "the aorta label holds blood, not bone or air"
    # in RAS, the aorta lies in front of (greater A than) the vertebral bodies
    a_of = lambda m: vol.geometry.kji_to_ras(np.argwhere(m).mean(axis=0))[1]
    assert a_of(aorta) > a_of(vertebrae)


def test_verse_pir_mask_and_its_centroids(verse_sample):
    lab = image_io.load_label_image(verse_sample / "sub-verse004_seg-vert_msk.nii.gz")
    assert orientation_code(lab.geometry)[0] in "PA" and orientation_code(lab.geometry)[1] in "IS"
    assert [s.label_value for s in lab.segments] == list(range(16, 25))
    ctd = json.loads((verse_sample / "sub-verse004_seg-subreg_ctd.json").read_text())
    layer = lab.layers[0]
    for c in ctd[1:]:
        ijk = np.array([c["X"], c["Y"], c["Z"]])
        k, j, i = np.round(ijk[::-1]).astype(int)
        ras = lab.geometry.ijk_to_ras(ijk)
        # the voxel at the published centroid carries that vertebra's label
        assert layer[k, j, i] == c["label"]
        # and labels run cranio-caudally: higher VerSe label (more caudal) -> lower S
        c["s"] = ras[2]
    s = [c["s"] for c in ctd[1:]]
    assert all(a > b for a, b in zip(s, s[1:]))
