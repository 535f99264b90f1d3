"""Sample Data (category "Calcinosis"): every sample is made on this computer the first time
(no download), kept for the next time, remade after an update, and loads with what a reader
needs beside the image; the module registers each with a thumbnail."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.mrml import sampledata

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sample-cache")


@pytest.mark.parametrize("name", [s.name for s in sampledata.SAMPLES])
def test_each_sample_loads_with_its_landmarks_or_labels(mrml_scene, cache, name):
    s = sampledata.sample(name)
    nodes = sampledata.load_sample(name, cache)
    volume = nodes["volume"]
    assert volume.GetName() == name and volume.GetAttribute("Calcinosis.Modality") == s.modality
    dims = volume.GetImageData().GetDimensions()
    assert (dims[2] == 1) == (s.modality == "XR") and min(dims[:2]) > 100
    # the node shows the image the phantom wrote, voxel for voxel
    from calcinosis import mrml
    written = image_io.load_image(sampledata.make_sample(name, cache) / s.image)
    assert np.array_equal(mrml.volume_from_node(volume).array, written.array)
    if name.startswith("CalcinosisHand"):
        landmarks = nodes["landmarks"]
        assert landmarks.GetNumberOfControlPoints() >= 20
        assert landmarks.GetNthControlPointLabel(0).startswith(("R_", "L_"))
    if name == "CalcinosisHandMRI":
        assert nodes["regions"].GetSegmentation().GetNumberOfSegments() >= 1    # MRI needs the reader's region
    if name == "CalcinosisSpineCT":
        labels = nodes["vertebrae"]
        assert labels.IsA("vtkMRMLLabelMapVolumeNode")
        values = set(np.unique(mrml.volume_from_node(labels).array).tolist())
        assert len(values - {0}) >= 5                        # one value per vertebra of the lumbar spine


def test_made_once_then_kept_and_remade_after_an_update(cache, monkeypatch):
    folder = sampledata.make_sample("CalcinosisHandRadiograph", cache)
    stamp = (folder / "xr.nrrd").stat().st_mtime_ns
    assert sampledata.make_sample("CalcinosisHandRadiograph", cache) == folder
    assert (folder / "xr.nrrd").stat().st_mtime_ns == stamp               # kept: not made again
    marker = folder.parent / sampledata.COMPLETE
    marker.write_text(json.dumps({"version": "0.0.0-older", "sample": "CalcinosisHandRadiograph"}))
    sampledata.make_sample("CalcinosisHandRadiograph", cache)
    assert json.loads(marker.read_text())["version"] != "0.0.0-older"      # remade for this version
    with pytest.raises(KeyError, match="no calcinosis sample 'Nope'"):
        sampledata.make_sample("Nope", cache)


def test_module_registers_every_sample_with_a_thumbnail():
    """The module's ``registerSampleData`` registers :data:`SAMPLES` under "Calcinosis"
    (read from its source: Slicer's SampleData module does not exist here), and every sample
    has a 128 x 128 thumbnail among the module's resources."""
    from PIL import Image

    source = (REPO / "CalcinosisQuant" / "CalcinosisQuant.py").read_text()
    tree = ast.parse(source)
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    module = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "CalcinosisQuant")
    methods = {f.name: f for f in module.body if isinstance(f, ast.FunctionDef)}
    assert "registerSampleData" in methods and "loadSampleData" in functions
    body = ast.unparse(methods["registerSampleData"])
    assert "registerCustomSampleDataSource" in body and "sampledata.SAMPLES" in body and "customDownloader" in body
    assert 'connect("startupCompleted()", self.registerSampleData)' in source
    assert sampledata.CATEGORY == "Calcinosis"
    for s in sampledata.SAMPLES:
        png = REPO / "CalcinosisQuant" / "Resources" / "Icons" / "SampleData" / f"{s.name}.png"
        with Image.open(png) as im:
            assert im.size == (128, 128)
