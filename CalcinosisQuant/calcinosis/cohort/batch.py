"""Batch runs: every manifest row through its pipeline, in parallel, resumable.

Layout of the batch folder ``OUTDIR``::

    cases/<case_id>/     what the case's command wrote (lesions.csv, hand.csv, patient.csv, ...)
    state/<case_id>.json status of the case: ok | failed, reason, fingerprint, time (written
                         as each case ends, so an interrupted batch loses nothing)
    logs/<case_id>.log   the command's messages (warnings, errors)
    cases.csv            one row per manifest row: status, reason, what ran
    patients.csv         one row per patient × reader × read × time point (cohort/join.py)
    hands.csv digits.csv levels.csv lesions.csv   the per-case tables stacked, with keys
    follow/<name>/       each later time point's lesions followed from the patient's baseline
                         (cohort/follow_batch.py)
    lesion_outcomes.csv lesion_changes.csv   per follow-up: lesions new, resolved, grown, ...
    provenance.json      the batch's parameters, versions and files

A case is *done* when its state says ok and its fingerprint (manifest row + input files'
sizes and times) is unchanged: it is skipped on the next run unless ``force``.  A failed
case is retried on the next run.  A case whose row or inputs changed since it was computed is
not recomputed silently: the run is refused (exit 2, nothing written, the earlier tables kept)
until ``force``.

Cases run in worker processes (``concurrent.futures`` with the ``forkserver``/``spawn``
start method; the readings of one image together, sharing their common steps:
:func:`image_groups`, :mod:`calcinosis.core.memo`) or, with
``scheduler='tcp://HOST:PORT'``, on a Dask distributed cluster (imported only then; workers
need this package installed and the same file paths).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from calcinosis.core.errors import Cancelled, InputError
from calcinosis.core.output import json_text, os_error_text, write_file_atomic
from calcinosis.core.progress import Progress, report
from .contract import TASK_SUMMARY_FILE
from .manifest import CaseSpec, command_line, read_manifest, recorded_command

STATE_DIR, CASES_DIR, LOGS_DIR = "state", "cases", "logs"
SUMMARY_FILES = ("cases.csv", "patients.csv", "hands.csv", "digits.csv", "levels.csv", "lesions.csv",
                 "lesion_outcomes.csv", "lesion_changes.csv")


@dataclass
class CaseState:
    case_id: str
    status: str                   # ok | failed
    reason: str = ""
    fingerprint: str = ""
    run: str = ""                 # computed | kept | imported | recovered | not run
    duration_s: float | None = None
    finished_utc: str = ""
    command: str = ""
    warnings: list[str] = field(default_factory=list)
    peak_rss_mb: float | None = None   # largest resident memory of the worker process so far

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BatchSummary:
    outdir: Path
    specs: list[CaseSpec]
    states: dict[str, CaseState]
    tables: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        return sum(1 for s in self.states.values() if s.status == "ok")

    @property
    def failed(self) -> list[CaseState]:
        return [self.states[s.case_id] for s in self.specs if self.states[s.case_id].status != "ok"]


# ---------------------------------------------------------------------- the worker side
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


#: set in worker processes by :func:`_init_worker`
_IN_WORKER = False
#: in a worker: a case is running / a case is unwinding after a signal
_CASE_RUNNING = False
_UNWINDING = False


def _worker_signal(signum, frame) -> None:  # noqa: ARG001 - the signal module's signature
    """SIGTERM or SIGINT in a worker: a running case unwinds like Ctrl-C (its hidden .partial-*
    folder removed, reported cancelled) and a further signal cannot break off that clean-up; an
    idle worker exits quietly (no traceback)."""
    global _UNWINDING
    from calcinosis.core import interrupt
    interrupt.record(signum)   # raised again before a commit if this exception is swallowed
    if _CASE_RUNNING:
        if _UNWINDING:
            return
        _UNWINDING = True
        raise interrupt.Terminated(signum)
    raise SystemExit(interrupt.exit_code(signum))


def _install_worker_signals() -> None:
    import signal
    from calcinosis.core import interrupt
    interrupt.forget()
    for s in interrupt.SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, _worker_signal)


def _init_worker(threads: int) -> None:
    global _IN_WORKER
    from calcinosis.core import parallel
    # SIGTERM (the batch stopping, or a signal to the whole process group) and Ctrl-C unwind the
    # running case: no hidden .partial-* folder is left in cases/
    _install_worker_signals()
    _IN_WORKER = True
    parallel.set_threads(threads)
    try:
        import SimpleITK as sitk
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, threads))
    except Exception:  # noqa: BLE001 - threads are a speed hint only
        pass
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads)))


def run_case(spec_dict: dict, case_dir: str, force: bool = False, record_paths: bool = False,
             threads: int | None = None) -> dict:
    """Compute (or import) one case into ``case_dir``.  Never raises: returns a state dict."""
    global _CASE_RUNNING, _UNWINDING
    spec = CaseSpec.from_dict(spec_dict)
    if threads:
        _init_worker(threads)
    t0 = time.perf_counter()
    log = io.StringIO()
    state = CaseState(spec.case_id, "failed", fingerprint=spec.fingerprint)
    try:
        _CASE_RUNNING = True
        if spec.result:
            state.run = "imported"
            _import_result(spec, Path(case_dir), force)
            state.command = f"imported from <result>{' ' + spec.result if record_paths else ''}"
            state.status = "ok"
        else:
            state.run = "computed"
            from calcinosis import tasks
            task = tasks.get(spec.task)
            argv = command_line(spec, case_dir, tasks.option_strings(spec.task))
            if force:
                argv.append("--force")
            state.command = recorded_command(argv, spec, case_dir, record_paths)
            args = tasks.parser_for(spec.task).parse_args(argv[1:])
            with contextlib.redirect_stderr(log), contextlib.redirect_stdout(io.StringIO()):
                outcome = task.run(args)
            state.warnings = list(outcome.warnings)
            for w in state.warnings:
                log.write(f"calcinosis: warning: {w}\n")
            if not (Path(case_dir) / task.SUMMARY_FILE).is_file():
                state.reason = f"'calcinosis {spec.task}' finished but wrote no {task.SUMMARY_FILE}"
            else:
                state.status = "ok"
    except InputError as e:
        state.reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        log.write(f"calcinosis: error: {state.reason}\n")
    except (Cancelled, KeyboardInterrupt):
        if not _IN_WORKER:   # in the batch's own process (--workers 0): stop the batch, not just this case
            raise
        state.reason = "cancelled"
    except OSError as e:  # disk full, permission denied, ...: not a bug, not bad input
        state.reason = f"{os_error_text(e)}; nothing was written"
        log.write(f"calcinosis: error: {state.reason}\n")
    except MemoryError:
        state.reason = "out of memory (image too large for this machine?)"
    except Exception as e:  # noqa: BLE001 - one broken case must not stop the batch
        state.reason = f"internal error: {type(e).__name__}: {e}"
        log.write(traceback.format_exc())
    finally:
        _CASE_RUNNING = _UNWINDING = False
    state.duration_s = round(time.perf_counter() - t0, 3)
    state.finished_utc = _now()
    try:
        import resource
        state.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    except (ImportError, OSError):  # pragma: no cover - not on Windows
        pass
    log_text = log.getvalue()
    if not record_paths:   # no input path or file name (they carry names) in cases.csv, state/, logs/
        from calcinosis.core.provenance import redact_paths
        from .manifest import PATH_COLUMNS
        inputs = {c: getattr(spec, c) for c in PATH_COLUMNS}
        state.reason, log_text, *state.warnings = redact_paths([state.reason, log_text, *state.warnings], inputs)
    d = state.to_dict()
    d["log"] = log_text
    return d


def _import_result(spec: CaseSpec, case_dir: Path, force: bool) -> None:
    src = Path(spec.result)
    need = TASK_SUMMARY_FILE[spec.task]
    if not (src / need).is_file():
        raise InputError(f"result folder of case {spec.case_id} has no {need} (a {spec.task} result needs it)")
    if case_dir.exists() and not force and (case_dir / "provenance.json").exists():
        raise InputError(f"{case_dir}: holds an earlier result; pass --force to replace it")
    case_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{case_dir.name}.partial-", dir=case_dir.parent))
    try:
        shutil.copytree(src, staging / "x")
        if case_dir.exists():
            old = case_dir.with_name(f".{case_dir.name}.old-{os.getpid()}")
            os.rename(case_dir, old)
            os.rename(staging / "x", case_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging / "x", case_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------- the parent side
def _write_json_atomic(path: Path, obj) -> None:
    write_file_atomic(path, json_text(obj), force=True)


def _read_state(outdir: Path, case_id: str) -> CaseState | None:
    p = outdir / STATE_DIR / f"{case_id}.json"
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        d.pop("log", None)
        return CaseState(**{k: v for k, v in d.items() if k in CaseState.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def check_batch_dir(outdir: Path, force: bool) -> None:
    prov = outdir / "provenance.json"
    if prov.is_file() and not force:
        try:
            cmd = json.loads(prov.read_text(encoding="utf-8")).get("command")
        except (OSError, ValueError):
            cmd = None
        if cmd != "batch":
            raise InputError(f"{outdir}: holds another result (not a batch); choose another -o or pass --force")
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a directory")
    if outdir.is_dir() and not (outdir / STATE_DIR).is_dir() and not force:
        clash = [f for f in SUMMARY_FILES if (outdir / f).exists()]
        if clash:
            raise InputError(f"{outdir}: already holds {clash[0]} from something else; choose another -o or pass --force")


def run_batch(manifest: str | Path, outdir: str | Path, **kwargs) -> BatchSummary:
    """Run every case of ``manifest`` into ``outdir`` and write the cohort tables (keyword
    arguments: see :func:`_run_batch`).  The folder is locked for the whole run
    (:class:`BatchLock`): a second batch into it is refused.  A batch stopped before any case
    finished (a bad scheduler address, Ctrl-C at once) leaves no empty folders behind; one
    stopped later keeps its finished cases and says so."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a directory")
    existed = {d: (outdir / d).exists() for d in ("", STATE_DIR, CASES_DIR, LOGS_DIR)}
    lock = BatchLock(outdir)
    try:
        lock.acquire()
        finished_before = _finished_states(outdir)
        summary = _run_batch(manifest, outdir, **kwargs)
        summary.warnings[:0] = lock.warnings
        return summary
    except BaseException as e:
        lock.release()
        for d in (LOGS_DIR, CASES_DIR, STATE_DIR, ""):
            folder = outdir / d
            if not existed[d] and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if lock.acquired and not isinstance(e, InputError):
            new = _finished_states(outdir) - finished_before
            if new:   # not "nothing was written": say what is there and how to finish
                e.calcinosis_outcome = (f"{len(new)} case(s) finished in this run are kept in {outdir / CASES_DIR}; "
                                        f"the cohort tables were not updated; run the same command again to finish")
        raise
    finally:
        lock.release()


def _finished_states(outdir: Path) -> set[tuple[str, int]]:
    """(case, time of its provenance) of every complete case folder: what a run added (a case
    finished by a worker as the batch was stopped may have no state yet; the next run recovers it)."""
    folder = outdir / CASES_DIR
    try:
        return {(p.parent.name, p.stat().st_mtime_ns) for p in folder.glob("*/provenance.json")}
    except OSError:
        return set()


LOCK_NAME = ".batch.lock"


class BatchLock:
    """An exclusive lock on a batch folder: the file ``OUTDIR/.batch.lock`` created with
    ``O_CREAT | O_EXCL`` (atomic, also on NFS v3+), holding the pid, host and start time of
    the run; removed when the run ends (also on an error, Ctrl-C or SIGTERM).  A lock left by
    a run that is no longer alive on this host (killed with SIGKILL, a crash) is taken over
    with a warning; one held by a live run, or by a run on another host, refuses the batch."""

    def __init__(self, outdir: Path):
        self.outdir = Path(outdir)
        self.path = self.outdir / LOCK_NAME
        self.warnings: list[str] = []
        self._held = False
        self.acquired = False

    def acquire(self) -> None:
        import socket
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started_utc": _now(), "command": "calcinosis batch"}
        try:
            self.outdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{self.outdir}: cannot create the batch folder ({e.strerror})") from None
        for attempt in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                other = self._read()
                if attempt == 0 and self._stale(other, record["host"]):
                    if self._remove_if_unchanged(other):
                        self.warnings.append(f"{self.path}: a lock left by batch pid {other['pid']} (started "
                                             f"{other.get('started_utc') or 'at an unknown time'}), which is no longer "
                                             "running, was taken over")
                    continue
                raise InputError(self._held_message(other)) from None
            except OSError as e:
                raise InputError(f"{self.path}: cannot create the batch lock ({e.strerror})") from None
            try:
                os.write(fd, json_text(record).encode("utf-8"))
            finally:
                os.close(fd)
            self._held = self.acquired = True
            return
        raise InputError(self._held_message(self._read()))

    def release(self) -> None:
        if self._held:
            self._held = False
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def _read(self) -> dict | None:
        try:
            d = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return d if isinstance(d, dict) else None

    @staticmethod
    def _stale(other: dict | None, host: str) -> bool:
        if not other or other.get("host") != host or not isinstance(other.get("pid"), int) or other["pid"] <= 0:
            return False   # unreadable (perhaps being written this instant) or another machine's: not ours to judge
        try:
            os.kill(other["pid"], 0)
        except ProcessLookupError:
            return True
        except OSError:   # alive, another user's
            return False
        return False

    def _remove_if_unchanged(self, other: dict) -> bool:
        if self._read() != other:
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        return True

    def _held_message(self, other: dict | None) -> str:
        if not other:
            return (f"{self.outdir}: another batch is writing to this folder (its lock {LOCK_NAME} cannot be read); "
                    f"wait for it, or remove {self.path} if no batch is running")
        return (f"{self.outdir}: another batch is writing to this folder (pid {other.get('pid')} on "
                f"{other.get('host')}, started {other.get('started_utc')}); wait for it to finish, or remove "
                f"{self.path} if that run is gone")


def _run_batch(manifest: str | Path, outdir: Path, *, workers: int | None = None, scheduler: str | None = None,
               force: bool = False, only: Sequence[str] | None = None, record_paths: bool = False,
               clinical: str | Path | None = None, progress: Progress | None = None,
               on_case: Callable[[CaseState], None] | None = None) -> BatchSummary:
    specs = read_manifest(manifest)
    outdir = Path(outdir)
    check_batch_dir(outdir, force)
    clinical_table = None
    if clinical is not None:
        from .join import read_clinical
        clinical_table = read_clinical(clinical)
    if only:
        ids = {s.case_id for s in specs}
        unknown = [c for c in only if c not in ids]
        if unknown:
            raise InputError(f"--only: case id {unknown[0]!r} is not in the manifest")
    selected = [s for s in specs if not only or s.case_id in only]
    if not force:   # a changed case would leave the cohort tables without it: refuse before writing anything
        for s in selected:
            st = _read_state(outdir, s.case_id)
            if st is not None and st.status == "ok" and st.fingerprint != s.fingerprint:
                raise InputError(f"{Path(manifest).name}, row {s.row}: case {s.case_id} (its row or input files) changed "
                                 f"since it was computed; pass --force --only {s.case_id} to recompute it, or restore "
                                 "the row; nothing was written")
    (outdir / STATE_DIR).mkdir(parents=True, exist_ok=True)
    (outdir / CASES_DIR).mkdir(parents=True, exist_ok=True)
    states: dict[str, CaseState] = {}
    todo: list[CaseSpec] = []
    for s in specs:
        st = _read_state(outdir, s.case_id)
        case_dir = outdir / CASES_DIR / s.case_id
        if s not in selected:
            states[s.case_id] = st if st and st.fingerprint == s.fingerprint else (
                st or CaseState(s.case_id, "failed", "not run yet (excluded by --only)", s.fingerprint, "not run"))
            continue
        if not force and st is not None and st.status == "ok":
            if st.fingerprint == s.fingerprint and (case_dir / TASK_SUMMARY_FILE[s.task]).is_file():
                st.run = "kept"
                states[s.case_id] = st
                continue
        if not force and st is None and (case_dir / "provenance.json").is_file() and \
                (case_dir / TASK_SUMMARY_FILE[s.task]).is_file():
            # computed by an interrupted run that could not record its state: keep it
            st = CaseState(s.case_id, "ok", "", s.fingerprint, "recovered", finished_utc=_now())
            _write_json_atomic(outdir / STATE_DIR / f"{s.case_id}.json", st.to_dict())
            states[s.case_id] = st
            continue
        todo.append(s)
    redo = {s.case_id for s in todo if (outdir / CASES_DIR / s.case_id / "provenance.json").exists()}
    total = len(todo)
    done = 0
    report(progress, 0.0, f"{total} case(s) to run, {len(specs) - total} kept")

    def finish(d: dict) -> None:
        nonlocal done
        log_text = d.pop("log", "")
        st = CaseState(**{k: v for k, v in d.items() if k in CaseState.__dataclass_fields__})
        states[st.case_id] = st
        _write_json_atomic(outdir / STATE_DIR / f"{st.case_id}.json", st.to_dict())
        if log_text:
            (outdir / LOGS_DIR).mkdir(exist_ok=True)
            (outdir / LOGS_DIR / f"{st.case_id}.log").write_text(log_text, encoding="utf-8")
        done += 1
        report(progress, done / max(total, 1), f"{st.case_id} {st.status}")
        if on_case:
            on_case(st)

    if todo:
        args = [(s.to_dict(), str(outdir / CASES_DIR / s.case_id), force or s.case_id in redo, record_paths) for s in todo]
        if scheduler:
            _run_dask(scheduler, args, finish)
        else:
            _run_local(args, workers, finish)
    from .follow_batch import follow_pairs, outcome_tables, run_follow_pairs
    from .join import build_cohort_tables, write_cohort_tables
    pairs, follow_warnings = follow_pairs(outdir, specs, states)
    follow_states, more = run_follow_pairs(outdir, pairs, force=force) if pairs else ([], [])
    tables, warnings = build_cohort_tables(outdir, specs, states, clinical_table)
    tables.update(outcome_tables(outdir, follow_states))
    warnings += follow_warnings + more
    write_cohort_tables(outdir, tables, specs, states, warnings, manifest, clinical, workers, scheduler, record_paths)
    return BatchSummary(outdir, specs, states, tables, warnings)


def default_workers(n_cases: int) -> int:
    return max(1, min(os.cpu_count() or 1, n_cases))


def image_groups(args: list[tuple]) -> list[list[tuple]]:
    """The cases to compute, grouped by the image they read (same task, image and series): the
    readings of one image run one after the other in one process, sharing what does not
    depend on their parameters (:mod:`calcinosis.core.memo`).  Groups in manifest order,
    the larger ones first (the last group to finish is then a small one)."""
    groups: dict = {}
    for a in args:
        spec = a[0]
        key = (spec["task"], spec["image"], spec.get("series")) if spec.get("image") and not spec.get("result") \
            else ("case", spec["case_id"])
        groups.setdefault(key, []).append(a)
    return sorted(groups.values(), key=lambda g: -len(g))


def run_case_group(group: list[tuple], threads: int | None = None) -> list[dict]:
    """:func:`run_case` for each case of ``group`` (readings of one image), in order, in this
    process, sharing their common steps; a cancelled case cancels the rest of the group."""
    from calcinosis.core import memo
    out: list[dict] = []
    with memo.sharing():
        for a in group:
            d = run_case(*a, threads=threads)
            out.append(d)
            if d["status"] != "ok" and d["reason"] == "cancelled":
                out += [_failed(b, "cancelled") for b in group[len(out):]]
                break
    return out


def _run_local(args: list[tuple], workers: int | None, finish: Callable[[dict], None]) -> None:
    n = workers if workers is not None else default_workers(len(args))
    threads = max(1, (os.cpu_count() or 1) // max(n, 1))
    groups = image_groups(args)
    if n <= 0:  # in this process (debugging, tests of the worker function)
        for g in groups:
            for d in run_case_group(g, threads=None):
                finish(d)
        return
    import concurrent.futures as cf
    import multiprocessing as mp
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    ctx = mp.get_context(method)
    pool = cf.ProcessPoolExecutor(max_workers=min(n, len(groups)), mp_context=ctx, initializer=_init_worker,
                                  initargs=(threads,))
    try:
        futs = {pool.submit(run_case_group, g): g for g in groups}
        for fut in cf.as_completed(futs):
            try:
                states = fut.result()
            except cf.process.BrokenProcessPool:
                states = [_failed(a, "worker process died while this case was queued or running (out of memory "
                                     "or a crash); rerun the batch to retry it") for a in futs[fut]]
            for d in states:
                finish(d)
    except BaseException:
        # Ctrl-C, SIGTERM or an error in the parent: queued cases are dropped, running ones are
        # asked to stop (SIGTERM unwinds a worker's case: no .partial-* folder) and waited for, so
        # no worker writes into the folder after its lock is released; finished cases keep their state
        procs = list((getattr(pool, "_processes", None) or {}).values())   # noqa: SLF001 - no public list
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_workers(procs)
        raise
    pool.shutdown(wait=True)


def _stop_workers(procs, grace_s: float = 60.0) -> None:
    """Stop the worker processes and wait until every one is gone.  SIGTERM is sent again every
    quarter second: a worker unwinding its case ignores it (its clean-up must finish), an idle
    one exits quietly.  The pids are watched directly (with their start time, so a reused pid is
    never signalled): when the forkserver itself was stopped (a signal to the whole process
    group) ``Process.join`` no longer knows about its workers.  A worker still alive after
    ``grace_s`` is killed."""
    import signal
    procs = [proc for proc in procs if proc.pid]
    started = {proc.pid: _proc_start(proc.pid) for proc in procs}
    deadline = time.monotonic() + grace_s
    while True:
        alive = [proc.pid for proc in procs if _still_running(proc, started[proc.pid])]
        if not alive:
            return
        stop = signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, stop)
        if stop == signal.SIGKILL:
            return
        time.sleep(0.25)
        for proc in procs:   # reap those that are our own children
            with contextlib.suppress(Exception):
                proc.join(0)


def _proc_start(pid: int) -> str | None:
    """State and start time of process ``pid`` from /proc (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[-1].split()
        return f"{fields[0]} {fields[19]}"
    except (OSError, IndexError):
        return None


def _still_running(proc, started: str | None) -> bool:
    if started is None:   # no /proc: what multiprocessing knows
        return proc.is_alive()
    now = _proc_start(proc.pid)
    if now is None:
        return False
    state, start = now.split()
    return start == started.split()[1] and state not in ("Z", "X")   # a zombie has ended; another start: reused pid


def _failed(a: tuple, reason: str) -> dict:
    spec = a[0]
    return CaseState(spec["case_id"], "failed", reason, spec["fingerprint"], "computed", finished_utc=_now()).to_dict()


def _run_dask(scheduler: str, args: list[tuple], finish: Callable[[dict], None]) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError("--scheduler: Dask distributed is not installed (pip install 'dask[distributed]')") from None
    if not scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise InputError(f"--scheduler {scheduler!r}: expected an address like tcp://HOST:PORT")
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as e:
        raise InputError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({e})") from None
    try:
        futs = {client.submit(run_case, *a, pure=False, key=f"calcinosis-case-{a[0]['case_id']}-{os.getpid()}-{time.time_ns()}"): a
                for a in args}
        for fut in as_completed(list(futs)):
            a = futs[fut]
            try:
                finish(fut.result())
            except Exception as e:  # noqa: BLE001 - a lost worker must not stop the batch
                finish(_failed(a, f"Dask worker failed: {type(e).__name__}: {e}"))
    finally:
        client.close()
