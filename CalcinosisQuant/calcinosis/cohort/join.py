"""Cohort tables from the per-case summary files (the shared table contract).

``patients.csv`` has one row per patient × reader × read × time point:

* ``n_cases``, ``n_failed``: cases of that reading in the manifest, and how many failed;
* per hand modality ``m`` in xr/ct/mri (hand cases, from ``hand.csv``, summed over the
  hands of the reading): ``hand_m_hands``, ``hand_m_lesion_count``, totals and largest
  (``total_area_mm2`` for XR, ``total_volume_mm3`` and ``total_projected_area_mm2`` for
  CT/MRI), ``hand_m_n_subcutaneous``, ``hand_m_n_periarticular``, the zone counts,
  ``hand_m_digits_affected`` and the patient-level findings ``hand_m_any_calcinosis``
  (≥ 1 subcutaneous deposit), ``hand_m_any_periarticular``, ``hand_m_any_lesion`` (0/1);
* spine (from ``patient.csv``): every contract column prefixed ``spine_``;
* measure cases per modality: ``measure_m_lesion_count``, ``measure_m_total_volume_mm3`` /
  ``total_area_mm2``, ``measure_m_largest_…``;
* the clinical columns (``--clinical``), joined on ``patient_id``.

Beside it, the per-case tables stacked with the reading keys: ``hands.csv`` (hand.csv
rows), ``digits.csv``, ``levels.csv`` and ``lesions.csv`` (all lesions, union of columns).
A case that failed contributes nothing but is counted in ``n_failed``; a case whose files
break the contract is marked failed in ``cases.csv`` with the reason.
"""

from __future__ import annotations

import math
from pathlib import Path

from calcinosis.core.errors import InputError
from calcinosis.core.output import OutputTransaction
from calcinosis.core.provenance import build_record
from calcinosis.core.tables import Column, Table
from calcinosis import tasks
from calcinosis.tasks import ContractError

from .contract import DIGIT_COLUMNS, HAND_COLUMNS, LEVEL_COLUMNS, MODALITY_KEYS, level_index, modality_key
from .manifest import CaseSpec

KEY_SPEC = [Column("patient_id", "string", "", "Pseudonymous patient id"),
            Column("reader", "string", "", "Reader"),
            Column("read", "int", "", "Read number (1, 2, ... for repeated reads by the same reader)"),
            Column("time_point", "string", "", "Time point (e.g. baseline, M12)")]

HAND_SUM = ("lesion_count", "total_area_mm2", "total_volume_mm3", "total_projected_area_mm2", "n_subcutaneous",
            "n_periarticular", "zone_distal_phalanx_count", "zone_dip_count", "zone_pip_count", "zone_mcp_count",
            "zone_wrist_count", "zone_other_count", "digits_affected")
HAND_MAX = ("largest_area_mm2", "largest_volume_mm3")
_UNIT = {"mm2": "mm2", "mm3": "mm3"}


def _unit(name: str) -> str:
    for suf in ("_mm2", "_mm3"):
        if name.endswith(suf):
            return suf[1:]
    return ""


def _f(v) -> float | None:
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def read_clinical(path: str | Path) -> Table:
    t = Table.read_csv(path)
    if not t.has_column("patient_id"):
        raise InputError(f"{path}: the clinical table needs a patient_id column")
    seen = {}
    for i, r in enumerate(t.rows):
        pid = str(r["patient_id"]) if r["patient_id"] is not None else ""
        if not pid:
            raise InputError(f"{path}, row {i + 2}, column patient_id: empty")
        if pid in seen:
            raise InputError(f"{path}, row {i + 2}: patient_id {pid!r} also on row {seen[pid] + 2}")
        seen[pid] = i
    t.name = str(path)
    return t


def build_cohort_tables(outdir: Path, specs: list[CaseSpec], states: dict, clinical: Table | None = None):
    """Read every ok case's summary files; returns ({name: Table}, warnings)."""
    from .batch import CASES_DIR
    warnings: list[str] = []
    readings: dict[tuple, dict] = {}
    hands_rows, digit_rows, level_rows, lesion_rows = [], [], [], []
    lesion_cols: dict[str, Column] = {}
    hand_mods, measure_mods = set(), {}
    spine_cols: list[Column] = []
    for s in specs:
        key = (s.patient_id, s.reader, s.read, s.time_point)
        rd = readings.setdefault(key, {"n_cases": 0, "n_failed": 0, "cases": [], "hand": {}, "spine": None, "measure": {}})
        rd["n_cases"] += 1
        rd["cases"].append(s.case_id)
        st = states.get(s.case_id)
        if st is None or st.status != "ok":
            rd["n_failed"] += 1
            continue
        cdir = outdir / CASES_DIR / s.case_id
        keyd = {"patient_id": s.patient_id, "reader": s.reader, "read": s.read, "time_point": s.time_point,
                "case_id": s.case_id}
        try:
            summary = tasks.get(s.task).summarise(cdir, s.case_id)
            if s.task == "hand":
                for r in summary["hands"].rows:
                    m = modality_key(r["modality"]) or s.modality
                    if m is None:
                        raise ContractError(f"case {s.case_id}: hand.csv modality {r['modality']!r} is not XR, CT or MR")
                    hand_mods.add(m)
                    acc = rd["hand"].setdefault(m, {"hands": 0})
                    acc["hands"] += 1
                    for c in HAND_SUM:
                        v = _f(r[c])
                        if v is not None:
                            acc[c] = acc.get(c, 0.0) + v
                    for c in HAND_MAX:
                        v = _f(r[c])
                        if v is not None:
                            acc[c] = max(acc.get(c, 0.0), v)
                    hands_rows.append({**keyd, **{c: r[c] for c in HAND_COLUMNS}, "modality": m})
                if summary["digits"] is not None:
                    for r in summary["digits"].rows:
                        digit_rows.append({**keyd, **{c: r[c] for c in DIGIT_COLUMNS},
                                           "modality": modality_key(r["modality"]) or s.modality})
                else:
                    warnings.append(f"case {s.case_id}: no digits.csv")
            elif s.task == "spine":
                pt = summary["patient"]
                if not spine_cols:
                    spine_cols = [Column(f"spine_{c.name}", c.type if c.name not in ("coverage", "first_level_assessed",
                                                                                       "last_level_assessed") else "string",
                                         c.unit, c.description or f"Spine: {c.name}") for c in pt.columns]
                rd["spine"] = pt.rows[0]
                for r in summary["levels"].rows:
                    level_rows.append({**keyd, **{c: r[c] for c in LEVEL_COLUMNS}})
            else:
                lt = summary["lesions"]
                m = s.modality or modality_key(summary["modality"]) or "unknown"
                col = "volume_mm3" if lt.has_column("volume_mm3") else ("area_mm2" if lt.has_column("area_mm2") else None)
                vals = [_f(v) or 0.0 for v in lt.column(col)] if col else []
                acc = rd["measure"].setdefault(m, {"lesion_count": 0, "total": 0.0, "largest": 0.0, "col": col})
                acc["lesion_count"] += len(lt.rows)
                acc["total"] += sum(vals)
                acc["largest"] = max([acc["largest"]] + vals)
                measure_mods.setdefault(m, set()).add(col)
            # every lesion, with its keys
            lp = cdir / "lesions.csv"
            if lp.is_file():
                lt = Table.read_csv(lp)
                for c in lt.columns:
                    lesion_cols.setdefault(c.name, c)
                for r in lt.rows:
                    lesion_rows.append({**r, **keyd, "task": s.task})
        except InputError as e:
            st.status, st.reason = "failed", str(e)
            rd["n_failed"] += 1
            warnings.append(str(e))
    # ------------------------------------------------------------ patients.csv
    cols = list(KEY_SPEC) + [Column("n_cases", "int", "", "Cases of this reading in the manifest"),
                             Column("n_failed", "int", "", "Of which failed (their numbers are missing)"),
                             Column("cases", "string", "", "Case ids of this reading (;-separated)")]
    for m in MODALITY_KEYS:
        if m not in hand_mods:
            continue
        M = m.upper()
        cols.append(Column(f"hand_{m}_hands", "int", "", f"Hands read on {M}"))
        cols.append(Column(f"hand_{m}_lesion_count", "int", "", f"Lesions on {M} (all hands of the reading)"))
        if m == "xr":
            cols += [Column("hand_xr_total_area_mm2", "double", "mm2", "Total lesion area on the radiograph(s)"),
                     Column("hand_xr_largest_area_mm2", "double", "mm2", "Largest lesion area")]
        else:
            cols += [Column(f"hand_{m}_total_volume_mm3", "double", "mm3", f"Total lesion volume on {M}"),
                     Column(f"hand_{m}_largest_volume_mm3", "double", "mm3", "Largest lesion volume"),
                     Column(f"hand_{m}_total_projected_area_mm2", "double", "mm2",
                            f"Total area of the lesions projected on the coronal (PA) plane, {M}")]
        cols += [Column(f"hand_{m}_n_subcutaneous", "int", "", "Subcutaneous lesions (calcinosis)"),
                 Column(f"hand_{m}_n_periarticular", "int", "", "Periarticular lesions")]
        for z in ("distal_phalanx", "dip", "pip", "mcp", "wrist", "other"):
            cols.append(Column(f"hand_{m}_zone_{z}_count", "int", "", f"Lesions in zone {z}"))
        cols += [Column(f"hand_{m}_digits_affected", "int", "", "Digits with >= 1 lesion (summed over hands)"),
                 Column(f"hand_{m}_any_calcinosis", "int", "", "1 if >= 1 subcutaneous lesion (study 2 'calcinosis')"),
                 Column(f"hand_{m}_any_periarticular", "int", "", "1 if >= 1 periarticular lesion"),
                 Column(f"hand_{m}_any_lesion", "int", "", "1 if >= 1 lesion")]
    cols += spine_cols
    for m in sorted(measure_mods):
        kinds = measure_mods[m]
        cols.append(Column(f"measure_{m}_lesion_count", "int", "", f"Lesions found by measure ({m})"))
        for kind in sorted(k for k in kinds if k):
            u = _unit(kind)
            base = kind.rsplit("_", 1)[0]
            cols += [Column(f"measure_{m}_total_{kind}", "double", u, f"Total lesion {base} ({m})"),
                     Column(f"measure_{m}_largest_{kind}", "double", u, f"Largest lesion {base} ({m})")]
    clin_cols = []
    if clinical is not None:
        names = {c.name for c in cols}
        for c in clinical.columns:
            if c.name == "patient_id":
                continue
            if c.name in names:
                raise InputError(f"{clinical.name}: clinical column {c.name!r} clashes with a cohort column; rename it")
            clin_cols.append(c)
        cols += clin_cols
        known = {k[0] for k in readings}
        extra = [str(r["patient_id"]) for r in clinical.rows if str(r["patient_id"]) not in known]
        if extra:
            warnings.append(f"clinical table: {len(extra)} patient(s) not in the manifest ignored ({', '.join(extra[:5])})")
        clin = {str(r["patient_id"]): r for r in clinical.rows}
        lacking = sorted({k[0] for k in readings if k[0] not in clin})
        if lacking:
            warnings.append(f"clinical table: no row for {len(lacking)} patient(s) ({', '.join(lacking[:5])})")
    else:
        clin = {}
    names = [c.name for c in cols]
    prow = []
    for key in sorted(readings, key=lambda k: (k[0], k[1], k[2], k[3])):
        rd = readings[key]
        row = {"patient_id": key[0], "reader": key[1], "read": key[2], "time_point": key[3], "n_cases": rd["n_cases"],
               "n_failed": rd["n_failed"], "cases": ";".join(rd["cases"])}
        for m, acc in rd["hand"].items():
            row[f"hand_{m}_hands"] = acc["hands"]
            for c in HAND_SUM + HAND_MAX:
                name = f"hand_{m}_{c}"
                if c.startswith("zone_"):
                    name = f"hand_{m}_{c}"
                if name in names and c in acc:
                    row[name] = acc[c]
            row[f"hand_{m}_any_calcinosis"] = int(acc.get("n_subcutaneous", 0) > 0)
            row[f"hand_{m}_any_periarticular"] = int(acc.get("n_periarticular", 0) > 0)
            row[f"hand_{m}_any_lesion"] = int(acc.get("lesion_count", 0) > 0)
        if rd["spine"] is not None:
            for c, v in rd["spine"].items():
                row[f"spine_{c}"] = v
        for m, acc in rd["measure"].items():
            row[f"measure_{m}_lesion_count"] = acc["lesion_count"]
            if acc["col"]:
                row[f"measure_{m}_total_{acc['col']}"] = acc["total"]
                row[f"measure_{m}_largest_{acc['col']}"] = acc["largest"] if acc["lesion_count"] else None
        if key[0] in clin:
            for c in clin_cols:
                row[c.name] = clin[key[0]][c.name]
        for k in list(row):
            if k not in names:
                row.pop(k)
            elif isinstance(row[k], float) and cols[names.index(k)].type == "int":
                row[k] = int(round(row[k]))
        prow.append(row)
    patients = Table(cols, prow, "patients", "One row per patient x reader x read x time point, joining the case summaries")
    keyc = list(KEY_SPEC) + [Column("case_id", "string", "", "Case the row comes from")]
    hands = Table(keyc + [Column(c, "int" if c in ("lesion_count",) or c.endswith("_count") or c.startswith("n_")
                                 or c == "digits_affected" else ("string" if c in ("side", "modality") else "double"),
                                 _unit(c), f"hand.csv: {c}") for c in HAND_COLUMNS],
                  sorted(hands_rows, key=_rowkey), "hands", "hand.csv of every hand case, with the reading keys "
                  "(modality as xr|ct|mri)")
    digits = Table(keyc + [Column(c, "int" if c == "lesion_count" else ("string" if c in ("side", "digit", "modality")
                                                                          else "double"), _unit(c), f"digits.csv: {c}")
                           for c in DIGIT_COLUMNS], sorted(digit_rows, key=_rowkey), "digits",
                   "digits.csv of every hand case, with the reading keys")
    levels = Table(keyc + [Column(c, "string" if c in ("level", "status") else "int", "", f"levels.csv: {c}")
                           for c in LEVEL_COLUMNS],
                   sorted(level_rows, key=lambda r: _rowkey(r) + (level_index(r["level"]),)), "levels",
                   "levels.csv of every spine case, with the reading keys")
    lcols = keyc + [Column("task", "string", "", "hand | spine | measure")] + [
        c for n, c in lesion_cols.items() if n not in {k.name for k in keyc} | {"task"}]
    lesions = Table(lcols, [{k: r.get(k) for k in (c.name for c in lcols)} for r in sorted(lesion_rows, key=_rowkey)],
                    "lesions", "Every lesion of every case, with the reading keys")
    cases = cases_table(specs, states)
    return {"patients": patients, "hands": hands, "digits": digits, "levels": levels, "lesions": lesions,
            "cases": cases}, warnings


def _rowkey(r: dict) -> tuple:
    return (str(r["patient_id"]), str(r["reader"]), int(r["read"]), str(r["time_point"]), str(r["case_id"]),
            str(r.get("side", "")), str(r.get("digit", "")), str(r.get("modality", "")))


CASE_COLUMNS = [
    Column("case_id", "string", "", "Case (manifest)"), Column("row", "int", "", "Manifest line"),
    Column("patient_id", "string", "", "Patient"), Column("reader", "string", "", "Reader"),
    Column("read", "int", "", "Read number"), Column("time_point", "string", "", "Time point"),
    Column("task", "string", "", "hand | spine | measure"), Column("modality", "string", "", "xr | ct | mri (manifest)"),
    Column("status", "string", "", "ok | failed"), Column("reason", "string", "", "Why the case failed"),
    Column("run", "string", "", "computed | kept (done before, skipped) | imported | recovered | not run"),
    Column("duration_s", "double", "s", "Time the case took"), Column("finished_utc", "string", "", "When it ended"),
    Column("parameters", "string", "", "Parameters from the manifest row"),
    Column("command", "string", "", "Command that reruns the case into its folder (input paths shown as <column> and the folder as <case folder> unless --record-paths: then it runs as written)"),
    Column("warnings", "string", "", "Warnings of the run (;-separated)"),
    Column("fingerprint", "string", "", "Identity of the row and its input files (a change re-runs the case)"),
]


def cases_table(specs: list[CaseSpec], states: dict) -> Table:
    rows = []
    for s in specs:
        st = states.get(s.case_id)
        rows.append({"case_id": s.case_id, "row": s.row, "patient_id": s.patient_id, "reader": s.reader, "read": s.read,
                     "time_point": s.time_point, "task": s.task, "modality": s.modality,
                     "status": st.status if st else "failed", "reason": st.reason if st else "not run",
                     "run": st.run if st else "not run", "duration_s": st.duration_s if st else None,
                     "finished_utc": st.finished_utc if st else "",
                     "parameters": "; ".join(f"{k}={v}" for k, v in s.parameters().items()),
                     "command": st.command if st else "", "warnings": "; ".join(st.warnings) if st else "",
                     "fingerprint": s.fingerprint})
    return Table(CASE_COLUMNS, rows, "cases", "One row per manifest row: what ran and how it ended")


def write_cohort_tables(outdir: Path, tables: dict, specs, states, warnings, manifest, clinical, workers, scheduler,
                        record_paths: bool) -> None:
    from calcinosis.core.dicom_meta import file_content_id
    with OutputTransaction(outdir, force=True) as out:
        for name in ("cases", "patients", "hands", "digits", "levels", "lesions", "lesion_outcomes", "lesion_changes"):
            if name in tables:
                out.write_table(tables[name], f"{name}.csv")
        n_ok = sum(1 for s in specs if states[s.case_id].status == "ok")
        inputs = {"manifest": {"input_id": file_content_id([Path(manifest)]),
                               **({"path": str(manifest)} if record_paths else {})}}
        if clinical is not None:
            inputs["clinical"] = {"input_id": file_content_id([Path(clinical)]),
                                  **({"path": str(clinical)} if record_paths else {})}
        out.write_workbook()
        record = build_record("batch", inputs, {"workers": workers, "scheduler": scheduler,
                                                "record_paths": record_paths},
                              {"cases": len(specs), "ok": n_ok, "failed": len(specs) - n_ok,
                               "readings": len(tables["patients"]),
                               "case_provenance": "cases/<case_id>/provenance.json"},
                              warnings, outputs=out.written + ["provenance.json"])
        out.write_json(record, "provenance.json")
