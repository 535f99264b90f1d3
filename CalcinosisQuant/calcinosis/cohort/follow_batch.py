"""Lesions followed in a batch, by time point (issue 14, deliverables 4-5).

After the cases of a batch have run, every patient's readings at later time points are
followed from the same reader's and read's baseline of the same task and modality
(:func:`follow_pairs`): ``follow/<name>/`` holds what ``calcinosis follow`` writes.  The
baseline time point is the one named ``baseline`` when there is one, else the patient's first
in the manifest.  A pair is recomputed only when one of its two cases was (their provenance
records are the pair's fingerprint).

The cohort gains ``lesion_outcomes.csv`` (one row per patient x reader x read x follow-up time
point: the counts of new, resolved, grown, shrunk and stable lesions, the totals, the change
and its class, and the change split into matched, new and resolved) and ``lesion_changes.csv``
(every lesion group of every pair, with its keys) - the per-lesion outcomes the cohort
statistics take (:mod:`.outcomes`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from calcinosis.core.errors import InputError
from calcinosis.core.progress import Progress, report
from calcinosis.core.tables import Column, Table

from .manifest import DEFAULT_TIME_POINT, CaseSpec

FOLLOW_DIR = "follow"


@dataclass
class FollowPair:
    baseline: CaseSpec
    followup: CaseSpec
    modality: str | None

    @property
    def name(self) -> str:
        parts = [self.baseline.patient_id, self.baseline.reader, f"r{self.baseline.read}", self.baseline.task,
                 (self.modality or "image").lower(), f"{self.baseline.time_point}-to-{self.followup.time_point}"]
        return ".".join(parts)


def _modality(case_dir: Path) -> str | None:
    try:
        prov = json.loads((case_dir / "provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ((prov.get("inputs") or {}).get("image") or {}).get("modality") or \
        (prov.get("parameters") or {}).get("modality")


def follow_pairs(outdir: Path, specs: list[CaseSpec], states: dict) -> tuple[list[FollowPair], list[str]]:
    """Every (baseline, later time point) pair of ok cases of one patient, reader, read, task
    and modality; warnings for readings that cannot be paired."""
    from .batch import CASES_DIR
    groups: dict[tuple, dict[str, list[CaseSpec]]] = {}
    for s in specs:
        st = states.get(s.case_id)
        if st is None or st.status != "ok":
            continue
        m = _modality(Path(outdir) / CASES_DIR / s.case_id)
        groups.setdefault((s.patient_id, s.reader, s.read, s.task, m), {}).setdefault(s.time_point, []).append(s)
    pairs, warnings = [], []
    for (pid, reader, read, task, m), by_tp in groups.items():
        if len(by_tp) < 2:
            continue
        tps = list(by_tp)
        base_tp = DEFAULT_TIME_POINT if DEFAULT_TIME_POINT in by_tp else tps[0]
        if len(by_tp[base_tp]) > 1:
            warnings.append(f"patient {pid}, reader {reader}, read {read}: {len(by_tp[base_tp])} {task} cases at "
                            f"{base_tp}; lesions not followed (one case per time point is needed)")
            continue
        for tp in tps:
            if tp == base_tp:
                continue
            if len(by_tp[tp]) > 1:
                warnings.append(f"patient {pid}, reader {reader}, read {read}: {len(by_tp[tp])} {task} cases at {tp}; "
                                "not followed")
                continue
            pairs.append(FollowPair(by_tp[base_tp][0], by_tp[tp][0], m))
    return pairs, warnings


def _fingerprint(outdir: Path, pair: FollowPair, limit_pct: float) -> str:
    from .batch import CASES_DIR
    h = hashlib.sha256(f"{limit_pct}".encode())
    for s in (pair.baseline, pair.followup):
        h.update((Path(outdir) / CASES_DIR / s.case_id / "provenance.json").read_bytes())
    return h.hexdigest()[:16]


def run_follow_pairs(outdir: Path, pairs: list[FollowPair], force: bool = False, limit_pct: float = 25.0,
                     progress: Progress | None = None) -> tuple[list[dict], list[str]]:
    """``follow/<name>/`` for every pair; returns one state per pair (name, status, reason,
    registration) and warnings.  A pair that fails is recorded, the others go on."""
    from calcinosis.follow.pipeline import follow, write_follow_outputs

    from .batch import CASES_DIR
    states, warnings = [], []
    for n, pair in enumerate(pairs):
        report(progress, n / max(len(pairs), 1), f"following {pair.name}")
        folder = Path(outdir) / FOLLOW_DIR / pair.name
        stamp = folder / "fingerprint.txt"
        fp = _fingerprint(outdir, pair, limit_pct)
        if not force and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == fp \
                and (folder / "change_summary.csv").is_file():
            states.append({"name": pair.name, "status": "ok", "run": "kept", "pair": pair})
            continue
        b, f = pair.baseline, pair.followup
        registration = "local" if (b.image and f.image) else "none"
        try:
            result = follow(Path(outdir) / CASES_DIR / b.case_id, Path(outdir) / CASES_DIR / f.case_id,
                            b.image, f.image, registration, limit_pct)
            if registration == "none":
                result.warnings.append("not registered (a case came as a result folder, without its image): lesions "
                                       "matched where they lie in each image")
            write_follow_outputs(folder, result, force=True, case_id=b.patient_id)
            stamp.write_text(fp + "\n", encoding="utf-8")
            states.append({"name": pair.name, "status": "ok", "run": "computed", "pair": pair})
            warnings += [f"{pair.name}: {w}" for w in result.warnings]
        except InputError as e:
            states.append({"name": pair.name, "status": "failed", "reason": str(e), "pair": pair})
            warnings.append(f"{pair.name}: lesions not followed ({e})")
    report(progress, 1.0, f"{len(pairs)} follow-up(s)")
    return states, warnings


KEY_COLUMNS = [Column("patient_id", "string", "", "Patient"), Column("reader", "string", "", "Reader"),
               Column("read", "int", "", "Read number"), Column("task", "string", "", "hand, spine or measure"),
               Column("modality", "string", "", "Modality of both readings"),
               Column("baseline_time_point", "string", "", "The baseline the lesions were followed from"),
               Column("time_point", "string", "", "The follow-up time point"),
               Column("follow_folder", "string", "", "follow/<name> in the batch folder")]


def outcome_tables(outdir: Path, states: list[dict]) -> dict[str, Table]:
    """``lesion_outcomes`` and ``lesion_changes`` (see the module's text) from the pairs'
    folders; empty dict when no pair was followed."""
    ok = [s for s in states if s["status"] == "ok"]
    if not ok:
        return {}
    outcome_cols = KEY_COLUMNS + [Column("size_measure", "string", "", "The lesion column compared")]
    change_cols = list(KEY_COLUMNS)
    outcome_rows, change_rows = [], []

    def extend(columns: list[Column], more) -> None:
        have = {c.name for c in columns}
        columns += [c for c in more if c.name not in have]

    for s in ok:
        pair, folder = s["pair"], Path(outdir) / FOLLOW_DIR / s["name"]
        summary = Table.read_csv(folder / "change_summary.csv")
        changes = Table.read_csv(folder / "lesion_changes.csv")
        keys = {"patient_id": pair.baseline.patient_id, "reader": pair.baseline.reader, "read": pair.baseline.read,
                "task": pair.baseline.task, "modality": pair.modality,
                "baseline_time_point": pair.baseline.time_point, "time_point": pair.followup.time_point,
                "follow_folder": f"{FOLLOW_DIR}/{s['name']}"}
        size = changes.rows[0]["size_measure"] if len(changes) else None
        extend(outcome_cols, [c for c in summary.columns if c.name not in ("scope", "side", "digit", "level")])
        outcome_rows.append({**keys, "size_measure": size, **summary.rows[0]})
        extend(change_cols, changes.columns)
        change_rows += [{**keys, **r} for r in changes.rows]
    names = [c.name for c in outcome_cols]
    outcomes = Table(outcome_cols, [{k: r.get(k) for k in names} for r in outcome_rows], "lesion_outcomes",
                     "Per patient x reader x read x follow-up time point: lesions followed from baseline")
    cnames = [c.name for c in change_cols]
    lesion_changes = Table(change_cols, [{k: r.get(k) for k in cnames} for r in change_rows], "lesion_changes",
                           "Every lesion group of every follow-up, with its keys")
    return {"lesion_outcomes": outcomes, "lesion_changes": lesion_changes}
