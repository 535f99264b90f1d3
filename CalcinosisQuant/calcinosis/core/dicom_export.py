"""DICOM SEG and DICOM SR (TID 1500 measurement report) of a result's lesions, written with
highdicom (bundled with Slicer 5.12; ``pip install highdicom`` elsewhere).

* **SEG** - one segment per lesion (segment number = ``lesion_id``), coded as a calcification
  (SNOMED CT *Morphologically Altered Structure* / *Pathologic calcification*) in its anatomic
  region (:mod:`.terminology`: thumb, finger, wrist, hand with laterality; the disco-vertebral
  level, "Level of T8/T9 intervertebral disc") and shown in the colour of the ``.seg.nrrd`` (by digit; by spine segment),
  referencing the source series.  LABELMAP segmentation type: one frame per source
  slice holding every lesion, so hundreds of lesions cost no more than one.
* **SR** - a Comprehensive 3D SR measurement report (TID 1500): per lesion one measurement
  group (TID 1411 volumetric on CT/MRI, TID 1410 planar on a radiograph) that references its
  segment in the SEG, with the lesion's volume (mm3) or area (mm2), its finding site (region
  and laterality, SNOMED CT) and qualitative evaluations (digit, zone, kind; level, segment,
  sub-site, pattern) coded in this project's own scheme :data:`SCHEME` (DICOM's "99"
  private-scheme convention: no standard codes exist for, say, a disco-vertebral level's
  anterior segment).

Patient identity: by default the objects carry the pseudonymous case identifier as Patient
ID and Name and none of the source's other patient attributes (the project's rule: no
identifying field in an output).  ``keep_patient=True`` copies the source's patient module,
for storing the objects in the PACS beside the images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import terminology
from .dicom_write import save_dataset
from .errors import InputError
from .geometry import Geometry

#: coding scheme of the qualitative evaluations that no standard terminology has
SCHEME = "99CALCINOSIS"
SCHEME_NAME = "SlicerCalcinosis"
SEG_NAME = "lesions.seg.dcm"
SR_NAME = "measurements.sr.dcm"
MANUFACTURER = "SlicerCalcinosis"
#: patient attributes left out (or replaced) unless keep_patient
PATIENT_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                      "OtherPatientIDs", "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
                      "IssuerOfPatientID", "EthnicGroup", "PatientComments", "ReferringPhysicianName",
                      "AccessionNumber", "InstitutionName", "InstitutionAddress", "StudyID")

#: the warning when a result has no lesion (a DICOM SEG needs a segment: none is written)
NO_LESION_WARNING = "no lesion found: no DICOM SEG or SR written (a DICOM SEG needs at least one segment)"

INSTALL_HINT = ("highdicom is not installed: DICOM SEG and SR are written with it (Slicer 5.12 bundles it; in "
                "Slicer 5.10 or a plain Python: pip install highdicom)")


@dataclass
class LesionEntry:
    """What the SEG and SR say of one lesion."""

    lesion_id: int
    label: str                                  # segment label, e.g. "3 R index PIP periarticular"
    region: tuple[str, str, str] | None         # SNOMED CT (scheme, value, meaning)
    laterality: tuple[str, str, str] | None
    measure_name: str                           # "volume" or "area"
    measure_value: float                        # mm3 or mm2
    evaluations: list[tuple[str, str]] = field(default_factory=list)   # (name, value), e.g. ("digit", "index")
    color: tuple[float, float, float] | None = None


@dataclass
class DicomExport:
    """What ``--dicom-seg`` / ``--dicom-sr`` ask for: the source images' files (resolved
    before any work, so a non-DICOM input fails at once), the SR too or not, and whether the
    source's patient attributes are copied."""

    source_files: list[Path]
    sr: bool = False
    keep_patient: bool = False


def request(image: str | Path, series: str | None, *, seg: bool, sr: bool,
            keep_patient: bool = False) -> DicomExport | None:
    """A :class:`DicomExport` for the command line's options (``None`` when neither is
    given); errors (exit 2) name the input when it is not DICOM or highdicom is missing."""
    if not (seg or sr):
        return None
    require_highdicom()
    from .image_io import dicom_source_files
    return DicomExport(dicom_source_files(image, series), sr=sr, keep_patient=keep_patient)


def require_highdicom():
    try:
        import highdicom
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return highdicom


def read_source_datasets(files: Sequence[Path]):
    """The source images' headers (pydicom datasets without their pixels).  An empty SOP
    Class or Instance UID (seen on real exported series) is taken from the file meta
    (Media Storage SOP Class / Instance UID), which names the same."""
    import pydicom
    out = []
    for f in files:
        ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        meta = getattr(ds, "file_meta", None)
        for attr, meta_attr in (("SOPClassUID", "MediaStorageSOPClassUID"),
                                ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
            if not str(ds.get(attr, "") or "").strip() and meta is not None and meta.get(meta_attr):
                setattr(ds, attr, meta[meta_attr].value)
        out.append(ds)
    return out


def _uid(*parts) -> str:
    from pydicom.uid import generate_uid
    return generate_uid(entropy_srcs=["slicer-calcinosis-dicom-export"] + [str(p) for p in parts])


def labels_per_source_frame(labels: np.ndarray, geometry: Geometry, sources) -> np.ndarray:
    """``labels`` (k, j, i on ``geometry``, the grid the series was read onto) as one frame
    per source dataset, in the datasets' order: each dataset's frame is the slice at its Image
    Position (Patient).  A radiograph (one dataset, no position) is the single slice."""
    labels = np.asarray(labels)
    if len(sources) == 1 and labels.shape[0] == 1:
        return labels[:1]
    out = np.zeros((len(sources),) + labels.shape[1:], labels.dtype)
    for n, ds in enumerate(sources):
        ipp = getattr(ds, "ImagePositionPatient", None)
        if ipp is None:
            raise InputError(f"source image {n + 1} has no Image Position (Patient); cannot place the segmentation")
        ras = np.array([-float(ipp[0]), -float(ipp[1]), float(ipp[2])])
        k = geometry.ras_to_ijk(ras[None])[0]
        kk = int(round(float(k[2])))
        if not (0 <= kk < labels.shape[0]) or abs(k[2] - kk) > 0.1 or abs(k[0]) > 0.1 or abs(k[1]) > 0.1:
            raise InputError(f"source image {n + 1} (Image Position {list(map(float, ipp))}) does not lie on a "
                             "slice of the measured grid; the result was not measured on this series")
        out[n] = labels[kk]
    return out


def _code(hd, c):
    return hd.sr.CodedConcept(value=c[1], scheme_designator=c[0], meaning=c[2])


def _private(hd, value: str, meaning: str | None = None):
    return hd.sr.CodedConcept(value=str(value)[:64], scheme_designator=SCHEME, meaning=(meaning or str(value))[:64])


def _pseudonymise(ds, case_id: str) -> None:
    for name in PATIENT_ATTRIBUTES:
        if name in ds:
            delattr(ds, name)
    ds.PatientName = case_id
    ds.PatientID = case_id


def build_segmentation(labels: np.ndarray, geometry: Geometry, sources, lesions: Sequence[LesionEntry], *,
                       series_description: str = "Calcinosis lesions", case_id: str = "anonymous",
                       keep_patient: bool = False, software_version: str = ""):
    """A highdicom LABELMAP Segmentation of ``labels`` (value = lesion_id) on the source series."""
    hd = require_highdicom()
    from pydicom.sr.codedict import codes
    frames = labels_per_source_frame(labels, geometry, sources)
    ids = [e.lesion_id for e in lesions]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError("lesion ids must be 1..n")
    algorithm = hd.AlgorithmIdentificationSequence(name="SlicerCalcinosis", version=software_version or "0",
                                                   family=codes.cid7162.ArtificialIntelligence)
    descriptions = []
    for e in lesions:
        region = None
        if e.region:
            region = _code(hd, e.region)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=e.lesion_id, segment_label=e.label[:64],
            segmented_property_category=_code(hd, terminology.MORPHOLOGICALLY_ALTERED),
            segmented_property_type=_code(hd, terminology.CALCIFICATION),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC, algorithm_identification=algorithm,
            tracking_uid=_uid("lesion", sources[0].SeriesInstanceUID, e.lesion_id, e.label),
            tracking_id=f"lesion {e.lesion_id}",
            anatomic_regions=[region] if region is not None else None,
            display_color=None if e.color is None else hd.color.CIELabColor.from_rgb(
                *(int(round(255 * float(c))) for c in e.color))))
    dtype = np.uint8 if len(lesions) < 256 else np.uint16
    digest = hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()
    series_uid = _uid("seg-series", sources[0].SeriesInstanceUID, digest)
    if not lesions:   # a SEG needs one segment: an empty result is not written as a SEG
        raise InputError("no lesion to write as DICOM SEG (the result has none)")
    seg = hd.seg.Segmentation(
        source_images=list(sources), pixel_array=frames.astype(dtype),
        segmentation_type=hd.seg.SegmentationTypeValues.LABELMAP, segment_descriptions=descriptions,
        series_instance_uid=series_uid, series_number=900, sop_instance_uid=_uid("seg", series_uid),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="calcinosis",
        software_versions=software_version or "0", device_serial_number="0",
        series_description=series_description[:64], omit_empty_frames=False)
    if not keep_patient:
        _pseudonymise(seg, case_id)
    return seg


def build_measurement_report(seg, sources, lesions: Sequence[LesionEntry], *, planar: bool,
                             case_id: str = "anonymous", keep_patient: bool = False, software_version: str = ""):
    """A Comprehensive 3D SR (TID 1500) with one measurement group per lesion, each
    referencing its segment in ``seg``."""
    hd = require_highdicom()
    from pydicom.sr.codedict import codes
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_uid("device"), name="SlicerCalcinosis", model_name="calcinosis"))
    context = hd.sr.ObservationContext(observer_device_context=observer)
    groups = []
    finding = _code(hd, terminology.CALCIFICATION)
    for e in lesions:
        tracking = hd.sr.TrackingIdentifier(uid=_uid("lesion", sources[0].SeriesInstanceUID, e.lesion_id, e.label),
                                            identifier=f"lesion {e.lesion_id}")
        if e.measure_name == "volume":
            m = hd.sr.Measurement(name=codes.SCT.Volume, value=float(e.measure_value),
                                  unit=codes.UCUM.CubicMillimeter)
        else:
            m = hd.sr.Measurement(name=codes.SCT.Area, value=float(e.measure_value),
                                  unit=codes.UCUM.SquareMillimeter)
        sites = None
        if e.region:
            sites = [hd.sr.FindingSite(anatomic_location=_code(hd, e.region),
                                       laterality=_code(hd, e.laterality) if e.laterality else None)]
        evaluations = [hd.sr.QualitativeEvaluation(name=_private(hd, name, name.replace("_", " ")),
                                                   value=_private(hd, value))
                       for name, value in e.evaluations if value not in (None, "")]
        common = dict(tracking_identifier=tracking, finding_type=finding, finding_sites=sites, measurements=[m],
                      qualitative_evaluations=evaluations or None)
        if planar:
            ref = hd.sr.ReferencedSegmentationFrame(
                sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, frame_number=1,
                segment_number=e.lesion_id,
                source_image=hd.sr.SourceImageForSegmentation(sources[0].SOPClassUID, sources[0].SOPInstanceUID))
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_segment=ref, **common))
        else:
            ref = hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=e.lesion_id,
                source_series=hd.sr.SourceSeriesForSegmentation(sources[0].SeriesInstanceUID))
            groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=ref, **common))
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=codes.SCT.ImagingProcedure,
                                     imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(sources) + [seg], content=report, series_instance_uid=_uid("sr-series", seg.SOPInstanceUID),
        series_number=901, sop_instance_uid=_uid("sr", seg.SOPInstanceUID), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, series_description="Calcinosis measurements")
    if not keep_patient:
        _pseudonymise(sr, case_id)
    return sr


def write_dicom_objects(out, export: DicomExport, labels: np.ndarray, geometry: Geometry,
                        lesions: Sequence[LesionEntry], *, planar: bool, case_id: str | None) -> list[str]:
    """``lesions.seg.dcm`` (and ``measurements.sr.dcm`` when ``export.sr``) into the output
    transaction ``out``; returns the names written (none for a result without lesions: the
    caller warns with :data:`NO_LESION_WARNING`)."""
    require_highdicom()
    if not lesions:
        return []
    from calcinosis import __version__ as software_version
    keep_patient, sr = export.keep_patient, export.sr
    sources = read_source_datasets(export.source_files)
    try:
        seg = build_segmentation(labels, geometry, sources, lesions, case_id=case_id or "anonymous",
                                 keep_patient=keep_patient, software_version=software_version)
    except (ValueError, KeyError, TypeError, AttributeError) as e:   # highdicom refuses the source headers
        raise InputError(f"{export.source_files[0]}: a DICOM SEG cannot be made on these images "
                         f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else 'no detail'})"
                         ) from None
    save_dataset(seg, out.path(SEG_NAME))
    written = [SEG_NAME]
    if sr:
        report = build_measurement_report(seg, sources, lesions, planar=planar, case_id=case_id or "anonymous",
                                          keep_patient=keep_patient, software_version=software_version)
        save_dataset(report, out.path(SR_NAME))
        written.append(SR_NAME)
    return written
