"""The vertebra names checked against the ribs of the CT (calcinosis.spine.levelcheck).

A label map moved by whole vertebrae lies on bone everywhere and passes every check of
the label map itself; only anatomy can tell: ribs articulate with T1-T12.  Ground truth
here is the phantom's own ribs (T1-T12, the 11th and 12th short) and a label map moved
along the spine by a known distance; on the real contrast CT the points placed by a
reader, and the same points renamed by two vertebrae."""

from __future__ import annotations

import csv
import functools

import numpy as np
import pytest

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.spine import frame as spine_frame
from calcinosis.spine import levelcheck, phantom, pipeline
from calcinosis.spine.anatomy import VERTEBRAE
from calcinosis.spine.params import SpineParams

from spine_helpers import TEST_SPACING, get_phantom, labels_of, volume_of

THORACIC = [f"T{n}" for n in range(1, 13)]


@functools.lru_cache(maxsize=None)
def wide_phantom(coverage: str = "tap", hard: bool = False) -> phantom.RenderedPhantom:
    """A 22 cm field of view (as a spine or abdomen CT has): the ribs reach out of it."""
    extra = {}
    if hard:
        from calcinosis.spine import phantom_hard
        extra = phantom_hard.hard_spec_kwargs()
    spec = phantom.PhantomSpec(coverage=coverage, spacing=TEST_SPACING, size_xy=(220, 220), seed=0,
                               convention="totalsegmentator", **extra)
    ph = phantom.build_phantom(spec)
    return phantom.render_phantom(ph, phantom.default_geometry(ph))


def moved_labels(r: phantom.RenderedPhantom, mm: float):
    """The phantom's label map moved ``mm`` towards the head (its grid's origin moved)."""
    g = r.geometry
    moved = Geometry.create(g.size_ijk, g.spacing, np.asarray(g.origin_ras) + [0.0, 0.0, mm], g.direction)
    return labels_of(r, geometry=moved)


def rib_check(r: phantom.RenderedPhantom, lab) -> levelcheck.RibCheck:
    _, ribs = pipeline._frame_and_rib_check(volume_of(r), lab, True)
    return ribs


def test_every_thoracic_vertebra_carries_its_rib_and_no_lumbar_one():
    r = wide_phantom()
    rc = rib_check(r, labels_of(r))
    assert rc.status == "consistent" and rc.last_rib == "T12" and rc.offset == 0
    # every vertebra the field of view lets us check, and exactly the thoracic ones carry a rib
    assert rc.checked == [n for n in VERTEBRAE if n in ["C7", *THORACIC, "L1", "L2", "L3"]]
    assert rc.with_rib == THORACIC


@pytest.mark.parametrize("coverage,last", [("lumbar", "T12"), ("chest", "T12")])
def test_other_coverages_see_the_last_rib(coverage, last):
    """Lumbar (T12-S1) and chest (C7-L1) scans both show the thoracolumbar transition."""
    r = wide_phantom(coverage)
    rc = rib_check(r, labels_of(r))
    assert rc.status == "consistent" and rc.last_rib == last


def test_hard_phantom_veins_and_imprecise_labels_are_no_ribs():
    """Enhanced vena cava, renal and iliac veins and arteries, osteophytes and labels off by
    up to 1 mm: the ribs found are still exactly T1-T12."""
    r = wide_phantom("tap", hard=True)
    rc = rib_check(r, labels_of(r))
    assert rc.status == "consistent" and rc.with_rib == THORACIC


def test_ribs_joined_to_each_other_and_to_an_enhanced_aorta_are_each_counted():
    """Ribs touch each other further out, and on a contrast CT the enhanced aorta, lying
    against the bodies, joins the left ribs by their intercostal arteries: all in one
    piece of bone-dense voxels.  Each rib still counts at its own vertebra (found on the
    real contrast CT turned by 4 degrees: counted once per piece, the ribs of T9 and T10
    were lost and the right names refused as four vertebrae off)."""
    from calcinosis.spine.sdf import Capsule
    r = wide_phantom()
    ct = r.ct.astype(np.float32)
    canvas = phantom._Canvas(r.geometry, 0.0)
    thoracic = [v for v in r.phantom.vertebrae if v.name in THORACIC]
    aorta = [v.frame.to_ras(-(v.W / 2 + 9.0), v.D / 4, 0.0) for v in thoracic]
    prims = [Capsule(p, q, 9.0) for p, q in zip(aorta[:-1], aorta[1:])]          # the aorta, 18 mm across
    for v, a in zip(thoracic, aorta):
        ribs = phantom.rib_prims(v, -1)
        prims.append(Capsule(a, ribs[1].p1, 1.6))          # an intercostal artery to the rib's neck
    for side in (-1, 1):       # a bridge joining each side's ribs 55 mm out
        pts = [phantom.rib_prims(v, side)[2].p1 for v in thoracic if int(v.name[1:]) <= 10]
        prims += [Capsule(p, q, 2.5) for p, q in zip(pts[:-1], pts[1:])]
    for prim in prims:
        sl, frac = canvas.coverage(prim)
        if sl is not None:
            sub = ct[sl]
            sub += frac * np.maximum(320.0 - sub, 0.0)       # enhanced blood where not bone
    joined = phantom.RenderedPhantom(np.round(ct).astype(np.int16), r.labels, r.geometry, r.truth, r.truth_voxels,
                                     r.phantom, r.label_names)
    rc = rib_check(joined, labels_of(joined))
    assert rc.status == "consistent" and rc.with_rib == THORACIC, rc


@pytest.mark.parametrize("mm,named,way", [(60.0, "L2", "lower"), (-60.0, "T10", "higher")])
def test_names_two_vertebrae_off_are_refused(mm, named, way):
    """The issue's case: a label map moved 60 mm (two vertebrae here) lies on bone, and every
    level would be two off.  It is refused, naming the vertebra that carries the last rib."""
    r = wide_phantom()
    lab = moved_labels(r, mm)
    with pytest.raises(InputError, match=rf"last vertebra carrying a rib is named {named}.*2 vertebrae {way}"):
        pipeline.map_spine(volume_of(r), lab, SpineParams())


def test_names_one_vertebra_off_are_warned():
    """One vertebra off cannot be told from eleven or thirteen rib pairs: a warning, and
    the check's findings in the result's inputs."""
    r = wide_phantom()
    res = pipeline.map_spine(volume_of(r), moved_labels(r, 30.0), SpineParams())
    assert any("last vertebra carrying a rib is named L1" in w for w in res.warnings)
    assert res.inputs["rib_level_check"]["status"] == "variant or one off"
    assert res.inputs["rib_level_check"]["last_rib_vertebra"] == "L1"


def test_check_can_be_switched_off():
    r = wide_phantom()
    res = pipeline.map_spine(volume_of(r), moved_labels(r, 60.0), SpineParams(rib_level_check=False))
    assert res.inputs["rib_level_check"] == {"status": "off"}
    assert not any("rib" in w for w in res.warnings)


def test_narrow_field_of_view_is_not_checked():
    """A field of view fitted to the spine (5.5 cm around it) cannot show a rib's length:
    not checked, and the result says why."""
    r = get_phantom("tap")
    rc = rib_check(r, labels_of(r))
    assert rc.status == "not checked" and "field of view" in rc.reason and rc.offset is None


def test_all_names_far_off_without_any_rib_are_refused():
    """Names moved so far that the vertebrae named T-something all sit in the lumbar spine
    (six vertebrae here): no rib anywhere it looks is an error too."""
    r = wide_phantom("lumbar")
    lab = labels_of(r)
    v = [g for g in spine_frame.build_frame(lab).vertebrae if g.name.startswith("L")]   # below the last rib
    names = [f"T{n}" for n in range(4, 4 + len(v))]
    rc = levelcheck.check_levels_against_ribs(volume_of(r), names, np.array([g.body for g in v]),
                                              np.array([g.u for g in v]), np.array([g.r for g in v]),
                                              np.array([g.a for g in v]))
    assert rc.status == "no ribs" and rc.with_rib == [] and rc.offset <= -2


# ---------------------------------------------------------------------- real CT

def _renamed_points(src, dst, by: int) -> None:
    rows = [row for row in csv.DictReader(open(src, newline=""))
            if 0 <= VERTEBRAE.index(row["label"]) + by < len(VERTEBRAE)]
    for row in rows:
        row["label"] = VERTEBRAE[VERTEBRAE.index(row["label"]) + by]
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.realdata
@pytest.mark.parametrize("by,named", [(2, "L2"), (-2, "T10")])
def test_real_contrast_ct_points_renamed_by_two_are_refused(tcia_ct, tmp_path, by, named):
    pts = tmp_path / "points.csv"
    _renamed_points(tcia_ct / "vertebra_points_lps.csv", pts, by)
    with pytest.raises(InputError, match=f"named {named}"):
        pipeline.run_spine(tcia_ct / "ct.nrrd", points=pts)


def test_command_line_refuses_moved_labels_and_writes_nothing(cli, tmp_path):
    """On the command line: exit code 2, one line naming the label map, no output folder;
    an earlier result in the folder is kept."""
    from calcinosis.core import image_io
    r = wide_phantom()
    image_io.write_image(r.ct, r.geometry, tmp_path / "ct.nrrd")
    g = r.geometry
    moved = Geometry.create(g.size_ijk, g.spacing, np.asarray(g.origin_ras) + [0.0, 0.0, 60.0], g.direction)
    image_io.write_image(r.labels, moved, tmp_path / "moved.nii.gz")
    code, _, err = cli("spine", tmp_path / "ct.nrrd", "--vertebrae", tmp_path / "moved.nii.gz", "-o", tmp_path / "out",
                       "-q")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("calcinosis: error: moved.nii.gz: the vertebra names disagree with the ribs")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
