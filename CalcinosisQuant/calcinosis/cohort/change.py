"""Change of total calcinosis between two time points (per patient).

% change = 100 × (follow-up − baseline) / baseline, classed as **progression** (> +25%),
**stable** (−25% … +25%, both limits included) or **improvement** (< −25%) (Valenzuela et
al. 2022's radiographic classes; the limit is a parameter) - :func:`calcinosis.core.change.classify_change`.

A **zero baseline** has no percentage: 0 → 0 is *stable* (0%); 0 → anything above 0 is
*progression* (new calcinosis) with the % change left empty and a note on the row.
A missing value at either time point gives the class *missing*.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from calcinosis.core.change import CLASSES, classify_change  # noqa: F401 (re-exported)
from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table
from .data import apply_where, describe_source, is_blank, numeric, require_column, where_text
from .formatting import StatsResult, fmt_n_pct, fmt_num, html_table, markdown_table


def change_table(table: Table, value: str, *, baseline: str | None = None, followup: str | None = None,
                 time_column: str = "time_point", id_column: str = "patient_id", limit_pct: float = 25.0,
                 where: Sequence[str] | None = None) -> StatsResult:
    src = describe_source(table, where)
    table = apply_where(table, where)
    for c in (value, time_column, id_column):
        require_column(table, c)
    vals = numeric(table, value)
    times = sorted({where_text(r[time_column]) for r in table.rows if not is_blank(r[time_column])})
    if baseline is None or followup is None:
        if len(times) == 2 and "baseline" in times:
            baseline = baseline or "baseline"
            followup = followup or next(t for t in times if t != "baseline")
        elif len(times) == 2 and baseline:
            followup = followup or next(t for t in times if t != baseline)
        else:
            raise InputError(f"column {time_column!r} has time points {times}: say which with --baseline and --followup")
    if baseline == followup:
        raise InputError(f"--baseline and --followup are both {baseline!r}: change needs two different time points")
    if not (limit_pct > 0 and limit_pct < float("inf")):
        raise InputError(f"--limit: expected a positive percentage, got {limit_pct!r}")
    for t in (baseline, followup):
        if t not in times:
            raise InputError(f"--baseline/--followup: {t!r} is not a value of {time_column!r} (values: {', '.join(times)})")
    per: dict[str, dict[str, tuple[int, float | None]]] = {}
    for i, r in enumerate(table.rows):
        tp = where_text(r[time_column])
        if tp not in (baseline, followup):
            continue
        pid = where_text(r[id_column])
        slot = per.setdefault(pid, {})
        if tp in slot:
            raise InputError(f"{table.name or 'table'}, row {i + 2}: patient {pid!r} has two rows at time point {tp!r} "
                             f"(also row {slot[tp][0] + 2}); choose one reader/read with --where")
        slot[tp] = (i, vals[i])
    rows = []
    for pid in sorted(per, key=_natural):
        b = per[pid].get(baseline, (None, None))[1]
        f = per[pid].get(followup, (None, None))[1]
        pct, cls, note = classify_change(b, f, limit_pct)
        rows.append({"patient_id": pid, "baseline": b, "followup": f,
                     "change": (f - b) if b is not None and f is not None else None, "change_pct": pct,
                     "change_class": cls, "note": note})
    paired = [r for r in rows if r["change_class"] != "missing"]
    if len(paired) < 2:
        raise InputError(f"{src}: {len(paired)} patient(s) with {value} at both {baseline!r} and {followup!r}; at least 2 "
                         f"are needed")
    unit = value.rsplit("_", 1)[-1] if value.endswith(("_mm2", "_mm3")) else ""
    cols = [Column("patient_id", "string", "", "Patient"),
            Column("baseline", "double", unit, f"{value} at {baseline}"),
            Column("followup", "double", unit, f"{value} at {followup}"),
            Column("change", "double", unit, "Follow-up − baseline"),
            Column("change_pct", "double", "%", "100 × (follow-up − baseline) / baseline (empty when baseline is 0)"),
            Column("change_class", "string", "", f"progression (> +{limit_pct:g}%), stable, improvement (< −{limit_pct:g}%), missing"),
            Column("note", "string", "", "Why a row has no % or no class")]
    t = Table(cols, rows, "change", f"Change of {value} from {baseline} to {followup} ({src})")
    counts = {c: sum(1 for r in paired if r["change_class"] == c) for c in CLASSES}
    summary_rows = [[c, fmt_n_pct(counts[c], len(paired))] for c in CLASSES]
    pcts = [r["change_pct"] for r in paired if r["change_pct"] is not None]
    med = float(np.median(pcts)) if pcts else None
    header = ["Patient", f"{baseline}", f"{followup}", "Change", "Change %", "Class"]
    text = [[r["patient_id"], fmt_num(r["baseline"]), fmt_num(r["followup"]), fmt_num(r["change"]),
             fmt_num(r["change_pct"]), r["change_class"]] for r in rows]
    md = (f"### Change of {value}: {baseline} → {followup}\n\n" + markdown_table(["Class", "n (%)"], summary_rows)
          + "\n" + markdown_table(header, text))
    ht = (f"<h3>Change of {value}: {baseline} → {followup}</h3>" + html_table(["Class", "n (%)"], summary_rows)
          + html_table(header, text))
    notes = [f"Source: {src}; {len(paired)} patients with both time points; median change "
             f"{fmt_num(med)}%." if med is not None else f"Source: {src}.",
             f"Classes: progression > +{limit_pct:g}%, stable −{limit_pct:g}% to +{limit_pct:g}% (limits included), "
             f"improvement < −{limit_pct:g}%. Baseline 0: 0 → 0 is stable; 0 → >0 is progression (no % defined)."]
    missing = [r["patient_id"] for r in rows if r["change_class"] == "missing"]
    if missing:
        notes.append(f"{len(missing)} patient(s) without both time points: {', '.join(missing[:10])}")
    return StatsResult("change", {"change": t}, md, ht, notes=notes,
                       parameters={"value": value, "baseline": baseline, "followup": followup,
                                   "time_column": time_column, "limit_pct": limit_pct, "where": list(where or [])},
                       summary={"counts": counts, "n": len(paired), "median_change_pct": med})


def _natural(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)
