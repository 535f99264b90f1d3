"""A result folder as the follow-up reads it: its lesion table, label map, provenance, the
image it was measured on, and which size column and anatomical groups it has."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calcinosis.core import image_io
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.protocol import protocol_of
from calcinosis.core.tables import Table

#: the anatomical groups a result's lesions carry, by the command that wrote it
GROUP_COLUMNS = {"hand": ("side", "digit"), "spine": ("level",), "measure": ()}
#: what each command's lesions carry besides their groups, copied to the follow-up's rows
PLACE_COLUMNS = {"hand": ("side", "digit", "zone"), "spine": ("level", "segment", "subsite"), "measure": ()}


@dataclass
class LesionResult:
    folder: Path
    command: str
    lesions: Table
    labels: np.ndarray          # [k, j, i], lesion_id
    geometry: Geometry          # of the label map
    provenance: dict
    is_2d: bool

    @property
    def image_description(self) -> dict:
        return (self.provenance.get("inputs") or {}).get("image") or {}

    @property
    def protocol(self) -> dict:
        return self.image_description.get("protocol") or protocol_of(self.image_description)

    @property
    def case_id(self) -> str | None:
        return self.provenance.get("case_id")


def read_result(folder: str | Path, what: str) -> LesionResult:
    """The result folder ``folder`` (``what``: "baseline" or "follow-up", for messages)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{what} {folder}: not a folder (a result folder of calcinosis measure, hand or spine "
                         "was expected)")
    prov_path = folder / "provenance.json"
    try:
        prov = json.loads(prov_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} {folder}: no provenance.json (not a result folder)") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{what} {prov_path}: unreadable ({e})") from None
    command = prov.get("command")
    if command not in GROUP_COLUMNS:
        raise InputError(f"{what} {folder}: a result of `calcinosis {command}`; lesions are followed in results of "
                         "measure, hand or spine")
    for name in ("lesions.csv", "lesion_labels.nrrd"):
        if not (folder / name).is_file():
            raise InputError(f"{what} {folder}: {name} is missing (incomplete result folder)")
    lesions = Table.read_csv(folder / "lesions.csv")
    for col in ("lesion_id", "centroid_r_mm", "centroid_a_mm", "centroid_s_mm") + GROUP_COLUMNS[command]:
        if not lesions.has_column(col):
            raise InputError(f"{what} {folder / 'lesions.csv'}: column {col} is missing")
    lab = image_io.load_label_image(folder / "lesion_labels.nrrd")
    labels = lab.layers[0] if lab.layers else np.zeros(lab.geometry.shape, np.int16)
    is_2d = lesions.has_column("area_mm2") and not lesions.has_column("volume_mm3")
    return LesionResult(folder, command, lesions, labels, lab.geometry, prov, is_2d)


def size_column(baseline: LesionResult, followup: LesionResult) -> str:
    """The size compared: ``pv_volume_mm3`` when both results have it (CT with
    --partial-volume), else ``volume_mm3`` (3D) or ``area_mm2`` (radiographs)."""
    if baseline.is_2d != followup.is_2d:
        raise InputError("baseline and follow-up: one is a radiograph (areas), the other a 3D image (volumes)")
    if baseline.is_2d:
        return "area_mm2"
    if baseline.lesions.has_column("pv_volume_mm3") and followup.lesions.has_column("pv_volume_mm3"):
        return "pv_volume_mm3"
    return "volume_mm3"


def load_image_of(result: LesionResult, path: str | Path | None, what: str, option: str):
    """The image ``result`` was measured on: ``path``, or the one its provenance recorded
    (``--record-paths``); its content checked against the provenance's ``input_id``."""
    recorded = result.image_description.get("path")
    if path is None:
        if not recorded:
            raise InputError(f"{option}: give the {what} image (its result folder does not record the image's path; "
                             "it does with --record-paths)")
        path = recorded
    volume = image_io.load_image(path)
    want = result.image_description.get("input_id")
    got = volume.meta.get("input_id")
    if want and got and want != got:
        raise InputError(f"{option} {Path(path).name}: not the image the {what} result was measured on "
                         f"(content id {got}, the result's {want})")
    return volume
