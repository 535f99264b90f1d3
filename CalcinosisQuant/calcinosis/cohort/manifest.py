"""The batch manifest: one CSV row per case.

Columns (header names are case-insensitive; spaces become ``_``; ``#`` starts a comment line):

=============  =========================================================================
case_id        required, unique, pseudonymous (letters, digits, ``. _ -``): the case folder
patient_id     required, pseudonymous: cases of one patient are joined in ``patients.csv``
task           required: ``hand`` | ``spine`` | ``measure``
image          image path (DICOM folder/file, NRRD, NIfTI, MHA, PNG/TIFF), relative to the
               manifest's folder; required unless ``result`` is given
result         instead of running: a folder already holding this task's outputs (e.g. the
               Slicer module's *Export*), copied into the batch and joined
modality       ``xr`` | ``ct`` | ``mri`` (hand: empty = read from the DICOM header; measure: optional override)
landmarks      hand: landmark file (``--landmarks``)
labels         spine: vertebra labels (``--vertebrae``); measure: lesion segmentation (``--mask``)
region         hand: region to search (``--roi``); measure: ``--region``
exclude        measure: ``--exclude`` mask
convention     spine: ``auto|totalsegmentator|totalspineseg|verse``
reader         who read the case (default ``R1``)
read           read number, whole number ≥ 1 (default 1)
time_point     e.g. ``baseline``, ``M12`` (default ``baseline``)
threshold      ``LOW`` or ``LOW:HIGH`` (numbers)
below          ``1``/``0`` (measure: lesions darker than the threshold)
min_size       number, mm³ (3D) or mm² (2D)
connectivity   ``face`` | ``full``
min_slices     whole number ≥ 1
spacing        ``X,Y`` in mm (radiographs without a usable spacing tag)
series         which DICOM series in a folder holding several
options        further command-line options passed verbatim (e.g. ``--keep-segments``)
=============  =========================================================================
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from calcinosis.core.errors import InputError
from .contract import TASKS, modality_key

REQUIRED = ("case_id", "patient_id", "task")
PATH_COLUMNS = ("image", "result", "landmarks", "labels", "region", "exclude")
COLUMNS = REQUIRED + PATH_COLUMNS + ("modality", "convention", "reader", "read", "time_point", "threshold", "below",
                                     "min_size", "connectivity", "min_slices", "spacing", "series", "options")
#: Columns that make sense for each task (others on that row are an error, not silently ignored).
TASK_COLUMNS = {
    "measure": {"image", "result", "modality", "labels", "region", "exclude", "threshold", "below", "min_size",
                "connectivity", "min_slices", "spacing", "series", "options"},
    "hand": {"image", "result", "modality", "landmarks", "region", "threshold", "min_size", "connectivity", "spacing",
             "series", "options"},
    "spine": {"image", "result", "labels", "convention", "threshold", "min_size", "connectivity", "min_slices",
              "series", "options", "modality"},
}
CONVENTIONS = ("auto", "totalsegmentator", "totalspineseg", "verse")
DEFAULT_READER = "R1"
DEFAULT_TIME_POINT = "baseline"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class CaseSpec:
    """One validated manifest row (paths absolute)."""

    row: int
    case_id: str
    patient_id: str
    task: str
    image: str | None = None
    result: str | None = None
    modality: str | None = None
    landmarks: str | None = None
    labels: str | None = None
    region: str | None = None
    exclude: str | None = None
    convention: str | None = None
    reader: str = DEFAULT_READER
    read: int = 1
    time_point: str = DEFAULT_TIME_POINT
    threshold: str | None = None
    below: bool = False
    min_size: float | None = None
    connectivity: str | None = None
    min_slices: int | None = None
    spacing: str | None = None
    series: str | None = None
    options: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "CaseSpec":
        return CaseSpec(**d)

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.patient_id, self.reader, self.read, self.time_point)

    def parameters(self) -> dict:
        """The row's parameters as recorded in cases.csv (no paths)."""
        p = {k: getattr(self, k) for k in ("modality", "convention", "threshold", "below", "min_size", "connectivity",
                                           "min_slices", "spacing", "series") if getattr(self, k) not in (None, False)}
        if self.options:
            p["options"] = " ".join(self.options)
        return p


def write_manifest(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write manifest rows (dicts) as CSV: ``columns`` (default: every key, in order of first
    appearance), an empty cell where a row has no value.  Paths are written as given:
    relative ones are read relative to the manifest's folder."""
    path = Path(path)
    cols = columns or list(dict.fromkeys(c for r in rows for c in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return path


def _norm_header(h: str) -> str:
    return re.sub(r"\s+", "_", h.strip().lower())


def read_manifest(path: str | Path) -> list[CaseSpec]:
    """Validate a manifest; every problem found is reported in one line naming row and column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{path}: empty manifest (no header row)")
    reader = csv.reader(io.StringIO("\n".join(ln for _, ln in lines)))
    records = list(reader)
    header = [_norm_header(h) for h in records[0]]
    header_line = lines[0][0]
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise InputError(f"{path}, line {header_line}: column {dups[0]!r} appears twice")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InputError(f"{path}, line {header_line}: unknown column {unknown[0]!r}"
                         f"{_did_you_mean(unknown[0])} (known: {', '.join(COLUMNS)})")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path}, line {header_line}: required column {missing[0]!r} missing")
    base = path.resolve().parent
    problems: list[str] = []
    specs: list[CaseSpec] = []
    seen_ids: dict[str, int] = {}
    for (lineno, _), rec in zip(lines[1:], records[1:]):
        where = f"row {lineno}"
        if len(rec) != len(header):
            problems.append(f"{where}: {len(rec)} cells for {len(header)} columns")
            continue
        raw = {h: v.strip() for h, v in zip(header, rec)}
        errs: list[str] = []
        spec = _parse_row(raw, lineno, base, errs)
        if spec is not None:
            if spec.case_id in seen_ids:
                errs.append(f"column case_id: {spec.case_id!r} is also on row {seen_ids[spec.case_id]} (case ids must be unique)")
            else:
                seen_ids[spec.case_id] = lineno
        problems += [f"{where}, {e}" if e.startswith("column") else f"{where}: {e}" for e in errs]
        if spec is not None and not errs:
            specs.append(spec)
    # one spine reading per patient x reader x read x time point (two CTs would double-count levels)
    spine_seen: dict[tuple, int] = {}
    for s in specs:
        if s.task == "spine":
            if s.key in spine_seen:
                problems.append(f"row {s.row}: a second spine case for patient {s.patient_id!r}, reader {s.reader!r}, "
                                f"read {s.read}, time point {s.time_point!r} (also row {spine_seen[s.key]}); give it "
                                f"another read number or time point")
            else:
                spine_seen[s.key] = s.row
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{path}: {problems[0]}{more}" + ("; " + "; ".join(problems[1:5]) if len(problems) > 1 else ""))
    if not specs:
        raise InputError(f"{path}: no case rows")
    for s in specs:
        s.fingerprint = fingerprint(s)
    return specs


def _parse_row(raw: dict, lineno: int, base: Path, errs: list[str]) -> CaseSpec | None:
    def get(c):
        v = raw.get(c, "")
        return v if v != "" else None

    for c in REQUIRED:
        if get(c) is None:
            errs.append(f"column {c}: empty (required)")
    if errs:
        return None
    case_id, patient_id, task = get("case_id"), get("patient_id"), get("task").lower()
    for c, v in (("case_id", case_id), ("patient_id", patient_id)):
        if not _SAFE_ID.match(v):
            errs.append(f"column {c}: {v!r} must be a pseudonymous id of letters, digits, '.', '_' or '-'")
    if task not in TASKS:
        errs.append(f"column task: {task!r} is not one of {', '.join(TASKS)}")
        return None
    for c in COLUMNS:
        if c in REQUIRED or get(c) is None:
            continue
        if c not in TASK_COLUMNS[task] and c not in ("reader", "read", "time_point"):
            errs.append(f"column {c}: does not apply to task {task} (leave it empty on this row)")
    spec = CaseSpec(lineno, case_id, patient_id, task)
    paths = {}
    for c in PATH_COLUMNS:
        v = get(c)
        if v is None:
            continue
        p = Path(v).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.exists():
            errs.append(f"column {c}: file not found: {v}")
        paths[c] = str(p)
    if "image" not in paths and "result" not in paths and get("image") is None and get("result") is None:
        errs.append("column image: empty (give the image, or a result folder in column result)")
    if get("image") is not None and get("result") is not None:
        errs.append("columns image and result: give one of them (result = outputs already computed)")
    for c, v in paths.items():
        setattr(spec, c, v)
    if get("result") is not None and "result" in paths and not Path(paths["result"]).is_dir():
        errs.append(f"column result: {get('result')} is not a folder")
    mod = get("modality")
    if mod is not None:
        mk = modality_key(mod)
        if mk is None:
            errs.append(f"column modality: {mod!r} is not xr, ct or mri")
        spec.modality = mk
    if task == "spine" and get("result") is None and get("labels") is None:
        errs.append("column labels: empty (spine cases need the vertebra labels)")
    conv = get("convention")
    if conv is not None:
        if conv.lower() not in CONVENTIONS:
            errs.append(f"column convention: {conv!r} is not one of {', '.join(CONVENTIONS)}")
        spec.convention = conv.lower()
    spec.reader = get("reader") or DEFAULT_READER
    if get("reader") is not None and not _SAFE_ID.match(spec.reader):
        errs.append(f"column reader: {spec.reader!r} must be letters, digits, '.', '_' or '-'")
    spec.time_point = get("time_point") or DEFAULT_TIME_POINT
    if get("time_point") is not None and not _SAFE_ID.match(spec.time_point):
        errs.append(f"column time_point: {spec.time_point!r} must be letters, digits, '.', '_' or '-'")
    if get("read") is not None:
        spec.read = _whole(get("read"), "read", errs) or 1
    thr = get("threshold")
    if thr is not None:
        parts = thr.split(":")
        try:
            values = [float(x) for x in parts if x != ""]
            if not parts[0] or len(parts) > 2 or not all(math.isfinite(v) for v in values):
                raise ValueError
            spec.threshold = thr
        except ValueError:
            errs.append(f"column threshold: {thr!r} is not a finite number or LOW:HIGH")
    b = get("below")
    if b is not None:
        if b.lower() in ("1", "yes", "true"):
            spec.below = True
        elif b.lower() not in ("0", "no", "false"):
            errs.append(f"column below: {b!r} is not 0/1")
    ms = get("min_size")
    if ms is not None:
        try:
            spec.min_size = float(ms)
            if not math.isfinite(spec.min_size):
                errs.append(f"column min_size: {ms!r} is not a finite number")
            elif spec.min_size < 0:
                errs.append(f"column min_size: {ms!r} is negative")
        except ValueError:
            errs.append(f"column min_size: {ms!r} is not a number")
    if get("min_slices") is not None:
        spec.min_slices = _whole(get("min_slices"), "min_slices", errs)
    conn = get("connectivity")
    if conn is not None:
        if conn.lower() not in ("face", "full"):
            errs.append(f"column connectivity: {conn!r} is not face or full")
        spec.connectivity = conn.lower()
    sp = get("spacing")
    if sp is not None:
        try:
            from calcinosis.tasks.arguments import SPACING_RANGE_MM
            vals = [float(x) for x in sp.replace(" ", "").split(",")]
            if not vals or len(vals) > 2 or not all(SPACING_RANGE_MM[0] <= v <= SPACING_RANGE_MM[1] for v in vals):
                raise ValueError
            spec.spacing = ",".join(f"{v:g}" for v in vals)
        except ValueError:
            errs.append(f"column spacing: {sp!r} is not pixel spacings in mm like 0.1,0.1 "
                        f"({SPACING_RANGE_MM[0]:g} to {SPACING_RANGE_MM[1]:g} mm)")
    spec.series = get("series")
    if get("options") is not None:
        try:
            spec.options = shlex.split(get("options"))
        except ValueError as e:
            errs.append(f"column options: cannot split {get('options')!r} ({e})")
        bad = [o for o in spec.options if o in ("-o", "--output", "--force")]
        if bad:
            errs.append(f"column options: {bad[0]} is set by the batch itself")
    return spec


def _whole(text: str, col: str, errs: list[str]) -> int | None:
    try:
        f = float(text)
        if not math.isfinite(f) or f != int(f) or f < 1:
            raise ValueError
        return int(f)
    except ValueError:
        errs.append(f"column {col}: {text!r} is not a whole number >= 1")
        return None


def _did_you_mean(name: str) -> str:
    import difflib
    m = difflib.get_close_matches(name, COLUMNS, n=1)
    return f" (did you mean {m[0]!r}?)" if m else ""


def _stat_id(path: str | None) -> list | None:
    """Size and modification time of an input (a folder: its files), so an edited input re-runs."""
    if not path:
        return None
    p = Path(path)
    try:
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file())[:5000]
            return [len(files), sum(f.stat().st_size for f in files), max((f.stat().st_mtime_ns for f in files), default=0)]
        st = p.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return None


def fingerprint(spec: CaseSpec) -> str:
    """Identity of what a case computes: its row (minus bookkeeping) and its input files."""
    d = spec.to_dict()
    for k in ("row", "fingerprint"):
        d.pop(k, None)
    d["inputs"] = {c: _stat_id(getattr(spec, c)) for c in PATH_COLUMNS}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def command_items(spec: CaseSpec) -> list[tuple[str, str | None, str]]:
    """(option, value or None, manifest column) for one case, before ``-o``."""
    t = spec.task
    items: list[tuple[str, str | None, str]] = []
    if t == "hand":
        if spec.modality:
            items.append(("--modality", spec.modality, "modality"))
        if spec.landmarks:
            items.append(("--landmarks", spec.landmarks, "landmarks"))
        if spec.region:
            items.append(("--roi", spec.region, "region"))
    elif t == "spine":
        items.append(("--vertebrae", spec.labels or "", "labels"))
        if spec.convention:
            items.append(("--convention", spec.convention, "convention"))
    else:
        if spec.labels:
            items.append(("--mask", spec.labels, "labels"))
        if spec.region:
            items.append(("--region", spec.region, "region"))
        if spec.exclude:
            items.append(("--exclude", spec.exclude, "exclude"))
        if spec.modality:
            items.append(("--modality", spec.modality, "modality"))
        if spec.below:
            items.append(("--below", None, "below"))
    if spec.threshold:
        items.append(("--threshold", spec.threshold, "threshold"))
    if spec.min_size is not None:
        items.append(("--min-size", f"{spec.min_size:g}", "min_size"))
    if spec.connectivity:
        items.append(("--connectivity", spec.connectivity, "connectivity"))
    if spec.min_slices is not None:
        items.append(("--min-slices", str(spec.min_slices), "min_slices"))
    if spec.spacing:
        items.append(("--spacing", spec.spacing, "spacing"))
    if spec.series:
        items.append(("--series", spec.series, "series"))
    items.append(("--case-id", spec.case_id, ""))
    items.append(("-q", None, ""))
    return items


def command_line(spec: CaseSpec, case_dir: str | os.PathLike, options: set[str] | None = None) -> list[str]:
    """The ``calcinosis`` arguments that compute one case (without the program name).

    With ``options`` (the sub-command's option strings), options it lacks are left out when
    optional (``--case-id``, ``-q``) and refused, naming the manifest column, otherwise."""
    argv: list[str] = [spec.task, spec.image or ""]
    for opt, val, col in command_items(spec):
        if options is not None and opt not in options:
            if not col:
                continue
            raise InputError(f"'calcinosis {spec.task}' has no option {opt} (manifest column {col})")
        argv += [opt] + ([val] if val is not None else [])
    argv += list(spec.options)
    argv += ["-o", str(case_dir)]
    return argv


def recorded_command(argv: list[str], spec: CaseSpec, case_dir: str | os.PathLike, record_paths: bool) -> str:
    """The command line of a case as ``cases.csv`` records it: ``calcinosis`` and ``argv``
    (which ends with ``-o <case folder>`` and, on a forced run, ``--force``), shell-quoted, so
    that it reruns the case into its folder.  Unless paths are recorded, each input path is
    replaced by its manifest column (``<image>``) and the case folder by ``<case folder>``:
    file names may carry patients' names."""
    if record_paths:
        words = list(argv)
    else:
        paths = {getattr(spec, c): f"<{c}>" for c in PATH_COLUMNS if getattr(spec, c)}
        paths[str(case_dir)] = "<case folder>"
        words = [paths.get(a, a) for a in argv]
    if "--force" not in words:
        words.append("--force")          # the folder exists after the run: a rerun replaces it
    return "calcinosis " + shlex.join(words)
