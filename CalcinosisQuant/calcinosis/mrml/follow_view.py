"""The two time points of a follow-up in Slicer (issue 14): the baseline image, its lesions
and the follow-up's lesions carried onto it (``calcinosis follow``'s
``baseline_labels.nrrd`` and ``followup_labels_on_baseline.nrrd``) as two segmentations,
each lesion coloured by its class of change and named by its group, and the table of lesion
groups; :func:`jump_to_group` centres the views on one group."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calcinosis.core import image_io
from calcinosis.core.errors import InputError
from calcinosis.core.lesions import LesionSet
from calcinosis.core.tables import Table
from calcinosis.follow.pipeline import CLASS_COLORS

from .scene import get_scene
from .segmentations import segmentation_from_lesions
from .tablenodes import table_node_from_table
from .views import center_views_on
from .volumes import node_from_volume


@dataclass
class FollowComparison:
    volume_node: object
    baseline_segmentation: object
    followup_segmentation: object
    table_node: object
    changes: Table


def _lesion_set(labels: np.ndarray, geometry, classes: dict[int, tuple[int, str]], prefix: str):
    n = int(labels.max()) if labels.size else 0
    idx = np.flatnonzero(labels)
    lesions = LesionSet(labels, geometry, idx, labels.ravel()[idx].astype(np.int64),
                        [f"{prefix} lesion {k}" for k in range(1, n + 1)])
    names, colors = [], []
    for k in range(1, n + 1):
        group, change = classes.get(k, (None, "missing"))
        names.append(f"{prefix} {k}: {change}" + (f" (group {group})" if group else ""))
        colors.append(CLASS_COLORS.get(change, CLASS_COLORS["missing"]))
    return lesions, names, colors


def _covers(image, labels) -> bool:
    """Whether the label grid lies within the image (a spine result's grid is the spine's box)."""
    corners = np.array([[i, j, k] for i in (0, labels.size_ijk[0] - 1) for j in (0, labels.size_ijk[1] - 1)
                        for k in (0, labels.size_ijk[2] - 1)], float)
    ijk = image.ras_to_ijk(labels.ijk_to_ras(corners))
    return bool(np.all(ijk > -1.0) and np.all(ijk < np.array(image.size_ijk) + 0.0))


def load_follow_comparison(follow_dir, baseline_image, scene=None) -> FollowComparison:
    """The comparison of a ``calcinosis follow`` result folder on its baseline image."""
    scene = get_scene(scene)
    d = Path(follow_dir)
    for name in ("lesion_changes.csv", "baseline_labels.nrrd", "followup_labels_on_baseline.nrrd"):
        if not (d / name).is_file():
            raise InputError(f"{d}: {name} is missing (not a result folder of calcinosis follow)")
    changes = Table.read_csv(d / "lesion_changes.csv")
    volume = image_io.load_image(baseline_image)
    base = image_io.load_label_image(d / "baseline_labels.nrrd")
    fu = image_io.load_label_image(d / "followup_labels_on_baseline.nrrd")
    if not _covers(volume.geometry, base.geometry):
        raise InputError(f"{Path(baseline_image).name}: the baseline result's lesions lie outside this image (not the "
                         "baseline image?)")
    b_cls, f_cls = {}, {}
    for r in changes.rows:
        for i in (r["baseline_lesion_ids"] or "").split(";"):
            if i:
                b_cls[int(i)] = (r["group_id"], r["change"])
        for i in (r["followup_lesion_ids"] or "").split(";"):
            if i:
                f_cls[int(i)] = (r["group_id"], r["change"])
    vnode = node_from_volume(volume, "baseline", scene=scene)
    out = []
    for labels, geometry, classes, prefix in ((base.layers[0], base.geometry, b_cls, "baseline"),
                                              (fu.layers[0], fu.geometry, f_cls, "follow-up")):
        lesions, names, colors = _lesion_set(labels, geometry, classes, prefix)
        out.append(segmentation_from_lesions(lesions, names, colors, scene=scene, reference_volume_node=vnode,
                                             name=f"{prefix} lesions"))
    table = table_node_from_table(changes, scene=scene, name="lesion changes")
    return FollowComparison(vnode, out[0], out[1], table, changes)


def jump_to_group(comparison: FollowComparison, group_id: int, scene=None) -> list[float]:
    """Centre the slice views on a group (its baseline centroid; a new lesion's carried onto
    the baseline from its voxels); returns the point (RAS)."""
    row = next((r for r in comparison.changes.rows if r["group_id"] == group_id), None)
    if row is None:
        raise InputError(f"group {group_id}: not in the lesion changes table")
    if row["baseline_centroid_r_mm"] is not None:
        ras = [row["baseline_centroid_r_mm"], row["baseline_centroid_a_mm"], row["baseline_centroid_s_mm"]]
    else:
        from .segmentations import label_image_from_segmentation
        from .volumes import node_geometry
        g = node_geometry(comparison.volume_node)
        lab = label_image_from_segmentation(comparison.followup_segmentation, g)
        ids = [int(i) for i in row["followup_lesion_ids"].split(";")]
        seg = comparison.followup_segmentation.GetSegmentation()
        names = [seg.GetNthSegment(k).GetName() for k in range(seg.GetNumberOfSegments())]
        mask = np.zeros(g.shape, bool)
        for s in lab.segments:
            if any(s.name.startswith(f"follow-up {i}:") for i in ids):
                mask |= lab.mask(s)
        if not mask.any():
            raise InputError(f"group {group_id}: its follow-up lesion has no voxel on the baseline grid ({names[:1]})")
        ras = g.ijk_to_ras(np.argwhere(mask).mean(axis=0)[::-1][None])[0].tolist()
    center_views_on(ras, scene)
    return [float(v) for v in ras]
