"""The table contract between the tasks and the cohort: the columns each task promises are
the columns its pipeline writes, and a result folder that breaks the promise is refused
naming the file and the column."""

from __future__ import annotations

import pytest

from calcinosis import tasks
from calcinosis.cohort import contract
from calcinosis.core.tables import Column, Table
from calcinosis.hand import summary as hand_summary
from calcinosis.spine import summary as spine_summary


def _names(columns) -> list[str]:
    return [c.name for c in columns]


def test_the_promised_columns_are_written_by_the_pipelines():
    hand, spine = tasks.get("hand"), tasks.get("spine")
    assert set(hand.HAND_COLUMNS) <= set(_names(hand_summary.HAND_COLUMNS))
    assert set(hand.DIGIT_COLUMNS) <= set(_names(hand_summary.DIGIT_COLUMNS))
    assert set(spine.LEVEL_COLUMNS) <= set(_names(spine_summary.levels_columns()))
    assert set(spine.PATIENT_COLUMNS) <= set(_names(spine_summary.patient_columns()))
    # the cohort reads exactly what the tasks promise
    assert (contract.HAND_COLUMNS, contract.DIGIT_COLUMNS) == (hand.HAND_COLUMNS, hand.DIGIT_COLUMNS)
    assert (contract.LEVEL_COLUMNS, contract.SPINE_PATIENT_COLUMNS) == (spine.LEVEL_COLUMNS, spine.PATIENT_COLUMNS)


def _write(folder, name, columns, rows):
    folder.mkdir(parents=True, exist_ok=True)
    Table([Column(c, "string") for c in columns], rows).write_csv(folder / name)


def test_a_folder_breaking_the_contract_is_refused(tmp_path):
    hand, spine = tasks.get("hand"), tasks.get("spine")
    bad = tmp_path / "hand"
    _write(bad, "hand.csv", [c for c in hand.HAND_COLUMNS if c != "digits_affected"],
           [{c: "1" for c in hand.HAND_COLUMNS if c != "digits_affected"}])
    with pytest.raises(tasks.ContractError, match=r"case H1: hand.csv lacks contract column 'digits_affected'"):
        hand.summarise(bad, "H1")
    with pytest.raises(tasks.ContractError, match=r"case H2: hand.csv missing"):
        hand.summarise(tmp_path / "empty", "H2")

    folder = tmp_path / "spine"
    _write(folder, "patient.csv", spine.PATIENT_COLUMNS, [{c: "0" for c in spine.PATIENT_COLUMNS}] * 2)
    _write(folder, "levels.csv", spine.LEVEL_COLUMNS, [{**{c: "0" for c in spine.LEVEL_COLUMNS}, "level": "T8-T9"}])
    with pytest.raises(tasks.ContractError, match=r"patient.csv has 2 rows \(expected 1\)"):
        spine.summarise(folder, "S1")
    _write(folder, "patient.csv", spine.PATIENT_COLUMNS, [{c: "0" for c in spine.PATIENT_COLUMNS}])
    assert spine.summarise(folder, "S1")["levels"].rows[0]["level"] == "T8-T9"
    _write(folder, "levels.csv", spine.LEVEL_COLUMNS, [{**{c: "0" for c in spine.LEVEL_COLUMNS}, "level": "T13-L1"}])
    with pytest.raises(tasks.ContractError, match=r"level 'T13-L1' is not C7-T1"):
        spine.summarise(folder, "S1")
