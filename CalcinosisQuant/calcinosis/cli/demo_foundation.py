"""Demo step: phantom CT (DICOM) and radiograph measured by the lesion engine."""

from __future__ import annotations

from pathlib import Path

from .main import main as cli

TITLE = "Lesion engine: sphere phantom CT and radiograph phantom, measured in mm³ and mm²"


def run(outdir: Path, force: bool) -> list[str]:
    f = ["--force"] if force else []
    data = outdir / "sample-data"
    _call(["phantom", "spheres", "--format", "dicom", "-o", str(data / "spheres-ct"), "-q"] + f)
    _call(["phantom", "radiograph", "--spacing-tag", "imager", "--magnification", "1.1",
           "-o", str(data / "radiograph"), "-q"] + f)
    _call(["measure", str(data / "spheres-ct" / "ct"), "--threshold", "220", "-o", str(outdir / "measure-ct"), "-q"] + f)
    _call(["measure", str(data / "radiograph" / "xr.dcm"), "--threshold", "2000", "-o", str(outdir / "measure-xr"),
           "-q"] + f)
    return [
        f"sample data:          {data}/ (truth.csv beside each image)",
        f"CT lesions (mm³):     {outdir / 'measure-ct' / 'lesions.csv'}",
        f"radiograph (mm²):     {outdir / 'measure-xr' / 'lesions.csv'}",
        f"open in Slicer:       {outdir / 'measure-ct' / 'lesions.seg.nrrd'} over the CT folder",
    ]


def _call(argv: list[str]) -> None:
    code = cli(argv)
    if code != 0:
        raise SystemExit(code)
