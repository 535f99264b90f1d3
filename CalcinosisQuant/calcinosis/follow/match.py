"""Lesions matched from baseline to follow-up, in groups.

After registration each follow-up lesion's voxels are carried onto the baseline grid.  Two
lesions are linked when their voxels overlap there, or - for a lesion that overlaps none
(small, or moved by a residual of the registration) - when each is the other's nearest and
their centroids are closer than :func:`match_distance_mm`.  The linked lesions fall into
groups (connected pieces of the links): one baseline and one follow-up lesion
(one-to-one), one baseline lesion in several follow-up pieces (split), several baseline
lesions grown together (merged), several of each (complex); a baseline lesion alone is
resolved, a follow-up lesion alone is new.  Nothing is lost: every lesion of both results is
in exactly one group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: centroids closer than this (mm), or than the two lesions' mean radius, may be matched
#: without overlap
MATCH_DISTANCE_MM = 3.0


@dataclass
class LesionGroup:
    baseline_ids: list = field(default_factory=list)
    followup_ids: list = field(default_factory=list)
    overlap_voxels: int = 0
    dice: float | None = None
    distance_mm: float | None = None
    linked_by: str = ""          # overlap, distance, or '' (alone)

    @property
    def pattern(self) -> str:
        nb, nf = len(self.baseline_ids), len(self.followup_ids)
        if nf == 0:
            return "resolved"
        if nb == 0:
            return "new"
        if nb == 1 and nf == 1:
            return "one-to-one"
        if nb == 1:
            return "split"
        if nf == 1:
            return "merged"
        return "complex"


def match_distance_mm(d_baseline_mm: float, d_followup_mm: float) -> float:
    """How far apart (mm) two lesions' centroids may be to match without overlapping: the
    larger of :data:`MATCH_DISTANCE_MM` and their mean radius."""
    return max(MATCH_DISTANCE_MM, 0.25 * (d_baseline_mm + d_followup_mm))


def match_lesions(baseline_labels: np.ndarray, followup_labels_on_baseline: np.ndarray, n_baseline: int,
                  n_followup: int, baseline_centroids: np.ndarray, followup_centroids_on_baseline: np.ndarray,
                  baseline_diameters: np.ndarray, followup_diameters: np.ndarray) -> list[LesionGroup]:
    """The groups (see the module's text).  Lesion ids are 1..n; centroids (n, 3) in the
    baseline's RAS; diameters (mm, equivalent) per lesion."""
    b = baseline_labels.astype(np.int64).ravel()
    f = followup_labels_on_baseline.astype(np.int64).ravel()
    both = (b > 0) & (f > 0)
    pairs, counts = np.unique(b[both] * (n_followup + 1) + f[both], return_counts=True)
    b_vox = np.bincount(b, minlength=n_baseline + 1)
    f_vox = np.bincount(f, minlength=n_followup + 1)
    overlap = {(int(p // (n_followup + 1)), int(p % (n_followup + 1))): int(c) for p, c in zip(pairs, counts)}
    # union-find over baseline nodes 0..nb-1 and follow-up nodes nb..nb+nf-1
    parent = list(range(n_baseline + n_followup))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(x, y):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)

    for (bi, fi) in overlap:
        union(bi - 1, n_baseline + fi - 1)
    linked_b = {bi for bi, _ in overlap}
    linked_f = {fi for _, fi in overlap}
    distance_links = []
    free_b = [i for i in range(1, n_baseline + 1) if i not in linked_b]
    free_f = [i for i in range(1, n_followup + 1) if i not in linked_f]
    if free_b and free_f:
        cb = baseline_centroids[np.array(free_b) - 1]
        cf = followup_centroids_on_baseline[np.array(free_f) - 1]
        d = np.linalg.norm(cb[:, None, :] - cf[None, :, :], axis=2)
        for a, bi in enumerate(free_b):
            k = int(np.argmin(d[a]))
            if int(np.argmin(d[:, k])) != a:
                continue                                  # not each other's nearest
            fi = free_f[k]
            if d[a, k] <= match_distance_mm(baseline_diameters[bi - 1], followup_diameters[fi - 1]):
                union(bi - 1, n_baseline + fi - 1)
                distance_links.append((bi, fi))
    groups: dict[int, LesionGroup] = {}
    for bi in range(1, n_baseline + 1):
        groups.setdefault(find(bi - 1), LesionGroup()).baseline_ids.append(bi)
    for fi in range(1, n_followup + 1):
        groups.setdefault(find(n_baseline + fi - 1), LesionGroup()).followup_ids.append(fi)
    out = []
    for g in groups.values():
        if g.baseline_ids and g.followup_ids:
            ov = sum(overlap.get((bi, fi), 0) for bi in g.baseline_ids for fi in g.followup_ids)
            g.overlap_voxels = ov
            nb = int(sum(b_vox[bi] for bi in g.baseline_ids))
            nf = int(sum(f_vox[fi] for fi in g.followup_ids))
            g.dice = 2.0 * ov / (nb + nf) if nb + nf else None
            g.linked_by = "overlap" if ov else "distance"
            wb = np.array([max(b_vox[i], 1) for i in g.baseline_ids], float)
            wf = np.array([max(f_vox[i], 1) for i in g.followup_ids], float)
            cb = (baseline_centroids[np.array(g.baseline_ids) - 1] * wb[:, None]).sum(0) / wb.sum()
            cf = (followup_centroids_on_baseline[np.array(g.followup_ids) - 1] * wf[:, None]).sum(0) / wf.sum()
            g.distance_mm = float(np.linalg.norm(cb - cf))
        out.append(g)
    # baseline order first (by the first baseline lesion), new lesions after (by follow-up id)
    out.sort(key=lambda g: (0, min(g.baseline_ids)) if g.baseline_ids else (1, min(g.followup_ids)))
    return out
