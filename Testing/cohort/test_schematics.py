"""The pictures of one patient in the case reports put each finding where the table says."""

import pytest

from calcinosis.cohort import schematics
from calcinosis.cohort.contract import LEVELS


def test_spine_positions_follow_level_and_segment():
    rows = [{"lesion_id": 1, "level": "T1-T2", "segment": "anterior", "subsite": "anterior_longitudinal_ligament"},
            {"lesion_id": 2, "level": "L5-S1", "segment": "posterior", "subsite": "interspinous"},
            {"lesion_id": 3, "level": "T8-T9", "segment": "intracanal", "subsite": ""},
            {"lesion_id": 4, "level": "T8-T9", "segment": "intracanal", "subsite": ""},   # same place: spread
            {"lesion_id": 5, "level": "", "segment": "anterior"}]                        # no level: not drawn
    placed = {r["lesion_id"]: (x, y) for r, x, y in schematics.spine_positions(rows)}
    assert set(placed) == {1, 2, 3, 4}
    assert placed[1][1] == pytest.approx(LEVELS.index("T1-T2")) and placed[2][1] == pytest.approx(LEVELS.index("L5-S1"))
    assert placed[1][0] < schematics.SEGMENT_SPAN["anterior"][1] <= placed[3][0] < schematics.SEGMENT_SPAN["posterior"][0] < placed[2][0]
    assert placed[3] != placed[4] and abs(placed[3][1] - LEVELS.index("T8-T9")) < 0.5 > abs(placed[4][1] - LEVELS.index("T8-T9"))


def test_hand_positions_pa_view_both_sides():
    rows = [{"side": "R", "digit": "thumb", "zone": "MCP"}, {"side": "R", "digit": "little", "zone": "DIP"},
            {"side": "R", "digit": "index", "zone": "distal_phalanx"}, {"side": "R", "digit": "index", "zone": "MCP"},
            {"side": "R", "digit": "unassigned", "zone": "wrist"},
            {"side": "L", "digit": "thumb", "zone": "MCP"}, {"side": "L", "digit": "little", "zone": "DIP"}]
    right, n_right = schematics.hand_positions(rows, "R")
    left, n_left = schematics.hand_positions(rows, "L")
    assert (n_right, n_left) == (1, 0) and len(right) == 4 and len(left) == 2
    pos = {(r["digit"], r["zone"]): (x, y) for r, x, y in right}
    assert pos[("thumb", "MCP")][0] < pos[("little", "DIP")][0]          # right hand PA: thumb on the left
    assert pos[("index", "distal_phalanx")][1] > pos[("index", "MCP")][1]  # tip up
    lpos = {(r["digit"], r["zone"]): (x, y) for r, x, y in left}
    assert lpos[("thumb", "MCP")][0] > lpos[("little", "DIP")][0]        # left hand mirrored


def test_schematics_draw(tmp_path):
    pytest.importorskip("matplotlib")
    png = schematics.spine_schematic([{"level": "L2-L3", "segment": "anterior", "pattern": "linear"}],
                                     [{"level": lv, "status": "assessed" if lv.startswith("L") else "not_assessed"}
                                      for lv in LEVELS])
    assert png.startswith(b"\x89PNG")
    png = schematics.hand_schematic([{"side": "L", "digit": "ring", "zone": "PIP", "kind": "periarticular",
                                      "area_mm2": 4.0}], "area_mm2", "mm²")
    assert png.startswith(b"\x89PNG")


def test_one_colour_per_spine_segment_everywhere():
    """Slicer's segmentation, the case's level chart and the reports' charts and schematic
    colour a segment alike."""
    from calcinosis.cohort import figures
    from calcinosis.spine import anatomy
    for seg, rgb in anatomy.SEGMENT_COLORS.items():
        hex_ = figures.SEGMENT_COLORS[seg]
        assert tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5)) == tuple(round(255 * c) for c in rgb)
