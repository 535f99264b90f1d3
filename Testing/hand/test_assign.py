"""Assignment rules on hand-computed geometry (a straight index finger along +S)."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.lesions import LesionSet
from calcinosis.hand import landmarks as lmk
from calcinosis.hand.assign import AssignParams, assign_lesions, build_rays

GEOM = Geometry.create((161, 61, 401), (0.5, 0.5, 0.5), (-40.0, -15.0, -100.0))


def one_voxel_lesions(points, geom=GEOM):
    labels = np.zeros(geom.shape, np.uint16)
    idx = []
    for n, p in enumerate(points, start=1):
        i, j, k = np.round(geom.ras_to_ijk(np.asarray(p, float)[None])[0]).astype(int)
        labels[k, j, i] = n
        idx.append(np.ravel_multi_index((k, j, i), geom.shape))
    order = np.argsort(idx)
    les = LesionSet(labels, geom, np.asarray(idx)[order], np.arange(1, len(points) + 1)[order],
                    ["test"] * len(points))
    cen = np.array([geom.kji_to_ras(np.array(np.unravel_index(i, geom.shape))) for i in idx])
    return les, cen


INDEX = [("R_index_MCP", [0.0, 0.0, 0.0]), ("R_index_PIP", [0.0, 0.0, 40.0]),
         ("R_index_DIP", [0.0, 0.0, 63.0]), ("R_index_tip", [0.0, 0.0, 80.0])]


@pytest.mark.parametrize("point, digit, zone, kind", [
    ((5.0, 0.0, 41.0), "index", "PIP", "periarticular"),          # 1 mm along, 5 mm off the joint centre
    ((8.0, 0.0, 52.0), "index", "other", "subcutaneous"),         # middle-phalanx shaft
    ((4.0, 0.0, 75.0), "index", "distal_phalanx", "subcutaneous"),
    ((0.0, 9.0, 64.0), "index", "DIP", "subcutaneous"),            # at the DIP level, 9 mm palmar: skin, not joint
    ((0.0, 5.5, 62.0), "index", "DIP", "periarticular"),
    ((30.0, 0.0, 40.0), "unassigned", "other", "subcutaneous"),   # 30 mm from the ray (> 15)
    ((0.0, 0.0, -76.0), "unassigned", "wrist", "subcutaneous"),   # 10 mm proximal to the metacarpal base (MCP - 66)
    ((0.0, 3.0, -64.0), "index", "wrist", "subcutaneous"),        # at the estimated CMC: wrist, not periarticular
    ((6.0, 0.0, 0.0), "index", "MCP", "periarticular"),
])
def test_zone_and_kind_rules(point, digit, zone, kind):
    les, cen = one_voxel_lesions([point])
    a = assign_lesions(les, cen, lmk.landmarks_from_points(INDEX), AssignParams())
    assert (a.side[0], a.digit[0], a.zone[0], a.kind[0]) == ("R", digit, zone, kind)


def test_distances_are_parameters():
    les, cen = one_voxel_lesions([(8.0, 0.0, 41.0)])
    L = lmk.landmarks_from_points(INDEX)
    assert assign_lesions(les, cen, L, AssignParams()).kind[0] == "subcutaneous"           # 8 mm > 6 mm
    assert assign_lesions(les, cen, L, AssignParams(periarticular_mm=8.5)).kind[0] == "periarticular"
    les, cen = one_voxel_lesions([(0.0, 0.0, 47.0)])
    assert assign_lesions(les, cen, L, AssignParams()).zone[0] == "other"                   # 7 mm from PIP
    assert assign_lesions(les, cen, L, AssignParams(joint_radius_mm=7.5)).zone[0] == "PIP"
    with pytest.raises(InputError, match="--joint-radius"):
        AssignParams(joint_radius_mm=-1).validate()


def test_thumb_ip_zone_and_cmc():
    thumb = [("L_thumb_CMC", [0.0, 0.0, 0.0]), ("L_thumb_MCP", [0.0, 0.0, 44.0]), ("L_thumb_IP", [0.0, 0.0, 75.0]),
             ("L_thumb_tip", [0.0, 0.0, 97.0])]
    les, cen = one_voxel_lesions([(5.0, 0.0, 75.5), (4.0, 0.0, 1.0)])
    a = assign_lesions(les, cen, lmk.landmarks_from_points(thumb), AssignParams())
    assert (a.digit, a.zone, a.kind) == (["thumb", "thumb"], ["DIP", "wrist"], ["periarticular", "periarticular"])
    a = assign_lesions(les, cen, lmk.landmarks_from_points(thumb), AssignParams(thumb_ip_zone="PIP"))
    assert a.zone[0] == "PIP"


def test_a_placed_finger_cmc_is_accepted_and_is_the_ray_base():
    """Issue 11: every digit has a carpometacarpal joint; a placed finger CMC (80 mm from the
    MCP, the estimate is 66 mm) is the ray's base - a deposit 3 mm from it is at the wrist
    and periarticular, where the estimated base left it 11 mm beyond the ray."""
    les, cen = one_voxel_lesions([(0.0, 3.0, -80.0)])
    before = assign_lesions(les, cen, lmk.landmarks_from_points(INDEX), AssignParams())
    assert before.kind[0] == "subcutaneous"
    placed = lmk.landmarks_from_points(INDEX + [("R_index_CMC", [0.0, 0.0, -80.0])])
    a = assign_lesions(les, cen, placed, AssignParams())
    assert (a.digit[0], a.zone[0], a.kind[0]) == ("index", "wrist", "periarticular")
    assert [lab for lab, _ in placed.as_points()][-1] == "R_index_CMC"
    with pytest.raises(InputError, match="point 'CMC' does not exist on the thumb|does not exist"):
        lmk.landmarks_from_points([("R_index_CMC2", [0.0, 0.0, 0.0])])


def test_partial_landmarks_estimate_missing_points_with_a_warning():
    L = lmk.landmarks_from_points([INDEX[0], INDEX[3]])   # MCP and tip only
    rays, warnings = build_rays(L)
    assert len(rays) == 1 and "PIP, DIP not placed" in warnings[0]
    pip = rays[0].points[rays[0].names.index("PIP")]
    np.testing.assert_allclose(pip, [0, 0, 80 * 40 / 80], atol=1e-9)  # typical proportion 40/80 of MCP-tip
    # a digit with one point is not a ray; its lesions stay unassigned
    L = lmk.landmarks_from_points(INDEX + [("R_ring_PIP", [20.0, 0.0, 40.0])])
    rays, warnings = build_rays(L)
    assert [r.digit for r in rays] == ["index"] and "R ring: only PIP placed" in warnings[0]


def test_without_landmarks_zone_and_kind_are_not_guessed():
    les, cen = one_voxel_lesions([(5.0, 0.0, 41.0)])
    a = assign_lesions(les, cen, None, AssignParams(), laterality="L")
    assert (a.side[0], a.digit[0], a.zone[0], a.kind[0]) == ("L", "unassigned", None, None)
    a = assign_lesions(les, cen, None, AssignParams())
    assert a.side[0] == "unknown"


def test_landmarks_far_outside_the_image_leave_lesions_unassigned():
    far = [(lab, np.asarray(p) + np.array([0.0, 0.0, 900.0])) for lab, p in INDEX]
    les, cen = one_voxel_lesions([(5.0, 0.0, 41.0)])
    a = assign_lesions(les, cen, lmk.landmarks_from_points(far), AssignParams(), laterality="R")
    assert a.digit[0] == "unassigned" and a.zone[0] is None
    assert any("outside the image" in w for w in a.warnings)


def test_two_hands_side_by_nearest_landmarks():
    left = [(lab.replace("R_", "L_"), np.asarray(p) + np.array([-30.0, 0.0, 0.0])) for lab, p in INDEX]
    right = [(lab, np.asarray(p) + np.array([30.0, 0.0, 0.0])) for lab, p in INDEX]
    les, cen = one_voxel_lesions([(26.0, 0.0, 41.0), (-34.0, 0.0, 75.0)])
    a = assign_lesions(les, cen, lmk.landmarks_from_points(left + right), AssignParams())
    assert a.side == ["R", "L"] and a.digit == ["index", "index"] and a.zone == ["PIP", "distal_phalanx"]


def test_radiograph_distances_are_in_the_image_plane():
    g2 = Geometry.create((400, 400, 1), (0.25, 0.25, 1.0), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    # a finger drawn along -A (rows) of the image, landmarks placed a little off the plane (as a click can be)
    pts = [("R_index_MCP", [-50.0, -80.0, 0.4]), ("R_index_PIP", [-50.0, -40.0, -0.3]),
           ("R_index_DIP", [-50.0, -17.0, 0.0]), ("R_index_tip", [-50.0, 0.0, 0.0])]
    les, cen = one_voxel_lesions([(-54.0, -41.0, 0.0), (-50.0, -5.0, 0.0)], g2)
    a = assign_lesions(les, cen, lmk.landmarks_from_points(pts), AssignParams())
    assert a.digit == ["index", "index"] and a.zone == ["PIP", "distal_phalanx"]
    assert a.kind == ["periarticular", "subcutaneous"]
