"""The project's phantoms in Slicer's Sample Data module (category "Calcinosis"), made on
this computer the first time they are asked for (no download) and kept in a cache folder.

Each sample is the phantom the command line writes (``calcinosis phantom ...``) with what a
reader needs beside the image: the hand's landmarks (and the MRI's drawn regions), the
spine's vertebra labels.  :func:`make_sample` writes the files (plain Python, no Slicer);
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
    phantom: tuple[str, ...]  # the `calcinosis phantom` arguments
    image: str                # the image inside the phantom folder
    modality: str             # XR, CT or MR (recorded on the volume node)


SAMPLES = (
    Sample("CalcinosisHandRadiograph", "PA hand radiograph (synthetic SSc patient) with landmarks",
           ("hand-xr",), "xr.dcm", "XR"),
    Sample("CalcinosisHandCT", "Hand CT (synthetic SSc patient, 0.5 mm) with landmarks",
           ("hand-ct",), "ct", "CT"),
    Sample("CalcinosisHandMRI", "Hand MRI (synthetic SSc patient) with landmarks and the regions a reader draws",
           ("hand-mri",), "mri", "MR"),
    Sample("CalcinosisSpineCT", "Lumbar spine CT (synthetic, 1 mm) with vertebra labels (TotalSegmentator values)",
           ("spine-ct", "--coverage", "lumbar", "--fit", "--spacing", "1,1,1.25"), "ct", "CT"),
)


def sample(name: str) -> Sample:
    for s in SAMPLES:
        if s.name == name:
            return s
    raise KeyError(f"no calcinosis sample {name!r}; samples: {', '.join(s.name for s in SAMPLES)}")


def make_sample(name: str, cache_dir: str | Path) -> Path:
    """The sample's folder in ``cache_dir`` (written the first time, or again after an
    update of the extension: its version is recorded); returns the phantom folder."""
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
    from calcinosis.cli.main import main
    code = main(["phantom", *s.phantom, "-o", str(folder / "phantom"), "-q"])
    if code != 0:
        raise RuntimeError(f"the {name} phantom could not be made (calcinosis phantom exited {code})")
    marker.write_text(json.dumps({"version": __version__, "sample": name}), encoding="utf-8")
    return folder / "phantom"


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
