"""The headless scene: real MRML logics registered, slicer.util helpers usable, VTK noise handled."""

import logging

import numpy as np
import pytest

pytestmark = pytest.mark.mrml


def test_headless_scene_registers_module_logics(mrml_scene):
    import slicer
    from calcinosis import mrml

    assert slicer.mrmlScene is mrml_scene
    for name in ("Colors", "Volumes", "Segmentations", "Markups", "Tables", "Plots", "SubjectHierarchy"):
        logic = mrml.module_logic(name)
        assert logic is not None
        assert logic.GetMRMLScene() is mrml_scene, name
    # slicer.modules.<name>.logic() answers as in the application
    assert slicer.modules.segmentations.logic() is mrml.module_logic("Segmentations")
    # the default colour nodes exist (labelmaps get a colour table)
    assert mrml_scene.GetFirstNodeByClass("vtkMRMLColorTableNode") is not None


def test_slicer_util_helpers_work_headless(mrml_scene):
    """arrayFromSegmentBinaryLabelmap needs slicer.modules.segmentations.logic() and
    slicer.mrmlScene; it must give the segment's voxels on a reference volume."""
    import slicer.util
    from calcinosis import mrml
    from calcinosis.core.geometry import Geometry
    from calcinosis.core.lesions import LesionParams, split_lesions
    from calcinosis.core.volume import Volume

    geom = Geometry.create((12, 10, 8), (0.5, 0.6, 0.7))
    mask = np.zeros(geom.shape, bool)
    mask[2:4, 3:6, 4:9] = True
    vol = Volume(mask.astype(np.int16), geom)
    ref = mrml.node_from_volume(vol, "ref")
    lesions = split_lesions(mask, geom, LesionParams(min_size=0))
    seg = mrml.segmentation_from_lesions(lesions)
    arr = slicer.util.arrayFromSegmentBinaryLabelmap(seg, "lesion_1", ref)
    assert np.array_equal(arr != 0, mask)


def test_fresh_scene_each_time():
    from calcinosis import mrml

    a = mrml.headless_scene()
    a.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "x")
    b = mrml.headless_scene()
    try:
        assert b is not a
        assert b.GetFirstNodeByName("x") is None
    finally:
        mrml.close_headless_scene(a)
        mrml.close_headless_scene(b)


def test_vtk_messages_drops_expected_and_reemits_the_rest(caplog):
    import vtk
    from calcinosis.mrml import vtk_messages

    obj = vtk.vtkImageData()
    with caplog.at_level(logging.DEBUG, logger="calcinosis.mrml"):
        with vtk_messages(expected=[r"harmless thing"]) as msgs:
            vtk.vtkOutputWindow.GetInstance().DisplayErrorText("ERROR: In x.cxx, line 1\nharmless thing happened\n\n")
            vtk.vtkOutputWindow.GetInstance().DisplayErrorText("ERROR: In y.cxx, line 2\nreal trouble\n\n")
            reader = vtk.vtkPNGReader()  # a real VTK error from a real filter
            reader.SetFileName("/nonexistent/file.png")
            reader.Update()
    assert obj is not None
    assert any("harmless thing" in m.text and m.expected for m in msgs)
    unexpected = msgs.unexpected
    assert any("real trouble" in m.text for m in unexpected)
    assert any("nonexistent" in m.text for m in unexpected), [m.text for m in msgs]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("real trouble" in r.getMessage() for r in errors)
    assert not any("harmless thing" in r.getMessage() for r in errors)
    # the output window is restored: messages after the block are not captured in msgs
    n = len(msgs)
    with vtk_messages() as later:
        vtk.vtkOutputWindow.GetInstance().DisplayErrorText("ERROR: In z.cxx\nlater\n\n")
    assert len(msgs) == n and len(later) == 1


def test_headless_setup_is_quiet():
    """Building a scene raises only the known headless noise (no colour files in slicer-core)."""
    from calcinosis import mrml

    with mrml.vtk_messages() as msgs:
        scene = mrml.headless_scene()
        mrml.close_headless_scene(scene)
    assert msgs.unexpected == [], [m.text for m in msgs]


def test_console_logging_is_restored_after_a_block(capfd):
    """Inside a block VTK's stderr printing is off (messages are captured instead); after it,
    VTK errors reach stderr again - nothing stays silenced."""
    import vtk
    from calcinosis.mrml import vtk_messages

    def png_error():
        reader = vtk.vtkPNGReader()
        reader.SetFileName("/nonexistent/after.png")
        reader.Update()

    with vtk_messages(reemit=False):
        png_error()
    inside = capfd.readouterr().err
    assert "after.png" not in inside
    png_error()
    assert "after.png" in capfd.readouterr().err


def test_many_label_import_noise_is_filtered_not_hidden(mrml_scene, caplog):
    """Importing a 300-label volume makes the default colour table report every entry past
    256; those (and only those) are dropped."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import native_route
    from calcinosis.core.geometry import Geometry
    from calcinosis.mrml import vtk_messages
    from mrml_helpers import blobs_labels

    geom = Geometry.create((80, 60, 40), (0.5, 0.5, 0.5))
    labels = blobs_labels(geom.shape, 300)
    with caplog.at_level(logging.WARNING, logger="calcinosis.mrml"):
        with vtk_messages() as outer:
            seg, _ = native_route.import_labelmap_as_segments(labels, geom, mrml_scene)
    assert seg.GetSegmentation().GetNumberOfSegments() == 300
    assert outer.unexpected == [] and not caplog.records
