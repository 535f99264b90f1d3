"""Batch runs: parallel workers, resume, failures recorded, nothing lost, Dask cluster."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from calcinosis.cohort.batch import run_batch
from calcinosis.core.tables import Table


def _rows(ph, broken=False):
    rows = [
        {"case_id": "a-R1", "patient_id": "PA", "task": "measure", "image": str(ph["a"][0]), "modality": "ct",
         "reader": "R1", "threshold": "220", "min_size": "1"},
        {"case_id": "a-R2", "patient_id": "PA", "task": "measure", "image": str(ph["a"][0]), "modality": "ct",
         "reader": "R2", "threshold": "220", "min_size": "1"},
        {"case_id": "b-R1", "patient_id": "PB", "task": "measure", "image": str(ph["b"][0]), "modality": "ct",
         "reader": "R1", "threshold": "220", "min_size": "1"},
    ]
    if broken:
        rows.append({"case_id": "x-R1", "patient_id": "PX", "task": "measure", "image": str(ph["broken"][0]),
                     "modality": "ct", "reader": "R1", "threshold": "220"})
    return rows


def _cases(out) -> dict:
    return {r["case_id"]: r for r in Table.read_csv(out / "cases.csv").rows}


def test_batch_measure_parallel_resume_and_failure(tmp_path, tiny_phantoms, manifest_writer, cli):
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms, broken=True))
    out = tmp_path / "out"
    code, stdout, err = cli("batch", m, "-o", out, "--workers", "2")
    assert code == 3, err   # finished, with a failed case
    cases = _cases(out)
    assert [cases[c]["status"] for c in ("a-R1", "a-R2", "b-R1")] == ["ok"] * 3
    assert cases["x-R1"]["status"] == "failed"
    # the reason names the manifest column, not the file (file names carry patients' names)
    assert cases["x-R1"]["reason"].startswith("<image>: cannot read") and "broken.nrrd" not in cases["x-R1"]["reason"]
    assert "case x-R1 failed" in stdout
    # the cohort table: one row per patient x reader x read x time point, volumes vs analytic truth.
    # Threshold 220 HU is half-way between soft tissue (40) and the spheres (400): partial-volume voxels
    # are counted in proportion, so the remaining error is the voxelisation of 4-8 mm spheres at 0.8 mm,
    # well within 10 %.
    p = {(r["patient_id"], r["reader"]): r for r in Table.read_csv(out / "patients.csv").rows}
    assert set(p) == {("PA", "R1"), ("PA", "R2"), ("PB", "R1"), ("PX", "R1")}
    assert p[("PA", "R1")]["measure_ct_lesion_count"] == 2
    assert p[("PA", "R1")]["measure_ct_total_volume_mm3"] == pytest.approx(sum(tiny_phantoms["a"][1]), rel=0.10)
    assert p[("PB", "R1")]["measure_ct_total_volume_mm3"] == pytest.approx(sum(tiny_phantoms["b"][1]), rel=0.10)
    assert p[("PX", "R1")]["n_failed"] == 1 and p[("PX", "R1")]["measure_ct_lesion_count"] is None
    # the batch gives exactly what the measure command gives
    code, _, err = cli("measure", tiny_phantoms["a"][0], "--threshold", "220", "--min-size", "1", "--modality", "ct",
                       "-o", tmp_path / "direct", "-q")
    assert code == 0, err
    assert (out / "cases" / "a-R1" / "lesions.csv").read_text() == (tmp_path / "direct" / "lesions.csv").read_text()
    lesions = Table.read_csv(out / "lesions.csv")
    assert len(lesions) == 2 + 2 + 3 and set(lesions.column("case_id")) == {"a-R1", "a-R2", "b-R1"}
    # no paths recorded by default
    assert str(tiny_phantoms["a"][0]) not in (out / "cases.csv").read_text()
    assert str(tiny_phantoms["a"][0]) not in (out / "provenance.json").read_text()

    # resume: done cases kept (their files untouched), the failed one retried
    mtime = (out / "cases" / "a-R1" / "lesions.csv").stat().st_mtime_ns
    code, _, _ = cli("batch", m, "-o", out, "--workers", "1", "-q")
    assert code == 3
    cases = _cases(out)
    assert {cases[c]["run"] for c in ("a-R1", "a-R2", "b-R1")} == {"kept"}
    assert cases["x-R1"]["run"] == "computed"
    assert (out / "cases" / "a-R1" / "lesions.csv").stat().st_mtime_ns == mtime

    # a changed row is not recomputed silently...
    rows = _rows(tiny_phantoms)
    rows[0]["threshold"] = "250"
    manifest_writer(m, rows)
    tables = {f: (out / f).read_bytes() for f in ("cases.csv", "patients.csv", "lesions.csv")}
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "-q")
    assert code == 2 and "case a-R1" in err and "changed" in err and err.count("\n") == 1, err
    assert (out / "cases" / "a-R1" / "lesions.csv").stat().st_mtime_ns == mtime
    assert {f: (out / f).read_bytes() for f in tables} == tables    # the cohort tables kept as they were
    # ...until forced
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "--force", "--only", "a-R1", "-q")
    assert code == 0, err
    assert _cases(out)["a-R1"]["run"] == "computed" and "x-R1" not in _cases(out)

    # nothing lost: a case computed by a run killed before it recorded its state is kept
    (out / "state" / "b-R1.json").unlink()
    code, _, _ = cli("batch", m, "-o", out, "--workers", "0", "-q")
    assert code == 0 and _cases(out)["b-R1"]["run"] == "recovered"


def test_cases_csv_command_reruns_the_case(tmp_path, tiny_phantoms, manifest_writer, cli):
    """The command cases.csv records runs as written (with --record-paths) and gives the
    case's own tables again; without --record-paths the paths are named by their column."""
    import shlex
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms)[:1])
    out = tmp_path / "out"
    for extra in ([], ["--force"]):                    # a first run, then a forced one
        code, _, err = cli("batch", m, "-o", out, "--workers", "0", "--record-paths", "-q", *extra)
        assert code == 0, err
        command = _cases(out)["a-R1"]["command"]
        words = shlex.split(command)
        assert words[0] == "calcinosis" and words.count("-o") == 1 and words.count("--force") == 1, command
        before = (out / "cases" / "a-R1" / "lesions.csv").read_bytes()
        code, _, err = cli(*words[1:])
        assert code == 0, (command, err)
        assert (out / "cases" / "a-R1" / "lesions.csv").read_bytes() == before
    code, _, err = cli("batch", m, "-o", tmp_path / "private", "--workers", "0", "-q")
    assert code == 0, err
    command = _cases(tmp_path / "private")["a-R1"]["command"]
    assert str(tiny_phantoms["a"][0]) not in command and str(tmp_path) not in command
    words = shlex.split(command)
    assert words[:3] == ["calcinosis", "measure", "<image>"] and words[words.index("-o") + 1] == "<case folder>"


def test_bad_manifest_writes_nothing(tmp_path, manifest_writer, cli):
    m = manifest_writer(tmp_path / "m.csv", [{"case_id": "c1", "patient_id": "P1", "task": "measure",
                                              "image": "missing.nrrd"}])
    code, _, err = cli("batch", m, "-o", tmp_path / "out")
    assert code == 2 and "row 2, column image: file not found" in err
    assert not (tmp_path / "out").exists()


def test_refuses_folder_holding_another_result(tmp_path, tiny_phantoms, manifest_writer, cli):
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms)[:1])
    code, _, err = cli("measure", tiny_phantoms["a"][0], "--threshold", "220", "-o", tmp_path / "out", "-q")
    assert code == 0
    code, _, err = cli("batch", m, "-o", tmp_path / "out", "-q")
    assert code == 2 and "not a batch" in err


def test_command_options_mapped_from_manifest_columns(tmp_path):
    from calcinosis.cohort.manifest import CaseSpec, command_line
    from calcinosis.core.errors import InputError
    hand = CaseSpec(2, "h1", "P1", "hand", image="/x/ct", modality="mri", landmarks="/x/l.mrk.json", region="/x/roi.nrrd",
                    threshold="300", min_size=2.0)
    argv = command_line(hand, "/o", {"--modality", "--landmarks", "--roi", "--threshold", "--min-size", "-o", "-q"})
    assert argv == ["hand", "/x/ct", "--modality", "mri", "--landmarks", "/x/l.mrk.json", "--roi", "/x/roi.nrrd",
                    "--threshold", "300", "--min-size", "2", "-q", "-o", "/o"]
    spine = CaseSpec(3, "s1", "P1", "spine", image="/x/ct", labels="/x/lab.nii.gz", convention="verse", min_slices=2)
    argv = command_line(spine, "/o", {"--vertebrae", "--convention", "--min-slices", "--case-id", "-q"})
    assert argv == ["spine", "/x/ct", "--vertebrae", "/x/lab.nii.gz", "--convention", "verse", "--min-slices", "2",
                    "--case-id", "s1", "-q", "-o", "/o"]
    with pytest.raises(InputError, match="has no option --min-slices \\(manifest column min_slices\\)"):
        command_line(spine, "/o", {"--vertebrae", "--convention"})


def test_batch_cli_on_local_dask_cluster(tmp_path, tiny_phantoms, manifest_writer, cli, import_extra):
    """``calcinosis batch --scheduler tcp://...`` on a Dask distributed cluster of 2 worker processes
    (loopback interface, shut down by the test): every case runs on a cluster worker, the failed one is
    recorded, the cohort table is the same as on local workers."""
    distributed = import_extra("distributed")
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms, broken=True))
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster.scheduler_address) as client:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2 and len(set(client.run(os.getpid).values()) | {os.getpid()}) == 3
        with distributed.get_task_stream(client) as stream:
            code, stdout, err = cli("batch", m, "-o", out, "--scheduler", address, "-q")
    assert code == 3, err   # finished, with the broken case failed
    assert "case x-R1 failed: <image>: cannot read" in stdout   # the column, not the file name
    ran = {}
    for task in stream.data:
        case = re.match(r"calcinosis-case-(.+?)-\d+-\d+$", str(task["key"]))
        if case:
            ran[case.group(1)] = task["worker"]
    assert set(ran) == {"a-R1", "a-R2", "b-R1", "x-R1"} and set(ran.values()) <= workers
    assert {c: r["status"] for c, r in _cases(out).items()} == {"a-R1": "ok", "a-R2": "ok", "b-R1": "ok",
                                                                 "x-R1": "failed"}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["parameters"]["scheduler"] == address
    p = {(r["patient_id"], r["reader"]): r for r in Table.read_csv(out / "patients.csv").rows}
    assert p[("PB", "R1")]["measure_ct_total_volume_mm3"] == pytest.approx(sum(tiny_phantoms["b"][1]), rel=0.10)
    # the same lesions as a case run in this process
    local = run_batch(manifest_writer(tmp_path / "m1.csv", _rows(tiny_phantoms)[:1]), tmp_path / "local", workers=0)
    assert local.n_ok == 1
    assert (out / "cases" / "a-R1" / "lesions.csv").read_text() == \
        (tmp_path / "local" / "cases" / "a-R1" / "lesions.csv").read_text()


def test_unreachable_scheduler_is_a_clear_error(tmp_path, tiny_phantoms, manifest_writer, cli, import_extra):
    import_extra("distributed")
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms)[:1])
    code, _, err = cli("batch", m, "-o", tmp_path / "out", "--scheduler", "http://127.0.0.1:1", "-q")
    assert code == 2 and "--scheduler" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "patients.csv").exists()


def test_missing_test_extra_skips_here_and_fails_in_ci(import_extra, monkeypatch):
    """A test extra that is not installed skips the test on a user's machine; in CI it fails it."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CALCINOSIS_TEST_ENV", raising=False)
    with pytest.raises(pytest.skip.Exception, match="is a test extra"):
        import_extra("calcinosis_no_such_module")
    for value in ("true", "1"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="CI must run the tests that need calcinosis_no_such_module"):
            import_extra("calcinosis_no_such_module")
    assert import_extra("json").dumps([]) == "[]"
