"""Each lesion segment in .seg.nrrd (and in Slicer) is coded as a calcification in its anatomic
region - not as generic "Tissue" (issue 17)."""

from __future__ import annotations

import pytest

from calcinosis.core import terminology as term
from calcinosis.core.tables import Table


def test_entry_is_the_seven_part_slicer_form():
    entry = term.terminology_entry(term.THUMB, term.LEFT)
    parts = entry.split("~")
    assert len(parts) == 7 and parts[0] == term.CATEGORY_CONTEXT and parts[4] == term.ANATOMIC_CONTEXT
    assert parts[1] == "SCT^49755003^Morphologically Altered Structure" and parts[2] == "SCT^18115005^Pathologic calcification"
    assert parts[3] == "^^" and parts[5] == "SCT^76505004^Thumb" and parts[6] == "SCT^7771000^Left"
    assert term.terminology_entry().split("~")[5:] == ["^^", "^^"]          # region not known
    parsed = term.parse_terminology("Other:x|" + term.segment_tags(entry))
    assert parsed["type"] == term.CALCIFICATION and parsed["region"] == term.THUMB and parsed["region_modifier"] == term.LEFT


@pytest.mark.parametrize("side,digit,zone,region,lat", [
    ("R", "thumb", "MCP", term.THUMB, term.RIGHT), ("L", "ring", "DIP", term.FINGER, term.LEFT),
    ("R", "index", "wrist", term.WRIST_JOINT, term.RIGHT), ("unknown", "unassigned", "other", term.HAND, None)])
def test_hand_regions(side, digit, zone, region, lat):
    assert term.hand_region(side, digit, zone) == (region, lat)


@pytest.mark.parametrize("level,region", [("C7-T1", term.CERVICO_THORACIC_SPINE), ("T8-T9", term.THORACIC_SPINE),
                                          ("T12-L1", term.THORACO_LUMBAR_SPINE), ("L3-L4", term.LUMBAR_SPINE),
                                          ("L5-S1", term.LUMBO_SACRAL_SPINE), ("", term.SPINE)])
def test_spine_regions(level, region):
    assert term.spine_region(level) == (region, None)


def _segment_terms(seg_path):
    import SimpleITK as sitk
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(seg_path))
    reader.ReadImageInformation()
    keys = set(reader.GetMetaDataKeys())
    out, n = {}, 0
    while f"Segment{n}_Tags" in keys:
        out[int(reader.GetMetaData(f"Segment{n}_LabelValue"))] = term.parse_terminology(reader.GetMetaData(f"Segment{n}_Tags"))
        n += 1
    return out


@pytest.mark.parametrize("name", ["hand-xr", "spine-lumbar"])
def test_seg_nrrd_codes_every_lesion_in_its_region(name, phantom_folder, tmp_path, cli):
    ph = phantom_folder(name)
    if name == "hand-xr":
        # the reader's outlines (no detector: quicker); the lesions are assigned as after detection
        argv = ["hand", ph / "xr.dcm", "--landmarks", ph / "landmarks.mrk.json", "--mask", ph / "outlines.seg.nrrd"]
    else:
        argv = ["spine", ph / "ct", "--vertebrae", ph / "vertebrae.nii.gz"]
    code, _, err = cli(*argv, "-o", tmp_path / "out", "-q")
    assert code == 0, err
    rows = {r["lesion_id"]: r for r in Table.read_csv(tmp_path / "out" / "lesions.csv").rows}
    terms = _segment_terms(tmp_path / "out" / "lesions.seg.nrrd")
    assert set(terms) == set(rows) and rows
    for lid, t in terms.items():
        assert t["category"] == term.MORPHOLOGICALLY_ALTERED and t["type"] == term.CALCIFICATION
        r = rows[lid]
        expected = (term.hand_region(r["side"], r["digit"], r["zone"]) if name == "hand-xr"
                    else term.spine_region(r["level"]))
        assert t["region"] == expected[0], (lid, r)
        assert t["region_modifier"] == (expected[1] or ("", "", "")), (lid, r)
    regions = {t["region"] for t in terms.values()}
    assert len(regions) >= 2, "lesions in different regions are coded differently"
