"""How statistics are printed: P values, n (%), mean ± SD, and Markdown/HTML tables.

One :class:`StatsResult` per analysis holds its tables (CSV), the formatted text
(Markdown for the terminal and papers, an HTML fragment for reports), figures (PNG
bytes) and notes saying where each number came from.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Sequence

from calcinosis.core.tables import Table


def fmt_p(p: float | None) -> str:
    """P as journals print it: three decimals, '<0.001' below; '' when not computed."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def fmt_num(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def fmt_n_pct(n: int, total: int, digits: int = 1) -> str:
    if total <= 0:
        return f"{n} (-)"
    return f"{n} ({100.0 * n / total:.{digits}f})"


def fmt_mean_sd(mean: float | None, sd: float | None, digits: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{mean:.{digits}f} ± {fmt_num(sd, digits) or '-'}"


def fmt_median_iqr(median: float | None, q1: float | None, q3: float | None, digits: int = 1) -> str:
    if median is None:
        return ""
    return f"{median:.{digits}f} [{q1:.{digits}f}–{q3:.{digits}f}]"


def p_text(p: float | None) -> str:
    """P in running text: 'P = 0.032', 'P < 0.001'; '' when not computed."""
    f = fmt_p(p)
    if not f:
        return ""
    return f"P < {f[1:]}" if f.startswith("<") else f"P = {f}"


def ci_text(lo: float | None, hi: float | None, digits: int = 3) -> str:
    """' (95% CI a to b)' after an estimate; '' when the interval is not known (never '()')."""
    ci = fmt_ci(lo, hi, digits)
    return f" (95% CI {ci})" if ci else ""


def fmt_ci(lo: float | None, hi: float | None, digits: int = 3) -> str:
    if lo is None or hi is None or any(isinstance(v, float) and math.isnan(v) for v in (lo, hi)):
        return ""
    return f"{lo:.{digits}f} to {hi:.{digits}f}"


def digits_for(values: Sequence[float]) -> int:
    """Decimals that show a mean sensibly (1 for values around 1-1000, more for small ones)."""
    vals = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not vals:
        return 1
    m = max(vals)
    if m >= 1:
        return 1
    return min(4, 1 + int(math.ceil(-math.log10(m))))


# ---------------------------------------------------------------------- text tables
def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(s):
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "",
               css_class: str = "stats", row_classes: Sequence[str] | None = None,
               header_tips: Sequence[str] | None = None, first_column_tips: Sequence[str] | None = None,
               first_column_links: Sequence[str | None] | None = None) -> str:
    """An HTML table; ``header_tips`` (e.g. the column names behind human titles) and
    ``first_column_tips`` show on hover (``<abbr title=...>``); ``first_column_links``: the
    page each row's first cell links to (None: no link)."""
    def tipped(text, tip):
        if not tip or tip == text:
            return html.escape(str(text))
        return f'<abbr title="{html.escape(str(tip))}">{html.escape(str(text))}</abbr>'
    out = [f'<table class="{css_class}">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    tips = list(header_tips) if header_tips else [None] * len(header)
    out.append("<thead><tr>" + "".join(f"<th>{tipped(h, tip)}</th>" for h, tip in zip(header, tips))
               + "</tr></thead><tbody>")
    for i, r in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = [tipped(c, first_column_tips[i] if first_column_tips and j == 0 else None) for j, c in enumerate(r)]
        if first_column_links and first_column_links[i] and cells:
            cells[0] = f'<a href="{html.escape(first_column_links[i])}">{cells[0]}</a>'
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def table_text_rows(table: Table, columns: Sequence[str] | None = None, digits: int = 3) -> tuple[list[str], list[list[str]]]:
    cols = list(columns) if columns else table.column_names
    rows = []
    for r in table.rows:
        row = []
        for c in cols:
            v = r.get(c)
            spec = table.column_spec(c)
            if v is None:
                row.append("")
            elif spec.type == "double":
                row.append(fmt_num(float(v), digits))
            else:
                row.append(str(v))
        rows.append(row)
    return cols, rows


@dataclass
class StatsResult:
    """What one analysis produced."""

    name: str
    tables: dict[str, Table] = field(default_factory=dict)
    markdown: str = ""
    html: str = ""
    figures: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    plot_data: dict = field(default_factory=dict)

    def full_markdown(self) -> str:
        notes = "".join(f"\n- {n}" for n in self.notes)
        return self.markdown + (f"\nNotes:{notes}\n" if notes else "")

    def full_html(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return self.html + (f'<ul class="notes">{notes}</ul>' if notes else "")
