"""Figures for the statistics and reports, as PNG bytes (matplotlib, imported lazily).

Inside Slicer the same numbers are shown as plot chart nodes; here matplotlib (a headless
extra) draws them with the Agg backend.  :class:`FiguresUnavailable` is raised when
matplotlib is missing, and callers degrade to tables with a note.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from calcinosis.spine import anatomy as spine_anatomy
from .contract import LEVELS, SEGMENTS

#: The spine segments' colours: those of the segmentations in Slicer and of the case's level
#: chart (calcinosis.spine.anatomy), so a segment has one colour everywhere
SEGMENT_COLORS = {s: "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in rgb))
                  for s, rgb in spine_anatomy.SEGMENT_COLORS.items()}
MODALITY_COLORS = {"xr": "#4e79a7", "ct": "#e15759", "mri": "#59a14f"}


class FiguresUnavailable(RuntimeError):
    pass


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as e:  # as inside Slicer, which does not bundle matplotlib (tested)
        raise FiguresUnavailable(f"matplotlib is not installed ({e})") from None
    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.hashsalt": "calcinosis"})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def _png_image(image) -> bytes:
    """A Pillow image as PNG bytes (no metadata: the same picture gives the same bytes)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def level_segment_chart(prev_rows: Sequence[dict], title: str = "") -> bytes:
    """Study 2 Figure 3: calcifications per level, stacked by segment (left), and the share of
    patients (assessed at that level) with ≥ 1 calcification per segment as a heat map (right)."""
    plt = _plt()
    levels = [lv for lv in LEVELS if any(r["level"] == lv for r in prev_rows)]
    if not levels:
        raise ValueError("no per-level rows")
    seg = {(r["level"], r["item"]): r for r in prev_rows if r["scope"] == "level_segment"}
    tot = {r["level"]: r for r in prev_rows if r["scope"] == "level"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 0.28 * len(levels) + 1.6),
                                   gridspec_kw={"width_ratios": [1.3, 1]})
    y = np.arange(len(levels))
    left = np.zeros(len(levels))
    for s in SEGMENTS:
        vals = np.array([(seg.get((lv, s)) or {}).get("calcifications") or 0 for lv in levels], float)
        ax1.barh(y, vals, left=left, color=SEGMENT_COLORS[s], label=s, height=0.75)
        left += vals
    ax1.set_yticks(y, levels)
    ax1.invert_yaxis()
    ax1.set_xlabel("calcifications (all patients)")
    ax1.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3)
    ax1.set_title("Calcifications per level and segment")
    heat = np.array([[(seg.get((lv, s)) or {}).get("percent") or 0.0 for s in SEGMENTS] for lv in levels])
    im = ax2.imshow(heat, aspect="auto", cmap="Oranges", vmin=0, vmax=max(10.0, float(heat.max())))
    ax2.set_xticks(range(len(SEGMENTS)), SEGMENTS)
    ax2.set_yticks(y, [f"{lv} (N={tot[lv]['N']})" for lv in levels])
    for i, lv in enumerate(levels):
        for j, s in enumerate(SEGMENTS):
            r = seg.get((lv, s))
            if r:
                ax2.text(j, i, f"{r['n']}", ha="center", va="center", fontsize=7,
                         color="white" if heat[i, j] > 0.6 * max(heat.max(), 1) else "black")
    ax2.set_title("Patients with ≥1 calcification (colour: %, number: n)")
    fig.colorbar(im, ax=ax2, fraction=0.05, label="% of patients assessed at the level")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def digit_bars(digit_rows: Sequence[dict], value: str = "lesion_count", title: str = "") -> bytes:
    """Per-digit bars, one colour per modality (sum over the cohort or the case)."""
    plt = _plt()
    digits = ["thumb", "index", "middle", "ring", "little", "unassigned"]
    mods = [m for m in ("xr", "ct", "mri") if any(r.get("modality") == m for r in digit_rows)]
    if not mods:
        mods = sorted({str(r.get("modality")) for r in digit_rows})
    present = [d for d in digits if any(r["digit"] == d and (r.get(value) or 0) for r in digit_rows)] or digits[:5]
    fig, ax = plt.subplots(figsize=(6.5, 3))
    w = 0.8 / max(len(mods), 1)
    for k, m in enumerate(mods):
        vals = [sum((r.get(value) or 0) for r in digit_rows if r["digit"] == d and r.get("modality") == m) for d in present]
        ax.bar(np.arange(len(present)) + (k - (len(mods) - 1) / 2) * w, vals, width=w, label=m.upper(),
               color=MODALITY_COLORS.get(m, "#888"))
    ax.set_xticks(range(len(present)), present)
    from matplotlib.ticker import MaxNLocator
    if value.endswith("count"):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(value.replace("_", " "))
    ax.legend(frameon=False)
    ax.set_title(title or f"{value.replace('_', ' ')} per digit")
    fig.tight_layout()
    return _png(fig)


def bland_altman_plot(a: Sequence[float], b: Sequence[float], result, labels=("A", "B"), title: str = "",
                      unit: str = "") -> bytes:
    """Scatter of B vs A with the identity line (left) and Bland–Altman plot (right)."""
    plt = _plt()
    a, b = np.asarray(a, float), np.asarray(b, float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.5, 3.4))
    ax1.scatter(a, b, s=14, color="#4e79a7")
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    pad = 0.05 * (hi - lo or 1)
    ax1.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#999", lw=1, ls="--", label="identity")
    ax1.set_xlabel(f"{labels[0]}{' (' + unit + ')' if unit else ''}")
    ax1.set_ylabel(f"{labels[1]}{' (' + unit + ')' if unit else ''}")
    ax1.set_title("Readings")
    ax1.legend(frameon=False)
    m, d = (a + b) / 2, b - a
    ax2.scatter(m, d, s=14, color="#4e79a7")
    for v, ls, name in ((result.bias, "-", f"bias {result.bias:.3g}"), (result.loa_low, "--", f"{result.loa_low:.3g}"),
                        (result.loa_high, "--", f"{result.loa_high:.3g}")):
        ax2.axhline(v, color="#e15759", ls=ls, lw=1)
        ax2.text(ax2.get_xlim()[1] if False else m.max(), v, f" {name}", va="bottom", ha="right", fontsize=7, color="#e15759")
    # the 95% CIs of the bias and of each limit as shaded bands
    for lo_hi in (result.bias_ci, result.loa_low_ci, result.loa_high_ci):
        if lo_hi is not None and all(np.isfinite(lo_hi)):
            ax2.axhspan(lo_hi[0], lo_hi[1], color="#e15759", alpha=0.12, lw=0)
    ax2.axhline(0, color="#999", lw=0.8)
    ax2.set_xlabel("mean of the two readings")
    ax2.set_ylabel(f"{labels[1]} − {labels[0]}")
    ax2.set_title(f"Bland–Altman (limits: bias ± {result.multiplier:g} SD; bands: 95% CIs)")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def scatter_plot(x: Sequence[float], y: Sequence[float], xlabel: str, ylabel: str, title: str = "",
                 log: bool = False) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    ax.scatter(x, y, s=14, color="#4e79a7")
    if log:
        ax.set_xscale("symlog")
        ax.set_yscale("symlog")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


def change_plot(rows: Sequence[dict], value: str, limit_pct: float = 25.0) -> bytes:
    """Waterfall of % change per patient, coloured by class."""
    plt = _plt()
    rs = sorted([r for r in rows if r["change_class"] != "missing"],
                key=lambda r: (r["change_pct"] if r["change_pct"] is not None else 1e9))
    colors = {"progression": "#e15759", "stable": "#bab0ac", "improvement": "#59a14f"}
    fig, ax = plt.subplots(figsize=(max(4, 0.3 * len(rs) + 2), 3.2))
    vals = [r["change_pct"] if r["change_pct"] is not None else 0 for r in rs]
    ax.bar(range(len(rs)), vals, color=[colors[r["change_class"]] for r in rs])
    for i, r in enumerate(rs):
        if r["change_pct"] is None:
            ax.text(i, 0, "new", rotation=90, ha="center", va="bottom", fontsize=7)
    for v in (limit_pct, -limit_pct):
        ax.axhline(v, color="#999", ls="--", lw=0.8)
    ax.set_xticks(range(len(rs)), [r["patient_id"] for r in rs], rotation=90, fontsize=7)
    ax.set_ylabel("% change")
    ax.set_title(f"Change of {value} per patient")
    fig.tight_layout()
    return _png(fig)


def bar_counts(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str = "") -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(labels) + 1.2))
    ax.barh(range(len(labels)), values, color="#4e79a7")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    return _png(fig)
