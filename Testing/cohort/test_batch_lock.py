"""A batch locks its folder (issue 12): a second batch into it is refused with one line naming
the folder and the other run's pid; a lock left by a dead run is taken over with a warning; the
lock is removed when the run ends, whether it succeeded, failed or was stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calcinosis.cohort import batch
from calcinosis.cohort.batch import LOCK_NAME


def _rows(ph, n=1):
    return [{"case_id": f"a-R{i}", "patient_id": "PA", "task": "measure", "image": str(ph["a"][0]), "modality": "ct",
             "reader": f"R{i}", "threshold": "220", "min_size": "1"} for i in range(1, n + 1)]


def _lock(folder: Path, pid: int, host: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / LOCK_NAME
    p.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "started_utc": "2026-01-01T00:00:00+00:00",
                             "command": "calcinosis batch"}))
    return p


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_second_batch_is_refused_while_the_lock_is_held(tmp_path, tiny_phantoms, manifest_writer, cli, live_pid):
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms))
    out = tmp_path / "out"
    lock = _lock(out, live_pid)
    before = _snapshot(out)
    code, stdout, err = cli("batch", m, "-o", out, "--workers", "0")
    assert code == 2
    assert err.count("\n") == 1 and str(out) in err and f"pid {live_pid}" in err and "another batch" in err, err
    assert _snapshot(out) == before and lock.is_file()          # nothing written, the other run's lock kept
    # a lock held on another machine is never judged stale from here
    _lock(out, 999_999_999, host="another-host.example")
    code, _, err = cli("batch", m, "-o", out, "--workers", "0")
    assert code == 2 and "another-host.example" in err and "pid 999999999" in err


def test_unreadable_lock_refuses_and_names_the_lock_file(tmp_path, tiny_phantoms, manifest_writer, cli):
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms))
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("")   # being written this instant, or damaged: not taken over
    code, _, err = cli("batch", m, "-o", out, "--workers", "0")
    assert code == 2 and err.count("\n") == 1 and str(out / LOCK_NAME) in err
    assert (out / LOCK_NAME).read_text() == ""


def test_stale_lock_is_taken_over_with_a_warning_and_removed_after_success(tmp_path, tiny_phantoms, manifest_writer, cli):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms))
    out = tmp_path / "out"
    _lock(out, dead.pid)
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "-q")
    assert code == 0, err
    assert f"pid {dead.pid}" in err and "no longer running" in err and "taken over" in err
    assert not (out / LOCK_NAME).exists()
    assert (out / "patients.csv").is_file()


def test_lock_is_held_during_the_run_and_removed_after_failure_and_ctrl_c(tmp_path, tiny_phantoms, manifest_writer,
                                                                          cli, monkeypatch):
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms, 2))
    out = tmp_path / "out"
    seen = []
    real = batch.run_case

    def spy(*a, **k):
        lock = json.loads((out / LOCK_NAME).read_text())
        seen.append(lock)
        return real(*a, **k)
    monkeypatch.setattr(batch, "run_case", spy)
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "-q")
    assert code == 0, err
    assert [s["pid"] for s in seen] == [os.getpid()] * 2 and seen[0]["host"] == socket.gethostname()
    assert seen[0]["started_utc"] and not (out / LOCK_NAME).exists()

    # a failure (bad manifest): exit 2, no lock and no folder left
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,task\nx,nonsense\n")
    code, _, err = cli("batch", bad, "-o", tmp_path / "new", "--workers", "0")
    assert code == 2 and not (tmp_path / "new").exists()

    # a case failing in an unexpected way inside the parent (not a worker): the lock is still removed
    def crash(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(batch, "run_case", crash)
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "--force")
    assert code == 1 and "internal error" in err and not (out / LOCK_NAME).exists()

    # Ctrl-C in the middle of the second case: exit 130, one line, lock removed, the first case kept and said so
    calls = []

    def interrupt_second(*a, **k):
        calls.append(a[0]["case_id"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(batch, "run_case", interrupt_second)
    code, _, err = cli("batch", m, "-o", out, "--workers", "0", "--force", "-q")
    assert code == 130 and err.count("\n") == 1, err
    assert "cancelled" in err and "1 case(s) finished in this run are kept" in err and "nothing was written" not in err
    assert not (out / LOCK_NAME).exists()
    assert not list(tmp_path.rglob("*.partial-*"))


def test_two_real_batches_into_one_folder(tmp_path, tiny_phantoms, manifest_writer):
    """Two processes: the second, started while the first runs, exits 2 naming the first's pid;
    the first finishes undisturbed."""
    m = manifest_writer(tmp_path / "m.csv", _rows(tiny_phantoms, 60))
    out = tmp_path / "out"
    exe = [sys.executable, "-m", "calcinosis.cli"]
    first = subprocess.Popen(exe + ["batch", str(m), "-o", str(out), "--workers", "1", "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not (out / LOCK_NAME).exists():
        assert first.poll() is None and time.monotonic() - t0 < 30, "the first batch never took its lock"
        time.sleep(0.01)
    second = subprocess.run(exe + ["batch", str(m), "-o", str(out), "--workers", "1", "-q"],
                            capture_output=True, text=True, timeout=60)
    assert first.poll() is None, "the first batch ended before the second was refused: make it longer"
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1 and f"pid {first.pid}" in second.stderr and str(out) in second.stderr
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    states = {p.stem: json.loads(p.read_text())["status"] for p in (out / "state").glob("*.json")}
    assert states == {f"a-R{i}": "ok" for i in range(1, 61)}
    assert not (out / LOCK_NAME).exists()
