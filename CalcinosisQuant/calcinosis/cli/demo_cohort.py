"""Demo step: a small synthetic cohort through batch, statistics and the cohort report.

Six patients, two readers (R1 read twice): hands (XR, CT, MRI phantoms run through
``calcinosis hand``), spines (chest or TAP phantoms run through ``calcinosis spine``) and
sphere phantoms measured at baseline and at 12 months (``calcinosis measure``, made with the
clinical table by :func:`calcinosis.cohort.synthetic.write_synthetic_cohort`).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from .main import main as cli

TITLE = "Cohort: 6 synthetic patients, 2 readers -> batch, statistics (kappa, ICC, prevalence, change) and report"

#: Where each phantom kind writes its image (``calcinosis phantom KIND -o DIR``): the CT and MRI
#: volumes as NRRD files (as exported from Slicer), the radiograph as DICOM.  The hand and spine
#: steps before show the DICOM series route; here a DICOM series would be written, then read by
#: the batch and again by the report, with every slice's header checked each time.
PHANTOM_IMAGE = {"hand-xr": "xr.dcm", "hand-ct": "ct.nrrd", "hand-mri": "mri.nrrd", "spine-ct": "ct.nrrd"}

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


def phantom_argv(kind: str, folder: Path, patient: int) -> list[str]:
    """``calcinosis phantom`` arguments for one patient's phantom (seeded by the patient)."""
    argv = ["phantom", kind, "-o", str(folder), "--force", "-q", "--seed", str(patient),
            "--spacing", PHANTOM_SPACING[kind]]
    if PHANTOM_IMAGE[kind].endswith(".nrrd"):
        argv += ["--format", "nrrd"]
    if kind == "spine-ct":
        argv += ["--coverage", "tap" if patient % 2 else "chest",
                 "--per-level", str(SPINE_PER_LEVEL[(patient - 1) % len(SPINE_PER_LEVEL)]), "--fit"]
    return argv


def spine_case(folder: Path) -> dict:
    """Manifest fields of a spine phantom folder."""
    return {"task": "spine", "image": str(folder / PHANTOM_IMAGE["spine-ct"]),
            "labels": str(folder / "vertebrae.nii.gz")}


def _phantom_calls(data: Path, n_patients: int) -> list[tuple[list[str], Path, int, str]]:
    """(``calcinosis phantom`` arguments, folder relative to ``data``, patient, kind) of every
    phantom of the cohort."""
    calls = []
    for p in range(1, n_patients + 1):
        for kind in ("hand-xr", "hand-ct", "hand-mri", "spine-ct"):
            folder = Path("phantoms") / f"P{p:02d}-{kind}"   # relative to the manifest
            calls.append((phantom_argv(kind, data / folder, p), folder, p, kind))
    return calls


def _phantom_cases(data: Path, n_patients: int, made: "PhantomJob | None" = None) -> list[dict]:
    """Hand and spine phantom cases, with the readings of :data:`READINGS` (paths relative
    to ``data``, the manifest's folder, as the batch reads them).  The phantoms are made
    here, or waited for when ``made`` (started by :func:`start_phantoms`) is given."""
    rows = []
    calls = _phantom_calls(data, n_patients)
    (made or PhantomJob([argv for argv, *_ in calls])).wait()
    for _, folder, p, kind in calls:
        pid = f"P{p:02d}"
        if kind == "spine-ct":
            row, readings = spine_case(folder), READINGS["spine"]
        else:
            mod = kind.split("-")[1]
            row = {"task": "hand", "modality": mod, "image": str(folder / PHANTOM_IMAGE[kind]),
                   "landmarks": str(folder / "landmarks.mrk.json")}
            if mod == "mri":
                row["region"] = str(folder / "regions.seg.nrrd")
            readings = READINGS.get(mod, (("R1", 1, {}),))
        row.update(patient_id=pid, time_point="baseline")
        for reader, read, extra in readings:
            rows.append(dict(row, case_id=f"{pid}-{kind}-{reader}-{read}", reader=reader, read=read, **extra))
    return rows


def make_phantoms(calls: list[list[str]]) -> None:
    """Phantoms in two worker processes (each phantom is independent)."""
    PhantomJob(calls).wait()


class PhantomJob:
    """The cohort's phantoms being made in two background processes (:func:`start_phantoms`)."""

    def __init__(self, calls: list[list[str]]):
        from concurrent.futures import ProcessPoolExecutor
        self.pool = ProcessPoolExecutor(max_workers=2)
        self.futures = [self.pool.submit(cli, argv) for argv in calls]

    def wait(self) -> None:
        """Until every phantom is made; a phantom that failed stops the demo with its exit code."""
        try:
            for fut in self.futures:
                code = fut.result()
                if code != 0:
                    raise SystemExit(code)
        finally:
            self.cancel()

    def cancel(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


N_PATIENTS = 6


def start_phantoms(outdir: Path) -> PhantomJob:
    """Start making the cohort's phantoms in the background (while the demo's other steps
    run: two cores kept busy); :func:`run` waits for them."""
    return PhantomJob([argv for argv, *_ in _phantom_calls(outdir / "cohort" / "data", N_PATIENTS)])


def run(outdir: Path, force: bool, phantoms: PhantomJob | None = None) -> list[str]:
    from calcinosis.cohort.manifest import write_manifest
    from calcinosis.cohort.synthetic import write_synthetic_cohort
    f = ["--force"] if force else []
    base = outdir / "cohort"
    data = base / "data"
    made = write_synthetic_cohort(data, n_patients=N_PATIENTS, seed=7, hand=False, spine=False)
    manifest = Path(made["manifest"])
    with open(manifest, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh)) + _phantom_cases(data, N_PATIENTS, phantoms)
    write_manifest(manifest, rows)
    batch = base / "batch"
    check_batch(cli(["batch", str(manifest), "-o", str(batch), "--clinical", str(made["clinical"]), "--workers", "2",
                     "-q"] + f), batch)
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
    return [f"manifest:             {manifest}",
            f"cohort tables:        {batch}/patients.csv (one row per patient x reader x read x time point)",
            f"statistics:           {stats}/<analysis>/<analysis>.md|.csv|.html",
            f"cohort report:        {base / 'report' / 'cohort.html'} (case reports in report/cases/)"]


def failed_cases(batch: Path) -> list[tuple[str, str]]:
    """(case_id, reason) of every case ``cases.csv`` of a batch folder records as failed."""
    from calcinosis.core.tables import Table
    path = Path(batch) / "cases.csv"
    if not path.is_file():
        return []
    return [(r["case_id"], r["reason"] or "") for r in Table.read_csv(path).rows if r["status"] != "ok"]


def check_batch(code: int, batch: Path) -> None:
    """Go on only when every case of the demo's batch ran (exit code 0).  Exit code 3 (some
    cases failed) names each failed case and its reason on stderr; the demo then stops with
    that exit code, as it does for any other."""
    if code == 0:
        return
    if code == 3:
        failed = failed_cases(batch)
        lines = [f"calcinosis demo: {len(failed)} case(s) of the cohort batch failed; the demo stops "
                 f"(see {Path(batch) / 'cases.csv'} and {Path(batch) / 'logs'}/):"]
        lines += [f"  {case_id}: {reason}" for case_id, reason in failed]
        sys.stderr.write("\n".join(lines) + "\n")
    raise SystemExit(code)


def _call(argv: list[str]) -> None:
    code = cli(argv)
    if code != 0:
        raise SystemExit(code)
