"""Demo step: the spine map on a thoraco-abdomino-pelvic (TAP) phantom, then a reader's
corrections applied on a re-run."""

from __future__ import annotations

import csv
from pathlib import Path

from calcinosis.core import memo

from .main import main as cli

TITLE = "Spine calcification map: TAP phantom CT (DICOM) -> levels C7-T1 … L5-S1 x segments, reader overrides"


def run(outdir: Path, force: bool) -> list[str]:
    f = ["--force"] if force else []
    data = outdir / "sample-data" / "spine-tap"
    # a field of view fitted to the spine keeps the demo quick; `phantom spine-ct` alone gives 512 x 512
    _call(["phantom", "spine-ct", "--coverage", "tap", "--fit", "--spacing", "0.9,0.9,1.25",
           "-o", str(data), "-q"] + f)
    out = outdir / "spine-tap"
    # the second run (with the reader's corrections) reads the CT and builds the spine frame
    # once with the first, as the readings of one image in a batch do
    with memo.sharing():
        return _map_and_correct(data, out, outdir, f)


def _map_and_correct(data: Path, out: Path, outdir: Path, f: list[str]) -> list[str]:
    _call(["spine", str(data / "ct"), "--vertebrae", str(data / "vertebrae.nii.gz"), "-o", str(out), "-q"] + f)
    # a reader deletes the first calcification and calls the second one linear: kept on re-run
    with open(out / "lesions.csv", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    overrides = outdir / "spine-tap-overrides.csv"
    if not overrides.exists() or f:
        with open(overrides, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["action", "lesion_id", "centroid_r_mm", "centroid_a_mm", "centroid_s_mm", "level", "segment",
                        "subsite", "pattern", "note"])
            for n, (action, pattern) in enumerate((("delete", ""), ("change", "linear"))):
                if n < len(rows):
                    r = rows[n]
                    w.writerow([action, r["lesion_id"], r["centroid_r_mm"], r["centroid_a_mm"], r["centroid_s_mm"],
                                "", "", "", pattern, "demo reader decision"])
    corrected = outdir / "spine-tap-corrected"
    _call(["spine", str(data / "ct"), "--vertebrae", str(data / "vertebrae.nii.gz"), "--overrides", str(overrides),
           "-o", str(corrected), "-q"] + f)
    with open(out / "patient.csv", encoding="utf-8-sig") as fh:
        p = next(csv.DictReader(fh))
    return [
        f"sample data:          {data}/ (truth.csv: true level, segment, sub-site, pattern)",
        f"map:                  {out / 'lesions.csv'}, levels.csv, patient.csv",
        f"                      {p['calcification_count']} calcifications on {p['levels_assessed']} levels "
        f"(coverage {p['coverage']}): anterior {p['count_anterior']}, intracanal {p['count_intracanal']}, "
        f"posterior {p['count_posterior']}",
        f"chart:                {out / 'level_chart.png'}" if (out / "level_chart.png").is_file()
        else "chart:                not drawn (matplotlib is not installed)",
        f"open in Slicer:       {out / 'lesions.seg.nrrd'} over the CT folder {data / 'ct'}",
        f"reader corrections:   {overrides} -> {corrected / 'reader_overrides.csv'}",
    ]


def _call(argv: list[str]) -> None:
    code = cli(argv)
    if code != 0:
        raise SystemExit(code)
