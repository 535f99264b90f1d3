"""DICOM SEG and SR from the panels' *Export* (:mod:`calcinosis.core.dicom_export`): the
source images of a volume node loaded from Slicer's DICOM database, and highdicom (bundled
with Slicer 5.12; on 5.10 the panel offers to install it)."""

from __future__ import annotations

from pathlib import Path

from calcinosis.core import dicom_export
from calcinosis.core.errors import InputError

DICOM_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"

#: what the panel says before installing highdicom (Slicer 5.10 has none)
INSTALL_QUESTION = (
    "DICOM SEG and SR are written with the highdicom package, which Slicer 5.12 bundles and this Slicer "
    "does not. Install it now from the Python Package Index (pip, a few MB; it brings pydicom 3, which "
    "replaces the pydicom this Slicer bundles)? Without it, Export writes every other file.")


def highdicom_available() -> bool:
    try:
        import highdicom  # noqa: F401
    except ImportError:
        return False
    return True


def choose_outputs(seg: bool, sr: bool, confirm, install) -> tuple[bool, bool]:
    """(DICOM SEG, DICOM SR) to write for the panel's check boxes: as ticked when highdicom is
    there; else ``confirm(INSTALL_QUESTION)`` and ``install("highdicom")`` (Slicer's dialog and
    ``slicer.util.pip_install``); declined or failed, neither (the other files are written)."""
    if not (seg or sr) or highdicom_available():
        return bool(seg), bool(sr)
    if confirm(INSTALL_QUESTION):
        install("highdicom")
        import importlib
        importlib.invalidate_caches()
        if highdicom_available():
            return bool(seg), bool(sr)
    return False, False


def source_files(volume_node) -> list[Path]:
    """The DICOM files the node was loaded from (Slicer's DICOM database, in the order of
    the node's instance UIDs); an error naming the node when it was not loaded from DICOM."""
    import slicer
    name = volume_node.GetName() if volume_node is not None else "(none)"
    uids = (volume_node.GetAttribute(DICOM_UIDS_ATTRIBUTE) or "").split() if volume_node is not None else []
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        raise InputError(f"'{name}' was not loaded from Slicer's DICOM database: DICOM SEG and SR reference the "
                         "DICOM images they were measured on (load the series with the DICOM module)")
    files = []
    for uid in uids:
        path = database.fileForInstance(uid)
        if not path or not Path(path).is_file():
            raise InputError(f"'{name}': the DICOM file of instance {uid} is not in the DICOM database any more")
        files.append(Path(path))
    return files


def export_request(volume_node, seg: bool, sr: bool, keep_patient: bool = False) -> dicom_export.DicomExport | None:
    """The :class:`~calcinosis.core.dicom_export.DicomExport` of the panel's check boxes
    (``None`` when neither is ticked), checked before anything is written."""
    if not (seg or sr):
        return None
    dicom_export.require_highdicom()
    return dicom_export.DicomExport(source_files(volume_node), sr=sr, keep_patient=keep_patient)
