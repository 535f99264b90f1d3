#!/usr/bin/env python3
"""Draw the pictures of docs/tutorial.md (docs/images/tutorial-*.png) from the samples and
the demo's cohort: the Sample Data thumbnails, the radiograph sample's result as the slice
views show it, and the cohort report's first screen (headless Chromium).  The panels'
pictures are the extension's screenshots (Utilities/make_screenshots.py).

    python Utilities/make_tutorial_figures.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from make_screenshots import result_view, run

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def sample_strip(work: Path) -> Path:
    from PIL import Image, ImageDraw

    from calcinosis.mrml import sampledata
    icons = ROOT / "CalcinosisQuant" / "Resources" / "Icons" / "SampleData"
    w = 150
    canvas = Image.new("RGB", (w * len(sampledata.SAMPLES) + 10, 175), (245, 245, 245))
    draw = ImageDraw.Draw(canvas)
    draw.text((10, 4), "Sample Data - Calcinosis", fill=(0, 0, 0))
    for n, s in enumerate(sampledata.SAMPLES):
        canvas.paste(Image.open(icons / f"{s.name}.png").convert("RGB"), (10 + n * w + 11, 22))
        draw.text((10 + n * w + 4, 156), s.name.replace("Calcinosis", ""), fill=(0, 0, 0))
    out = IMAGES / "tutorial-sampledata.png"
    canvas.save(out)
    return out


def radiograph_result(work: Path) -> Path:
    from calcinosis.mrml import sampledata

    folder = sampledata.make_sample("CalcinosisHandRadiograph", work / "samples")
    result = work / "xr-result"
    if not (result / "lesions.csv").exists():
        run("hand", folder / "xr.nrrd", "--modality", "xr", "--landmarks", folder / "landmarks.mrk.json", "-o", result,
            "--force")
    out = IMAGES / "tutorial-hand-xr.png"
    result_view(folder / "xr.nrrd", result, "Hand radiograph sample: the largest deposits found, with digit and zone",
                18.0).save(out)
    return out


def cohort_report(work: Path) -> Path:
    demo = work / "demo"
    if not (demo / "cohort" / "report" / "cohort.html").exists():
        run("demo", "-o", demo, "--only", "cohort", "--force", quiet=False)
    index = demo / "cohort" / "report" / "cohort.html"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    out = IMAGES / "tutorial-cohort-report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--disable-background-networking", "--window-size=1200,1400", f"--screenshot={out}",
                    index.as_uri()], check=True, capture_output=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="calcinosis-tutorial-"))
    for make in (sample_strip, radiograph_result, cohort_report):
        print(make(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
