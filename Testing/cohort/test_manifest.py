"""Manifest validation: each bad input gives one clear line naming the row and column."""

from __future__ import annotations

import pytest

from calcinosis.cohort.manifest import command_line, read_manifest
from calcinosis.core.errors import InputError



def _m(tmp_path, rows, columns=None):
    import csv
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))
    with open(tmp_path / "m.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return tmp_path / "m.csv"


def test_valid_manifest_paths_relative_to_manifest(tmp_path, tiny_phantoms):
    img = tiny_phantoms["a"][0]
    (tmp_path / "img.nrrd").write_bytes(img.read_bytes())
    specs = read_manifest(_m(tmp_path, [{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "img.nrrd",
                                          "threshold": "200:3000", "min_size": "2", "reader": "A", "read": "2"}]))
    s = specs[0]
    assert s.image == str(tmp_path / "img.nrrd") and s.read == 2 and s.reader == "A" and s.time_point == "baseline"
    argv = command_line(s, tmp_path / "out")
    assert argv[:2] == ["measure", str(tmp_path / "img.nrrd")]
    assert "--threshold" in argv and argv[argv.index("--threshold") + 1] == "200:3000"
    assert argv[-2:] == ["-o", str(tmp_path / "out")]


@pytest.mark.parametrize("rows,columns,match", [
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "nope.nrrd"}], None,
     r"row 2, column image: file not found: nope.nrrd"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "IMG"},
      {"case_id": "c1", "patient_id": "P2", "task": "measure", "image": "IMG"}], None,
     r"row 3, column case_id: 'c1' is also on row 2"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "IMG", "treshold": "1"}], None,
     r"unknown column 'treshold' \(did you mean 'threshold'\?\)"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "IMG", "min_size": "big"}], None,
     r"row 2, column min_size: 'big' is not a number"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "IMG", "min_size": "nan"}], None,
     r"row 2, column min_size: 'nan' is not a finite number"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "IMG", "threshold": "nan"}], None,
     r"row 2, column threshold: 'nan' is not a finite number"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "IMG", "threshold": "130:inf"}], None,
     r"row 2, column threshold: '130:inf'"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "IMG", "read": "1.5"}], None,
     r"row 2, column read: '1.5' is not a whole number"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "measure", "image": "IMG", "threshold": "1:x"}], None,
     r"row 2, column threshold"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "knee", "image": "IMG"}], None, r"row 2, column task: 'knee'"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "hand", "image": "IMG", "modality": "pet"}], None,
     r"row 2, column modality: 'pet' is not xr, ct or mri"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "spine", "image": "IMG"}], None, r"row 2, column labels: empty"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "spine", "image": "IMG", "labels": "IMG", "landmarks": "IMG"}], None,
     r"row 2, column landmarks: does not apply to task spine"),
    ([{"case_id": "a b", "patient_id": "P1", "task": "measure", "image": "IMG"}], None, r"column case_id: 'a b' must be"),
    ([{"patient_id": "P1", "task": "measure", "image": "IMG"}], ["patient_id", "task", "image"],
     r"required column 'case_id' missing"),
    ([{"case_id": "c1", "patient_id": "P1", "task": "spine", "image": "IMG", "labels": "IMG"},
      {"case_id": "c2", "patient_id": "P1", "task": "spine", "image": "IMG", "labels": "IMG"}], None,
     r"row 3: a second spine case for patient 'P1'"),
])
def test_bad_manifests(tmp_path, tiny_phantoms, rows, columns, match):
    (tmp_path / "IMG").write_bytes(tiny_phantoms["a"][0].read_bytes())
    with pytest.raises(InputError, match=match) as e:
        read_manifest(_m(tmp_path, rows, columns))
    assert "\n" not in str(e.value)


def test_all_problems_counted_in_one_line(tmp_path):
    rows = [{"case_id": f"c{i}", "patient_id": "P1", "task": "measure", "image": f"missing{i}.nrrd"} for i in range(4)]
    with pytest.raises(InputError, match=r"row 2, column image.*\(\+3 more\)") as e:
        read_manifest(_m(tmp_path, rows))
    assert "row 5" in str(e.value)


def test_missing_manifest_and_empty(tmp_path):
    with pytest.raises(InputError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "e.csv").write_text("case_id,patient_id,task\n")
    with pytest.raises(InputError, match="no case rows"):
        read_manifest(tmp_path / "e.csv")
