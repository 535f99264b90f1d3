"""Writing synthetic images as DICOM (phantoms only: the project never rewrites a
patient's DICOM).  CT/MR as one file per slice, radiographs as single CR files.

UIDs are derived deterministically from a seed, so the same phantom gives the same
files.  Patient fields hold obvious phantom values; tests check that none of them
reaches any output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .geometry import LPS_TO_RAS, Geometry

PHANTOM_PATIENT_NAME = "PHANTOM^CALCINOSIS"
PHANTOM_PATIENT_ID = "PHANTOM-0001"
PHANTOM_BIRTH_DATE = "19000101"


def _uid(*parts) -> str:
    from pydicom.uid import generate_uid
    return generate_uid(entropy_srcs=["slicer-calcinosis-phantom"] + [str(p) for p in parts])


def save_dataset(ds, path: str | Path) -> None:
    """Write ``ds`` as a DICOM file with its preamble and file meta, on pydicom 3 and on the
    pydicom 2.4 Slicer 5.10 bundles (where the argument has another name and the encoding
    comes from the dataset's own flags)."""
    import pydicom
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(str(path), enforce_file_format=True)
        return
    ts = ds.file_meta.TransferSyntaxUID
    ds.is_little_endian, ds.is_implicit_VR = ts.is_little_endian, ts.is_implicit_VR
    ds.save_as(str(path), write_like_original=False)


def _base_dataset(sop_class_uid: str, sop_instance_uid: str, modality: str, study_uid: str, series_uid: str,
                  series_number: int, transfer_syntax: str | None = None):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.Modality = modality
    ds.PatientName = PHANTOM_PATIENT_NAME
    ds.PatientID = PHANTOM_PATIENT_ID
    ds.PatientBirthDate = PHANTOM_BIRTH_DATE
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.Manufacturer = "SlicerCalcinosis phantom"
    return ds


def write_dicom_series(array: np.ndarray, geometry: Geometry, folder: str | Path, modality: str = "CT",
                       seed: str = "0", rescale: bool = True, series_description: str = "phantom",
                       extra: dict | None = None) -> list[Path]:
    """One file per k slice.  CT values are stored as int16 with Rescale Slope 1 /
    Intercept 0 (``rescale=False`` omits both, to mimic a file without HU rescale)."""
    from pydicom.uid import CTImageStorage, MRImageStorage

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    study_uid, series_uid = _uid(seed, "study"), _uid(seed, modality, "series")
    dir_lps = LPS_TO_RAS @ geometry.direction
    origin_lps = LPS_TO_RAS @ np.asarray(geometry.origin_ras)
    row_dir, col_dir, slice_dir = dir_lps[:, 0], dir_lps[:, 1], dir_lps[:, 2]
    data = np.round(array).astype(np.int16) if modality == "CT" else np.clip(np.round(np.asarray(array, np.float64)), 0, 65535).astype(np.uint16)
    paths = []
    for k in range(array.shape[0]):
        uid = _uid(seed, modality, "slice", k)
        ds = _base_dataset(sop_class, uid, modality, study_uid, series_uid, 1 if modality == "CT" else 2)
        ds.SeriesDescription = series_description
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = _uid(seed, "frame")
        pos = origin_lps + k * geometry.spacing[2] * slice_dir
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in list(row_dir) + list(col_dir)]
        ds.PixelSpacing = [f"{geometry.spacing[1]:.6f}", f"{geometry.spacing[0]:.6f}"]
        ds.SliceThickness = f"{geometry.spacing[2]:.6f}"
        ds.Rows, ds.Columns = int(array.shape[1]), int(array.shape[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if modality == "CT" else 0
        if modality == "CT":
            ds.KVP = "120"
            if rescale:
                ds.RescaleIntercept = "0"
                ds.RescaleSlope = "1"
                ds.RescaleType = "HU"
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        ds.PixelData = np.ascontiguousarray(data[k]).tobytes()
        p = folder / f"{modality}{k + 1:04d}.dcm"
        save_dataset(ds, p)
        paths.append(p)
    return paths


def write_dicom_radiograph(image: np.ndarray, path: str | Path, spacing_xy: Sequence[float] | None = None,
                           spacing_tag: str = "pixel", magnification: float | None = None, seed: str = "0",
                           laterality: str | None = None, monochrome1: bool = False,
                           compress_rle: bool = False, modality: str = "CR", bits_stored: int = 16,
                           jpeg_quality: int | None = None) -> Path:
    """A single-file radiograph.  ``spacing_tag``: 'pixel' (Pixel Spacing), 'imager'
    (Imager Pixel Spacing at the detector, with ``magnification`` as Estimated
    Radiographic Magnification Factor when given), 'none', or 'zero'.  For 'imager'
    ``spacing_xy`` is the spacing at the patient; the detector spacing written is
    spacing x magnification.

    ``bits_stored``: 16 (default), 12 (16 bits allocated, values 0-4095) or 8 (8 bits
    allocated); values are rounded and clipped to the range, not rescaled.  ``monochrome1``
    stores ``2^bits - 1 - value``.  ``jpeg_quality`` (8 bits only): the pixels JPEG-compressed
    by Pillow (lossy, baseline, transfer syntax 1.2.840.10008.1.2.4.50) and encapsulated."""
    from pydicom.uid import (ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation,
                             JPEGBaseline8Bit, RLELossless)

    if bits_stored not in (8, 12, 16):
        raise ValueError(f"bits_stored must be 8, 12 or 16, got {bits_stored}")
    if jpeg_quality is not None and (bits_stored != 8 or compress_rle):
        raise ValueError("JPEG Baseline holds 8-bit pixels only (and is not combined with RLE)")
    path = Path(path)
    sop_class = ComputedRadiographyImageStorage if modality == "CR" else DigitalXRayImageStorageForPresentation
    uid = _uid(seed, "xr", "image")
    ds = _base_dataset(sop_class, uid, modality, _uid(seed, "study"), _uid(seed, "xr", "series"), 3,
                       transfer_syntax=JPEGBaseline8Bit if jpeg_quality is not None else None)
    ds.InstanceNumber = 1
    top = (1 << bits_stored) - 1
    data = np.clip(np.round(image), 0, top).astype(np.uint8 if bits_stored == 8 else np.uint16)
    if monochrome1:
        data = (top - data).astype(data.dtype)
    ds.Rows, ds.Columns = int(data.shape[0]), int(data.shape[1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = 8 if bits_stored == 8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.BodyPartExamined = "HAND"
    ds.ViewPosition = "PA"
    if laterality:
        ds.ImageLaterality = laterality
    if spacing_xy is not None and spacing_tag != "none":
        sx, sy = float(spacing_xy[0]), float(spacing_xy[1])
        if spacing_tag == "pixel":
            ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]
        elif spacing_tag == "imager":
            m = magnification if magnification is not None else 1.0
            ds.ImagerPixelSpacing = [f"{sy * m:.6f}", f"{sx * m:.6f}"]
            if magnification is not None:
                ds.EstimatedRadiographicMagnificationFactor = f"{magnification:.6f}"
        elif spacing_tag == "zero":
            ds.PixelSpacing = ["0", "0"]
        else:
            raise ValueError(f"unknown spacing_tag {spacing_tag!r}")
    if jpeg_quality is not None:
        import io

        from PIL import Image
        from pydicom.encaps import encapsulate

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(data), mode="L").save(buf, format="JPEG", quality=int(jpeg_quality))
        frame = buf.getvalue()
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.LossyImageCompressionRatio = f"{data.size / len(frame):.2f}"
    else:
        ds.PixelData = np.ascontiguousarray(data).tobytes()
    if compress_rle:
        ds.compress(RLELossless, encoding_plugin="pydicom")
    save_dataset(ds, path)
    return path
