#!/usr/bin/env python3
"""Draw the extension's screenshots (Resources/Screenshots/*.png, listed in the top-level
CMakeLists.txt for the Extensions Manager) from the project's own files and phantoms.

Each screenshot: the module panel rendered with real Qt from its ``.ui`` file as Slicer opens
it (Testing/gui/qt_panels.py: Slicer's widgets replaced by Qt stand-ins), beside the
module's result on a phantom as the slice views show it (outlines in the segment colours).
Needs the test extras (PySide6, matplotlib): ``pip install -e .[test]``.

    python Utilities/make_screenshots.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Resources" / "Screenshots"
sys.path.insert(0, str(ROOT / "Testing" / "gui"))


def run(*argv, quiet: bool = True) -> None:
    """``calcinosis ARGV`` in a new process (``-q`` unless ``quiet`` is False)."""
    subprocess.run([sys.executable, "-m", "calcinosis.cli", *map(str, argv)] + (["-q"] if quiet else []), check=True)


def result_view(image_path, result: Path, title: str, context_mm: float):
    from PIL import Image

    from calcinosis.cohort.slices import lesion_panels
    from calcinosis.core import image_io
    from calcinosis.core.tables import Table

    volume = image_io.load_image(image_path)
    labels = image_io.load_label_image(result / "lesion_labels.nrrd", reference=volume.geometry).layers[0]
    rows = Table.read_csv(result / "lesions.csv").rows
    png = lesion_panels(volume, labels, rows, max_panels=6, title=title, context_mm=context_mm)
    return Image.open(io.BytesIO(png)).convert("RGB")


def compose(panel_png: Path, view, out: Path) -> Path:
    from PIL import Image
    panel = Image.open(panel_png).convert("RGB")
    h = max(panel.height, view.height)
    canvas = Image.new("RGB", (panel.width + view.width + 24, h), (236, 236, 236))
    canvas.paste(panel, (0, 0))
    canvas.paste(view, (panel.width + 24, (h - view.height) // 2))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="calcinosis-screenshots-"))
    import qt_panels

    hand, spine = work / "hand", work / "spine"
    if not (hand / "result" / "lesions.csv").exists():
        run("phantom", "hand-ct", "-o", hand / "phantom", "--force")
        run("hand", hand / "phantom" / "ct", "--landmarks", hand / "phantom" / "landmarks.mrk.json",
            "-o", hand / "result", "--force")
    if not (spine / "result" / "lesions.csv").exists():
        run("phantom", "spine-ct", "--coverage", "lumbar", "--fit", "-o", spine / "phantom", "--force")
        run("spine", spine / "phantom" / "ct", "--vertebrae", spine / "phantom" / "vertebrae.nii.gz",
            "-o", spine / "result", "--force")
    views = {
        "CalcinosisQuant": result_view(hand / "phantom" / "ct", hand / "result",
                                       "CalcinosisQuant: hand CT phantom, the largest deposits with their digit and zone",
                                       18.0),
        "SpineCalcMap": result_view(spine / "phantom" / "ct", spine / "result",
                                    "SpineCalcMap: lumbar CT phantom, calcifications with level, segment, sub-site",
                                    40.0),
    }
    from dataclasses import asdict

    from calcinosis.mrml.hand_session import panel_parameter_defaults
    from calcinosis.spine.params import SpineParams
    defaults = {"CalcinosisQuant": {**panel_parameter_defaults(), "modality": "auto", "landmarkSides": "both"},
                "SpineCalcMap": asdict(SpineParams())}
    for name, view in views.items():
        widget = qt_panels.load_panel(name, as_opened=True)
        qt_panels.show_values(widget, name, defaults[name])
        panel = qt_panels.grab_png(widget, work / f"{name}-panel.png")
        print(compose(panel, view, OUT / f"{name}.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
