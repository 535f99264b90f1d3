"""HTML reports: self-contained, every section sourced, slices in the radiological convention."""

from __future__ import annotations

import base64
import json
import io
import re
import sys

import numpy as np
import pytest
from PIL import Image

from calcinosis.cohort.batch import run_batch
from calcinosis.cohort.report import write_reports
from calcinosis.cohort.slices import axial_crop
from calcinosis.cohort.synthetic import write_synthetic_cohort
from calcinosis.core.geometry import Geometry
from calcinosis.core.tables import Table


def _self_contained(html: str) -> None:
    assert "<html" in html and "</html>" in html
    srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
    external = [s for s in srcs if not (s.startswith("data:") or s.startswith("cases/") or s.startswith("#")
                                        or s == "../cohort.html")]
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


@pytest.fixture(scope="module")
def synthetic_batch(tmp_path_factory):
    """A batch of the synthetic cohort (4 patients) and its manifest."""
    root = tmp_path_factory.mktemp("synthetic-batch")
    d = write_synthetic_cohort(root / "in", n_patients=4, seed=3)
    run_batch(d["manifest"], root / "out", workers=0, clinical=d["clinical"])
    return root / "out", d["manifest"]


@pytest.fixture(scope="module")
def cohort_reports(synthetic_batch, tmp_path_factory):
    """The batch's reports with figures: (folder, files)."""
    out, manifest = synthetic_batch
    rep = tmp_path_factory.mktemp("cohort-reports") / "rep"
    return rep, write_reports(out, rep, manifest=manifest, by="subset")


def test_cohort_report_sections(cohort_reports):
    rep, files = cohort_reports
    html = (rep / "cohort.html").read_text()
    _self_contained(html)
    for section in ("Spine: prevalence and distribution", "Hands: lesions per digit",
                    "Hands: comparison of modalities (study 1)", "Inter-reader agreement", "Intra-reader agreement",
                    "Change over time", "Group comparison by subset", "Parameters and provenance of the batch"):
        assert section in html, section
    assert "Not computed" not in html
    assert html.count("data:image/png;base64,") >= 6
    assert html.count("Source: ") >= 5
    links = set(re.findall(r'href="(cases/[^"]+)"', html))
    assert links and all((rep / l).is_file() for l in links)
    case_html = (rep / "cases" / "P01-spine-R1-1.html").read_text()
    _self_contained(case_html)
    assert "Levels × segments" in case_html and "Not assessed" not in case_html  # P01 has a TAP scan
    assert any(f.name == "cohort.html" for f in files)


def test_case_report_of_an_image_without_spacing_uses_the_spacing_given(tmp_path, cli):
    """A PNG radiograph has no pixel spacing: the report reads it with --spacing, as the
    measurement did (it used to ignore the option and leave the slice images out)."""
    yy, xx = np.mgrid[:120, :160]
    img = np.full((120, 160), 40, np.uint8)
    img[(yy - 60) ** 2 + (xx - 80) ** 2 < 64] = 220
    Image.fromarray(img).save(tmp_path / "xr.png")
    code, _, err = cli("measure", tmp_path / "xr.png", "--spacing", "0.2,0.2", "--modality", "xr", "--threshold",
                       "128", "-o", tmp_path / "case", "-q")
    assert code == 0, err
    code, _, err = cli("report", tmp_path / "case", "--image", tmp_path / "xr.png", "--spacing", "0.2,0.2",
                       "-o", tmp_path / "rep", "-q")
    assert code == 0, err
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Slice images left out" not in html and len(_images(html)["lesions outlined"]) == 1
    code, _, err = cli("report", tmp_path / "case", "--image", tmp_path / "xr.png", "-o", tmp_path / "rep2", "-q")
    assert code == 2 and "--spacing" in err                      # an image given by the user: its error says so


# ---------------------------------------------------------------------- hand and spine cases
@pytest.fixture(scope="module")
def pipeline_cases(phantom_folder, tmp_path_factory):
    """``calcinosis hand`` on the radiograph phantom and ``calcinosis spine`` on the lumbar phantom:
    {name: (case folder, image)}."""
    from calcinosis.cli.main import main
    root = tmp_path_factory.mktemp("pipeline-cases")
    xr, spine = phantom_folder("hand-xr"), phantom_folder("spine-lumbar")
    cases = {"hand-xr": (root / "hand-xr", xr / "xr.dcm"), "spine": (root / "spine", spine / "ct")}
    assert main(["hand", str(xr / "xr.dcm"), "--landmarks", str(xr / "landmarks.mrk.json"),
                 "-o", str(cases["hand-xr"][0]), "-q"]) == 0
    assert main(["spine", str(spine / "ct"), "--vertebrae", str(spine / "vertebrae.nii.gz"),
                 "-o", str(cases["spine"][0]), "-q"]) == 0
    return cases


def _images(html: str) -> dict[str, list[np.ndarray]]:
    """Embedded PNGs by their alt text, decoded to RGB arrays."""
    out: dict[str, list[np.ndarray]] = {}
    for alt, data in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', html):
        img = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
        out.setdefault(alt, []).append(np.asarray(img))
    return out


def _coloured_pixels(rgb: np.ndarray) -> int:
    """Pixels that are clearly coloured: the slice itself is grey, text black, outlines coloured."""
    rgb = rgb.astype(int)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 80).sum())


@pytest.mark.parametrize("name", ["hand-xr", "spine"])
def test_case_report_hand_and_spine_slices(name, pipeline_cases, tmp_path, cli):
    """A hand radiograph case and a spine CT case: the report embeds the lesion slice image, with
    the lesions outlined in colour on the grey image."""
    case, image = pipeline_cases[name]
    n_lesions = len(Table.read_csv(case / "lesions.csv"))
    assert n_lesions >= 1
    code, _, err = cli("report", case, "--image", image, "-o", tmp_path / "rep", "-q")
    assert code == 0, err
    html = (tmp_path / "rep" / "report.html").read_text()
    _self_contained(html)
    assert "Lesion images" in html and "Slice images left out" not in html
    slices = _images(html).get("lesions outlined", [])
    assert len(slices) == 1, "one panel image of the largest lesions"
    assert _coloured_pixels(slices[0]) > 200, "lesion outlines drawn"
    if name == "spine":
        assert "axial planes resampled in RAS, patient right on the left" in html
    else:
        assert "(label = lesion_id); radiograph" in html


def _without_matplotlib(monkeypatch):
    """As inside Slicer, which does not bundle matplotlib: importing it fails."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401


def _tables_and_sections(html: str) -> tuple[int, list[str]]:
    return html.count("<table"), re.findall(r"<h[1-4]>([^<]*)</h[1-4]>", html)


def test_case_reports_without_matplotlib(pipeline_cases, tmp_path, monkeypatch):
    """Without matplotlib a hand and a spine case report keep every table and section of the report
    with figures, embed no image, and name each figure left out."""
    with_figures = {}
    for name, (case, image) in pipeline_cases.items():
        write_reports(case, tmp_path / f"{name}-mpl", image=image)
        with_figures[name] = (tmp_path / f"{name}-mpl" / "report.html").read_text()
        assert "data:image/png" in with_figures[name]
    _without_matplotlib(monkeypatch)
    for name, (case, image) in pipeline_cases.items():
        write_reports(case, tmp_path / name, image=image)
        html = (tmp_path / name / "report.html").read_text()
        _self_contained(html)
        assert "data:image/png" not in html
        assert _tables_and_sections(html) == _tables_and_sections(with_figures[name])
        assert html.count("<table") >= 4, "summary tables, lesions and provenance"
        assert "Slice images left out: matplotlib is not installed" in html
        figures = ["hand schematic", "lesions per digit"] if name == "hand-xr" else ["spine schematic"]
        for figure in figures:
            assert f"Figure left out ({figure}): matplotlib is not installed" in html
        closing = re.search(r"Figures left out, matplotlib is not installed \([^)]*\): ([^<]*)<", html)
        assert closing and closing.group(1) == "; ".join(figures + ["slice images of the lesions"])


def test_cohort_report_without_matplotlib(synthetic_batch, cohort_reports, tmp_path, monkeypatch):
    """The batch's cohort and case reports without matplotlib: every table and section of the
    reports with figures, no image, and each figure left out named."""
    out, manifest = synthetic_batch
    rep_mpl, files_mpl = cohort_reports
    _without_matplotlib(monkeypatch)
    files = write_reports(out, tmp_path / "rep", manifest=manifest, by="subset")
    assert sorted(f.relative_to(tmp_path / "rep") for f in files) == sorted(f.relative_to(rep_mpl) for f in files_mpl)
    for f in files:
        if f.suffix != ".html":
            continue
        html = f.read_text()
        _self_contained(html)
        assert "data:image/png" not in html, f.name
        rel = f.relative_to(tmp_path / "rep")
        assert _tables_and_sections(html) == _tables_and_sections((rep_mpl / rel).read_text()), rel
    html = (tmp_path / "rep" / "cohort.html").read_text()
    assert "Not computed" not in html
    for figure in ("level by segment", "lesions per digit", "change of measure_ct_total_volume_mm3"):
        assert f"Figure left out ({figure}): matplotlib is not installed" in html, figure
    assert html.count("Figure left out (Bland-Altman ") >= 2
    closing = re.search(r"Figures left out, matplotlib is not installed \([^)]*\): ([^<]*)<", html)
    assert closing and "level by segment" in closing.group(1) and "Bland-Altman" in closing.group(1)


def test_no_link_to_a_case_page_that_is_not_written(synthetic_batch, tmp_path):
    """A case folder removed after the batch: the cohort report neither writes its page nor
    links to it (was: a dead link)."""
    import shutil
    out, _ = synthetic_batch
    copy = tmp_path / "batch"
    shutil.copytree(out, copy)
    ok = [r["case_id"] for r in Table.read_csv(copy / "cases.csv").rows if r["status"] == "ok"]
    gone, kept = ok[0], ok[1]
    shutil.rmtree(copy / "cases" / gone)
    rep = tmp_path / "rep"
    write_reports(copy, rep)
    html_text = (rep / "cohort.html").read_text(encoding="utf-8")
    assert f'href="cases/{gone}.html"' not in html_text and not (rep / "cases" / f"{gone}.html").exists()
    assert f'href="cases/{kept}.html"' in html_text and (rep / "cases" / f"{kept}.html").is_file()


# ---------------------------------------------------------------------- in a browser
@pytest.fixture(scope="module")
def browser():
    from chromium import browser_or_skip
    with browser_or_skip() as b:
        yield b


def _check_page(browser, page, shots, name):
    """Screen: no console error, every image shown, every contents link has its target, no
    empty brackets; a screenshot to look at.  Print (A4): no table, image or code wider than
    the page, no scrolling box that would cut a table, headings kept with what follows, rows
    not split; and Chromium prints it to a PDF of at least one page."""
    from chromium import A4_PRINT_WIDTH_PX, PRINT_CHECKS, SCREEN_CHECKS, pdf_page_count
    browser.load(page)
    assert browser.console_errors() == [], browser.console_errors()
    assert browser.evaluate(SCREEN_CHECKS) == []
    shot = browser.screenshot(shots / f"{name}.png")
    assert Image.open(shot).size[1] > 900
    browser.load(page, media="print", width=A4_PRINT_WIDTH_PX)
    assert browser.evaluate(PRINT_CHECKS) == []
    pdf = browser.pdf()
    assert pdf.startswith(b"%PDF") and pdf_page_count(pdf) >= 1
    (shots / f"{name}.pdf").write_bytes(pdf)
    return browser.evaluate("document.body.innerText")


@pytest.mark.parametrize("name", ["hand-xr", "spine"])
def test_case_report_reads_well_in_chromium(name, pipeline_cases, browser, tmp_path, cli):
    """The case page in a browser: summary and warnings before the details, a picture of this
    patient (spine or hand schematic), human column titles with the column name on hover,
    parameters as a table, and a clean print."""
    case, image = pipeline_cases[name]
    code, _, err = cli("report", case, "--image", image, "-o", tmp_path / "rep", "-q")
    assert code == 0, err
    page = tmp_path / "rep" / "report.html"
    text = _check_page(browser, page, tmp_path, name)
    html = page.read_text()
    assert text.index("Summary") < text.index("Contents") < text.index("Lesion images") < text.index("Parameters")
    picture = "spine schematic" if name == "spine" else "hand schematic"
    assert len(_images(html).get(picture, [])) == 1
    assert _coloured_pixels(_images(html)[picture][0]) > 100, "findings drawn on the schematic"
    assert 'title="lesion_id' in html and ">Lesion ID<" in html          # human title, column name on hover
    assert '{"' not in text.split("Parameters")[-1].split("Full provenance record")[0]   # no JSON dumped
    prov_warnings = json.loads((case / "provenance.json").read_text()).get("warnings") or []
    if prov_warnings:
        assert text.index("Warnings of the run") < text.index("Contents")


def test_cohort_report_reads_well_in_chromium(cohort_reports, browser, tmp_path):
    rep, _ = cohort_reports
    text = _check_page(browser, rep / "cohort.html", tmp_path, "cohort")
    assert text.index("Summary") < text.index("Contents") < text.index("Cases")
    assert "P = <" not in text and "(95% CI )" not in text
    html = (rep / "cohort.html").read_text()
    case_page = rep / re.findall(r'href="(cases/[^"]+)"', html)[0]
    case_text = _check_page(browser, case_page, tmp_path, "cohort-case")
    assert case_text.lstrip().startswith("← Cohort report")
    assert '<a href="../cohort.html">' in case_page.read_text()


def test_stats_page_has_a_title_and_prints(synthetic_batch, browser, tmp_path, cli):
    out, _ = synthetic_batch
    code, _, err = cli("stats", "agreement", out, "--var", "spine_any_calcification", "--var",
                       "measure_ct_total_volume_mm3", "--between", "reader", "--where", "read=1",
                       "--where", "time_point=baseline", "-o", tmp_path / "agr", "-q")
    assert code == 0, err
    text = _check_page(browser, tmp_path / "agr" / "agreement.html", tmp_path, "stats-agreement")
    assert text.lstrip().startswith("Reader agreement")
    assert "P < 0.001" in text or "P = " in text


def test_case_pages_on_two_processes_are_the_same_pages(synthetic_batch, cohort_reports):
    """Case pages written on two processes (the readings of one image in one group, the image
    read once per group) are the pages write_reports wrote in this process, byte for byte but
    the time they were made.  (Six cases: the pool and the cache, not the whole batch again.)"""
    from calcinosis.cohort.manifest import read_manifest
    from calcinosis.cohort.report import _case_pages, _process_pool
    out, manifest = synthetic_batch
    rep1, _ = cohort_reports
    specs = {s.case_id: s for s in read_manifest(manifest)}
    by_image: dict = {}
    for cid in sorted(p.name for p in (rep1 / "cases").glob("*.html")):
        cid = cid[:-5]
        by_image.setdefault(str(specs[cid].image), []).append((str(out / "cases" / cid), cid, specs[cid]))
    groups = sorted(by_image.values(), key=len, reverse=True)[:3]
    assert sum(len(g) for g in groups) >= 4 and max(len(g) for g in groups) >= 2   # a group reads its image once
    made = re.compile(r"made \d{4}-\d\d-\d\dT[\d:+]+")
    with _process_pool(2) as pool:
        pages = [page for batch in pool.map(_case_pages, groups) for page in batch]
    assert [name for name, _ in pages] == [cid for g in groups for _, cid, _ in g]
    for name, text in pages:
        assert made.sub("made T", text) == made.sub("made T", (rep1 / "cases" / f"{name}.html").read_text()), name
