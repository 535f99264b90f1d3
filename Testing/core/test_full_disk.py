"""A full disk while a result is written (issue 12, faults): one line naming the file, exit 1
(an OS error: not bad input, not a bug), nothing half-written, nothing already there lost -
for ``measure`` (a new result, and ``--force`` over an earlier one) and for ``batch`` (inside
a case, and while the cohort tables are written)."""

from __future__ import annotations

import errno
import json

import pytest

from calcinosis.core.output import OutputTransaction


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _disk_full_at(monkeypatch, name: str, in_case: bool = False):
    """Every OutputTransaction write of file ``name`` (with ``in_case``, only into a batch's case
    folder) fails as a full disk does, after part of the file has been written."""
    real = OutputTransaction.write_text

    def write_text(self, text, n):
        if n == name and (not in_case or self.outdir.parent.name == "cases"):
            p = self.path(n)
            p.write_text(text[: len(text) // 2], encoding="utf-8")   # half of it, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(p))
        return real(self, text, n)
    monkeypatch.setattr(OutputTransaction, "write_text", write_text)


def test_measure_full_disk_new_result_and_over_an_earlier_one(cli, tmp_path, monkeypatch, tiny_image):
    out = tmp_path / "res"
    code, _, err = cli("measure", tiny_image, "--threshold", "220", "--modality", "ct", "-o", out, "-q")
    assert code == 0, err
    before = _snapshot(out)
    _disk_full_at(monkeypatch, "provenance.json")        # the last file of the transaction
    code, _, err = cli("measure", tiny_image, "--threshold", "300", "--modality", "ct", "-o", out, "-q", "--force")
    assert code == 1 and err.count("\n") == 1, err
    assert err == f"calcinosis: error: {out / 'provenance.json'}: No space left on device; nothing was written\n"
    assert _snapshot(out) == before                       # the earlier result, byte for byte
    code, _, err = cli("measure", tiny_image, "--threshold", "220", "--modality", "ct", "-o", tmp_path / "new", "-q")
    assert code == 1 and "No space left on device" in err and not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nrrd", "res"]   # no hidden .partial-* folder


@pytest.fixture
def tiny_image(tmp_path):
    from calcinosis.core import image_io, phantoms
    arr, geom, _ = phantoms.spheres_phantom((4.0, 6.0), 400.0, (0.8, 0.8, 0.8), noise_sd=5.0, seed=1)
    p = tmp_path / "ct.nrrd"
    image_io.write_image(arr.round().astype("int16"), geom, p)
    return p


def _manifest(tmp_path, image, n=2):
    from calcinosis.cohort.manifest import write_manifest
    rows = [{"case_id": f"c{i}", "patient_id": f"P{i}", "task": "measure", "image": str(image), "modality": "ct",
             "reader": "R1", "threshold": "220", "min_size": "1"} for i in range(n)]
    return write_manifest(tmp_path / "m.csv", rows)


def test_batch_full_disk_while_writing_the_cohort_tables_keeps_the_earlier_ones(cli, tmp_path, monkeypatch, tiny_image):
    m = _manifest(tmp_path, tiny_image)
    out = tmp_path / "out"
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "-q")
    assert code == 0, err
    tables = {n: (out / n).read_bytes() for n in ("patients.csv", "lesions.csv", "cases.csv", "provenance.json")}
    _disk_full_at(monkeypatch, "patients.csv")
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "-q", "--force", "--only", "c1")
    assert code == 1 and err.count("\n") == 1, err
    assert f"{out / 'patients.csv'}: No space left on device" in err
    # not "nothing was written": the recomputed case is there, the tables are the earlier ones
    assert "1 case(s) finished in this run are kept" in err and "run the same command again" in err
    assert {n: (out / n).read_bytes() for n in tables} == tables
    assert (out / "cases" / "c1" / "lesions.csv").is_file() and not list(tmp_path.rglob("*.partial-*"))
    assert not (out / ".batch.lock").exists()
    monkeypatch.undo()
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "-q")
    assert code == 0, err


def test_batch_full_disk_inside_a_case_records_it_and_keeps_the_earlier_case(cli, tmp_path, monkeypatch, tiny_image):
    m = _manifest(tmp_path, tiny_image)
    out = tmp_path / "out"
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "-q")
    assert code == 0, err
    case_before = _snapshot(out / "cases" / "c0")
    _disk_full_at(monkeypatch, "lesions.csv", in_case=True)   # the case's own table
    code, stdout, err = cli("batch", m, "-o", out, "--workers", "0", "-q", "--force", "--only", "c0")
    assert code == 3, err                                   # the batch goes on, the case is recorded failed
    state = json.loads((out / "state" / "c0.json").read_text())
    assert state["status"] == "failed" and "No space left on device" in state["reason"]
    assert "partial" not in state["reason"] and "nothing was written" in state["reason"]
    assert "case c0 failed" in stdout
    assert _snapshot(out / "cases" / "c0") == case_before and not list(tmp_path.rglob("*.partial-*"))


@pytest.mark.parametrize("failing", ["lesion_labels.nrrd", "lesions.seg.nrrd"])
def test_spine_full_disk_while_an_image_is_written_keeps_the_earlier_result(cli, tmp_path, monkeypatch, failing):
    """``spine`` writes two NRRD images (the label map and the segmentation): the disk full
    in either gives one line naming that file, exit 1, and the earlier result byte for byte."""
    import SimpleITK as sitk

    from calcinosis.core import image_io
    from calcinosis.spine import phantom
    spec = phantom.PhantomSpec(coverage="lumbar", spacing=(1.2, 1.2, 1.25), size_xy=None, seed=0,
                               convention="totalsegmentator", calcifications_per_level=1.0)
    ph = phantom.build_phantom(spec)
    r = phantom.render_phantom(ph, phantom.default_geometry(ph))
    image_io.write_image(r.ct, r.geometry, tmp_path / "ct.nrrd")
    image_io.write_image(r.labels, r.geometry, tmp_path / "vertebrae.nii.gz")
    out = tmp_path / "res"
    code, _, err = cli("spine", tmp_path / "ct.nrrd", "--vertebrae", tmp_path / "vertebrae.nii.gz", "-o", out, "-q")
    assert code == 0, err
    before = _snapshot(out)
    real = sitk.WriteImage

    def write(image, path, *a, **k):
        if str(path).endswith(failing):
            raise RuntimeError("Exception thrown in SimpleITK ImageFileWriter_Execute: itkNrrdImageIO.cxx:1207:\n"
                               f"ITK ERROR: NrrdImageIO(0x55): Write: Error writing {path}: No space left on device")
        return real(image, path, *a, **k)
    monkeypatch.setattr(sitk, "WriteImage", write)
    code, _, err = cli("spine", tmp_path / "ct.nrrd", "--vertebrae", tmp_path / "vertebrae.nii.gz", "-o", out, "-q",
                       "--threshold", "200", "--force")
    assert code == 1 and err.count("\n") == 1, err
    assert failing in err and "No space left on device" in err and "nothing was written" in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nrrd", "res", "vertebrae.nii.gz"]
