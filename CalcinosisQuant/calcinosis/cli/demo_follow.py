"""Demo step: one hand CT at two visits - every lesion followed (issue 14)."""

from __future__ import annotations

from pathlib import Path

from .demo_hand import _call

TITLE = "Follow-up: the hand CT at two visits - each lesion new, resolved, grown, shrunk or stable"


def run(outdir: Path, force: bool) -> list[str]:
    f = ["--force"] if force else []
    pair = outdir / "sample-data" / "hand-ct-pair"
    _call(["phantom", "hand-ct-pair", "-o", str(pair), "-q"] + f)
    for visit in ("baseline", "followup"):
        _call(["hand", str(pair / f"{visit}.nrrd"), "--modality", "ct", "--laterality", "R", "--landmarks",
               str(pair / f"{visit}_landmarks.mrk.json"), "--partial-volume", "-o", str(outdir / f"follow-{visit}"),
               "-q"] + f)
    _call(["follow", str(outdir / "follow-baseline"), str(outdir / "follow-followup"), "--baseline-image",
           str(pair / "baseline.nrrd"), "--followup-image", str(pair / "followup.nrrd"), "-o",
           str(outdir / "follow"), "-q"] + f)
    _call(["report", str(outdir / "follow"), "--image", str(pair / "baseline.nrrd"), "--followup-image",
           str(pair / "followup.nrrd"), "-o", str(outdir / "follow-report"), "-q"] + f)
    return [
        f"sample data:        {pair} (changes.csv: the true change of every lesion)",
        f"every lesion:       {outdir / 'follow' / 'lesion_changes.csv'}",
        f"per patient/digit:  {outdir / 'follow' / 'change_summary.csv'}",
        f"side by side:       {outdir / 'follow-report' / 'report.html'}",
        f"in Slicer:          CalcinosisQuant > Compare time points: {outdir / 'follow'} on {pair / 'baseline.nrrd'}",
    ]
