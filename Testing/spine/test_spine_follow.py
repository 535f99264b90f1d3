"""Issue 14: spine calcifications followed from baseline to follow-up - a lumbar CT phantom
pair (``spine.phantom_followup``): calcifications grown (+80%), shrunk (-55%), resolved and
stable, the patient turned 5 degrees and moved 8 mm in the scanner, and the spine from L3 down
bent 8 degrees against the vertebrae above (the lordosis changed: S1 moved 15 mm against
the rest).  Every group matched to the right calcification and classed right; per level."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.core.tables import Table
from calcinosis.spine.phantom import PhantomSpec
from calcinosis.spine.phantom_followup import spine_followup_pair

CHANGES = {15: "grown", 17: "resolved", 19: "shrunk", 22: "grown"}


def _truth_ids(out, truth: Table) -> dict[int, int]:
    lab = image_io.load_label_image(out / "lesion_labels.nrrd")
    arr, g = lab.layers[0], lab.geometry
    found = {}
    for t in truth.rows:
        if t["center_r_mm"] is None or t["kind"] != "spinal":
            continue
        ijk = np.round(g.ras_to_ijk(np.array([[t["center_r_mm"], t["center_a_mm"], t["center_s_mm"]]]))[0]).astype(int)
        if all(0 <= ijk[a] < arr.shape[2 - a] for a in range(3)) and arr[ijk[2], ijk[1], ijk[0]]:
            found[int(arr[ijk[2], ijk[1], ijk[0]])] = t["lesion_id"]
    return found


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    from calcinosis.cli.main import main
    d = tmp_path_factory.mktemp("spinefollow")
    base, fu, changes, pose = spine_followup_pair(PhantomSpec(coverage="lumbar", size_xy=None, seed=0, margin_mm=80.0),
                                                  CHANGES, bend=("L3", 8.0))
    for name, r in (("base", base), ("fu", fu)):
        image_io.write_image(r.ct, r.geometry, d / f"{name}.nrrd")
        image_io.write_image(r.labels, r.geometry, d / f"{name}_vertebrae.nii.gz")
        assert main(["spine", str(d / f"{name}.nrrd"), "--vertebrae", str(d / f"{name}_vertebrae.nii.gz"),
                     "-o", str(d / f"{name}_out"), "-q"]) == 0
    assert main(["follow", str(d / "base_out"), str(d / "fu_out"), "--baseline-image", str(d / "base.nrrd"),
                 "--followup-image", str(d / "fu.nrrd"), "-o", str(d / "follow"), "-q"]) == 0
    return d, base, fu, changes


def test_every_calcification_matched_and_classed(followed):
    d, base, fu, changes = followed
    bt, ft = _truth_ids(d / "base_out", base.truth), _truth_ids(d / "fu_out", fu.truth)
    expected = {(r["baseline_lesion_id"], r["followup_lesion_id"]): r["change"] for r in changes.rows}
    rows = Table.read_csv(d / "follow" / "lesion_changes.csv").rows
    seen = {}
    for r in rows:
        b = [int(i) for i in (r["baseline_lesion_ids"] or "").split(";") if i]
        f = [int(i) for i in (r["followup_lesion_ids"] or "").split(";") if i]
        assert len(b) <= 1 and len(f) <= 1, r
        key = (bt.get(b[0]) if b else None, ft.get(f[0]) if f else None)
        if key[1] is None and key[0] is not None:
            partner = next(c["followup_lesion_id"] for c in changes.rows if c["baseline_lesion_id"] == key[0])
            if partner is not None:      # the follow-up's detector missed it (not the follow-up's doing)
                assert partner not in ft.values(), (r, "a calcification found at both visits left unmatched")
                continue
        assert key in expected and expected[key] == r["change"], (r, key)
        seen[r["change"]] = seen.get(r["change"], 0) + 1
    # every spinal calcification found at baseline is in a group; the four changes are all there
    assert len(rows) >= 12 and seen.get("grown") == 2 and seen.get("shrunk") == 1 and seen.get("resolved") == 1


def test_per_level_summary(followed):
    d, *_ = followed
    summary = Table.read_csv(d / "follow" / "change_summary.csv")
    levels = [r for r in summary.rows if r["scope"] != "patient"]
    assert {r["level"] for r in levels} >= {"T12-L1", "L1-L2", "L4-L5", "L5-S1"}
    assert sum(r["n_grown"] for r in levels) == summary.rows[0]["n_grown"] == 2


def test_the_report_and_the_slicer_view_take_the_spines_box_grid(cli, followed, tmp_path):
    """A spine result's label map covers the spine's box, not the whole CT: the report's views
    and the comparison view carry it onto the image."""
    d, *_ = followed
    code, _, stderr = cli("report", d / "follow", "--image", d / "base.nrrd", "--followup-image", d / "fu.nrrd",
                          "-o", tmp_path / "r", "-q")
    assert code == 0, stderr
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert page.count('<img alt="group ') == len(Table.read_csv(d / "follow" / "lesion_changes.csv"))
