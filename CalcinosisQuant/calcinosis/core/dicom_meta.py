"""DICOM header facts the project needs, read with pydicom, and nothing identifying.

Only the attributes listed in :data:`KEPT_ATTRIBUTES` ever leave this module; patient
name, ID, birth date and the like are never copied into results.  Input identifiers
are one-way hashes (see :func:`pseudonymous_id`).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from .errors import InputError

#: Header attributes copied into ``Volume.meta['dicom']`` (none identifies a patient).
KEPT_ATTRIBUTES = (
    "Modality", "Manufacturer", "ManufacturerModelName", "BodyPartExamined", "Laterality", "ImageLaterality",
    "SliceThickness", "KVP", "ConvolutionKernel", "ContrastBolusAgent", "PhotometricInterpretation",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "BitsStored", "MRAcquisitionType",
    "SequenceName", "EchoTime", "RepetitionTime", "ViewPosition",
)

#: Radiograph spacing sources, as recorded in provenance.
SPACING_PIXEL = "PixelSpacing (0028,0030), patient plane"
MAGNIFICATION_TAG = "EstimatedRadiographicMagnificationFactor (0018,1114)"
DETECTOR_PLANE = "detector plane (no magnification factor in the file)"
SPACING_IMAGER = f"ImagerPixelSpacing (0018,1164), {DETECTOR_PLANE}"
SPACING_PIXEL_IS_IMAGER = "PixelSpacing (0028,0030) = ImagerPixelSpacing (0018,1164)"
SPACING_USER = "user (--spacing)"
SPACING_HEADER = "image header"

COMPRESSED_HINT = ("decode it first, e.g. `gdcmconv --raw IN OUT` or `dcmdjpeg IN OUT`, "
                   "or load it in Slicer and save as NRRD")


def is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_header(path: Path):
    import pydicom
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception as e:  # pydicom raises many kinds
        raise InputError(f"{path}: not a readable DICOM file ({e})") from None
    _decode_used_fields(ds, path)
    return ds


#: header fields the readers look at (decoded at once, so a damaged one is named here)
USED_FIELDS = ("PixelSpacing", "ImagerPixelSpacing", "EstimatedRadiographicMagnificationFactor", "Rows", "Columns",
               "BitsAllocated", "SamplesPerPixel", "NumberOfFrames", "PixelRepresentation", "ImagePositionPatient",
               "ImageOrientationPatient", "SeriesInstanceUID", "ImageLaterality", "Laterality")


def _decode_used_fields(ds, path: Path) -> None:
    """pydicom decodes an element when it is first read: a damaged one (an unknown VR, bytes
    that are no value) is refused here, naming the file and the field."""
    for keyword in dict.fromkeys(USED_FIELDS + KEPT_ATTRIBUTES):
        try:
            ds.get(keyword)
        except (ValueError, TypeError, OverflowError):
            pass            # a value of the wrong kind: refused where it is used, with its value (see value())
        except Exception as e:  # noqa: BLE001 - pydicom raises many kinds for a damaged element
            raise InputError(f"{path}: header field {field_name(keyword)} cannot be read "
                             f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None:
        try:
            ts.is_compressed
        except Exception:  # noqa: BLE001 - pydicom: "UID is not a transfer syntax"
            raise InputError(f"{path}: Transfer Syntax UID (0002,0010) {str(ts)[:64]!r} is not a transfer syntax; "
                             "the file is damaged") from None


def read_image_header(path: Path):
    """The header (as :func:`read_header`) and how many bytes of the file follow the start
    of its Pixel Data element (None when the header reaches the end of the file)."""
    import pydicom
    try:
        with open(path, "rb") as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
            at = f.tell()
            f.seek(0, 2)
            remaining = f.tell() - at
    except Exception as e:  # pydicom raises many kinds
        raise InputError(f"{path}: not a readable DICOM file ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})") from None
    _decode_used_fields(ds, path)
    return ds, (remaining if remaining > 0 else None)


def value(ds, keyword: str):
    """``ds.get(keyword)``, or the stored text when pydicom cannot convert it (a DS of
    ``abc``): the caller refuses it then, naming the field."""
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001 - pydicom's value conversion raises several kinds
        elem = ds.get_item(keyword)
        raw = getattr(elem, "value", None)
        return raw.decode("latin-1", "replace").strip() if isinstance(raw, bytes) else str(raw)


#: (keyword, tag) of the image attributes checked by :func:`check_image_header`
_TAGS = {"Rows": "(0028,0010)", "Columns": "(0028,0011)", "SamplesPerPixel": "(0028,0002)",
         "BitsAllocated": "(0028,0100)", "NumberOfFrames": "(0028,0008)", "RescaleSlope": "(0028,1053)",
         "RescaleIntercept": "(0028,1052)", "ImagePositionPatient": "(0020,0032)",
         "ImageOrientationPatient": "(0020,0037)"}
#: a rescale intercept beyond this (in the image's units) is no CT, MR or radiograph header
RESCALE_INTERCEPT_LIMIT = 1e6
#: a rescale slope beyond this would turn 16-bit values into no physical unit
RESCALE_SLOPE_LIMIT = 1e4


def field_name(keyword: str) -> str:
    """``Rows (0028,0010)``: a header field as the messages name it."""
    import re
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", keyword).replace("Patient", "(Patient)")
    return f"{words} {_TAGS.get(keyword, '')}".strip()


def _numbers(v) -> list[float] | None:
    if v is None or v == "":
        return None
    try:
        vals = [float(x) for x in v] if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)) else [float(v)]
    except (TypeError, ValueError):
        return None
    return vals


def check_image_header(ds, path: Path, remaining: int | None = None) -> None:
    """Refuse, naming the field, a header whose image attributes cannot describe the pixels
    that follow: Rows, Columns, Samples per Pixel, Bits Allocated missing or impossible;
    uncompressed pixel data shorter than they say (a truncated file, or a wrong header,
    which a decoder would pad with zeros); a rescale that is not a finite, non-zero slope
    and a plausible intercept."""
    for key in ("Rows", "Columns"):
        v = _numbers(value(ds, key))
        if v is None or len(v) != 1 or not (1 <= v[0] <= 65535) or v[0] != int(v[0]):
            raise InputError(f"{path}: {field_name(key)} is {'missing' if v is None else _shown(value(ds, key))}; "
                             "the image size is unknown")
    spp = _numbers(value(ds, "SamplesPerPixel"))
    if spp is not None and spp != [1.0]:
        raise InputError(f"{path}: {field_name('SamplesPerPixel')} is {_shown(value(ds, 'SamplesPerPixel'))}; "
                         "a grey-level image (1 sample per pixel) is needed")
    bits = _numbers(value(ds, "BitsAllocated"))
    if bits is None or bits[0] not in (1.0, 8.0, 16.0, 32.0, 64.0):
        raise InputError(f"{path}: {field_name('BitsAllocated')} is "
                         f"{'missing' if bits is None else _shown(value(ds, 'BitsAllocated'))} (1, 8, 16, 32 or 64 expected)")
    frames = _numbers(value(ds, "NumberOfFrames"))
    if frames is not None and (len(frames) != 1 or not (1 <= frames[0] < 1e6) or frames[0] != int(frames[0])):
        raise InputError(f"{path}: {field_name('NumberOfFrames')} is {_shown(value(ds, 'NumberOfFrames'))}; "
                         "a whole number >= 1 expected")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if remaining is not None and (ts is None or not ts.is_compressed):
        implicit = ts is not None and ts.is_implicit_VR
        stored = remaining - (8 if implicit or ts is None else 12)
        need = int(value(ds, "Rows")) * int(value(ds, "Columns")) * int(frames[0] if frames else 1)
        need = need * int(bits[0]) // 8 if bits[0] >= 8 else (need + 7) // 8
        if stored < need:
            frames_text = f" x {field_name('NumberOfFrames')} {int(frames[0])}" if frames else ""
            raise InputError(f"{path}: the pixel data holds {max(stored, 0)} bytes where {field_name('Rows')} "
                             f"{value(ds, 'Rows')} x {field_name('Columns')} {value(ds, 'Columns')}{frames_text} x "
                             f"{field_name('BitsAllocated')} {int(bits[0])} need {need}: the file is truncated or "
                             "its header is wrong")
    for key in ("RescaleSlope", "RescaleIntercept"):
        raw = value(ds, key)
        if raw is None or raw == "":
            continue
        v = _numbers(raw)
        bad = v is None or len(v) != 1 or not math.isfinite(v[0]) or (key == "RescaleSlope" and not 0 < abs(v[0]) <= RESCALE_SLOPE_LIMIT) or \
            (key == "RescaleIntercept" and abs(v[0]) > RESCALE_INTERCEPT_LIMIT)
        if bad:
            raise InputError(f"{path}: {field_name(key)} is {_shown(raw)}; "
                             + (f"a finite, non-zero number within +-{RESCALE_SLOPE_LIMIT:g} expected" if key == "RescaleSlope" else
                                f"a finite number within +-{RESCALE_INTERCEPT_LIMIT:g} expected"))


def check_position(ds, path: Path) -> tuple[list[float], list[float] | None] | None:
    """Image Position (Patient) (three finite numbers; None when absent) and Image Orientation
    (Patient) (six finite numbers, two orthogonal unit vectors; None when absent), refused
    naming the field when present but unusable."""
    pos = value(ds, "ImagePositionPatient")
    ori = value(ds, "ImageOrientationPatient")
    if pos is None:
        return None
    p = _numbers(pos)
    if p is None or len(p) != 3 or not all(math.isfinite(x) and abs(x) < 1e7 for x in p):
        raise InputError(f"{path}: {field_name('ImagePositionPatient')} is {_shown(pos)}; three finite numbers "
                         "(mm) expected")
    if ori is None:
        return p, None
    o = _numbers(ori)
    ok = o is not None and len(o) == 6 and all(math.isfinite(x) for x in o)
    if ok:
        r, c = o[:3], o[3:]
        dot = sum(a * b for a, b in zip(r, c))
        ok = all(abs(sum(x * x for x in v) - 1.0) < 1e-3 for v in (r, c)) and abs(dot) < 1e-3
    if not ok:
        raise InputError(f"{path}: {field_name('ImageOrientationPatient')} is {_shown(ori)}; two orthogonal unit "
                         "vectors (six numbers) expected")
    return p, o


def _shown(v) -> str:
    text = str(list(v) if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)) else v)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def kept_attributes(ds) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in KEPT_ATTRIBUTES:
        v = value(ds, name)
        if v is None or v == "":
            continue
        if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)):
            v = [_plain(x) for x in v]
        else:
            v = _plain(v)
        out[name] = v
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts:
        out["TransferSyntax"] = f"{ts.name} ({ts})"
    return out


def _plain(v):
    try:
        f = float(v)
        return int(f) if f == int(f) and "." not in str(v) else f
    except (TypeError, ValueError, OverflowError):
        return str(v)


def laterality(ds) -> str | None:
    for name in ("ImageLaterality", "Laterality"):
        v = str(ds.get(name, "") or "").strip().upper()
        if v in ("L", "R"):
            return v
    return None


def _positive_pair(value) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(vals) != 2 or any(not (0 < v < float("inf")) for v in vals):
        return None
    return vals[0], vals[1]


#: geometric magnification of a radiograph (source-detector over source-object distance)
MAGNIFICATION_RANGE = (1.0, 2.0)


def _same_pair(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(abs(x - y) <= 1e-4 * max(abs(x), abs(y)) for x, y in zip(a, b))


def _file_magnification(ds, path: Path) -> float | None:
    mag = value(ds, "EstimatedRadiographicMagnificationFactor")
    try:
        m = float(mag) if mag is not None and str(mag) != "" else None
    except (TypeError, ValueError):
        m = None
    if m is not None and not MAGNIFICATION_RANGE[0] <= m <= MAGNIFICATION_RANGE[1]:
        raise InputError(f"{path}: Estimated Radiographic Magnification Factor (0018,1114) is {mag} (a radiograph's "
                         f"is {MAGNIFICATION_RANGE[0]:g} to {MAGNIFICATION_RANGE[1]:g}); give the spacing in mm "
                         "with --spacing X,Y or the factor with --magnification")
    return m


def radiograph_spacing(ds, path: Path, user_spacing: tuple[float, float] | None,
                       magnification: float | None = None) -> tuple[tuple[float, float], str, list[str]]:
    """Physical (column, row) spacing in mm at the patient, its source and warnings.

    Order (DOMAIN.md): a spacing the user gives; Pixel Spacing (0028,0030);
    Imager Pixel Spacing (0018,1164) divided by Estimated Radiographic Magnification
    Factor (0018,1114) when present.  Pixel Spacing equal to Imager Pixel Spacing is the
    detector plane too (what many CR/DX writers store): it is divided by the factor when
    the file has one.  Detector-plane spacing without a factor is used as it is, with a
    warning (areas then include the X-ray magnification, 5-20% in area and more).

    ``magnification`` (the user's ``--magnification``) divides the detector-plane spacing
    (the user's ``--spacing``, else Imager Pixel Spacing, else Pixel Spacing) and wins over
    the file's factor; it is refused when the file's Pixel Spacing is already at the patient
    (different from Imager Pixel Spacing), which it would correct twice.
    DICOM stores both as [row spacing, column spacing]; this returns (x, y) = (column, row).
    """
    warnings: list[str] = []
    user_m = f"--magnification {magnification:g} (user)" if magnification is not None else ""
    if user_spacing is not None:
        sx, sy = float(user_spacing[0]), float(user_spacing[1])
        if magnification is not None:
            return (sx / magnification, sy / magnification), f"{SPACING_USER} / {user_m}", warnings
        return (sx, sy), SPACING_USER, warnings
    ps = _positive_pair(value(ds, "PixelSpacing"))
    ips = _positive_pair(value(ds, "ImagerPixelSpacing"))
    file_m = _file_magnification(ds, path) if (ps is None or ips is not None) else None
    if ps is not None and (ips is None or not _same_pair(ps, ips)):
        if magnification is not None and ips is not None:
            raise InputError(f"--magnification: {path.name} has a Pixel Spacing (0028,0030) of {ps[1]:g} x {ps[0]:g} "
                             f"mm, different from its Imager Pixel Spacing (0018,1164), so already at the patient; "
                             "correcting it again would shrink every size - leave --magnification out")
        if magnification is not None:
            return (ps[1] / magnification, ps[0] / magnification), f"{SPACING_PIXEL} / {user_m}", warnings
        return (ps[1], ps[0]), SPACING_PIXEL, warnings
    if ips is None:
        raise InputError(
            f"{path}: no usable pixel spacing (Pixel Spacing (0028,0030) and Imager Pixel Spacing (0018,1164) "
            "are missing or zero); give the spacing in mm with --spacing X,Y")
    # the detector plane: Imager Pixel Spacing (or a Pixel Spacing that only repeats it)
    what = SPACING_PIXEL_IS_IMAGER if ps is not None else "ImagerPixelSpacing (0018,1164)"
    if magnification is not None:
        return (ips[1] / magnification, ips[0] / magnification), f"{what} / {user_m}", warnings
    if file_m is not None:
        return (ips[1] / file_m, ips[0] / file_m), f"{what} / {MAGNIFICATION_TAG} = {file_m:g}", warnings
    warnings.append(f"{path.name}: the spacing is the detector's ({what}) and the file gives no magnification "
                    "factor: areas include the X-ray magnification (typically 5-20% larger than at the hand); "
                    "give it with --magnification")
    return (ips[1], ips[0]), f"{what}, {DETECTOR_PLANE}", warnings


def magnification_record(spacing_source: str, user_magnification: float | None) -> dict:
    """What provenance says about a radiograph's magnification, from the spacing's source:
    ``magnification`` (the factor divided out, None when none was) and
    ``magnification_source`` (user, file, none - detector plane -, or not needed)."""
    if user_magnification is not None:
        return {"magnification": float(user_magnification), "magnification_source": "user (--magnification)"}
    if MAGNIFICATION_TAG in spacing_source:
        return {"magnification": float(spacing_source.rsplit("=", 1)[1]), "magnification_source": f"file {MAGNIFICATION_TAG}"}
    if DETECTOR_PLANE in spacing_source:
        return {"magnification": None, "magnification_source": "none: sizes at the detector plane"}
    if spacing_source == SPACING_PIXEL:
        return {"magnification": None, "magnification_source": "not needed (Pixel Spacing is at the patient)"}
    return {"magnification": None, "magnification_source": "not given (the spacing is taken as at the patient)"}


def pseudonymous_id(*parts: str) -> str:
    """A one-way identifier: ``sha256:`` + 16 hex digits of the hash of ``parts``."""
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode("utf-8"))
        h.update(b"\0")
    return "sha256:" + h.hexdigest()[:16]


def file_content_id(paths: list[Path], max_bytes_per_file: int | None = None) -> str:
    """Pseudonymous id from file contents (not names: paths may carry a patient's name)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            remaining = max_bytes_per_file
            while True:
                n = 1 << 20 if remaining is None else min(1 << 20, remaining)
                if n == 0:
                    break
                chunk = f.read(n)
                if not chunk:
                    break
                h.update(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
        h.update(b"\0")
    return "sha256:" + h.hexdigest()[:16]


def path_content_id(path: str | Path) -> str:
    """Pseudonymous id of a file or of a folder's files (first 16 MiB of each), by content."""
    p = Path(path)
    files = sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p]
    return file_content_id(files, max_bytes_per_file=1 << 24)
