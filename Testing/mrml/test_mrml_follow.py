"""Issue 14: the two time points of a follow-up in Slicer (``mrml.follow_view``) - the
baseline image, the baseline's lesions and the follow-up's carried onto it, coloured by class,
and the table of lesion groups; jumping to a group."""

import numpy as np
import pytest

from calcinosis.core.tables import Table

pytestmark = pytest.mark.mrml


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    from calcinosis.cli.main import main
    d = tmp_path_factory.mktemp("fv")
    assert main(["phantom", "spheres", "--format", "nrrd", "-o", str(d / "ph"), "-q"]) == 0
    image = next((d / "ph").glob("*.nrrd"))
    assert main(["measure", str(image), "--modality", "ct", "--threshold", "220", "-o", str(d / "m"), "-q"]) == 0
    assert main(["follow", str(d / "m"), str(d / "m"), "--registration", "none", "-o", str(d / "f"), "-q"]) == 0
    return d, image


def test_comparison_has_both_time_points_coloured_by_class(mrml_scene, followed):
    from calcinosis.follow.pipeline import CLASS_COLORS
    from calcinosis.mrml.follow_view import jump_to_group, load_follow_comparison
    d, image = followed
    comp = load_follow_comparison(d / "f", image, scene=mrml_scene)
    n = len(Table.read_csv(d / "m" / "lesions.csv"))
    for node, prefix in ((comp.baseline_segmentation, "baseline"), (comp.followup_segmentation, "follow-up")):
        seg = node.GetSegmentation()
        assert seg.GetNumberOfSegments() == n
        for k in range(n):
            s = seg.GetNthSegment(k)
            assert s.GetName().startswith(f"{prefix} ") and ": stable (group" in s.GetName()
            assert np.allclose(s.GetColor(), CLASS_COLORS["stable"], atol=1e-6)
    assert comp.table_node.GetNumberOfRows() == n
    row = comp.changes.rows[0]
    ras = jump_to_group(comp, row["group_id"], scene=mrml_scene)
    assert ras == pytest.approx([row["baseline_centroid_r_mm"], row["baseline_centroid_a_mm"],
                                 row["baseline_centroid_s_mm"]])


def test_the_wrong_image_is_refused(mrml_scene, followed, tmp_path):
    from calcinosis.core import image_io
    from calcinosis.core.errors import InputError
    from calcinosis.core.geometry import Geometry
    from calcinosis.mrml.follow_view import load_follow_comparison
    d, _ = followed
    other = tmp_path / "other.nrrd"
    image_io.write_image(np.zeros((5, 6, 7), np.int16), Geometry.create((7, 6, 5)), other)
    with pytest.raises(InputError, match="lie outside this image"):
        load_follow_comparison(d / "f", other, scene=mrml_scene)
