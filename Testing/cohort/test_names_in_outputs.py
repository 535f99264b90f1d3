"""No patient name in any output without --record-paths: input file names (which often hold
a patient's name) are replaced by their role in warnings, provenance, failure reasons and
logs, for one case and for a batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "Doe_Jane_SECRET123"


def _texts(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*")
                     if p.is_file() and p.suffix in (".csv", ".json", ".log", ".html", ".md", ".txt"))


def _image_and_empty_mask(folder: Path) -> tuple[Path, Path]:
    """An image, and a segmentation with no segment: the measure warns, naming the mask file."""
    import SimpleITK as sitk
    a = np.zeros((8, 24, 24), np.int16)
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.5, 0.5, 0.5))
    sitk.WriteImage(img, str(folder / "ct.nrrd"))
    mask = sitk.GetImageFromArray(np.zeros(a.shape, np.uint8))
    mask.SetSpacing((0.5, 0.5, 0.5))
    sitk.WriteImage(mask, str(folder / f"{NAME}_mask.nrrd"))
    return folder / "ct.nrrd", folder / f"{NAME}_mask.nrrd"


def test_one_case_keeps_the_file_name_out(cli, tmp_path):
    ct, mask = _image_and_empty_mask(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli("measure", ct, "--mask", mask, "-o", out, "-q")
    assert code == 0, err
    text = _texts(out)
    assert "<mask>" in text                  # the warning is there, the name is not
    assert NAME not in text
    out2 = tmp_path / "with-paths"
    code, _, err = cli("measure", ct, "--mask", mask, "--record-paths", "-o", out2, "-q")
    assert code == 0 and NAME in _texts(out2)   # asked for: kept


def test_a_failed_batch_case_keeps_the_path_out(cli, tmp_path):
    bad = tmp_path / f"{NAME}_broken.nrrd"
    bad.write_bytes(b"NRRD0004\nnot an image\n")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"case_id,patient_id,task,image,modality,threshold\nc1,P1,measure,{bad},ct,130\n",
                        encoding="utf-8")
    out = tmp_path / "batch"
    code, stdout, err = cli("batch", manifest, "-o", out, "--workers", "0", "-q")
    assert code == 3, (stdout, err)
    assert "failed" in (out / "cases.csv").read_text(encoding="utf-8")
    assert NAME not in _texts(out)


def test_a_batch_that_cannot_start_leaves_no_folders(cli, tmp_path, import_extra):
    """An unreachable --scheduler: exit 2, one line, and no empty cases/ and state/ left."""
    import_extra("distributed")
    ct, _ = _image_and_empty_mask(tmp_path)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"case_id,patient_id,task,image,modality,threshold\nc1,P1,measure,{ct},ct,130\n",
                        encoding="utf-8")
    out = tmp_path / "batch"
    code, _, err = cli("batch", manifest, "-o", out, "--scheduler", "not-an-address", "-q")
    assert code == 2 and "--scheduler" in err and err.count("\n") == 1, err
    assert not out.exists()
