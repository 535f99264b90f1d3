"""The cohort demo's manifest: phantom cases whose paths the batch can read (relative to
the manifest's folder, wherever the demo's output folder is)."""

from __future__ import annotations

import os
from pathlib import Path

from CalcinosisCLI import demo_cohort
from CalcinosisLib.cohort.manifest import read_manifest, write_manifest


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
