"""The acquisition protocol of an image, as a trial records it (issue 14): what changes a
measured volume when it changes between baseline and follow-up.

:func:`protocol_of` reads it from what :func:`~calcinosis.core.provenance.describe_volume`
keeps of an image (the DICOM header's non-identifying fields and the geometry);
:func:`protocol_differences` says, in one sentence each, which differences between two
protocols change volumes and by how much they can.

Functional: dicts in, dicts and sentences out.
"""

from __future__ import annotations

from typing import Any

#: slice thicknesses differing by more than this fraction (or by :data:`SLICE_DIFF_MM`) are
#: warned about: moving from 3 mm to 1 mm slices changed a patient's calcified volume by 47%
#: in calcium-scoring phantom studies (issue 14)
SLICE_DIFF_FRACTION, SLICE_DIFF_MM = 0.2, 0.5
#: in-plane pixel sizes differing by more than this fraction
PIXEL_DIFF_FRACTION = 0.2
#: tube voltages differing by more than this (kV): calcium's HU rises as the kVp falls
KVP_DIFF_KV = 5.0


def _number(v) -> float | None:
    try:
        if isinstance(v, (list, tuple)):
            v = v[0]
        f = float(v)
        return f if f == f else None
    except (TypeError, ValueError):
        return None


def protocol_of(described: dict) -> dict[str, Any]:
    """The protocol of an image from its provenance entry (``inputs.image``): modality,
    kVp, kernel, slice thickness and spacing (mm), in-plane pixel (mm), manufacturer and
    model, contrast agent (None where the header does not say)."""
    dicom = described.get("dicom") or {}
    geometry = described.get("geometry") or {}
    spacing = geometry.get("spacing") or geometry.get("spacing_mm") or [None, None, None]
    spacing = list(spacing) + [None] * (3 - len(spacing))
    contrast = dicom.get("ContrastBolusAgent")
    return {
        "modality": described.get("modality"),
        "kvp": _number(dicom.get("KVP")),
        "kernel": None if dicom.get("ConvolutionKernel") in (None, "") else str(dicom.get("ConvolutionKernel")),
        "slice_thickness_mm": _number(dicom.get("SliceThickness")),
        "slice_spacing_mm": _number(spacing[2]),
        "pixel_mm": _number(spacing[0]),
        "manufacturer": dicom.get("Manufacturer"),
        "model": dicom.get("ManufacturerModelName"),
        "contrast": None if contrast in (None, "") else str(contrast),
    }


def _differ(a: float | None, b: float | None, fraction: float, absolute: float | None = None) -> bool:
    if a is None or b is None:
        return False
    d = abs(a - b)
    return d > fraction * max(a, b) or (absolute is not None and d > absolute)


def protocol_differences(baseline: dict, followup: dict) -> list[str]:
    """One sentence per difference between two protocols that changes measured volumes
    (empty when none is known to)."""
    out = []
    tb = baseline.get("slice_thickness_mm") or baseline.get("slice_spacing_mm")
    tf = followup.get("slice_thickness_mm") or followup.get("slice_spacing_mm")
    if tb and tf and (abs(tb - tf) > SLICE_DIFF_MM or _differ(tb, tf, SLICE_DIFF_FRACTION)):
        out.append(f"slice thickness {tb:g} mm at baseline, {tf:g} mm at follow-up: a threshold volume changes with "
                   "it (by up to 47% between 3 and 1 mm in phantom studies); compare pv_volume_mm3 (--partial-volume)")
    if baseline.get("kernel") and followup.get("kernel") and baseline["kernel"] != followup["kernel"]:
        out.append(f"reconstruction kernel {baseline['kernel']} at baseline, {followup['kernel']} at follow-up: "
                   "the blur, and so a threshold volume, differ")
    kb, kf = baseline.get("kvp"), followup.get("kvp")
    if kb and kf and abs(kb - kf) > KVP_DIFF_KV:
        out.append(f"tube voltage {kb:g} kVp at baseline, {kf:g} kVp at follow-up: calcium's HU (and a threshold "
                   "volume, a density, a mass without a calibration per scan) change with it")
    if _differ(baseline.get("pixel_mm"), followup.get("pixel_mm"), PIXEL_DIFF_FRACTION):
        out.append(f"pixel size {baseline['pixel_mm']:g} mm at baseline, {followup['pixel_mm']:g} mm at follow-up")
    cb, cf = baseline.get("contrast"), followup.get("contrast")
    if (cb is None) != (cf is None):
        out.append(f"contrast agent at {'baseline' if cb else 'follow-up'} only: contrast-filled vessels can be "
                   "taken for calcifications")
    mb = (baseline.get("manufacturer"), baseline.get("model"))
    mf = (followup.get("manufacturer"), followup.get("model"))
    if all(mb) and all(mf) and mb != mf:
        out.append(f"scanner {' '.join(mb)} at baseline, {' '.join(mf)} at follow-up: volumes differed by 45% between "
                   "scanners in phantom studies")
    if baseline.get("modality") and followup.get("modality") and baseline["modality"] != followup["modality"]:
        out.append(f"modality {baseline['modality']} at baseline, {followup['modality']} at follow-up: the sizes are "
                   "not comparable")
    return out
