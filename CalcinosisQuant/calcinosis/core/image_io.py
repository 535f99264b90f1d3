"""Reading and writing images with their geometry kept exactly.

Readers return a :class:`~calcinosis.core.volume.Volume` (array ``[k, j, i]``, RAS geometry,
meta).  Supported inputs:

* a DICOM series (a folder; CT or MR), decoded by SimpleITK/GDCM, which handles the
  compressed transfer syntaxes (JPEG, JPEG-LS, JPEG 2000, RLE).  Irregular slice
  spacing and tilted stacks are refused rather than measured wrongly;
* a single-file DICOM radiograph (CR/DX/DR), with the physical spacing chosen by
  :func:`~calcinosis.core.dicom_meta.radiograph_spacing` and MONOCHROME1 inverted so
  that dense is bright;
* NRRD, NIfTI, MetaImage (through SimpleITK, LPS headers converted to RAS once, in
  :mod:`~calcinosis.core.geometry`);
* PNG/TIFF/JPEG only with an explicit spacing.

Label maps (``.nrrd``, ``.nii.gz``, Slicer ``.seg.nrrd`` with layers) come in through
:func:`load_label_image` and are matched to an image grid in physical space by
:func:`resample_labels`, never by array index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import dicom_meta
from .errors import InputError
from .geometry import LPS_TO_RAS, Geometry
from .volume import RADIOGRAPH_MODALITIES, Volume, normalise_modality

PLAIN_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in (".seg.nrrd", ".nii.gz"):
        if name.endswith(s):
            return s
    return path.suffix.lower()


# ---------------------------------------------------------------------- SimpleITK glue
class _ImageBuffer:
    """Holds a SimpleITK image while numpy arrays use its pixel buffer (their ``base``)."""

    def __init__(self, image, view: np.ndarray):
        self.image = image
        interface = dict(view.__array_interface__)
        interface["data"] = (interface["data"][0], False)   # the buffer is the image's own (made unique): writable
        self.__array_interface__ = interface


def array_from_sitk(image) -> np.ndarray:
    """The image's pixels as a numpy array (k, j, i) *sharing* the image's buffer: no copy
    (a copy of a 300 MB CT costs about 0.15 s).  The array keeps the image alive."""
    import SimpleITK as sitk
    view = sitk.GetArrayViewFromImage(image)      # makes the buffer unique (writable, not shared)
    return np.asarray(_ImageBuffer(image, view))


def sitk_to_array_and_geometry(image) -> tuple[np.ndarray, Geometry]:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("image has several components per pixel (colour or vector); a scalar image is needed")
    arr = array_from_sitk(image)
    geom = Geometry.from_sitk(image)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    return arr, geom


def array_to_sitk(array: np.ndarray, geometry: Geometry):
    import SimpleITK as sitk
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    img = sitk.GetImageFromArray(a)
    spacing, origin, direction = geometry.to_sitk_fields()
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def write_image(array: np.ndarray, geometry: Geometry, path: str | Path, compress: bool = True) -> Path:
    """Write an array on ``geometry`` to NRRD/NIfTI/MHA (by suffix)."""
    path = Path(path)
    write_sitk_image(array_to_sitk(array, geometry), path, compress)
    return path


def write_sitk_image(image, path: str | Path, compress: bool = True) -> None:
    """``SimpleITK.WriteImage``, a failure (a full disk, no permission) raised as the
    ``OSError`` it is rather than SimpleITK's ``RuntimeError`` with a C++ trace."""
    import SimpleITK as sitk
    try:
        sitk.WriteImage(image, str(path), compress)
    except RuntimeError as e:
        reason = next((ln.strip() for ln in str(e).splitlines() if "rror" in ln or "space" in ln), "")
        raise OSError(f"{Path(path).name}: the image could not be written"
                      + (f" ({reason.split(': ', 1)[-1][:200]})" if reason else "")) from None


# ---------------------------------------------------------------------- entry point
def load_image(path: str | Path, spacing: Sequence[float] | None = None, modality: str | None = None,
               series: str | None = None, magnification: float | None = None) -> Volume:
    """Load any supported image.  ``spacing`` (x, y in mm) is for radiographs and
    plain images; ``modality`` overrides the header; ``series`` picks one DICOM
    series in a folder that holds several (its number in the listing, or its UID);
    ``magnification`` (radiographs) divides a detector-plane spacing to the patient
    (:func:`~calcinosis.core.dicom_meta.radiograph_spacing`).  Within
    :func:`calcinosis.core.memo.sharing` (the readings of one image in a batch) the file is
    read once."""
    from . import memo
    return memo.remember(
        "image", lambda: (memo.file_key(path), None if spacing is None else tuple(spacing), modality, series,
                          magnification),
        lambda: _load_image(path, spacing, modality, series, magnification))


def _load_image(path: str | Path, spacing: Sequence[float] | None, modality: str | None, series: str | None,
                magnification: float | None) -> Volume:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    user_spacing = _check_spacing(spacing, path) if spacing is not None else None
    if magnification is not None:
        lo, hi = dicom_meta.MAGNIFICATION_RANGE
        if not (lo <= float(magnification) <= hi):
            raise InputError(f"--magnification: expected a radiograph's geometric magnification from {lo:g} to "
                             f"{hi:g}, got {magnification!r}")
    if path.is_dir():
        dicoms = [p for p in sorted(path.iterdir()) if p.is_file() and dicom_meta.is_dicom_file(p)]
        if not dicoms:
            raise InputError(f"{path}: folder holds no DICOM files (a DICOM series folder was expected)")
        if len(dicoms) == 1:
            vol = _load_dicom_file(dicoms[0], user_spacing, magnification)
        else:
            vol = _load_dicom_series(path, series)
    else:
        suf = _suffix(path)
        if suf == ".seg.nrrd":
            raise InputError(f"{path}: this is a segmentation; pass it as the mask/segmentation, not as the image")
        if dicom_meta.is_dicom_file(path) or suf in (".dcm", ".dicom"):
            vol = _load_dicom_file(path, user_spacing, magnification)
        elif suf in VOLUME_SUFFIXES:
            vol = _load_itk_file(path, user_spacing)
        elif suf in PLAIN_IMAGE_SUFFIXES:
            vol = _load_plain_image(path, user_spacing)
        else:
            raise InputError(f"{path}: unknown image format '{suf}' (DICOM, NRRD, NIfTI, MHA, or PNG/TIFF with --spacing)")
    if magnification is not None:
        _apply_user_magnification(vol, path, float(magnification))
    _check_plausible_spacing(vol, path)
    if vol.array.dtype.kind == "f":    # a NaN or an infinity would become a lesion or hide one
        bad = int(np.count_nonzero(~np.isfinite(vol.array)))
        if bad:
            raise InputError(f"{path}: {bad} voxel value(s) are not finite numbers (NaN or infinite); "
                             "fix or resample the image first")
    if modality is not None:
        vol.meta["modality"] = normalise_modality(modality)
        vol.meta["modality_source"] = "user"
    if vol.meta.get("modality") == "CT":
        vol.meta["intensity_unit"] = "HU"
    vol.meta.setdefault("intensity_unit", "HU" if vol.meta.get("modality") == "CT" else "a.u.")
    return vol


#: voxel sizes (mm) outside this range are no hand or spine image at the patient: a header
#: error (``1e-30``, ``1e6``), which would make every area and volume meaningless
PLAUSIBLE_SPACING_MM = (0.01, 50.0)


def _check_plausible_spacing(vol: Volume, path: Path) -> None:
    lo, hi = PLAUSIBLE_SPACING_MM
    axes = vol.geometry.spacing[:2] if vol.is_2d else vol.geometry.spacing
    bad = [float(s) for s in axes if not lo <= float(s) <= hi]
    if bad:
        fix = "give the pixel spacing with --spacing X,Y" if vol.is_2d else "fix the spacing in the file's header"
        raise InputError(f"{path}: voxel spacing {bad[0]:g} mm ({vol.meta.get('spacing_source', 'image header')}) is "
                         f"not a plausible size ({lo:g} to {hi:g} mm); {fix}")


def _check_spacing(spacing: Sequence[float], path: Path) -> tuple[float, float]:
    try:
        sp = [float(s) for s in spacing]
    except (TypeError, ValueError):
        raise InputError(f"--spacing: expected two numbers in mm like 0.1,0.1, got {spacing!r}") from None
    if len(sp) == 1:
        sp = sp * 2
    if len(sp) != 2 or not all(np.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"--spacing: expected two positive numbers in mm like 0.1,0.1, got {spacing!r}")
    return sp[0], sp[1]


# ---------------------------------------------------------------------- DICOM
def _decode_error(path: Path, ds, err: Exception) -> InputError:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    what = f"{ts.name} ({ts})" if ts else "unknown transfer syntax"
    if ts is not None and not ts.is_compressed:   # nothing to decode: the file itself is damaged
        return InputError(f"{path}: the pixel data, stored uncompressed ({what}), cannot be read: the file is damaged "
                          f"or its header does not describe it ({str(err).splitlines()[0][:120]})")
    return InputError(f"{path}: pixel data in {what} cannot be decoded here ({str(err).splitlines()[0][:120]}); "
                      + dicom_meta.COMPRESSED_HINT)


def _read_single_dicom_pixels(path: Path, ds) -> np.ndarray:
    """Pixel values with the modality LUT (rescale) applied, shape (rows, cols) or (frames, rows, cols)."""
    import SimpleITK as sitk
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if ds.get("PixelData") is None and "PixelData" not in ds and ds.get("FloatPixelData") is None:
        # stop_before_pixels hides PixelData; check the real file
        pass
    errors = []
    arr = None
    try:
        img = sitk.ReadImage(str(path))
        arr = sitk.GetArrayFromImage(img)
    except RuntimeError as e:
        errors.append(e)
    if arr is None:
        try:
            import pydicom
            try:
                from pydicom.pixels import apply_modality_lut
            except ImportError:  # pydicom 2.x (Slicer 5.10 bundles 2.4.4)
                from pydicom.pixel_data_handlers.util import apply_modality_lut
            full = pydicom.dcmread(str(path), force=True)
            arr = apply_modality_lut(full.pixel_array, full)
        except Exception as e:  # noqa: BLE001 - any decoder failure becomes one clear line
            errors.append(e)
            raise _decode_error(path, ds, errors[0]) from None
    arr = np.asarray(arr)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or (rows and cols and arr.shape != (rows, cols)):
        raise InputError(f"{path}: decoded pixel array has shape {arr.shape}, header says {rows}x{cols}; "
                         "refusing to measure an image that may be read wrongly")
    return arr


def _monochrome1_already_inverted(path: Path, arr: np.ndarray) -> bool:
    """Whether the decoder already turned a MONOCHROME1 image's values round (GDCM, behind
    SimpleITK, does; pydicom does not): the decoded values against the stored ones, on a
    subsample.  When the stored values cannot be read here, the decoder is taken to be
    GDCM's (the route that decoded them)."""
    try:
        import pydicom
        raw = np.asarray(pydicom.dcmread(str(path), force=True).pixel_array, np.float64)
    except Exception:  # noqa: BLE001 - compressed without a pydicom decoder: GDCM decoded it
        return True
    a = np.asarray(arr, np.float64)
    if raw.shape != a.shape:
        return True
    step = max(1, int(np.sqrt(a.size / 20000)))
    x, y = a[::step, ::step].ravel(), raw[::step, ::step].ravel()
    if x.std() == 0 or y.std() == 0:
        return False
    return float(np.corrcoef(x, y)[0, 1]) < 0


def _apply_user_magnification(vol: Volume, path: Path, m: float) -> None:
    """``--magnification`` on a loaded image: refused for CT/MRI; a DICOM radiograph has it
    applied already (by :func:`dicom_meta.radiograph_spacing`); another 2D image's spacing
    (the user's ``--spacing`` or its header's) is taken as the detector's and divided."""
    if not vol.is_2d:
        raise InputError(f"--magnification: {path.name} is a 3D image (CT/MRI, no projection magnification); "
                         "it is for radiographs only")
    if vol.meta.get("magnification_source"):
        return
    g = vol.geometry
    sx, sy = float(g.spacing[0]) / m, float(g.spacing[1]) / m
    vol.geometry = Geometry.create(g.size_ijk, (sx, sy, float(g.spacing[2])), g.origin_ras, g.direction)
    vol.meta["spacing_source"] = f"{vol.meta.get('spacing_source', dicom_meta.SPACING_HEADER)} / --magnification {m:g} (user)"
    vol.meta["magnification"] = m
    vol.meta["magnification_source"] = "user (--magnification)"


def _load_dicom_file(path: Path, user_spacing: tuple[float, float] | None,
                     magnification: float | None = None) -> Volume:
    ds, remaining = dicom_meta.read_image_header(path)
    if "PixelData" not in ds and not _has_pixel_data(path):
        raise InputError(f"{path}: DICOM file holds no image (no Pixel Data)")
    dicom_meta.check_image_header(ds, path, remaining)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(f"{path}: multi-frame DICOM ({frames} frames) is not supported; "
                         "export it as a series or NRRD from Slicer")
    modality = normalise_modality(ds.get("Modality"))
    arr = _read_single_dicom_pixels(path, ds)
    meta = {"source_format": "DICOM file", "modality": modality, "dicom": dicom_meta.kept_attributes(ds),
            "laterality": dicom_meta.laterality(ds)}
    warnings: list[str] = []
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        if not _monochrome1_already_inverted(path, arr):
            wide = arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64)   # no uint8/uint16 wrap-around
            arr = (wide.max() + wide.min()) - wide
        warnings.append(f"{path.name}: MONOCHROME1 image inverted so that dense structures are bright")
    if modality in (None, "XR", "OT") or str(ds.get("Modality", "")).upper() in RADIOGRAPH_MODALITIES:
        (sx, sy), source, w = dicom_meta.radiograph_spacing(ds, path, user_spacing, magnification)
        warnings += w
        meta.update(dicom_meta.magnification_record(source, magnification))
        geom = Geometry.create((arr.shape[1], arr.shape[0], 1), (sx, sy, 1.0),
                               (0.0, 0.0, 0.0), LPS_TO_RAS)  # ITK default (LPS identity), as Slicer loads it
        meta["spacing_source"] = source
        if modality in (None, "OT"):
            meta["modality"] = "XR"
    else:
        # a single CT/MR slice: spacing from Pixel Spacing, position from the header when present
        ps = dicom_meta._positive_pair(dicom_meta.value(ds, "PixelSpacing"))
        if user_spacing is not None:
            sx, sy, source = user_spacing[0], user_spacing[1], dicom_meta.SPACING_USER
        elif ps is not None:
            sx, sy, source = ps[1], ps[0], dicom_meta.SPACING_PIXEL
        else:
            raise InputError(f"{path}: no Pixel Spacing (0028,0030); give the spacing in mm with --spacing X,Y")
        geom = Geometry.create((arr.shape[1], arr.shape[0], 1), (sx, sy, 1.0), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
        meta["spacing_source"] = source
    meta["input_id"] = dicom_meta.file_content_id([path])
    meta["warnings"] = warnings
    return Volume(arr[np.newaxis].copy(), geom, meta)


def _has_pixel_data(path: Path) -> bool:
    import pydicom
    try:
        ds = pydicom.dcmread(str(path), force=True, specific_tags=["PixelData", "FloatPixelData"])
    except Exception:  # noqa: BLE001
        return False
    return "PixelData" in ds or "FloatPixelData" in ds


def dicom_source_files(path: str | Path, series: str | None = None) -> list[Path]:
    """The DICOM files :func:`load_image` reads for ``path`` (a file, or the chosen series of
    a folder), for objects that reference them (DICOM SEG and SR); an error naming the path
    when it is not DICOM."""
    path = Path(path)
    if path.is_file():
        if not dicom_meta.is_dicom_file(path):
            raise InputError(f"{path}: not a DICOM file; DICOM SEG and SR reference the DICOM images they were "
                             "measured on (load the DICOM series, not an NRRD/NIfTI/PNG copy)")
        return [path]
    dicoms = [p for p in sorted(path.iterdir()) if p.is_file() and dicom_meta.is_dicom_file(p)] if path.is_dir() else []
    if not dicoms:
        raise InputError(f"{path}: holds no DICOM files; DICOM SEG and SR reference the DICOM images they were "
                         "measured on")
    if len(dicoms) == 1:
        return dicoms
    import SimpleITK as sitk
    listing = list_dicom_series(path)
    chosen = [sid for i, (sid, _) in enumerate(listing, start=1) if series in (None, sid, str(i))]
    if not chosen or (series is None and len(listing) > 1):
        raise InputError(f"{path}: choose the DICOM series with --series N")
    return [Path(f) for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), chosen[0])]


def list_dicom_series(folder: Path) -> list[tuple[str, int]]:
    import SimpleITK as sitk
    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(str(folder))
    return [(sid, len(reader.GetGDCMSeriesFileNames(str(folder), sid))) for sid in ids]


def _load_dicom_series(folder: Path, series: str | None) -> Volume:
    import SimpleITK as sitk
    reader = sitk.ImageSeriesReader()
    try:
        listing = list_dicom_series(folder)
    except RuntimeError as e:   # GDCM gives up on a header it cannot use: name the file and field
        _check_each_header(folder)
        raise InputError(f"{folder}: the DICOM series cannot be listed ({str(e).strip().splitlines()[-1][:160]})") from None
    if not listing:
        _check_each_header(folder)
        raise InputError(f"{folder}: no DICOM image series found")
    if series is not None:
        chosen = [sid for i, (sid, _) in enumerate(listing, start=1) if series in (sid, str(i))]
        if not chosen:
            raise InputError(f"{folder}: --series {series} not found; series here: "
                             + "; ".join(f"{i}: {n} files" for i, (_, n) in enumerate(listing, start=1)))
        sid = chosen[0]
    elif len(listing) > 1:
        raise InputError(f"{folder}: holds {len(listing)} DICOM series ("
                         + "; ".join(f"{i}: {n} files" for i, (_, n) in enumerate(listing, start=1))
                         + "); choose one with --series N")
    else:
        sid = listing[0][0]
    files = list(reader.GetGDCMSeriesFileNames(str(folder), sid))
    if len(listing) == 1:   # a slice GDCM left out of the series (damaged?) is named, not skipped
        listed = {Path(f).resolve() for f in files}
        for f in sorted(p for p in folder.iterdir() if p.is_file() and p.resolve() not in listed
                        and dicom_meta.is_dicom_file(p)):
            ds, remaining = dicom_meta.read_image_header(f)
            if "PixelData" in ds or remaining:
                dicom_meta.check_image_header(ds, f, remaining)
    first = dicom_meta.read_header(Path(files[0]))
    _check_pixel_spacing(first, Path(files[0]))
    _check_slice_positions([Path(f) for f in files], folder)
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise _decode_error(Path(files[0]), first, e) from None
    arr, geom = sitk_to_array_and_geometry(image)
    modality = normalise_modality(first.get("Modality"))
    meta = {"source_format": "DICOM series", "modality": modality, "dicom": dicom_meta.kept_attributes(first),
            "laterality": dicom_meta.laterality(first), "spacing_source": dicom_meta.SPACING_HEADER,
            "n_files": len(files)}
    uid = str(first.get("SeriesInstanceUID", "") or "")
    meta["input_id"] = dicom_meta.pseudonymous_id("series", uid) if uid else dicom_meta.file_content_id(
        [Path(f) for f in files], max_bytes_per_file=1 << 16)
    vol = Volume(arr, geom, meta)
    if modality == "CT" and first.get("RescaleSlope") is None and first.get("RescaleIntercept") is None:
        vol.warn(f"{folder}: CT series without Rescale Slope/Intercept; values may not be Hounsfield units")
    check_ct_units(vol, str(folder))
    return vol


def _check_each_header(folder: Path) -> None:
    """Refuse, naming the file and the field, the first DICOM file in ``folder`` whose header
    cannot describe an image."""
    for f in sorted(p for p in folder.iterdir() if p.is_file() and dicom_meta.is_dicom_file(p)):
        ds, remaining = dicom_meta.read_image_header(f)
        dicom_meta.check_image_header(ds, f, remaining)
        _check_pixel_spacing(ds, f)
        dicom_meta.check_position(ds, f)


def _check_pixel_spacing(ds, path: Path) -> None:
    if dicom_meta._positive_pair(dicom_meta.value(ds, "PixelSpacing")) is None:   # GDCM would read 1 mm
        value = dicom_meta.value(ds, "PixelSpacing")
        raise InputError(f"{path}: Pixel Spacing (0028,0030) is "
                         f"{'missing' if value is None else repr(str(value))}: the pixel size is unknown "
                         "(a series needs two positive numbers in mm)")


def _check_slice_positions(files: list[Path], folder: Path) -> None:
    """Refuse stacks that a regular grid would misplace (no slice positions, missing slices,
    tilt) and slices whose header cannot describe their pixels (named, one by one: a
    truncated file, another size than the first slice's, unusable numbers)."""
    pos, iop, size, placed_files = [], None, None, []
    for f in files:
        ds, remaining = dicom_meta.read_image_header(f)
        dicom_meta.check_image_header(ds, f, remaining)
        this_size = (int(dicom_meta.value(ds, "Rows")), int(dicom_meta.value(ds, "Columns")))
        if size is not None and this_size != size:
            raise InputError(f"{f}: {this_size[0]} x {this_size[1]} pixels (Rows x Columns) where the series' first "
                             f"slice has {size[0]} x {size[1]}; the folder mixes series or holds a damaged file")
        size = this_size
        placed = dicom_meta.check_position(ds, f)
        if len(files) < 2:
            return
        if placed is None:   # GDCM would stack the slices 1 mm apart
            raise InputError(f"{f}: no Image Position (Patient) (0020,0032): where the slices lie, and so the "
                             "slice spacing, is unknown")
        iop = placed[1] if iop is None else iop
        pos.append(placed[0])
        placed_files.append(f)
    if iop is None:
        return  # no orientation to check against; GDCM will have used what it had
    o = np.array([float(v) for v in iop]).reshape(2, 3)
    normal = np.cross(o[0], o[1])
    p = np.array(pos)
    d = np.sort(p @ normal)
    steps = np.diff(d)
    if np.any(steps < 1e-3):
        raise InputError(f"{folder}: two slices share one position; the folder mixes series or holds duplicates")
    med = float(np.median(steps))
    if np.max(np.abs(steps - med)) > max(0.01 * med, 0.01):
        raise InputError(f"{folder}: irregular slice spacing ({steps.min():.3g} to {steps.max():.3g} mm, missing slices?); "
                         "resample the series in Slicer first")
    # one slice displaced in its plane (the others in line): GDCM would stack it in line
    in_plane = p - np.outer(p @ normal, normal)
    off = np.linalg.norm(in_plane - np.median(in_plane, axis=0), axis=1)
    if len(p) > 2 and np.count_nonzero(off > 0.01) == 1:
        k = int(np.argmax(off))
        raise InputError(f"{placed_files[k]}: Image Position (Patient) (0020,0032) lies {off[k]:.3g} mm off the line "
                         "of the other slices; the series is damaged or mixes series")
    # tilt: successive positions should move along the normal
    along = p[np.argsort(p @ normal)]
    step_vec = (along[-1] - along[0]) / max(len(along) - 1, 1)
    if np.linalg.norm(step_vec) > 0:
        cosang = abs(step_vec @ normal) / np.linalg.norm(step_vec)
        if cosang < 0.9999:
            raise InputError(f"{folder}: gantry-tilted or sheared stack (slices do not stack along their normal); "
                             "resample the series in Slicer first")


def check_ct_units(vol: Volume, name: str) -> None:
    """Warn when a CT does not look like it is in Hounsfield units."""
    if vol.meta.get("modality") != "CT":
        return
    a = vol.array
    sample = a[:: max(1, a.shape[0] // 16)]
    lo = float(sample.min())
    if lo >= 0:
        vol.warn(f"{name}: CT values start at {lo:g} (air should be about -1000 HU): "
                 "the image looks stored without its HU rescale; thresholds in HU will be wrong")


# ---------------------------------------------------------------------- other formats
def _load_itk_file(path: Path, user_spacing) -> Volume:
    import SimpleITK as sitk
    from concurrent.futures import ThreadPoolExecutor
    # the content id (a hash of the whole file) is computed while SimpleITK reads it
    with ThreadPoolExecutor(max_workers=1) as pool:
        input_id = pool.submit(dicom_meta.file_content_id, [path])
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as e:
            raise InputError(f"{path}: cannot read ({str(e).strip().splitlines()[-1][:120]})") from None
    if image.GetDimension() > 3 or (image.GetDimension() == 3 and image.GetNumberOfComponentsPerPixel() != 1):
        raise InputError(f"{path}: {image.GetDimension()}D / {image.GetNumberOfComponentsPerPixel()}-component image; "
                         "a scalar 2D or 3D image is needed")
    try:
        arr, geom = sitk_to_array_and_geometry(image)
    except ValueError as e:   # InputError, or a geometry no grid can have (a singular direction)
        raise InputError(f"{path}: {str(e).splitlines()[0] if str(e) else 'unusable image header'}") from None
    meta = {"source_format": _suffix(path).lstrip(".").upper(), "spacing_source": dicom_meta.SPACING_HEADER,
            "input_id": input_id.result()}
    if user_spacing is not None:
        if not geom.is_2d:
            raise InputError(f"{path}: --spacing is only for 2D images; this 3D image has its spacing in the header")
        geom = Geometry.create(geom.size_ijk, (user_spacing[0], user_spacing[1], 1.0), geom.origin_ras, geom.direction)
        meta["spacing_source"] = dicom_meta.SPACING_USER
    for key in ("modality", "Modality"):
        if image.HasMetaDataKey(key):
            meta["modality"] = normalise_modality(image.GetMetaData(key))
    return Volume(arr, geom, meta)


def _load_plain_image(path: Path, user_spacing) -> Volume:
    if user_spacing is None:
        raise InputError(f"{path}: {_suffix(path).lstrip('.').upper()} images carry no physical spacing; "
                         "give it in mm with --spacing X,Y")
    from PIL import Image
    try:
        with Image.open(path) as im:
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
                im = im.convert("L")
            arr = np.asarray(im)
    except OSError as e:
        raise InputError(f"{path}: cannot read image ({e})") from None
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a single grey-level image, got shape {arr.shape}")
    geom = Geometry.create((arr.shape[1], arr.shape[0], 1), (user_spacing[0], user_spacing[1], 1.0),
                           (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    meta = {"source_format": _suffix(path).lstrip(".").upper(), "spacing_source": dicom_meta.SPACING_USER,
            "modality": "XR", "input_id": dicom_meta.file_content_id([path])}
    return Volume(arr[np.newaxis].copy(), geom, meta)


# ---------------------------------------------------------------------- label images
@dataclass
class Segment:
    """One segment of a segmentation: a label value in one layer."""

    name: str
    label_value: int
    layer: int = 0
    color: tuple[float, float, float] | None = None
    segment_id: str = ""


@dataclass
class LabelImage:
    """One or more label layers on one grid (a Slicer segmentation may overlap segments
    in several layers), plus the segments they hold."""

    layers: list[np.ndarray]
    geometry: Geometry
    segments: list[Segment] = field(default_factory=list)
    source: str = ""

    def mask(self, segment: Segment) -> np.ndarray:
        return self.layers[segment.layer] == segment.label_value

    def union(self) -> np.ndarray:
        out = np.zeros(self.geometry.shape, dtype=bool)
        for layer in self.layers:
            out |= layer != 0
        return out


def load_label_image(path: str | Path, reference: Geometry | None = None) -> LabelImage:
    """Read a label map or a Slicer ``.seg.nrrd``; with ``reference``, resample it onto
    that grid in physical space (nearest neighbour, outside = 0)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    from . import segnrrd
    if _suffix(path) == ".seg.nrrd" or (_suffix(path) == ".nrrd" and segnrrd.is_segmentation_nrrd(path)):
        lab = segnrrd.read_seg_nrrd(path)
    else:
        if path.is_dir():
            vol = _load_dicom_series(path, None)
        else:
            vol = _load_itk_file(path, None) if _suffix(path) in VOLUME_SUFFIXES else None
        if vol is None:
            raise InputError(f"{path}: unknown label map format (NRRD, NIfTI, MHA or .seg.nrrd)")
        arr = vol.array
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise InputError(f"{path}: label map holds non-integer values; a label map needs whole numbers")
            arr = arr.astype(np.int32)
        if arr.min() < 0:
            raise InputError(f"{path}: label map holds negative values ({int(arr.min())})")
        values = np.unique(arr)
        values = values[values != 0]
        segs = [Segment(f"label_{int(v)}", int(v), 0) for v in values]
        lab = LabelImage([arr], vol.geometry, segs, source=str(path))
    if reference is not None and not lab.geometry.same_grid(reference):
        lab = LabelImage([resample_labels(layer, lab.geometry, reference) for layer in lab.layers],
                         reference, lab.segments, lab.source)
    return lab


def resample_labels(labels: np.ndarray, source: Geometry, target: Geometry) -> np.ndarray:
    """Nearest-neighbour resampling of a label array from one grid to another, through
    physical space (so flipped or permuted headers land where they belong)."""
    if source.same_grid(target):
        return labels
    perm = _axis_permutation(source, target)
    if perm is not None:
        return perm(labels)
    import SimpleITK as sitk
    src = array_to_sitk(labels, source)
    ref = sitk.Image([int(s) for s in target.size_ijk], sitk.sitkUInt8)
    spacing, origin, direction = target.to_sitk_fields()
    ref.SetSpacing(spacing)
    ref.SetOrigin(origin)
    ref.SetDirection(direction)
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, src.GetPixelID())
    return array_from_sitk(out).reshape(target.shape)


def _axis_permutation(source: Geometry, target: Geometry):
    """When ``source`` is ``target`` with axes flipped/permuted (same voxel centres), an
    exact index shuffle; else None."""
    if not (source.is_axis_aligned() and target.is_axis_aligned()):
        return None
    # map each target index axis to a source index axis via direction columns
    m = target.direction.T @ source.direction  # (target axis) x (source axis) cosines
    if not np.allclose(np.abs(m), np.round(np.abs(m)), atol=1e-6):
        return None
    src_of_tgt = [int(np.argmax(np.abs(m[t]))) for t in range(3)]
    if sorted(src_of_tgt) != [0, 1, 2]:
        return None
    if any(abs(source.spacing[src_of_tgt[t]] - target.spacing[t]) > 1e-6 for t in range(3)):
        return None
    if any(source.size_ijk[src_of_tgt[t]] != target.size_ijk[t] for t in range(3)):
        return None
    flips = [bool(m[t, src_of_tgt[t]] < 0) for t in range(3)]
    # the shuffle must reproduce the physical mapping at the corners and the centre
    n = np.asarray(target.size_ijk) - 1
    samples = np.array([[0, 0, 0], n, [n[0], 0, 0], [0, n[1], 0], [0, 0, n[2]], n // 2], dtype=float)
    physical = source.ras_to_ijk(target.ijk_to_ras(samples))
    shuffled = np.empty_like(samples)
    for t in range(3):
        a = src_of_tgt[t]
        shuffled[:, a] = (source.size_ijk[a] - 1 - samples[:, t]) if flips[t] else samples[:, t]
    if not np.allclose(physical, shuffled, atol=1e-3):
        return None

    def apply(labels: np.ndarray) -> np.ndarray:
        # numpy axis n holds ijk axis 2 - n
        a = np.transpose(labels, [2 - src_of_tgt[2 - n] for n in range(3)])
        for t in range(3):
            if flips[t]:
                a = np.flip(a, axis=2 - t)
        return np.ascontiguousarray(a)

    return apply
