"""``calcinosis measure`` / ``phantom`` / ``demo`` end to end: outputs, exit codes, no
identifying data, determinism, nothing half-written."""

import json
from pathlib import Path

import pytest

from calcinosis.core import dicom_write
from calcinosis.core.tables import Table

IDENTIFYING = (dicom_write.PHANTOM_PATIENT_NAME, dicom_write.PHANTOM_PATIENT_ID, dicom_write.PHANTOM_BIRTH_DATE,
               "PHANTOM")


@pytest.fixture(scope="module")
def ct_phantom(tmp_path_factory):
    from calcinosis.cli.main import main
    d = tmp_path_factory.mktemp("ph") / "spheres"
    assert main(["phantom", "spheres", "--format", "dicom", "-o", str(d), "-q"]) == 0
    return d


class _Unzipped:
    """The XML of a workbook, read as one text (identifying names would show in it)."""
    def __init__(self, path: Path):
        self.path, self.name = path, path.name

    def read_text(self) -> str:
        import zipfile
        with zipfile.ZipFile(self.path) as z:
            return "".join(z.read(n).decode("utf-8") for n in z.namelist())


def _text_files(folder: Path):
    for p in folder.rglob("*"):
        if p.is_file() and p.suffix in (".csv", ".json", ".txt", ".md", ".html"):
            yield p
        elif p.is_file() and p.suffix == ".xlsx":
            yield _Unzipped(p)


def test_measure_dicom_ct_writes_the_contract(cli, ct_phantom, tmp_path):
    out = tmp_path / "res"
    code, stdout, stderr = cli("measure", ct_phantom / "ct", "--threshold", "220", "-o", out)
    assert code == 0, stderr
    assert {p.name for p in out.iterdir()} == {"lesions.csv", "lesions.schema.csv", "lesion_labels.nrrd",
                                               "lesions.seg.nrrd", "tables.xlsx", "provenance.json"}
    table = Table.read_csv(out / "lesions.csv")
    assert (out / "lesions.csv").read_bytes().startswith(b"\xef\xbb\xbf")     # UTF-8 BOM: Excel reads ± and ³
    openpyxl = pytest.importorskip("openpyxl")
    ws = openpyxl.load_workbook(out / "tables.xlsx")["lesions"]
    header = [c.value for c in ws[1]]
    assert header[:len(table.columns)] == [f"{c.name} ({c.unit})" if c.unit else c.name for c in table.columns]
    vol = header.index("volume_mm3 (mm3)")
    assert [r[vol] for r in ws.iter_rows(min_row=2, values_only=True)] == pytest.approx(table.column("volume_mm3"),
                                                                                          rel=1e-9)
    truth = Table.read_csv(ct_phantom / "truth.csv")
    assert len(table) == len(truth) == 6
    assert table.column_spec("volume_mm3").unit == "mm3"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["parameters"]["threshold_low"] == 220 and prov["parameters"]["connectivity"] == "face"
    assert prov["parameters"]["min_size_unit"] == "mm3"
    assert prov["inputs"]["image"]["input_id"].startswith("sha256:")
    assert prov["inputs"]["image"]["modality"] == "CT"
    assert sorted(prov["outputs"]) == sorted(p.name for p in out.iterdir())
    assert "6 lesions" in stdout and "%" in stderr  # summary and a progress bar
    for p in _text_files(out):
        text = p.read_text()
        for s in IDENTIFYING:
            assert s not in text, f"{s} leaked into {p.name}"
        assert str(ct_phantom) not in text, f"input path leaked into {p.name}"


def test_same_inputs_same_tables_and_force_replaces(cli, ct_phantom, tmp_path):
    out = tmp_path / "res"
    assert cli("measure", ct_phantom / "ct", "-o", out, "-q")[0] == 0  # default CT threshold 130 HU
    first = (out / "lesions.csv").read_bytes()
    code, _, err = cli("measure", ct_phantom / "ct", "-o", out, "-q")
    assert code == 2 and "--force" in err and err.count("\n") == 1
    assert (out / "lesions.csv").read_bytes() == first
    assert cli("measure", ct_phantom / "ct", "-o", out, "-q", "--force")[0] == 0
    assert (out / "lesions.csv").read_bytes() == first
    assert json.loads((out / "provenance.json").read_text())["parameters"]["threshold_low"] == 130


def test_user_segmentation_route_gives_the_same_lesions(cli, ct_phantom, tmp_path):
    assert cli("measure", ct_phantom / "ct", "--threshold", "220", "-o", tmp_path / "a", "-q")[0] == 0
    seg = tmp_path / "a" / "lesions.seg.nrrd"
    before = seg.read_bytes()
    assert cli("measure", ct_phantom / "ct", "--mask", seg, "-o", tmp_path / "b", "-q")[0] == 0
    a = Table.read_csv(tmp_path / "a" / "lesions.csv")
    b = Table.read_csv(tmp_path / "b" / "lesions.csv")
    assert a.column("voxel_count") == b.column("voxel_count")
    assert b.column("source_segment") == [f"lesion {k}" for k in range(1, 7)]
    assert seg.read_bytes() == before  # never modified


@pytest.mark.parametrize("args,match", [
    (["--threshold", "abc"], "--threshold"),
    (["--threshold", "300:200"], "HIGH"),
    (["--mask", "{seg}", "--threshold", "200"], "--region"),
    (["--region", "{missing}"], "no such file"),
])
def test_bad_parameters_exit_2_with_one_line(cli, ct_phantom, tmp_path, args, match):
    args = [a.format(seg=ct_phantom / "truth.csv", missing=tmp_path / "missing.nrrd") for a in args]
    code, _, err = cli("measure", ct_phantom / "ct", *args, "-o", tmp_path / "o", "-q")
    assert code == 2 and match in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_argument_errors_exit_2(cli, ct_phantom, tmp_path):
    code, _, err = cli("measure", ct_phantom / "ct", "--connectivity", "edge", "-o", tmp_path / "o")
    assert code == 2 and "connectivity" in err
    code, _, err = cli("measure", ct_phantom / "ct", "--min-size", "-3", "-o", tmp_path / "o")
    assert code == 2 and "min-size" in err


def test_radiograph_without_spacing_names_file_and_option(cli, tmp_path):
    assert cli("phantom", "radiograph", "--spacing-tag", "none", "-o", tmp_path / "xr", "-q")[0] == 0
    img = tmp_path / "xr" / "xr.dcm"
    code, _, err = cli("measure", img, "--threshold", "2000", "-o", tmp_path / "o")
    assert code == 2 and str(img) in err and "--spacing" in err
    code, out, err = cli("measure", img, "--threshold", "2000", "--spacing", "0.1,0.1", "-o", tmp_path / "o")
    assert code == 0, err
    prov = json.loads((tmp_path / "o" / "provenance.json").read_text())
    assert prov["inputs"]["image"]["spacing_source"] == "user (--spacing)"
    assert prov["parameters"]["min_size_unit"] == "mm2"
    t = Table.read_csv(tmp_path / "o" / "lesions.csv")
    truth = Table.read_csv(tmp_path / "xr" / "truth.csv")
    assert len(t) == len(truth)


def test_modality_without_default_threshold(cli, tmp_path, ct_phantom):
    code, _, err = cli("measure", ct_phantom / "ct", "--modality", "mr", "-o", tmp_path / "o")
    assert code == 2 and "--threshold" in err


def test_failure_while_writing_leaves_nothing(cli, ct_phantom, tmp_path, monkeypatch):
    import calcinosis.core.pipeline as pipeline

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(pipeline, "write_seg_nrrd_image", boom)
    code, _, err = cli("measure", ct_phantom / "ct", "-o", tmp_path / "o", "-q")
    assert code == 1 and "disk full" in err
    assert list(tmp_path.iterdir()) == []


def test_demo_runs_and_says_where_outputs_are(cli, tmp_path):
    code, out, err = cli("demo", "-o", tmp_path / "demo", "--only", "foundation")
    assert code == 0, err
    assert "All demo outputs are in" in out
    assert (tmp_path / "demo" / "measure-ct" / "lesions.csv").exists()
    assert (tmp_path / "demo" / "measure-xr" / "lesions.csv").exists()


def test_nifti_label_map_has_the_ras_geometry(cli, ct_phantom, tmp_path):
    """--nifti: lesion_labels.nii.gz holds the label map of lesion_labels.nrrd, and its sform,
    read here from the raw NIfTI-1 header (RAS by the NIfTI standard, whereas ITK works in
    LPS), maps each voxel to the same RAS point as the project's geometry does."""
    import gzip
    import struct

    import numpy as np

    from calcinosis.core import image_io
    out = tmp_path / "res"
    code, _, err = cli("measure", ct_phantom / "ct", "--threshold", "220", "--nifti", "-o", out, "-q")
    assert code == 0, err
    nrrd = image_io.load_label_image(out / "lesion_labels.nrrd")
    raw = gzip.decompress((out / "lesion_labels.nii.gz").read_bytes())
    assert struct.unpack("<i", raw[:4])[0] == 348
    dims = struct.unpack("<8h", raw[40:56])
    assert dims[1:4] == tuple(nrrd.geometry.shape[::-1])
    sform_code = struct.unpack("<h", raw[254:256])[0]
    srow = np.array([struct.unpack("<4f", raw[280 + 16 * r:296 + 16 * r]) for r in range(3)])
    assert sform_code > 0
    for ijk in ((0, 0, 0), (5, 7, 3), tuple(np.array(nrrd.geometry.shape[::-1]) - 1)):
        ras = srow @ np.r_[np.array(ijk, float), 1.0]
        assert np.allclose(ras, nrrd.geometry.ijk_to_ras(np.array(ijk, float)), atol=1e-3), ijk
    vox_offset = int(struct.unpack("<f", raw[108:112])[0])
    datatype = struct.unpack("<h", raw[70:72])[0]
    dtype = {2: np.uint8, 512: np.uint16, 768: np.uint32, 4: np.int16, 8: np.int32}[datatype]
    data = np.frombuffer(raw[vox_offset:], dtype=dtype)[:int(np.prod(dims[1:4]))].reshape(dims[3], dims[2], dims[1])
    assert np.array_equal(data, nrrd.layers[0])
    assert len(np.unique(data)) - 1 == len(Table.read_csv(out / "lesions.csv"))
