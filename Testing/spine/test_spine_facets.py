"""Facet joints (issue 16): the hard phantom's articular processes, the facet_joint sub-site,
and the rules that keep a piece of a process's cortex from passing for a calcification
between two vertebrae while a calcification in the joint, or one a label swallowed, is kept.

Ground truth: the phantom's geometry (where it put the processes and the calcifications),
synthetic CTs with known geometry (:mod:`test_spine_rim_and_wall`'s body, blurred 0.6 mm,
10 HU noise) and hand-placed border points.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.spine import assign, bone, candidates, phantom, phantom_hard
from calcinosis.spine.params import SpineParams

from spine_helpers import get_hard_phantom, mapped_hard, score
from test_spine_rim_and_wall import SP, _body, _finish

HARD = [("tap", 0, (1.0, 1.0, 1.25)), ("tap", 1, (1.0, 1.0, 1.25)), ("lumbar", 3, (1.0, 1.0, 1.25)),
        ("chest", 2, (0.8, 0.8, 1.25))]


# ---------------------------------------------------------------------- the phantom
@pytest.fixture(scope="module")
def hard_tap():
    spec = phantom.PhantomSpec(coverage="tap", seed=0, size_xy=None, **phantom_hard.hard_spec_kwargs())
    return phantom.build_phantom(spec)


def _surface_points(p0, p1, radius, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(size=(n, 1))
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return p0 + t * (p1 - p0) + radius * d


def test_every_level_has_two_facet_joints_a_joint_space_apart(hard_tap):
    """Every pair of adjacent vertebrae has a left and a right joint: a superior process of
    the lower one and an inferior process of the upper one whose axes lie a joint space
    (1.6 mm) plus two radii apart; a superior process keeps 2 mm from the vertebra above
    (its tip 3 mm, measured on its axis; sampled here on its surface), an inferior one 1.2 mm from
    the vertebra below (at lumbar levels the lordosis brings its tip within 1.5-1.7 mm of
    the lamina below, as in a real lumbar spine): joints, not bridges."""
    verts = hard_tap.vertebrae
    for v, w in zip(verts[:-1], verts[1:]):
        names_v = phantom.vertebra_part_names(v)
        names_w = phantom.vertebra_part_names(w)
        assert names_w.count("articular_superior_left") == names_w.count("articular_superior_right") == 1
        assert names_v.count("articular_inferior_left") == names_v.count("articular_inferior_right") == 1
        for side in (-1, 1):
            j = phantom.facet_joint(v, w, side)
            (s0, s1), (i0, i1) = j["superior"], j["inferior"]
            # the two axes: nearest points of the two segments
            ts = np.linspace(0, 1, 200)[:, None]
            a, b = s0 + ts * (s1 - s0), i0 + ts * (i1 - i0)
            gap = np.min(np.linalg.norm(a[:, None] - b[None], axis=2)) - 2 * j["radius"]
            assert gap == pytest.approx(phantom.FACET_GAP, abs=0.35), (v.name, side, gap)
            solid_v = [p for p, nm in zip(phantom.vertebra_prims(v)[0].parts, names_v)
                       if not nm.startswith("articular_inferior")]
            solid_w = [p for p, nm in zip(phantom.vertebra_prims(w)[0].parts, names_w)
                       if not nm.startswith("articular_superior")]
            sup = _surface_points(s0, s1, j["radius"])
            inf = _surface_points(i0, i1, j["radius"])
            assert min(p.sdf(sup).min() for p in solid_v) >= 2.0, (v.name, side)
            assert min(p.sdf(inf).min() for p in solid_w) >= 1.2, (v.name, side)


def test_hard_phantom_places_facet_joint_calcifications_against_both_processes(hard_tap):
    facets = [c for c in hard_tap.calcifications if c.subsite == "facet_joint"]
    assert len(facets) >= 2
    bone_sdf, _, _ = phantom._bone_sdf_factory(hard_tap)
    for c in facets:
        lobe = c.lobes[0]
        v, w = (hard_tap.vertebra(n) for n in c.level.split("-"))
        # touching bone (0.3 mm into it), within a lobe's size of the joint's centre
        assert bone_sdf(lobe.center[None])[0] == pytest.approx(float(lobe.semi[0]) - 0.3, abs=0.15)
        near = min(np.linalg.norm(lobe.center - phantom.facet_joint(v, w, s)["centre"]) for s in (-1, 1))
        assert near < phantom.facet_radius(w) + 2 * float(np.max(lobe.semi)) + 2.0


def test_spineps_subregions_name_the_articular_processes():
    r = get_hard_phantom("lumbar", 3)
    sub = phantom.subregion_labels(r)
    assert {45, 46, 47, 48} <= set(np.unique(sub).tolist())


# ---------------------------------------------------------------------- the sub-site
def test_facet_zone_lies_beside_and_behind_the_canal():
    p = SpineParams()
    chx, chy = 9.0, 7.5
    x = np.array([14.0, 14.0, -13.0, 14.0, 3.0, 30.0, 14.0, 14.0])
    y = np.array([-12.0, -1.0, -9.0, -7.5 - p.facet_reach_mm - 1, -12.0, -10.0, -0.6 * chy, -0.8 * chy])
    want = [True, False, True, False, False, False, False, True]
    #        facet  foramen  left  too deep  mid-line  transverse proc.  front  just behind
    assert assign.in_facet_zone(x, y, np.full(8, chx), np.full(8, chy), p).tolist() == want


@pytest.mark.parametrize("y,expected", [(-12.0, "facet_joint"), (-1.0, "foraminal")])
def test_articular_process_part_gives_facet_joint_behind_and_foraminal_in_front(y, expected):
    assert assign._subsite_from_part("articular", y, 8.0, 7.5, SpineParams()) == expected


@pytest.mark.parametrize("coverage,seed,spacing", HARD)
def test_facet_joint_calcifications_are_found_and_named(coverage, seed, spacing):
    """Against both articular processes: found, and named facet_joint (posterior segment)."""
    r = get_hard_phantom(coverage, seed, spacing)
    s = score(r, mapped_hard(coverage, seed, spacing))
    names = [row["name"] for row in r.truth.rows if row["subsite"] == "facet_joint"]
    assert names
    wrong = {w[0] for w in s["wrong"]}
    assert not wrong & set(names), [w for w in s["wrong"] if w[0] in names]


# ---------------------------------------------------------------------- between two vertebrae
class _Surf:
    """Border points of two vertebrae (structures 1 and 2) as BoneSurfaces."""

    def __new__(cls, pts_a, pts_b):
        from scipy.spatial import cKDTree
        pts = np.vstack([pts_a, pts_b]).astype(float)
        st = np.r_[np.ones(len(pts_a), int), np.full(len(pts_b), 2)]
        return bone.BoneSurfaces(pts, np.arange(len(pts)), st, np.zeros(len(pts)), ["L1", "L2"], {}, cKDTree(pts))


def _plane(axis: int, at: float, n=11):
    g = np.linspace(-5, 5, n)
    a, b = np.meshgrid(g, g, indexing="ij")
    p = np.zeros((a.size, 3))
    others = [k for k in range(3) if k != axis]
    p[:, axis] = at
    p[:, others[0]] = a.ravel()
    p[:, others[1]] = b.ravel()
    return p


def test_between_vertebrae_along_the_axis_means_across_a_disc():
    """Two vertebrae's borders 3 mm apart above and below a point (end plates): across the
    disc; the same two side by side (a facet joint's space): between them, but not across
    the cranio-caudal axis.  Array axis 0 is S here."""
    s_axis = np.array([1.0, 0.0, 0.0])
    point = np.zeros((1, 3))
    disc = _Surf(_plane(0, 1.5), _plane(0, -1.5))
    joint = _Surf(_plane(2, 1.5), _plane(2, -1.5))
    assert candidates.between_vertebrae(point, disc, 2).tolist() == [True]
    assert candidates.between_vertebrae(point, joint, 2).tolist() == [True]
    assert candidates.between_vertebrae(point, disc, 2, axis=s_axis).tolist() == [True]
    assert candidates.between_vertebrae(point, joint, 2, axis=s_axis).tolist() == [False]


def test_a_corner_of_contact_is_not_touching():
    """A component touches a bone with two contacts at least: one voxel of the other
    vertebra at a corner does not make it lie between two (a process's tip)."""
    shape = (6, 6, 6)
    clab = np.array([1, 1, 1])
    idx = np.ravel_multi_index(([2, 2, 2], [2, 3, 4], [2, 2, 2]), shape)
    bone_mask = np.zeros(shape, bool)
    vert = np.zeros(shape, np.int64)
    for k, j, i, code in ((1, 2, 2, 1), (1, 3, 2, 1), (3, 4, 2, 2)):
        bone_mask[k, j, i] = True
        vert[k, j, i] = code
    from calcinosis.core.geometry import Geometry
    g = Geometry.create(shape, (1.0, 1.0, 1.0))
    surf = _Surf(np.array([[1.0, 2.0, 2.0]]), np.array([[3.0, 4.0, 2.0]]))
    assert candidates.vertebrae_touched(idx, clab, 1, np.array([True]), bone_mask, vert, np.arange(3), surf, g, 2).tolist() == [1]
    bone_mask[3, 3, 2] = True
    vert[3, 3, 2] = 2
    assert candidates.vertebrae_touched(idx, clab, 1, np.array([True]), bone_mask, vert, np.arange(3), surf, g, 2).tolist() == [2]


# ---------------------------------------------------------------------- swallowed by the label
def _deep_case(seed: int, calc_hu: float):
    """A 4 mm calcification on the body's front whose label holds all but its outer 0.6 mm
    (a label grown over it): its dense core lies inside the label."""
    shape = (40, 70, 64)
    ct, vert, (K, J, I) = _body(shape, SP)
    front = 25.6 + 12
    calc = (K - 20.0) ** 2 + (J - front - 1.0) ** 2 + (I - 25.6) ** 2 <= 2.0 ** 2
    ct[calc] = calc_hu
    vert[calc & (J < front + 2.4)] = 1
    vert[(np.abs(J - front - 1.0) < 3) & (np.abs(K - 20) < 3) & (np.abs(I - 25.6) < 3) & (J < front + 2.4)
         & (J >= front)] = 1      # the label grown round it, as a model's
    vol, lab = _finish(ct, vert, SP, seed)
    return vol, lab, calc


@pytest.mark.parametrize("seed", [0, 1])
def test_calcification_the_label_swallowed_is_found_by_its_dense_core(seed, monkeypatch):
    """1,100 HU inside a label round a 700 HU cortex: not bone (no cortex is denser than
    itself), found; with the rule off (an excess no voxel reaches) it is lost - the rule is
    what finds it."""
    vol, lab, calc = _deep_case(seed, 1100.0)
    opts = candidates.CandidateOptions(study_rule=True, detect_vessels=False)
    res = candidates.find_candidates(vol, lab, opts)
    found = res.lesions.labels > 0
    assert found[calc].any(), res.rejected
    assert not found[~ndimage.binary_dilation(calc, iterations=3)].any()
    monkeypatch.setattr(candidates, "SWALLOWED_EXCESS_HU", 1e6)
    vol, lab, calc = _deep_case(seed, 1100.0)
    res = candidates.find_candidates(vol, lab, opts)
    assert not (res.lesions.labels > 0)[calc].any()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_label_grown_over_cortex_frees_nothing(seed):
    """The control: the same label grown round nothing but the cortex - nothing found."""
    shape = (40, 70, 64)
    ct, vert, (K, J, I) = _body(shape, SP)
    front = 25.6 + 12
    vert[(np.abs(K - 20) < 3) & (np.abs(I - 25.6) < 3) & (J >= front) & (J < front + 2.4)] = 1
    vol, lab = _finish(ct, vert, SP, seed)
    res = candidates.find_candidates(vol, lab, candidates.CandidateOptions(study_rule=True, detect_vessels=False))
    assert res.lesions.n == 0, res.rejected


# ---------------------------------------------------------------------- results written before
def test_results_written_before_the_facet_joint_columns_are_read(tmp_path):
    """A spine result folder written before count_facet_joint / any_facet_joint existed is
    still read by the cohort, with those columns empty (not known) in their contract
    place; a result lacking any other contract column is still refused."""
    import csv

    from calcinosis import tasks
    from calcinosis.cohort import synthetic
    from calcinosis.spine.anatomy import LEVELS

    spine = tasks.get("spine")
    lesions = [synthetic.SpineLesion("T8-T9", "facet_joint", "punctate", 20.0),
               synthetic.SpineLesion("T8-T9", "intervertebral_disc", "punctate", 30.0)]
    case = synthetic.write_case(tmp_path / "case", synthetic.spine_tables(lesions, LEVELS), "spine")
    now = spine.summarise(case, "c1")
    assert now["patient"].rows[0]["count_facet_joint"] == 1

    def drop(name: str, columns) -> None:
        path = case / name
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        keep = [c for c in rows[0] if c not in columns]
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, keep, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    drop("patient.csv", spine.ADDED_COLUMNS)
    drop("levels.csv", spine.ADDED_COLUMNS)
    old = spine.summarise(case, "c1")
    assert old["patient"].column_names == now["patient"].column_names
    assert old["patient"].rows[0]["count_facet_joint"] is None
    assert old["patient"].rows[0]["count_intervertebral_disc"] == 1
    assert [r["count_facet_joint"] for r in old["levels"].rows] == [None] * len(LEVELS)
    drop("patient.csv", ("count_interspinous",))
    with pytest.raises(tasks.ContractError, match="count_interspinous"):
        spine.summarise(case, "c1")
