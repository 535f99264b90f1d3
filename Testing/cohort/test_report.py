"""HTML reports: self-contained, every section sourced, slices in the radiological convention."""

from __future__ import annotations

import re

import numpy as np
import pytest

from CalcinosisLib.cohort.batch import run_batch
from CalcinosisLib.cohort.report import write_reports
from CalcinosisLib.cohort.slices import axial_crop
from CalcinosisLib.cohort.synthetic import write_synthetic_cohort
from CalcinosisLib.geometry import Geometry


def _self_contained(html: str) -> None:
    assert "<html" in html and "</html>" in html
    srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
    external = [s for s in srcs if not (s.startswith("data:") or s.startswith("cases/") or s.startswith("#"))]
    assert external == [], external
    assert "<script" not in html


def test_axial_crop_is_radiological_and_follows_direction():
    """A bright voxel at the patient's right and anterior must appear left and top in the picture,
    also when the grid is stored LPS-flipped (direction diag(-1,-1,1))."""
    for direction in (np.eye(3), np.diag([-1.0, -1.0, 1.0])):
        geom = Geometry.create((41, 41, 5), (1.0, 1.0, 1.0), (0, 0, 0), direction)
        arr = np.zeros(geom.shape, np.float32)
        centre = geom.ijk_to_ras(np.array([20, 20, 2]))
        target = centre + np.array([10.0, 6.0, 0.0])  # 10 mm right, 6 mm anterior
        ijk = np.round(geom.ras_to_ijk(target)).astype(int)
        arr[ijk[2], ijk[1], ijk[0]] = 1000
        img, r, a = axial_crop(arr, geom, centre, 15.0, 1.0, order=0)
        row, col = np.unravel_index(np.argmax(img), img.shape)
        assert r[col] == pytest.approx(target[0]) and a[row] == pytest.approx(target[1])
        assert col < img.shape[1] // 2 and row < img.shape[0] // 2


def test_case_report_measure_with_slices(tmp_path, tiny_phantoms, cli):
    img = tiny_phantoms["b"][0]
    code, _, err = cli("measure", img, "--threshold", "220", "-o", tmp_path / "case", "-q")
    assert code == 0, err
    code, out, err = cli("report", tmp_path / "case", "--image", img, "-o", tmp_path / "rep")
    assert code == 0, err
    html = (tmp_path / "rep" / "report.html").read_text()
    _self_contained(html)
    assert html.count("data:image/png;base64,") == 1
    assert "Lesion images" in html and "Provenance" in html and "threshold_low" in html
    assert "Source: lesions.csv" in html
    # without the image the report still works and says what is missing
    code, _, err = cli("report", tmp_path / "case", "-o", tmp_path / "rep2")
    assert code == 0, err
    html2 = (tmp_path / "rep2" / "report.html").read_text()
    assert "Slice images left out" in html2 and "--image" in html2
    # no earlier report overwritten without --force
    code, _, err = cli("report", tmp_path / "case", "-o", tmp_path / "rep2")
    assert code == 2 and "--force" in err


def test_cohort_report_sections(tmp_path):
    d = write_synthetic_cohort(tmp_path / "in", n_patients=4, seed=3)
    run_batch(d["manifest"], tmp_path / "out", workers=0, clinical=d["clinical"])
    files = write_reports(tmp_path / "out", tmp_path / "rep", manifest=d["manifest"], by="subset")
    html = (tmp_path / "rep" / "cohort.html").read_text()
    _self_contained(html)
    for section in ("Spine: prevalence and distribution", "Hands: lesions per digit",
                    "Hands: comparison of modalities (study 1)", "Inter-reader agreement", "Intra-reader agreement",
                    "Change over time", "Group comparison by subset", "Provenance of the batch"):
        assert section in html, section
    assert "Not computed" not in html
    assert html.count("data:image/png;base64,") >= 6
    assert html.count("Source: ") >= 5
    links = set(re.findall(r'href="(cases/[^"]+)"', html))
    assert links and all((tmp_path / "rep" / l).is_file() for l in links)
    case_html = (tmp_path / "rep" / "cases" / "P01-spine-R1-1.html").read_text()
    _self_contained(case_html)
    assert "Levels × segments" in case_html and "Not assessed" not in case_html  # P01 has a TAP scan
    assert any(f.name == "cohort.html" for f in files)
