"""Demo step: a small synthetic cohort through batch, statistics and the cohort report.

Six patients, two readers (R1 read twice), hands (XR, CT, MRI), spines (chest or TAP CT)
and CT phantoms measured at baseline and at 12 months.  Until this installation has the
``hand`` and ``spine`` commands, their cases are contract result folders made by
:mod:`CalcinosisLib.cohort.synthetic` (marked synthetic); when ``CalcinosisCLI.hand_cmd`` /
``spine_cmd`` exist, real hand and spine phantoms are generated and run through them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
from pathlib import Path

from .main import build_parser
from .main import main as cli

ORDER = 90
TITLE = "Cohort: 6 synthetic patients, 2 readers -> batch, statistics (kappa, ICC, prevalence, change) and report"


def has_command(name: str) -> bool:
    return importlib.util.find_spec(f"CalcinosisCLI.{name}_cmd") is not None


def _phantom_options(kind: str) -> set[str]:
    parser = build_parser()
    for a in parser._actions:  # noqa: SLF001 - argparse has no public listing of sub-commands
        if isinstance(a, argparse._SubParsersAction) and "phantom" in a.choices:  # noqa: SLF001
            for b in a.choices["phantom"]._actions:  # noqa: SLF001
                if isinstance(b, argparse._SubParsersAction) and kind in b.choices:  # noqa: SLF001
                    return set(b.choices[kind]._option_string_actions)  # noqa: SLF001
    return set()


def _find_image(folder: Path) -> Path | None:
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if any(f.suffix == ".dcm" or f.suffix == "" for f in d.iterdir() if f.is_file()):
            return d
    for pattern in ("*.dcm", "*.nrrd", "*.nii.gz", "*.mha"):
        for f in sorted(folder.glob(pattern)):
            if not any(w in f.name.lower() for w in ("label", "seg", "vertebra", "truth")):
                return f
    return None


def _find(folder: Path, patterns) -> Path | None:
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


#: Second and third readings differ the way readers differ: in the smallest deposit they
#: count, and (spine) in the density they call calcified.  Same images, other choices.
READINGS = {
    "xr": (("R1", 1, {}), ("R1", 2, {"min_size": "2"}), ("R2", 1, {"min_size": "4"})),
    "spine": (("R1", 1, {}), ("R1", 2, {"min_size": "2"}), ("R2", 1, {"threshold": "200"})),
}
#: Coarser phantoms than the defaults keep the demo quick; the tests use the defaults.
PHANTOM_SPACING = {"hand-ct": "0.7", "hand-mri": "0.7", "hand-xr": "0.25", "spine-ct": "1.0,1.0,1.25"}
#: Spinal calcifications per level, per patient: from none to many, as in a real cohort.
SPINE_PER_LEVEL = (0.0, 0.2, 0.5, 1.0, 0.1, 2.0)


def _real_cases(data: Path, n_patients: int, hand: bool, spine: bool) -> list[dict]:
    """Hand and spine phantom cases run through their own commands (when installed)."""
    rows, phantom_calls = [], []
    for p in range(1, n_patients + 1):
        pid = f"P{p:02d}"
        kinds = (["hand-xr", "hand-ct", "hand-mri"] if hand else []) + (["spine-ct"] if spine else [])
        for kind in kinds:
            folder = data / "phantoms" / f"{pid}-{kind}"
            opts = _phantom_options(kind)
            argv = ["phantom", kind, "-o", str(folder), "--force", "-q"]
            if "--seed" in opts:
                argv += ["--seed", str(p)]
            if "--spacing" in opts and kind in PHANTOM_SPACING:
                argv += ["--spacing", PHANTOM_SPACING[kind]]
            if kind == "spine-ct" and "--coverage" in opts:
                argv += ["--coverage", "tap" if p % 2 else "chest"]
            if kind == "spine-ct" and "--per-level" in opts:
                argv += ["--per-level", str(SPINE_PER_LEVEL[(p - 1) % len(SPINE_PER_LEVEL)]), "--fit"]
            phantom_calls.append((argv, folder))
    _make_phantoms([argv for argv, _ in phantom_calls])
    for argv, folder in phantom_calls:
        kind, pid = argv[1], folder.name.split("-")[0]
        task, mod = ("spine", None) if kind == "spine-ct" else ("hand", kind.split("-")[1])
        image = _find_image(folder)
        row = {"patient_id": pid, "task": task, "image": str(image), "time_point": "baseline"}
        if task == "hand":
            row["modality"] = mod
            lm = _find(folder, ["*.mrk.json", "*landmark*.csv"])
            if lm:
                row["landmarks"] = str(lm)
            roi = _find(folder, ["regions.seg.nrrd"]) if mod == "mri" else None
            if roi:
                row["region"] = str(roi)
        else:
            row["labels"] = str(_find(folder, ["*vertebra*", "*label*", "*seg*.nii.gz", "*seg*.nrrd"]))
        readings = READINGS["spine" if task == "spine" else mod] if (task == "spine" or mod == "xr") \
            else (("R1", 1, {}),)
        for reader, read, extra in readings:
            rows.append(dict(row, case_id=f"{pid}-{kind}-{reader}-{read}", reader=reader, read=read, **extra))
    return rows


def _make_phantoms(calls: list[list[str]]) -> None:
    """Phantoms in two worker processes (each phantom is independent)."""
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=2) as pool:
        for code in pool.map(cli, calls):
            if code != 0:
                raise SystemExit(code)


def run(outdir: Path, force: bool) -> list[str]:
    from CalcinosisLib.cohort.synthetic import write_synthetic_cohort
    f = ["--force"] if force else []
    base = outdir / "cohort"
    data = base / "data"
    real_hand, real_spine = has_command("hand"), has_command("spine")
    made = write_synthetic_cohort(data, n_patients=6, seed=7, hand=not real_hand, spine=not real_spine)
    manifest = Path(made["manifest"])
    lines = []
    if real_hand or real_spine:
        extra = _real_cases(data, 6, real_hand, real_spine)
        with open(manifest, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        cols = list(dict.fromkeys(list(rows[0].keys()) + ["landmarks", "labels", "region", "threshold", "min_size"]))
        with open(manifest, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, cols)
            w.writeheader()
            for r in rows + extra:
                w.writerow({c: r.get(c, "") for c in cols})
        lines.append(f"real phantom cases: {'hand ' if real_hand else ''}{'spine' if real_spine else ''}")
    else:
        lines.append("hand and spine cases: synthetic contract results (the hand/spine commands are not installed)")
    batch = base / "batch"
    code = cli(["batch", str(manifest), "-o", str(batch), "--clinical", str(made["clinical"]), "--workers", "2", "-q"] + f)
    if code not in (0, 3):
        raise SystemExit(code)
    stats = base / "stats"
    base_reading = ["--where", "reader=R1", "--where", "read=1", "--where", "time_point=baseline"]
    _call(["stats", "groups", str(batch), "--by", "subset", "--vars",
           "age_years,pah,digital_ulcers,spine_any_calcification,spine_any_posterior,hand_xr_any_calcinosis,"
           "hand_xr_lesion_count", *base_reading, "-o", str(stats / "groups"), "-q"] + f)
    _call(["stats", "agreement", str(batch), "--var", "spine_any_calcification", "--var", "hand_xr_any_calcinosis",
           "--var", "measure_ct_total_volume_mm3", "--between", "reader", "--where", "read=1",
           "--where", "time_point=baseline", "-o", str(stats / "inter-reader"), "-q"] + f)
    _call(["stats", "agreement", str(batch), "--var", "spine_any_calcification", "--var", "hand_xr_total_area_mm2",
           "--between", "read", "--where", "reader=R1", "--where", "time_point=baseline",
           "-o", str(stats / "intra-reader"), "-q"] + f)
    _call(["stats", "prevalence", str(batch), *base_reading, "-o", str(stats / "prevalence"), "-q"] + f)
    _call(["stats", "modalities", str(batch), *base_reading, "-o", str(stats / "modalities"), "-q"] + f)
    _call(["stats", "change", str(batch), "--value", "measure_ct_total_volume_mm3", "--where", "reader=R1",
           "--where", "read=1", "-o", str(stats / "change"), "-q"] + f)
    _call(["report", str(batch), "--manifest", str(manifest), "--by", "subset", "-o", str(base / "report"), "-q"] + f)
    lines += [f"manifest:             {manifest}",
              f"cohort tables:        {batch}/patients.csv (one row per patient x reader x read x time point)",
              f"statistics:           {stats}/<analysis>/<analysis>.md|.csv|.html",
              f"cohort report:        {base / 'report' / 'cohort.html'} (case reports in report/cases/)"]
    return lines


def _call(argv: list[str]) -> None:
    code = cli(argv)
    if code != 0:
        raise SystemExit(code)
