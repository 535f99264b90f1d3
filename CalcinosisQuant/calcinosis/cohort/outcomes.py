"""Per-lesion outcomes across a cohort (issue 14, deliverable 5): what ``lesion_outcomes.csv``
(:mod:`.follow_batch`) says, per follow-up time point.

For the readings of each follow-up time point (and task and modality):

* patients with at least one new lesion, with at least one resolved lesion: n/N (%) and the
  Wilson 95% CI (:func:`.prevalence.wilson_ci`);
* new and resolved lesions per patient: median [IQR], and in total;
* every lesion group's class (grown, shrunk, stable, new, resolved): n (% of groups);
* the patient's class from the totals (progression, stable, improvement; ±limit%);
* **patients whose total is stable while their lesions changed** (a new, resolved, grown or
  shrunk lesion): what a per-patient total hides;
* the change of the total split into the matched lesions' change, the new lesions' and the
  resolved lesions': median [IQR] per patient (size unit of the follow-ups).

Functional: a table in; a :class:`~.formatting.StatsResult` out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table

from .data import apply_where, describe_source, require_column, where_text
from .formatting import StatsResult, fmt_median_iqr, fmt_n_pct, html_table, markdown_table
from .prevalence import wilson_ci

CLASSES = ("grown", "shrunk", "stable", "new", "resolved")
PATIENT_CLASSES = ("progression", "stable", "improvement")

OUTCOME_COLUMNS = [
    Column("time_point", "string", "", "Follow-up time point"),
    Column("task", "string", "", "hand, spine or measure"),
    Column("modality", "string", "", "Modality"),
    Column("size_unit", "string", "", "Unit of the size columns (mm3 or mm2)"),
    Column("patients", "int", "patients", "Readings followed (patient x reader x read)"),
    Column("patients_with_new", "int", "patients", "Patients with at least one new lesion"),
    Column("patients_with_new_pct", "double", "%", "Share of the patients"),
    Column("patients_with_new_ci_low_pct", "double", "%", "Wilson 95% CI, lower"),
    Column("patients_with_new_ci_high_pct", "double", "%", "Wilson 95% CI, upper"),
    Column("patients_with_resolved", "int", "patients", "Patients with at least one resolved lesion"),
    Column("patients_with_resolved_pct", "double", "%", "Share of the patients"),
    Column("patients_with_resolved_ci_low_pct", "double", "%", "Wilson 95% CI, lower"),
    Column("patients_with_resolved_ci_high_pct", "double", "%", "Wilson 95% CI, upper"),
    Column("new_lesions", "int", "lesions", "New lesions, all patients"),
    Column("new_per_patient_median", "double", "lesions", "New lesions per patient, median"),
    Column("resolved_lesions", "int", "lesions", "Resolved lesions, all patients"),
    Column("resolved_per_patient_median", "double", "lesions", "Resolved lesions per patient, median"),
    *[Column(f"groups_{c}", "int", "groups", f"Lesion groups classed {c}, all patients") for c in CLASSES],
    *[Column(f"patients_{c}", "int", "patients", f"Patients whose total's class is {c}") for c in PATIENT_CLASSES],
    Column("patients_stable_total_changed_lesions", "int", "patients",
           "Patients whose total is stable while a lesion is new, resolved, grown or shrunk"),
    Column("change_from_matched_median", "double", "", "Per patient: follow-up - baseline over the matched lesions, "
                                                       "median (size_unit)"),
    Column("added_by_new_median", "double", "", "Per patient: the new lesions' sum, median (size_unit)"),
    Column("lost_by_resolved_median", "double", "", "Per patient: the resolved lesions' sum, median (size_unit)"),
]


def _unit_of(table: Table) -> str:
    for u in ("mm3", "mm2"):
        if table.has_column(f"change_from_matched_{u}"):
            return u
    raise InputError(f"{table.name or 'table'}: no change_from_matched_mm3 / _mm2 column (is it lesion_outcomes.csv "
                     "of a batch?)")


def _median_iqr(values) -> tuple[float | None, float | None, float | None]:
    v = np.asarray([x for x in values if x is not None], float)
    if v.size == 0:
        return None, None, None
    return float(np.median(v)), float(np.percentile(v, 25)), float(np.percentile(v, 75))


def lesion_outcomes(table: Table, where: Sequence[str] | None = None) -> StatsResult:
    """The statistics of the module's text, one row per follow-up time point x task x
    modality."""
    src = describe_source(table, where)
    t = apply_where(table, where)
    for c in ("patient_id", "time_point", "n_new", "n_resolved", "change_class"):
        require_column(t, c, src)
    if not len(t):
        raise InputError(f"{src}: no follow-up rows (after --where)")
    rows_out, md_parts, html_parts, notes = [], [], [], []
    groups: dict[tuple, list[dict]] = {}
    for r in t.rows:
        groups.setdefault((where_text(r["time_point"]), r.get("task"), r.get("modality")), []).append(r)
    for (tp, task, modality), rows in groups.items():
        sub = Table(t.columns, rows)
        u = _unit_of(sub)
        n = len(rows)
        with_new = sum(1 for r in rows if (r["n_new"] or 0) > 0)
        with_res = sum(1 for r in rows if (r["n_resolved"] or 0) > 0)
        out = {"time_point": tp, "task": task, "modality": modality, "size_unit": u, "patients": n,
               "patients_with_new": with_new, "patients_with_resolved": with_res,
               "new_lesions": int(sum(r["n_new"] or 0 for r in rows)),
               "resolved_lesions": int(sum(r["n_resolved"] or 0 for r in rows)),
               "new_per_patient_median": _median_iqr(r["n_new"] for r in rows)[0],
               "resolved_per_patient_median": _median_iqr(r["n_resolved"] for r in rows)[0]}
        for name, k in (("new", with_new), ("resolved", with_res)):
            lo, hi = wilson_ci(k, n)
            out[f"patients_with_{name}_pct"] = 100.0 * k / n
            out[f"patients_with_{name}_ci_low_pct"] = 100.0 * lo
            out[f"patients_with_{name}_ci_high_pct"] = 100.0 * hi
        for c in CLASSES:
            out[f"groups_{c}"] = int(sum(r.get(f"n_{c}") or 0 for r in rows))
        for c in PATIENT_CLASSES:
            out[f"patients_{c}"] = sum(1 for r in rows if r["change_class"] == c)
        out["patients_stable_total_changed_lesions"] = sum(
            1 for r in rows if r["change_class"] == "stable" and any((r.get(f"n_{c}") or 0) > 0
                                                                     for c in ("new", "resolved", "grown", "shrunk")))
        for name, col in (("change_from_matched", f"change_from_matched_{u}"), ("added_by_new", f"added_by_new_{u}"),
                          ("lost_by_resolved", f"lost_by_resolved_{u}")):
            out[f"{name}_median"] = _median_iqr(r.get(col) for r in rows)[0]
        rows_out.append(out)
        unit = "mm³" if u == "mm3" else "mm²"
        lines = [
            ["Patients followed", str(n)],
            ["≥ 1 new lesion, n (%) [95% CI]", f"{fmt_n_pct(with_new, n)} [{out['patients_with_new_ci_low_pct']:.1f}–"
                                               f"{out['patients_with_new_ci_high_pct']:.1f}]"],
            ["≥ 1 resolved lesion, n (%) [95% CI]", f"{fmt_n_pct(with_res, n)} [{out['patients_with_resolved_ci_low_pct']:.1f}"
                                                    f"–{out['patients_with_resolved_ci_high_pct']:.1f}]"],
            ["New lesions per patient, median [IQR] (total)",
             f"{fmt_median_iqr(*_median_iqr(r['n_new'] for r in rows))} ({out['new_lesions']})"],
            ["Resolved lesions per patient, median [IQR] (total)",
             f"{fmt_median_iqr(*_median_iqr(r['n_resolved'] for r in rows))} ({out['resolved_lesions']})"],
            *[[f"Lesion groups {c}, n (% of groups)", fmt_n_pct(out[f"groups_{c}"], max(sum(out[f"groups_{x}"]
                                                                                           for x in CLASSES), 1))]
              for c in CLASSES],
            *[[f"Patients, total {c}, n (%)", fmt_n_pct(out[f"patients_{c}"], n)] for c in PATIENT_CLASSES],
            ["Total stable while lesions changed, n (%)", fmt_n_pct(out["patients_stable_total_changed_lesions"], n)],
            [f"Change of matched lesions per patient, median [IQR] ({unit})",
             fmt_median_iqr(*_median_iqr(r.get(f"change_from_matched_{u}") for r in rows))],
            [f"Added by new lesions per patient, median [IQR] ({unit})",
             fmt_median_iqr(*_median_iqr(r.get(f"added_by_new_{u}") for r in rows))],
            [f"Lost by resolved lesions per patient, median [IQR] ({unit})",
             fmt_median_iqr(*_median_iqr(r.get(f"lost_by_resolved_{u}") for r in rows))],
        ]
        title = f"Lesions followed to {tp}" + (f" ({task}, {modality})" if task or modality else "")
        md_parts.append(f"### {title}\n\n" + markdown_table(["Outcome", "Value"], lines))
        html_parts.append(f"<h3>{title}</h3>" + html_table(["Outcome", "Value"], lines))
    notes.append(f"Source: {src}; one row per patient × reader × read × follow-up time point. Lesion classes: grown "
                 "or shrunk beyond the follow-up's limit (±25% unless set), new (follow-up only), resolved "
                 "(baseline only); CI: Wilson score.")
    result_table = Table(OUTCOME_COLUMNS, rows_out, "lesion_outcomes_summary",
                         "Per-lesion outcomes per follow-up time point")
    return StatsResult("outcomes", {"outcomes": result_table}, "\n".join(md_parts), "".join(html_parts), notes=notes,
                       parameters={"where": list(where or [])},
                       summary={"time_points": [r["time_point"] for r in rows_out],
                                "patients": sum(r["patients"] for r in rows_out)})
