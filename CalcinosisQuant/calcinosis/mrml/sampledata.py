"""The project's phantoms in Slicer's Sample Data module (category "Calcinosis"), made on
this computer the first time they are asked for (no download) and kept in a cache folder.

Each sample is the phantom ``calcinosis phantom ...`` makes (the same patient, seed and
spacing), written as NRRD with what a reader needs beside the image: the hand's landmarks
(and the MRI's drawn regions), the spine's vertebra labels, and the truth (``truth.csv``; the
spine's ``truth_labels.nrrd``) the self-tests score against.  :func:`make_sample` writes the
files (plain Python, no Slicer, from the phantom libraries);
:func:`load_sample` puts them in the scene through the MRML bridge (headless with
slicer-core as in Slicer), the modality recorded on the volume so the panels need no
override.  The thumbnails shown in Sample Data are ``Resources/Icons/SampleData/<name>.png``
(``Utilities/make_sample_thumbnails.py``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from calcinosis import __version__

CATEGORY = "Calcinosis"
COMPLETE = "sample-complete.json"


@dataclass(frozen=True)
class Sample:
    name: str                 # Sample Data's button text and node name prefix
    description: str
    kind: str                 # the phantom (as `calcinosis phantom KIND`)
    image: str                # the image file in the sample folder
    modality: str             # XR, CT or MR (recorded on the volume node)


SAMPLES = (
    Sample("CalcinosisHandRadiograph", "PA hand radiograph (synthetic SSc patient) with landmarks",
           "hand-xr", "xr.nrrd", "XR"),
    Sample("CalcinosisHandCT", "Hand CT (synthetic SSc patient, 0.5 mm) with landmarks", "hand-ct", "ct.nrrd", "CT"),
    Sample("CalcinosisHandMRI", "Hand MRI (synthetic SSc patient) with landmarks and the regions a reader draws",
           "hand-mri", "mri.nrrd", "MR"),
    Sample("CalcinosisSpineCT", "Lumbar spine CT (synthetic, 1 mm) with vertebra labels (TotalSegmentator values)",
           "spine-ct", "ct.nrrd", "CT"),
)


def sample(name: str) -> Sample:
    for s in SAMPLES:
        if s.name == name:
            return s
    raise KeyError(f"no calcinosis sample {name!r}; samples: {', '.join(s.name for s in SAMPLES)}")


def make_sample(name: str, cache_dir: str | Path) -> Path:
    """The sample's folder in ``cache_dir`` (written the first time, or again after an
    update of the extension: its version is recorded); returns the folder of its files."""
    s = sample(name)
    folder = Path(cache_dir) / name
    marker = folder / COMPLETE
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("version") == __version__:
                return folder / "phantom"
        except ValueError:
            pass
    if folder.exists():
        shutil.rmtree(folder)
    _write_phantom(s, folder / "phantom")
    marker.write_text(json.dumps({"version": __version__, "sample": name}), encoding="utf-8")
    return folder / "phantom"


def _write_phantom(s: Sample, out: Path) -> None:
    """The phantom of ``calcinosis phantom <kind>`` with its defaults (right hand, seed 0;
    the lumbar spine at 1 x 1 x 1.25 mm with its field of view fitted)."""
    import numpy as np

    from calcinosis.core import image_io
    from calcinosis.core.pipeline import lesion_colors
    from calcinosis.core.segnrrd import write_seg_nrrd

    out.mkdir(parents=True)
    if s.kind.startswith("hand-"):
        from calcinosis.hand import landmarks as lmk, phantom
        make = {"hand-xr": phantom.xr_phantom, "hand-ct": phantom.ct_phantom, "hand-mri": phantom.mr_phantom}[s.kind]
        ph = make("R", 0)
        image_io.write_image(ph.array, ph.geometry, out / s.image)
        (out / "landmarks.mrk.json").write_text(lmk.markups_json_text(ph.landmarks, name="HandLandmarks"),
                                                encoding="utf-8")
        ph.truth.write_csv(out / "truth.csv")
        if s.kind == "hand-mri":
            ids = [int(v) for v in np.unique(ph.regions) if v]
            write_seg_nrrd(ph.regions, ph.geometry, out / "regions.seg.nrrd", [f"region {i}" for i in ids],
                           lesion_colors(len(ids)), label_values=ids)
        return
    from calcinosis.spine import phantom
    r = phantom.make_spine_phantom("lumbar", spacing=(1.0, 1.0, 1.25), size_xy=None, seed=0)
    image_io.write_image(r.ct, r.geometry, out / s.image)
    image_io.write_image(r.labels, r.geometry, out / "vertebrae.nii.gz")
    truth_labels = np.zeros(r.geometry.shape, dtype=np.uint16)
    for n, vox in enumerate(r.truth_voxels, start=1):
        truth_labels.ravel()[vox] = n
    image_io.write_image(truth_labels, r.geometry, out / "truth_labels.nrrd")
    r.truth.write_csv(out / "truth.csv")


def load_sample(name: str, cache_dir: str | Path, scene=None) -> dict:
    """Make (once) and load the sample: ``{"volume": node, "landmarks": node, ...}``."""
    from calcinosis import mrml
    from calcinosis.core import image_io

    s = sample(name)
    folder = make_sample(name, cache_dir)
    volume = image_io.load_image(folder / s.image)
    volume.meta["modality"] = s.modality
    nodes = {"volume": mrml.node_from_volume(volume, name, scene=scene)}
    if (folder / "landmarks.mrk.json").is_file():
        from calcinosis.hand.landmarks import read_landmarks
        nodes["landmarks"] = mrml.markups_from_points(read_landmarks(folder / "landmarks.mrk.json").as_points(),
                                                      f"{name} landmarks", scene=scene)
    if (folder / "regions.seg.nrrd").is_file():
        nodes["regions"] = mrml.load_segmentation(folder / "regions.seg.nrrd", scene=scene, name=f"{name} regions")
    if (folder / "vertebrae.nii.gz").is_file():
        labels = image_io.load_image(folder / "vertebrae.nii.gz")
        nodes["vertebrae"] = mrml.node_from_volume(labels, f"{name} vertebrae", labelmap=True, scene=scene)
    return nodes
