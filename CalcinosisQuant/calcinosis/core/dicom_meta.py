"""DICOM header facts the project needs, read with pydicom, and nothing identifying.

Only the attributes listed in :data:`KEPT_ATTRIBUTES` ever leave this module; patient
name, ID, birth date and the like are never copied into results.  Input identifiers
are one-way hashes (see :func:`pseudonymous_id`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .errors import InputError

#: Header attributes copied into ``Volume.meta['dicom']`` (none identifies a patient).
KEPT_ATTRIBUTES = (
    "Modality", "Manufacturer", "BodyPartExamined", "Laterality", "ImageLaterality",
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
        return pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception as e:  # pydicom raises many kinds
        raise InputError(f"{path}: not a readable DICOM file ({e})") from None


def kept_attributes(ds) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in KEPT_ATTRIBUTES:
        v = ds.get(name)
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
    except (TypeError, ValueError):
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
    mag = ds.get("EstimatedRadiographicMagnificationFactor")
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
    ps = _positive_pair(ds.get("PixelSpacing"))
    ips = _positive_pair(ds.get("ImagerPixelSpacing"))
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
