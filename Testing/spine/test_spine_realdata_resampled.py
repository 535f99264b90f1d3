"""The spine map on the real contrast CT (``../shared/data/external/tcia-pancreatic-ct``)
resampled: the same patient, turned by a few degrees or moved by part of a voxel and
interpolated, as a second scan or another reconstruction would give.  Nothing in the
anatomy changed, so the answers must not: the level names still agree with the ribs, and
the map still reports at most the issue's 2 calcifications (it reported 0 on the original
and, before the rules below, up to 8 on these copies: the partial-volumed ends of bones on
its 3 mm slices, and two ribs lost by the level check refused the right names).

The copies are made here with SimpleITK (linear interpolation, rigid motion about the
image centre); the reader's points are carried by the same motion."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from calcinosis.spine import pipeline

pytestmark = pytest.mark.realdata

#: (name, rotation in degrees about the L, P or S axis, translation LPS mm)
MOTIONS = [
    ("turned 4 degrees about S and moved", 4.0, 2, (6.0, -4.0, 3.0)),
    ("tilted 3 degrees about L", 3.0, 0, (0.0, 0.0, 0.0)),
    ("moved by half a voxel and half a slice", 0.0, 2, (0.5, 0.5, 1.5)),
    ("turned 1 degree about S and moved a little", 1.0, 2, (0.3, 0.0, 0.7)),
]


def _resampled(tcia_ct, tmp_path, deg: float, axis: int, shift) -> tuple:
    import SimpleITK as sitk
    img = sitk.ReadImage(str(tcia_ct / "ct.nrrd"))
    t = sitk.Euler3DTransform()
    centre = img.TransformContinuousIndexToPhysicalPoint([s / 2.0 for s in img.GetSize()])
    t.SetCenter(centre)
    angles = [0.0, 0.0, 0.0]
    angles[axis] = np.radians(deg)
    t.SetRotation(*angles)
    t.SetTranslation(tuple(shift))
    out = sitk.Resample(img, img, t, sitk.sitkLinear, -1024.0, img.GetPixelID())
    ct = tmp_path / "moved.nrrd"
    sitk.WriteImage(out, str(ct))
    inverse = t.GetInverse()            # a point of the original lies here in the copy
    pts = tmp_path / "points.csv"
    with open(tcia_ct / "vertebra_points_lps.csv", newline="") as f, open(pts, "w", newline="") as g:
        w = csv.writer(g)
        w.writerow(["label", "l", "p", "s"])
        for row in csv.DictReader(f):
            p = inverse.TransformPoint([float(row[k]) for k in ("l", "p", "s")])
            w.writerow([row["label"], *(f"{c:.3f}" for c in p)])
    return ct, pts


@pytest.mark.parametrize("name,deg,axis,shift", MOTIONS, ids=[m[0] for m in MOTIONS])
def test_resampled_real_ct_gives_the_same_answers(tcia_ct, tmp_path, name, deg, axis, shift):
    ct, pts = _resampled(tcia_ct, tmp_path, deg, axis, shift)
    res = pipeline.run_spine(ct, points=pts)          # refused (InputError) if the names disagreed
    rc = res.inputs["vertebrae"]["rib_level_check"]
    assert rc["status"] == "consistent" and rc["last_rib_vertebra"] == "T12", rc
    assert rc["vertebrae_with_rib"] == [f"T{n}" for n in range(6, 13)], rc
    rows = res.table.rows
    assert len(rows) <= 2, [(r["level"], r["subsite"], r["max_intensity"], r["volume_mm3"]) for r in rows]
