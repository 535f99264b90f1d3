"""The command line answers, and the demo's steps (what `make demo` runs) end to end:
each step finishes and every output path it prints exists."""

import re
from pathlib import Path

import pytest


def test_cli_help_lists_commands(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for command in ("measure", "phantom", "demo"):
        assert command in out


@pytest.mark.parametrize("step", ["foundation", "hand", "follow", "spine"])
def test_demo_step_runs_and_its_outputs_exist(cli, tmp_path, step):
    """(The cohort step runs 72 cases, minutes: its manifest and batch are tested in
    ``Testing/cohort``.)"""
    code, out, err = cli("demo", "-o", tmp_path / "demo", "--only", step)
    assert code == 0, err
    paths = re.findall(re.escape(str(tmp_path)) + r"[^\s,():]*", out)
    assert len(paths) >= 3, out
    for p in paths:
        assert Path(p.rstrip("/")).exists(), p
    assert f"All demo outputs are in {(tmp_path / 'demo').resolve()}" in out
