"""Demo step: the synthetic patient's hand by radiograph, CT and MRI, and the comparison."""

from __future__ import annotations

from pathlib import Path

from .main import main as cli

TITLE = "Hand: one synthetic SSc patient by radiograph, CT and MRI - lesions per digit and joint, compared"


def run(outdir: Path, force: bool) -> list[str]:
    f = ["--force"] if force else []
    data = outdir / "sample-data"
    ct, mri, xr = data / "hand-ct", data / "hand-mri", data / "hand-xr"
    _call(["phantom", "hand-ct", "-o", str(ct), "-q"] + f)
    _call(["phantom", "hand-mri", "-o", str(mri), "-q"] + f)
    _call(["phantom", "hand-xr", "-o", str(xr), "-q"] + f)
    _call(["hand", str(ct / "ct"), "--landmarks", str(ct / "landmarks.mrk.json"), "-o", str(outdir / "hand-ct"),
           "-q"] + f)
    _call(["hand", str(mri / "mri"), "--landmarks", str(mri / "landmarks.mrk.json"),
           "--roi", str(mri / "regions.seg.nrrd"), "-o", str(outdir / "hand-mri"), "-q"] + f)
    # the radiograph as a reader outlines it (areas from the outlines), and the detector's candidates
    _call(["hand", str(xr / "xr.dcm"), "--landmarks", str(xr / "landmarks.mrk.json"),
           "--mask", str(xr / "outlines.seg.nrrd"), "-o", str(outdir / "hand-xr"), "-q"] + f)
    _call(["hand", str(xr / "xr.dcm"), "--landmarks", str(xr / "landmarks.mrk.json"),
           "-o", str(outdir / "hand-xr-detected"), "-q"] + f)
    _call(["hand-compare", str(outdir / "hand-xr"), str(outdir / "hand-ct"), str(outdir / "hand-mri"),
           "-o", str(outdir / "hand-compare"), "-q"] + f)
    return [
        f"sample data:          {data}/hand-ct, hand-mri, hand-xr (truth.csv and landmarks.mrk.json in each)",
        f"CT lesions per digit: {outdir / 'hand-ct' / 'digits.csv'}",
        f"MRI (in drawn ROIs):  {outdir / 'hand-mri' / 'hand.csv'}",
        f"radiograph (mm²):     {outdir / 'hand-xr' / 'lesions.csv'} (detector candidates: hand-xr-detected/)",
        f"study 1 comparison:   {outdir / 'hand-compare' / 'compare_digits.csv'}",
        f"open in Slicer:       {outdir / 'hand-ct' / 'lesions.seg.nrrd'} over {ct / 'ct'}",
    ]


def _call(argv: list[str]) -> None:
    code = cli(argv)
    if code != 0:
        raise SystemExit(code)
