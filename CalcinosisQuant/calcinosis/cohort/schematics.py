"""Pictures of one patient for the case reports: where each finding is, at a glance.

* :func:`spine_schematic` — a sagittal schematic of the spine C7 … S1 (anterior on the left,
  as a sagittal CT is shown): vertebral bodies and discs, the canal, the posterior elements;
  every calcification drawn at its disco-vertebral level and at its segment (and sub-site when
  known), its pattern by symbol, levels outside the scan greyed.
* :func:`hand_schematic` — a PA schematic of each hand (as the radiograph is shown: the right
  hand's thumb on the left of the picture), every lesion drawn at its digit and zone, its
  area drawn in proportion to its size (mm² or mm³), colour by kind.

Both are drawings of the table rows (``lesions.csv``, ``levels.csv``), not of the image: a
reader checks the assignment against the slice views below them in the report.
"""

from __future__ import annotations

import math
from typing import Sequence

from .contract import LEVELS, SEGMENTS
from .figures import SEGMENT_COLORS, _plt, _png

# ---------------------------------------------------------------------- spine
#: x of each sub-site in the sagittal schematic (anterior on the left)
SUBSITE_X = {"anterior_longitudinal_ligament": 0.15, "intervertebral_disc": 1.0,
             "posterior_longitudinal_ligament": 1.85, "intracanal": 2.5, "foraminal": 2.85,
             "costotransverse": 3.45, "transverse_process": 3.9, "facet_joint": 3.2, "interspinous": 4.45}
SEGMENT_X = {"anterior": 1.0, "intracanal": 2.5, "posterior": 3.9}
SEGMENT_SPAN = {"anterior": (0.0, 2.0), "intracanal": (2.0, 3.0), "posterior": (3.0, 4.8)}
PATTERN_MARKER = {"punctate": ("o", 7), "linear": ("|", 14), "pseudotumoral": ("*", 15)}
UNKNOWN_PATTERN_MARKER = ("X", 7)


def _jitter(k: int, n: int, radius: float) -> tuple[float, float]:
    """Offsets that spread ``n`` markers of one cell on a small sunflower (golden angle)."""
    if n <= 1:
        return 0.0, 0.0
    r = radius * math.sqrt((k + 0.5) / n)
    a = k * 2.39996323
    return r * math.cos(a), r * math.sin(a)


def spine_positions(lesion_rows: Sequence[dict]) -> list[tuple[dict, float, float]]:
    """(row, x, y) of every calcification with a level and a segment: y = the level's index in
    C7-T1 … L5-S1 (down the spine), x = its sub-site's (or segment's) place, anterior first;
    several in one place spread on a small sunflower."""
    cells: dict[tuple, list[dict]] = {}
    for r in lesion_rows:
        if r.get("level") in LEVELS and r.get("segment") in SEGMENTS:
            x = SUBSITE_X.get(r.get("subsite") or "", SEGMENT_X[r["segment"]])
            cells.setdefault((r["level"], x), []).append(r)
    out = []
    for (lv, x), rows in cells.items():
        for k, r in enumerate(rows):
            dx, dy = _jitter(k, len(rows), 0.28)
            out.append((r, x + dx, LEVELS.index(lv) + dy))
    return out


def spine_schematic(lesion_rows: Sequence[dict], level_rows: Sequence[dict], title: str = "") -> bytes:
    """PNG: the sagittal schematic of one patient's spine with its calcifications."""
    plt = _plt()
    from matplotlib.patches import FancyBboxPatch, Rectangle
    levels = list(LEVELS)
    status = {r["level"]: r.get("status") for r in level_rows}
    n = len(levels)
    fig, ax = plt.subplots(figsize=(5.2, 0.36 * n + 1.4))
    # vertebrae: body k between levels k-1 and k (C7 above C7-T1 … S1 below L5-S1)
    names = [lv.split("-")[0] for lv in levels] + [levels[-1].split("-")[1]]
    for k, name in enumerate(names):
        y = k - 0.5                                  # level k sits at y = k; vertebra k between
        ax.add_patch(FancyBboxPatch((0.3, y - 0.34), 1.4, 0.68, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    fc="#ece7df", ec="#8a8072", lw=0.8, zorder=1))
        ax.add_patch(FancyBboxPatch((3.15, y - 0.22), 1.3, 0.44, boxstyle="round,pad=0.02,rounding_size=0.1",
                                    fc="#ece7df", ec="#8a8072", lw=0.6, zorder=1))
        ax.text(-0.15, y, name, ha="right", va="center", fontsize=7, color="#6b6257")
    for k in range(n):
        ax.add_patch(Rectangle((0.35, k - 0.12), 1.3, 0.24, fc="#cfe0ee", ec="none", zorder=1))   # disc
    ax.add_patch(Rectangle((2.05, -1.0), 0.9, n + 1.0, fc="#f3f0fa", ec="#c9c2e0", lw=0.6, zorder=0))  # canal
    for k, lv in enumerate(levels):
        if status.get(lv) not in (None, "assessed"):
            ax.add_patch(Rectangle((0.0, k - 0.5), 4.8, 1.0, fc="#d9d9d9", ec="none", alpha=0.7, hatch="///",
                                   zorder=3))
    # calcifications, spread within their cell
    placed = spine_positions(lesion_rows)
    styles: dict = {}     # one line of markers per pattern and segment (one artist each: quick to draw)
    for r, x, y in placed:
        styles.setdefault((r.get("pattern") or "", r["segment"]), []).append((x, y))
    for (pattern, segment), xy in styles.items():
        marker, size = PATTERN_MARKER.get(pattern, UNKNOWN_PATTERN_MARKER)
        xs, ys = zip(*xy)
        ax.plot(xs, ys, marker=marker, ms=size, mew=2.2 if marker == "|" else 0.8,
                mfc=SEGMENT_COLORS[segment], mec="black" if marker != "|" else SEGMENT_COLORS[segment],
                ls="none", zorder=5)
    ax.set_yticks(range(n), levels, fontsize=7)
    ax.yaxis.tick_right()
    ax.set_ylim(n - 0.2, -1.0)
    ax.set_xlim(-0.6, 4.9)
    ax.set_xticks([sum(SEGMENT_SPAN[s]) / 2 for s in SEGMENTS], SEGMENTS, fontsize=8)
    for s in SEGMENTS[1:]:
        ax.axvline(SEGMENT_SPAN[s][0], color="#bbbbbb", lw=0.6, ls=":", zorder=2)
    for side in ("left", "top", "right"):
        ax.spines[side].set_visible(False)
    handles = [ax.plot([], [], marker=m, ms=s, ls="none", mfc="#777", mec="#777" if m == "|" else "black",
                       mew=2.2 if m == "|" else 0.8, label=p)[0] for p, (m, s) in PATTERN_MARKER.items()]
    handles += [Rectangle((0, 0), 1, 1, fc="#d9d9d9", hatch="///", label="not in the scan")]
    ax.legend(handles=handles, frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.45, -0.04), ncol=4)
    ax.set_title(title or f"Sagittal schematic, anterior on the left: {len(placed)} calcification(s)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------- hands
#: y of each zone along a finger and along the thumb (tip at the top)
FINGER_ZONE_Y = {"distal_phalanx": 9.2, "DIP": 8.3, "PIP": 6.6, "MCP": 4.4, "wrist": 1.2}
THUMB_ZONE_Y = {"distal_phalanx": 6.4, "DIP": 5.5, "PIP": 5.5, "MCP": 4.0, "wrist": 1.9}
#: x of each digit for a right hand seen PA (thumb on the left of the picture)
DIGIT_X_RIGHT = {"thumb": 0.0, "index": 1.5, "middle": 2.6, "ring": 3.7, "little": 4.7}
FINGER_TOP = {"thumb": 7.0, "index": 9.6, "middle": 10.0, "ring": 9.7, "little": 8.7}
KIND_COLORS = {"periarticular": "#e15759", "subcutaneous": "#4e79a7"}
OTHER_KIND_COLOR = "#999999"


def _digit_x(side: str, digit: str) -> float:
    x = DIGIT_X_RIGHT[digit]
    return x if side != "L" else DIGIT_X_RIGHT["little"] - x          # the left hand mirrored


def hand_positions(lesion_rows: Sequence[dict], side: str, only_this_side: bool = True
                   ) -> tuple[list[tuple[dict, float, float]], int]:
    """(row, x, y) of the lesions of hand ``side`` on a digit, and how many are on none: x =
    the digit's place (PA: thumb on the left for the right hand, on the right for the left),
    y = the zone's place along it (tip up); zone 'other' beside the digit."""
    cells: dict[tuple, list[dict]] = {}
    unassigned = 0
    for r in lesion_rows:
        if only_this_side and r.get("side", side) != side:
            continue
        d, z = r.get("digit"), r.get("zone")
        if d not in DIGIT_X_RIGHT:
            unassigned += 1
            continue
        zy = THUMB_ZONE_Y if d == "thumb" else FINGER_ZONE_Y
        y = zy.get(z, (zy["MCP"] + zy["PIP"]) / 2 if z == "other" else zy["MCP"])
        cells.setdefault((d, y, z == "other"), []).append(r)
    out = []
    for (d, y, other), rows in cells.items():
        x = _digit_x(side, d) + (0.55 if other else 0.0)
        for k, r in enumerate(rows):
            dx, dy = _jitter(k, len(rows), 0.3)
            out.append((r, x + dx, y + dy))
    return out, unassigned


def hand_schematic(lesion_rows: Sequence[dict], size_column: str, unit: str, title: str = "") -> bytes:
    """PNG: a PA schematic of each hand in ``lesion_rows`` with every lesion at its digit and
    zone, its drawn area in proportion to ``size_column``."""
    plt = _plt()
    from matplotlib.patches import FancyBboxPatch
    sides = [s for s in ("R", "L") if any(r.get("side") == s for r in lesion_rows)] or ["R"]
    # the marker scale: the largest lesion drawn (one on no digit is not drawn)
    sizes = [float(r[size_column]) for r in lesion_rows
             if r.get(size_column) is not None and r.get("digit") in DIGIT_X_RIGHT]
    biggest = max(sizes) if sizes else 1.0
    fig, axes = plt.subplots(1, len(sides), figsize=(3.6 * len(sides), 4.6), squeeze=False)
    for ax, side in zip(axes[0], sides):
        ax.add_patch(FancyBboxPatch((0.7 if side == "R" else -0.6, 0.3), 4.6, 3.6,
                                    boxstyle="round,pad=0.05,rounding_size=0.6", fc="#f2ece4", ec="#a09484", lw=0.8))
        for d in DIGIT_X_RIGHT:
            x = _digit_x(side, d)
            base = 2.8 if d == "thumb" else 3.6
            ax.add_patch(FancyBboxPatch((x - 0.38, base), 0.76, FINGER_TOP[d] - base,
                                        boxstyle="round,pad=0.02,rounding_size=0.35", fc="#f2ece4", ec="#a09484",
                                        lw=0.8))
            zy = THUMB_ZONE_Y if d == "thumb" else FINGER_ZONE_Y
            for z in ("DIP", "PIP", "MCP"):
                if d == "thumb" and z == "PIP":
                    continue
                ax.plot([x - 0.38, x + 0.38], [zy[z], zy[z]], color="#cbbfae", lw=0.8)
            ax.text(x, FINGER_TOP[d] + 0.75, d, ha="center", va="bottom", fontsize=7)
        placed, unassigned = hand_positions(lesion_rows, side, len(sides) > 1)
        if placed:   # one scatter (one artist) for all: marker diameter ms points, area ∝ size
            ms = [4 + 16 * math.sqrt(max(float(r.get(size_column) or 0.0), 0.0) / biggest) for r, _, _ in placed]
            ax.scatter([x for _, x, _ in placed], [y for _, _, y in placed], s=[m * m for m in ms],
                       c=[KIND_COLORS.get(r.get("kind"), OTHER_KIND_COLOR) for r, _, _ in placed],
                       edgecolors="black", linewidths=0.6, alpha=0.85, zorder=5)
        ax.text(2.35, -0.35, f"{'right' if side == 'R' else 'left'} hand (PA)"
                + (f"; {unassigned} lesion(s) not on a digit" if unassigned else ""), ha="center", fontsize=8)
        ax.set_xlim(-1.0, 5.7)
        ax.set_ylim(-0.8, 11.4)
        ax.set_aspect("equal")
        ax.axis("off")
    handles = [ax.plot([], [], "o", mfc=c, mec="black", ms=8, ls="none", label=k)[0] for k, c in KIND_COLORS.items()]
    handles.append(axes[0][0].plot([], [], "o", mfc="white", mec="black", ms=4 + 16, ls="none",
                                   label=f"largest: {biggest:.1f} {unit}")[0])
    fig.legend(handles=handles, frameon=False, fontsize=7, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title or f"Lesions at their digit and zone (marker area ∝ {size_column})", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _png(fig)


__all__ = ["spine_positions", "spine_schematic", "hand_positions", "hand_schematic"]
