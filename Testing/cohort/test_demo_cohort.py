"""The cohort demo: phantom cases whose paths the batch can read (relative to
the manifest's folder, wherever the demo's output folder is)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from calcinosis.cli import demo_cohort
from calcinosis.cohort.manifest import read_manifest, write_manifest
from calcinosis.core.tables import Column, Table


def test_phantom_cases_resolve_from_the_manifest_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # a relative output folder, as `make demo` passes
    data = tmp_path / "out" / "cohort" / "data"
    rows = demo_cohort._phantom_cases(data.relative_to(tmp_path), 1)
    kinds = {(r["task"], r.get("modality", "")) for r in rows}
    assert kinds == {("hand", "xr"), ("hand", "ct"), ("hand", "mri"), ("spine", "")}
    # radiograph and spine read three times (two readers, R1 twice), CT and MRI once
    assert len(rows) == 3 + 1 + 1 + 3
    manifest = write_manifest(data / "manifest.csv", rows)
    os.chdir(tmp_path / "out")           # the batch does not depend on the working folder
    specs = read_manifest(manifest.resolve())
    assert len(specs) == len(rows)
    for s in specs:
        assert s.image is not None and Path(s.image).exists()


def test_demo_stops_and_names_the_failed_cases(tmp_path, capsys):
    """Batch exit code 3 (some cases failed) is not accepted silently: each failed case is named with
    its reason and the demo exits with 3; any other non-zero code stops it too."""
    batch = tmp_path / "batch"
    batch.mkdir()
    cols = [Column("case_id", "string"), Column("status", "string"), Column("reason", "string")]
    Table(cols, [{"case_id": "P01-hand-xr-R1-1", "status": "ok"},
                 {"case_id": "P02-spine-ct-R2-1", "status": "failed", "reason": "ct: file not found"},
                 {"case_id": "P03-hand-mri-R1-1", "status": "failed", "reason": "no landmarks"}]).write_csv(batch / "cases.csv")
    assert demo_cohort.check_batch(0, batch) is None
    with pytest.raises(SystemExit) as e:
        demo_cohort.check_batch(3, batch)
    assert e.value.code == 3
    err = capsys.readouterr().err
    assert "2 case(s) of the cohort batch failed" in err and str(batch / "cases.csv") in err
    assert "  P02-spine-ct-R2-1: ct: file not found\n" in err and "  P03-hand-mri-R1-1: no landmarks\n" in err
    assert "P01-hand-xr-R1-1" not in err
    with pytest.raises(SystemExit) as e:
        demo_cohort.check_batch(2, batch)
    assert e.value.code == 2
