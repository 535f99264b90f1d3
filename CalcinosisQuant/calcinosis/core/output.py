"""Writing a result directory: atomically, never silently over an earlier result.

Usage::

    with OutputTransaction(outdir, force=False) as out:   # refuses at once if outdir
        ...compute...                                     # already holds a result
        out.write_table(table, "lesions.csv")
        out.write_json(record, "provenance.json")
    # leaving the block without an exception moves every file into outdir;
    # an exception (or Ctrl-C) leaves outdir exactly as it was.

A new ``outdir`` appears in one ``rename``.  Into an existing directory each file is
moved with ``os.replace`` (atomic per file), ``provenance.json`` last, so a reader
never sees a provenance that describes files not yet there.  With ``force`` the files
an earlier run listed in its provenance and this run does not write are removed, so
the directory never mixes two runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import interrupt
from .errors import OutputExistsError, InputError
from .tables import Table, csv_file_text, schema_path_for
from .xlsx import workbook_bytes

PROVENANCE_NAME = "provenance.json"
#: The workbook of a result's tables (see OutputTransaction.write_workbook)
WORKBOOK_NAME = "tables.xlsx"


def json_text(obj: Any) -> str:
    """Strict JSON (a NaN or an infinity, which JSON cannot hold, is written as null)."""
    return json.dumps(_finite(obj), indent=2, sort_keys=False, ensure_ascii=False, default=_json_default,
                      allow_nan=False) + "\n"


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o: Any):
    import numpy as np
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return _finite(float(o))
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def os_error_text(e: OSError) -> str:
    """One line for a failed write or read: the file (as the user will know it: a file staged in
    a hidden ``.NAME.partial-*`` folder is named by its place in ``NAME``) and the reason."""
    if e.filename and e.strerror:
        name = re.sub(r"(^|[\\/])\.([^\\/]+)\.partial-[^\\/]+", r"\1\2", str(e.filename))
        return f"{name}: {e.strerror}".splitlines()[0]
    text = str(e)
    return text.splitlines()[0] if text.strip() else type(e).__name__


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file_atomic(path: str | Path, text: str, force: bool = False) -> Path:
    """Write one text file all at once (a temporary file beside it, then ``os.replace``): a
    reader never sees half of it.  An existing file is kept unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: exists; choose another -o or pass --force to replace it")
    if path.exists() and path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~current_umask())   # mkstemp makes it private: as the umask allows
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_not_an_input(outdir: str | Path, inputs, option: str = "-o") -> None:
    """Refuse an output folder that is, or holds, an input (``--force`` would replace or
    remove the input's files)."""
    out = Path(outdir).resolve()
    for given in inputs:
        if not given or not Path(given).exists():
            continue
        path = Path(given).resolve()
        folder = path if path.is_dir() else path.parent
        if out == folder or out in folder.parents:
            raise InputError(f"{option} {outdir}: this folder holds the input {Path(given).name}; "
                             "write the results to another folder")


def check_output_free(outdir: str | Path, force: bool = False, marker: str = PROVENANCE_NAME) -> None:
    """Fail fast, before long work, when ``outdir`` already holds a result."""
    p = Path(outdir)
    if p.exists() and not p.is_dir():
        raise InputError(f"{p}: exists and is not a directory")
    if not force and (p / marker).exists():
        raise OutputExistsError(f"{p}: holds an earlier result ({marker}); choose another -o or pass --force to replace it")


class OutputTransaction:
    def __init__(self, outdir: str | Path, force: bool = False, marker: str = PROVENANCE_NAME):
        self.outdir = Path(outdir)
        self.force = force
        self.marker = marker
        self._staging: Path | None = None
        self._written: list[str] = []
        self._tables: list[tuple[str, Table]] = []
        check_output_free(self.outdir, force, marker)

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "OutputTransaction":
        parent = self.outdir.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{parent}: cannot create output directory ({e.strerror})") from None
        self._staging = Path(tempfile.mkdtemp(prefix=f".{self.outdir.name}.partial-", dir=parent))
        os.chmod(self._staging, 0o777 & ~current_umask())   # mkdtemp makes it private: as the umask allows
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                interrupt.raise_if_signalled()   # a signal whose exception was swallowed: no commit
                self._commit()
        finally:
            if self._staging is not None and self._staging.exists():
                shutil.rmtree(self._staging, ignore_errors=True)
        return False

    # ------------------------------------------------------------------ writing
    def path(self, name: str) -> Path:
        """Staging path for a file the caller writes itself (e.g. an image)."""
        if self._staging is None:
            raise RuntimeError("OutputTransaction used outside its with-block")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"output name must be relative: {name}")
        p = self._staging / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if name not in self._written:
            self._written.append(name)
        return p

    def dir(self, name: str) -> Path:
        """Staging folder for a set of files moved as one (e.g. a DICOM series)."""
        p = self.path(name)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def write_text(self, text: str, name: str) -> Path:
        p = self.path(name)
        p.write_text(text, encoding="utf-8")
        return p

    def write_bytes(self, data: bytes, name: str) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return p

    def write_json(self, obj: Any, name: str) -> Path:
        return self.write_text(json_text(obj), name)

    def write_table(self, table: Table, name: str) -> Path:
        """``name`` (CSV, UTF-8 with a byte-order mark so that Excel reads ±, ³, ρ) and its
        ``.schema.csv`` for Slicer; the table is remembered for :meth:`write_workbook`."""
        p = self.write_text(csv_file_text(table), name)
        self.write_text(table.schema_csv_text(), schema_path_for(Path(name)).as_posix())
        names = [n for n, _ in self._tables]
        if name in names:                                   # written again: same place in the workbook
            self._tables[names.index(name)] = (name, table)
        else:
            self._tables.append((name, table))
        return p

    def write_workbook(self, name: str = WORKBOOK_NAME) -> Path | None:
        """Every table written so far, one sheet each, as an Excel workbook (``tables.xlsx``):
        it opens the same in any Excel locale, where a CSV's commas may not.  None when no
        table was written."""
        if not self._tables:
            return None
        sheets = [(Path(n).with_suffix("").as_posix().replace("/", "_"), t) for n, t in self._tables]
        return self.write_bytes(workbook_bytes(sheets), name)

    @property
    def written(self) -> list[str]:
        return list(self._written)

    # ------------------------------------------------------------------ commit
    def _commit(self) -> None:
        assert self._staging is not None
        names = list(self._written)
        if not self.outdir.exists():
            os.rename(self._staging, self.outdir)
            self._staging = None
            return
        clashes = [n for n in names if (self.outdir / n).exists()]
        if clashes and not self.force:
            raise OutputExistsError(
                f"{self.outdir / clashes[0]}: exists; choose another -o or pass --force to replace it")
        stale = self._files_of_earlier_run() - set(names) if self.force else set()
        ordered = [n for n in names if n != self.marker] + [n for n in names if n == self.marker]
        for n in ordered:
            dst = self.outdir / n
            dst.parent.mkdir(parents=True, exist_ok=True)
            src = self._staging / n
            if src.is_dir() and dst.exists():
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            os.replace(src, dst)
        for n in sorted(stale):
            p = self.outdir / n
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()

    def _files_of_earlier_run(self) -> set[str]:
        prov = self.outdir / self.marker
        if not prov.is_file():
            return set()
        try:
            data = json.loads(prov.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        files = data.get("outputs", []) if isinstance(data, dict) else []
        safe = set()
        for f in files:
            # only files inside the folder: never the folder itself ("", "."), nothing outside it
            if isinstance(f, str) and f.strip() and not os.path.isabs(f) and ".." not in Path(f).parts \
                    and Path(f).parts and Path(f) != Path("."):
                safe.add(f)
        return safe
