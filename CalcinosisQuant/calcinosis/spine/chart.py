"""The level x segment chart (study 2, Figure 3 style): calcifications per
disco-vertebral level, one bar per segment, levels not assessed shaded and marked.

matplotlib is imported only here, when a chart is drawn (it is a headless/test extra;
inside Slicer the panel shows the same data as a plot chart node).
"""

from __future__ import annotations

from pathlib import Path

from calcinosis.core.tables import Table

from .anatomy import SEGMENT_COLORS, SEGMENTS


def chart_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def draw_level_chart(levels: Table, path: str | Path, title: str = "Spinal calcifications per level",
                     dpi: int = 120) -> Path:
    """Grouped bars (anterior / intracanal / posterior) per level from a levels table."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend change

    path = Path(path)
    names = levels.column("level")
    status = levels.column("status")
    fig = Figure(figsize=(11, 4.2), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.26
    ymax = 1
    for s_no, seg in enumerate(SEGMENTS):
        vals = [v or 0 for v in levels.column(f"count_{seg}")]
        ymax = max(ymax, max(vals) if vals else 0)
        xs = [k + (s_no - 1) * width for k in range(len(names))]
        ax.bar(xs, vals, width=width, color=SEGMENT_COLORS[seg], label=seg, edgecolor="black", linewidth=0.4)
    for k, st in enumerate(status):
        if st != "assessed":
            ax.axvspan(k - 0.5, k + 0.5, color="0.88", zorder=0, linewidth=0)
            ax.text(k, 0.02, "n.a.", rotation=90, ha="center", va="bottom", fontsize=7, color="0.35",
                    transform=ax.get_xaxis_transform())
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(0, ymax * 1.15 + 0.5)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("calcifications")
    ax.set_xlabel("disco-vertebral level (n.a. = not assessed: outside the scan)")
    ax.set_title(title)
    ax.legend(frameon=False, ncol=3, fontsize=8, loc="upper right")
    # fixed margins (the labels are the same on every chart): tight_layout would lay the
    # figure out by drawing it once more, half the chart's time
    fig.subplots_adjust(left=0.06, right=0.99, top=0.92, bottom=0.25)
    fig.savefig(str(path), format="png")
    return path
