"""Image input: DICOM series and radiographs, NRRD/NIfTI/MHA, PNG; geometry kept exactly;
radiograph spacing rules; compressed data decoded or refused; label maps matched in physical space."""

import numpy as np
import pytest
import pydicom
import SimpleITK as sitk

from calcinosis.core import dicom_meta, dicom_write, image_io
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.phantoms import rotation_matrix


def _geom_oblique():
    return Geometry.create((12, 10, 8), (0.45, 0.55, 1.25), (-30.0, 12.5, 40.0), rotation_matrix((1, -2, 0.5), 17.0))


def _ramp(geom):
    k, j, i = np.indices(geom.shape)
    return (i * 7 + j * 31 + k * 101 - 500).astype(np.int16)


def test_arrays_share_the_image_buffer_and_keep_the_image_alive():
    """``array_from_sitk`` returns SimpleITK's pixels without a copy; the array holds the
    image (its buffer stays valid after the image object is dropped) and is writable."""
    import gc
    img = sitk.Image(7, 5, 3, sitk.sitkInt16)
    img[2, 1, 0] = 123
    ref = sitk.GetArrayFromImage(img)
    arr = image_io.array_from_sitk(img)
    del img
    gc.collect()
    junk = [np.full(10000, 7, np.int16) for _ in range(50)]   # reuse freed memory if the buffer were freed
    assert arr.shape == (3, 5, 7) and arr.dtype == np.int16
    assert np.array_equal(arr, ref) and arr[0, 1, 2] == 123
    view = arr[1:]
    del arr, junk
    gc.collect()
    assert np.array_equal(view, ref[1:])
    view[0, 0, 0] = 9
    assert view[0, 0, 0] == 9


@pytest.mark.parametrize("rescale", [True, False])
def test_dicom_series_geometry_and_values_exact(tmp_path, rescale):
    g = _geom_oblique()
    a = _ramp(g)
    dicom_write.write_dicom_series(a, g, tmp_path / "ct", "CT", rescale=rescale)
    vol = image_io.load_image(tmp_path / "ct")
    assert vol.modality == "CT" and vol.intensity_unit == "HU"
    np.testing.assert_array_equal(vol.array, a)
    np.testing.assert_allclose(vol.geometry.ijk_to_ras_matrix(), g.ijk_to_ras_matrix(), atol=1e-5)
    assert vol.meta["input_id"].startswith("sha256:")
    warned = any("Rescale" in w for w in vol.meta["warnings"])
    assert warned == (not rescale)


def test_ct_stored_without_hu_offset_is_warned(tmp_path):
    g = Geometry.create((8, 8, 4), (1, 1, 1))
    a = np.full(g.shape, 1024, np.int16)  # air stored as 1024 instead of -1000: no HU rescale applied
    dicom_write.write_dicom_series(a, g, tmp_path / "ct", "CT")
    vol = image_io.load_image(tmp_path / "ct")
    assert any("HU" in w and "rescale" in w for w in vol.meta["warnings"])


def test_series_folder_with_two_series_asks_which(tmp_path):
    g = Geometry.create((6, 6, 3), (1, 1, 1))
    dicom_write.write_dicom_series(_ramp(g), g, tmp_path / "d", "CT", seed="a")
    dicom_write.write_dicom_series(_ramp(g), g, tmp_path / "mr", "MR", seed="b")
    for f in (tmp_path / "mr").iterdir():
        f.rename(tmp_path / "d" / f.name)
    with pytest.raises(InputError, match="--series"):
        image_io.load_image(tmp_path / "d")
    vol = image_io.load_image(tmp_path / "d", series="1")
    assert vol.modality in ("CT", "MR")


def test_irregular_slice_spacing_refused(tmp_path):
    g = Geometry.create((6, 6, 5), (1, 1, 2))
    dicom_write.write_dicom_series(_ramp(g), g, tmp_path / "ct", "CT")
    (tmp_path / "ct" / "CT0003.dcm").unlink()  # a missing slice
    with pytest.raises(InputError, match="irregular slice spacing"):
        image_io.load_image(tmp_path / "ct")


def _xr(tmp_path, **kw):
    img = np.tile(np.arange(40, dtype=float) * 10 + 100, (30, 1))
    p = tmp_path / "xr.dcm"
    dicom_write.write_dicom_radiograph(img, p, **kw)
    return img, p


def test_radiograph_pixel_spacing_is_row_column(tmp_path):
    img, p = _xr(tmp_path, spacing_xy=(0.1, 0.15), spacing_tag="pixel", laterality="R")
    vol = image_io.load_image(p)
    assert vol.is_2d and vol.modality == "XR" and vol.meta["laterality"] == "R"
    assert vol.geometry.spacing[:2] == pytest.approx((0.1, 0.15))
    assert vol.meta["spacing_source"] == dicom_meta.SPACING_PIXEL
    np.testing.assert_array_equal(vol.array[0], img)


def test_radiograph_imager_spacing_divided_by_magnification(tmp_path):
    _, p = _xr(tmp_path, spacing_xy=(0.1, 0.15), spacing_tag="imager", magnification=1.25)
    vol = image_io.load_image(p)
    assert vol.geometry.spacing[:2] == pytest.approx((0.1, 0.15))
    assert vol.meta["spacing_source"].startswith("ImagerPixelSpacing (0018,1164) / Estimated")
    # the detector spacing itself is 1.25 x larger
    ds = pydicom.dcmread(str(p))
    assert float(ds.ImagerPixelSpacing[1]) == pytest.approx(0.125)


def test_radiograph_imager_spacing_without_magnification_warns(tmp_path):
    _, p = _xr(tmp_path, spacing_xy=(0.2, 0.2), spacing_tag="imager")
    vol = image_io.load_image(p)
    assert vol.meta["spacing_source"] == dicom_meta.SPACING_IMAGER
    assert any("detector" in w for w in vol.meta["warnings"])


def _with_pixel_spacing(p, row_col):
    ds = pydicom.dcmread(str(p))
    ds.PixelSpacing = [f"{v:.6f}" for v in row_col]
    ds.save_as(str(p))


def test_pixel_spacing_equal_to_imager_spacing_is_the_detector_plane(tmp_path):
    """Many CR/DX writers copy Imager Pixel Spacing into Pixel Spacing: that is the detector
    plane, so the file's magnification factor divides it, and without one a warning says
    that areas include the magnification (DOMAIN.md: the hand is 5-20% smaller)."""
    _, p = _xr(tmp_path, spacing_xy=(0.1, 0.15), spacing_tag="imager", magnification=1.25)
    _with_pixel_spacing(p, (0.1875, 0.125))          # = Imager Pixel Spacing (row, column)
    vol = image_io.load_image(p)
    assert vol.geometry.spacing[:2] == pytest.approx((0.1, 0.15))
    assert vol.meta["magnification"] == pytest.approx(1.25)
    assert vol.meta["magnification_source"].startswith("file")
    ds = pydicom.dcmread(str(p))
    del ds.EstimatedRadiographicMagnificationFactor
    ds.save_as(str(p))
    vol = image_io.load_image(p)
    assert vol.geometry.spacing[:2] == pytest.approx((0.125, 0.1875))
    assert vol.meta["spacing_source"].startswith(dicom_meta.SPACING_PIXEL_IS_IMAGER)
    assert vol.meta["magnification"] is None and vol.meta["magnification_source"].startswith("none")
    assert sum("detector" in w and "--magnification" in w for w in vol.meta["warnings"]) == 1


def test_user_magnification_corrects_a_detector_plane_spacing(tmp_path):
    """--magnification divides the detector's spacing (and wins over the file's factor);
    the areas then scale by 1/m² exactly."""
    img, p = _xr(tmp_path, spacing_xy=(0.2, 0.2), spacing_tag="imager")
    vol = image_io.load_image(p, magnification=1.1)
    assert vol.geometry.spacing[:2] == pytest.approx((0.2 / 1.1, 0.2 / 1.1))
    assert not any("detector" in w for w in vol.meta["warnings"])
    assert vol.meta["magnification"] == 1.1 and vol.meta["magnification_source"].startswith("user")
    assert "--magnification 1.1" in vol.meta["spacing_source"]
    (tmp_path / "m").mkdir()
    _, p2 = _xr(tmp_path / "m", spacing_xy=(0.2, 0.2), spacing_tag="imager", magnification=1.25)
    vol = image_io.load_image(p2, magnification=1.1)        # the detector spacing is 0.25: 0.25 / 1.1
    assert vol.geometry.spacing[:2] == pytest.approx((0.25 / 1.1, 0.25 / 1.1))
    # a plain image with --spacing: that spacing is taken as the detector's
    png = tmp_path / "xr.png"
    from PIL import Image
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(png)
    vol = image_io.load_image(png, spacing=(0.2, 0.3), magnification=1.25)
    assert vol.geometry.spacing[:2] == pytest.approx((0.16, 0.24))
    assert vol.meta["magnification_source"].startswith("user")


def test_user_magnification_is_refused_where_it_would_correct_twice(tmp_path):
    _, p = _xr(tmp_path, spacing_xy=(0.1, 0.1), spacing_tag="imager", magnification=1.25)
    _with_pixel_spacing(p, (0.1, 0.1))     # calibrated at the patient: differs from Imager Pixel Spacing
    assert image_io.load_image(p).geometry.spacing[:2] == pytest.approx((0.1, 0.1))
    with pytest.raises(InputError, match=r"^--magnification: xr\.dcm .*already at the patient"):
        image_io.load_image(p, magnification=1.1)
    for bad in (0.9, 2.5):
        with pytest.raises(InputError, match="^--magnification: expected"):
            image_io.load_image(p, magnification=bad)


def test_magnification_is_refused_for_a_3d_image(tmp_path):
    g = Geometry.create((8, 8, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    p = tmp_path / "ct.nrrd"
    image_io.write_image(np.zeros((4, 8, 8), np.int16), g, p)
    with pytest.raises(InputError, match="^--magnification: ct.nrrd is a 3D image"):
        image_io.load_image(p, magnification=1.1)


@pytest.mark.parametrize("tag", ["none", "zero"])
def test_radiograph_without_spacing_is_a_clear_error(tmp_path, tag):
    _, p = _xr(tmp_path, spacing_xy=(0.2, 0.2), spacing_tag=tag)
    with pytest.raises(InputError) as e:
        image_io.load_image(p)
    assert str(p) in str(e.value) and "--spacing" in str(e.value)
    vol = image_io.load_image(p, spacing=(0.3, 0.4))
    assert vol.geometry.spacing[:2] == (0.3, 0.4) and vol.meta["spacing_source"] == dicom_meta.SPACING_USER


@pytest.mark.parametrize("bits", [16, 12, 8])
def test_monochrome1_is_inverted_so_dense_is_bright(tmp_path, bits):
    """MONOCHROME1 stores dense structures dark; loaded, they are bright, once: GDCM (behind
    SimpleITK) turns the values round itself, and the loader must not turn them back (it
    did: the ramp came out reversed, hidden by unsigned wrap-around in the check).  The
    values, widened first, never wrap around (8-bit files included)."""
    img = np.tile(np.arange(40, dtype=float) * 6 + 10, (30, 1))     # 10-244: within 8 bits
    p = tmp_path / "xr.dcm"
    dicom_write.write_dicom_radiograph(img, p, (0.2, 0.2), monochrome1=True, bits_stored=bits)
    vol = image_io.load_image(p)
    a = vol.array[0].astype(np.float64)
    assert np.all(np.diff(a, axis=1) > 0)  # same ordering as the original ramp (signed differences)
    np.testing.assert_allclose(a - a.min(), img - img.min())   # the ramp itself, up to an offset
    assert any("MONOCHROME1" in w for w in vol.meta["warnings"])


def test_rle_compressed_radiograph_decodes_to_the_same_pixels(tmp_path):
    img, p = _xr(tmp_path, spacing_xy=(0.2, 0.2), compress_rle=True)
    assert pydicom.dcmread(str(p)).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(image_io.load_image(p).array[0], img)


def test_undecodable_transfer_syntax_is_refused_not_read_as_garbage(tmp_path):
    _, p = _xr(tmp_path, spacing_xy=(0.2, 0.2))
    ds = pydicom.dcmread(str(p))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video: no decoder for stills
    from pydicom.encaps import encapsulate
    ds.PixelData = encapsulate([b"\x00\x01garbage" * 10])
    ds["PixelData"].VR = "OB"
    dicom_write.save_dataset(ds, p)
    with pytest.raises(InputError) as e:
        image_io.load_image(p)
    assert "MPEG2" in str(e.value) and str(p) in str(e.value)


def test_undecodable_series_is_refused_naming_a_file(tmp_path):
    """A DICOM series whose slices are in a transfer syntax nothing here decodes is
    refused with the file and the syntax named, not read as garbage."""
    from pydicom.encaps import encapsulate
    g = Geometry.create((12, 10, 4), (0.5, 0.5, 1.25), (0.0, 0.0, 0.0))
    folder = tmp_path / "series"
    dicom_write.write_dicom_series(_ramp(g), g, folder)
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(str(f))
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
        ds.PixelData = encapsulate([b"\x00\x01garbage" * 10])
        ds["PixelData"].VR = "OB"
        dicom_write.save_dataset(ds, f)
    with pytest.raises(InputError) as e:
        image_io.load_image(folder)
    msg = str(e.value)
    assert "MPEG2" in msg and str(folder) in msg and "\n" not in msg


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".mha"])
def test_itk_formats_keep_geometry(tmp_path, suffix):
    g = _geom_oblique()
    a = _ramp(g)
    p = tmp_path / f"img{suffix}"
    image_io.write_image(a, g, p)
    vol = image_io.load_image(p, modality="ct")
    np.testing.assert_array_equal(vol.array, a)
    np.testing.assert_allclose(vol.geometry.ijk_to_ras_matrix(), g.ijk_to_ras_matrix(), atol=1e-4)
    assert vol.modality == "CT"


@pytest.mark.parametrize("name", ["x.png", "x.tif", "x.tiff"])
def test_png_needs_spacing(tmp_path, name):
    from PIL import Image
    p = tmp_path / name
    Image.fromarray(np.arange(200, dtype=np.uint8).reshape(10, 20)).save(p)
    with pytest.raises(InputError, match="--spacing"):
        image_io.load_image(p)
    vol = image_io.load_image(p, spacing=(0.2, 0.25))
    assert vol.is_2d and vol.geometry.size_ijk == (20, 10, 1) and vol.geometry.spacing[:2] == (0.2, 0.25)
    np.testing.assert_array_equal(vol.array[0], np.arange(200).reshape(10, 20))


@pytest.mark.parametrize("path,match", [("nope.nrrd", "no such file"), ("x.xyz", "unknown image format")])
def test_bad_paths(tmp_path, path, match):
    p = tmp_path / path
    if path.endswith(".xyz"):
        p.write_text("hello")
    with pytest.raises(InputError, match=match):
        image_io.load_image(p)


def test_label_map_with_flipped_header_lands_in_the_same_place(tmp_path):
    """The same physical label map stored with y flipped (and one stored with axes
    permuted) must resample to the identical array on the image grid."""
    g = Geometry.create((20, 16, 6), (0.8, 0.9, 2.0), (-10, 5, 30))
    labels = np.zeros(g.shape, np.uint8)
    labels[2:4, 3:9, 5:12] = 7
    labels[1, 10:14, 2:4] = 3
    # flipped-y copy: same voxel centres, j reversed, origin moved to the other end
    d = g.direction.copy()
    d[:, 1] *= -1
    origin = g.ijk_to_ras(np.array([0, g.size_ijk[1] - 1, 0], float))
    g_flip = Geometry.create(g.size_ijk, g.spacing, origin, d)
    image_io.write_image(labels[:, ::-1, :], g_flip, tmp_path / "flip.nii.gz")
    # permuted copy: store as (i, k, j) ordering of axes
    d2 = g.direction[:, [0, 2, 1]]
    g_perm = Geometry.create((g.size_ijk[0], g.size_ijk[2], g.size_ijk[1]), (g.spacing[0], g.spacing[2], g.spacing[1]),
                             g.origin_ras, d2)
    image_io.write_image(np.transpose(labels, (1, 0, 2)), g_perm, tmp_path / "perm.nrrd")
    for name in ("flip.nii.gz", "perm.nrrd"):
        lab = image_io.load_label_image(tmp_path / name, reference=g)
        np.testing.assert_array_equal(lab.layers[0], labels)
        assert [s.label_value for s in lab.segments] == [3, 7]


def test_label_map_on_another_grid_is_resampled_physically(tmp_path):
    g = Geometry.create((20, 20, 10), (1, 1, 1), (0, 0, 0))
    coarse = Geometry.create((10, 10, 5), (2, 2, 2), (0.5, 0.5, 0.5))
    lab = np.zeros(coarse.shape, np.uint8)
    lab[2, 3, 4] = 1  # covers RAS x in [8, 10), y in [6, 8), z in [4, 6) on the fine grid
    image_io.write_image(lab, coarse, tmp_path / "c.nrrd")
    out = image_io.load_label_image(tmp_path / "c.nrrd", reference=g).layers[0]
    k, j, i = np.nonzero(out)
    assert sorted(set(i)) == [8, 9] and sorted(set(j)) == [6, 7] and sorted(set(k)) == [4, 5]


def test_label_map_rejects_non_integers_and_negatives(tmp_path):
    g = Geometry.create((4, 4, 2))
    image_io.write_image(np.full(g.shape, 0.5, np.float32), g, tmp_path / "f.nrrd")
    with pytest.raises(InputError, match="non-integer"):
        image_io.load_label_image(tmp_path / "f.nrrd")
    image_io.write_image(np.full(g.shape, -1, np.int16), g, tmp_path / "n.nrrd")
    with pytest.raises(InputError, match="negative"):
        image_io.load_label_image(tmp_path / "n.nrrd")


def test_seg_nrrd_round_trip_with_names_colours_and_crop(tmp_path):
    from calcinosis.core.segnrrd import read_seg_nrrd, write_seg_nrrd
    g = _geom_oblique()
    labels = np.zeros(g.shape, np.uint16)
    labels[2:4, 3:5, 4:7] = 1
    labels[6, 8, 10] = 2
    p = write_seg_nrrd(labels, g, tmp_path / "x.seg.nrrd", ["lesion 1", "lesion 2"], [(1, 0, 0), (0, 0.5, 1)])
    img = sitk.ReadImage(str(p))
    assert img.GetSize() == (7, 6, 5)  # cropped to the labels' extent
    back = read_seg_nrrd(p)
    assert [s.name for s in back.segments] == ["lesion 1", "lesion 2"]
    assert back.segments[1].color == pytest.approx((0, 0.5, 1))
    full = image_io.load_label_image(p, reference=g)
    np.testing.assert_array_equal(full.layers[0], labels)
