"""The lesion views of the reports (calcinosis.cohort.slices), drawn into pixels: windowing,
voxel blocks, outlines in each lesion's colour (2 px for the lesion named, 1 px for the
others), a scale bar of a round length, and the picture itself (size, decodable PNG)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from calcinosis.cohort.slices import lesion_panels, scale_bar_mm, view_rgb
from calcinosis.core.geometry import Geometry
from calcinosis.core.volume import Volume

RED, GREEN = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)


def test_view_rgb_windowing_blocks_and_outlines():
    img = np.array([[-1000.0, 0.0], [500.0, 3000.0]])
    lab = np.zeros((2, 2), int)
    grey = view_rgb(img, lab, (4, 4), vmin=-500.0, vmax=1500.0, colors=[], named=1)
    assert grey.shape == (4, 4, 3) and grey.dtype == np.uint8
    # each voxel a 2 x 2 block; -1000 below the window -> 0, 0 HU -> a quarter, 3000 above -> 255
    assert grey[:2, :2, 0].tolist() == [[0, 0], [0, 0]]
    assert int(grey[0, 2, 0]) == round(255 * 0.25) and int(grey[3, 3, 0]) == 255
    assert int(grey[2, 0, 0]) == round(255 * 0.5)
    assert np.all(grey[..., 0] == grey[..., 1])

    lab = np.zeros((20, 20), int)
    lab[4:14, 4:14] = 1          # the lesion named: outline 2 px
    lab[15:19, 15:19] = 2        # another lesion: outline 1 px
    rgb = view_rgb(np.zeros((20, 20)), lab, (20, 20), 0.0, 1.0, [RED, GREEN], named=1)
    red = np.all(rgb == [255, 0, 0], axis=2)
    green = np.all(rgb == [0, 255, 0], axis=2)
    expect_red = np.zeros((20, 20), bool)
    expect_red[4:14, 4:14] = True
    expect_red[6:12, 6:12] = False
    expect_green = np.zeros((20, 20), bool)
    expect_green[15:19, 15:19] = True
    expect_green[16:18, 16:18] = False
    assert np.array_equal(red, expect_red)
    assert np.array_equal(green, expect_green)


@pytest.mark.parametrize("width, length", [(3.0, 1.0), (8.0, 2.0), (24.0, 5.0), (40.0, 10.0), (80.0, 20.0),
                                           (199.0, 20.0), (200.0, 50.0), (1000.0, 100.0)])
def test_scale_bar_is_round_and_at_most_a_quarter(width, length):
    assert scale_bar_mm(width) == length
    assert length <= max(width / 4, 1.0)


def test_lesion_panels_picture():
    pytest.importorskip("matplotlib")
    from PIL import Image
    arr = np.full((20, 60, 60), -50.0, np.float32)
    labels = np.zeros(arr.shape, np.int32)
    zz, yy, xx = np.mgrid[:20, :60, :60]
    for lid, (cz, cy, cx, r) in enumerate(((10, 20, 20, 4), (10, 40, 40, 3)), start=1):
        ball = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        arr[ball], labels[ball] = 900.0, lid
    geom = Geometry.create((60, 60, 20), (0.5, 0.5, 0.5), (0.0, 0.0, 0.0), np.eye(3))
    vol = Volume(arr, geom, {"modality": "CT"})
    rows = []
    for lid in (1, 2):
        ijk = np.argwhere(labels == lid).mean(axis=0)[::-1]
        r, a, s = geom.ijk_to_ras(ijk)
        rows.append({"lesion_id": lid, "volume_mm3": float((labels == lid).sum() * 0.125), "centroid_r_mm": r,
                     "centroid_a_mm": a, "centroid_s_mm": s})
    png = lesion_panels(vol, labels, rows, title="t")
    im = Image.open(io.BytesIO(png)).convert("RGB")
    assert im.size[0] == 2 * (300 + 28)              # two views side by side
    px = np.asarray(im)
    colours = {tuple(c) for c in px.reshape(-1, 3)}
    from calcinosis.core.pipeline import lesion_colors
    for c in lesion_colors(2):                       # both outlines drawn in their colours
        assert tuple(int(round(255 * x)) for x in c) in colours
