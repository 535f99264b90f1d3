"""Per-lesion measurements in one pass over the sparse lesion voxels.

:func:`measure_lesions` turns a :class:`~calcinosis.core.lesions.LesionSet` and its image
into the lesion table.  All measures come from the list of lesion voxels with grouped
reductions (``bincount``, ``reduceat``), never from a pass over the volume per lesion.

Definitions (also in each column's description):

* ``volume_mm3`` = voxel count x voxel volume (3D); ``area_mm2`` = pixel count x pixel
  area (2D).  Threshold-dependent and partial-volume biased, as every voxel count is.
* ``projected_area_mm2`` (3D) = area of the lesion's shadow on the coronal plane (the
  plane of a PA radiograph): distinct voxel columns along the array axis closest to
  anterior-posterior x the area of a voxel face across that axis.  Exact (up to
  voxelisation) on grids aligned with the patient axes; on an oblique grid the shadow
  is cast along the grid axis nearest to A-P (the tilt is recorded in provenance).
* ``equivalent_diameter_mm``: sphere (3D) or circle (2D) of the same volume/area.
* ``principal_axis_*_mm``: full axis lengths of the ellipsoid (ellipse in 2D) with the
  same second moments as the lesion's voxels taken as solid boxes (centre moments plus
  spacing²/12 per voxel axis): 2*sqrt(5*lambda) in 3D, 4*sqrt(lambda) in 2D.
* ``agatston_score`` (CT only): per axial slice, lesion area (mm²) x density weight of
  the slice's peak HU (130-199: 1, 200-299: 2, 300-399: 3, >=400: 4, below 130: 0),
  summed and scaled by slice spacing / 3 mm, the slice thickness the score was defined on.
"""

from __future__ import annotations

import numpy as np

from .geometry import Geometry
from .lesions import LesionSet
from .tables import Column, Table
from .volume import Volume

AGATSTON_EDGES_HU = (130.0, 200.0, 300.0, 400.0)

ID_COLUMNS = [
    Column("lesion_id", "int", "", "Lesion number in this result (1..n), label value in the lesion label map"),
    Column("source_segment", "string", "", "Segment of the user's segmentation the lesion came from, or 'threshold'"),
    Column("voxel_count", "int", "voxels", "Number of voxels (pixels in 2D) in the lesion"),
]
SIZE_3D = [
    Column("volume_mm3", "double", "mm3", "Lesion volume: voxel count x voxel volume"),
    Column("projected_area_mm2", "double", "mm2",
           "Area of the lesion's projection on the coronal (PA radiograph) plane"),
    Column("equivalent_diameter_mm", "double", "mm", "Diameter of the sphere with the lesion's volume"),
]
SIZE_2D = [
    Column("area_mm2", "double", "mm2", "Lesion area: pixel count x pixel area"),
    Column("equivalent_diameter_mm", "double", "mm", "Diameter of the circle with the lesion's area"),
]
INTENSITY = [
    Column("mean_intensity", "double", "", "Mean voxel value in the lesion (unit in intensity_unit)"),
    Column("min_intensity", "double", "", "Minimum voxel value in the lesion"),
    Column("max_intensity", "double", "", "Maximum voxel value in the lesion"),
    Column("std_intensity", "double", "", "Standard deviation of voxel values in the lesion (population)"),
    Column("intensity_unit", "string", "", "Unit of the intensity columns: HU for CT, a.u. otherwise"),
]
POSITION = [
    Column("centroid_r_mm", "double", "mm", "Centroid, R coordinate (RAS)"),
    Column("centroid_a_mm", "double", "mm", "Centroid, A coordinate (RAS)"),
    Column("centroid_s_mm", "double", "mm", "Centroid, S coordinate (RAS)"),
    Column("bbox_r_min_mm", "double", "mm", "Bounding box (voxel edges), minimum R (RAS)"),
    Column("bbox_r_max_mm", "double", "mm", "Bounding box (voxel edges), maximum R (RAS)"),
    Column("bbox_a_min_mm", "double", "mm", "Bounding box (voxel edges), minimum A (RAS)"),
    Column("bbox_a_max_mm", "double", "mm", "Bounding box (voxel edges), maximum A (RAS)"),
    Column("bbox_s_min_mm", "double", "mm", "Bounding box (voxel edges), minimum S (RAS)"),
    Column("bbox_s_max_mm", "double", "mm", "Bounding box (voxel edges), maximum S (RAS)"),
    Column("bbox_i_min", "int", "voxel index", "Bounding box, first column index i"),
    Column("bbox_i_max", "int", "voxel index", "Bounding box, last column index i"),
    Column("bbox_j_min", "int", "voxel index", "Bounding box, first row index j"),
    Column("bbox_j_max", "int", "voxel index", "Bounding box, last row index j"),
    Column("bbox_k_min", "int", "voxel index", "Bounding box, first slice index k"),
    Column("bbox_k_max", "int", "voxel index", "Bounding box, last slice index k"),
]
AXIAL = [
    Column("axial_slice_first", "int", "slice index", "First axial slice (array axis closest to S-I) holding the lesion"),
    Column("axial_slice_last", "int", "slice index", "Last axial slice holding the lesion"),
    Column("axial_slice_count", "int", "slices", "Number of axial slices holding the lesion"),
    Column("axial_extent_mm", "double", "mm", "Axial slice count x slice spacing"),
]
AXES_3D = [
    Column("principal_axis_major_mm", "double", "mm", "Longest axis of the moment-equivalent ellipsoid"),
    Column("principal_axis_mid_mm", "double", "mm", "Middle axis of the moment-equivalent ellipsoid"),
    Column("principal_axis_minor_mm", "double", "mm", "Shortest axis of the moment-equivalent ellipsoid"),
]
AXES_2D = [
    Column("principal_axis_major_mm", "double", "mm", "Long axis of the moment-equivalent ellipse"),
    Column("principal_axis_minor_mm", "double", "mm", "Short axis of the moment-equivalent ellipse"),
]
AGATSTON = [
    Column("agatston_score", "double", "",
           "Agatston-weighted score: sum over axial slices of area_mm2 x density weight (130/200/300/400 HU), "
           "x slice spacing / 3 mm (CT only)"),
]


def lesion_columns(is_2d: bool) -> list[Column]:
    """The engine's lesion table columns for 2D or 3D images."""
    if is_2d:
        return ID_COLUMNS + SIZE_2D + INTENSITY + POSITION + AXES_2D
    return ID_COLUMNS + SIZE_3D + INTENSITY + POSITION + AXIAL + AXES_3D + AGATSTON


def agatston_weight(peak_hu: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(AGATSTON_EDGES_HU), peak_hu, side="right").astype(float)


def _group_reduce(values: np.ndarray, starts: np.ndarray, ufunc) -> np.ndarray:
    return ufunc.reduceat(values, starts) if values.size else np.zeros(0, values.dtype)


def measure_lesions(lesions: LesionSet, volume: Volume) -> Table:
    """One row per lesion with the engine's columns (see module docstring)."""
    geom: Geometry = lesions.geometry
    is_2d = geom.is_2d
    table = Table(lesion_columns(is_2d), name="lesions", description="One row per lesion")
    n = lesions.n
    if n == 0:
        return table
    if volume.geometry.shape != geom.shape:
        raise ValueError("lesions and image are on different grids")
    order = np.argsort(lesions.voxel_label, kind="stable")
    lab = lesions.voxel_label[order]
    idx = lesions.voxel_index[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ids = lab[starts]  # every id 1..n is present (lesions are non-empty)
    counts = np.diff(np.r_[starts, lab.size])
    k, j, i = np.unravel_index(idx, geom.shape)
    kji = np.stack([k, j, i], axis=1)

    values = volume.array.ravel()[idx].astype(np.float64)
    vsum = np.add.reduceat(values, starts)
    vsq = np.add.reduceat(values * values, starts)
    mean = vsum / counts
    std = np.sqrt(np.maximum(vsq / counts - mean * mean, 0.0))
    vmin = _group_reduce(values, starts, np.minimum)
    vmax = _group_reduce(values, starts, np.maximum)

    ras = geom.kji_to_ras(kji)
    centroid = np.stack([np.add.reduceat(ras[:, a], starts) for a in range(3)], axis=1) / counts[:, None]
    d = ras - centroid[np.repeat(np.arange(n), counts)]
    cov = np.empty((n, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            c = np.add.reduceat(d[:, a] * d[:, b], starts) / counts
            cov[:, a, b] = c
            cov[:, b, a] = c
    # each voxel is a solid box, not a point: add its own second moment (spacing²/12 per axis)
    dir_scaled = geom.direction * np.asarray(geom.spacing)
    voxel_moment = dir_scaled @ np.diag([1 / 12, 1 / 12, 0 if is_2d else 1 / 12]) @ dir_scaled.T
    cov += voxel_moment[None]

    kmin = np.stack([np.minimum.reduceat(kji[:, a], starts) for a in range(3)], axis=1)
    kmax = np.stack([np.maximum.reduceat(kji[:, a], starts) for a in range(3)], axis=1)
    bbox_ras_min, bbox_ras_max = _ras_boxes(geom, kmin, kmax)

    if is_2d:
        size = counts * geom.pixel_area_mm2
        eq_d = np.sqrt(4.0 * size / np.pi)
        # ellipse in the image plane: moments of the in-plane coordinates
        u = geom.direction_of_array_axis(2)
        v = geom.direction_of_array_axis(1)
        basis = np.stack([u, v], axis=1)  # 3x2
        cov2 = np.einsum("ia,nij,jb->nab", basis, cov, basis)
        ev = np.linalg.eigvalsh(cov2)[:, ::-1]
        axes = 4.0 * np.sqrt(np.maximum(ev, 0.0))
    else:
        size = counts * geom.voxel_volume_mm3
        eq_d = np.cbrt(6.0 * size / np.pi)
        ev = np.linalg.eigvalsh(cov)[:, ::-1]
        axes = 2.0 * np.sqrt(5.0 * np.maximum(ev, 0.0))
        ap = geom.ap_axis
        projected = _distinct_columns(lab, kji, ap, geom.shape) * geom.cross_section_area_mm2(ap)
        ax = geom.axial_axis
        first, last, nslices = _slice_counts(lab, kji[:, ax], n)
        extent = nslices * geom.spacing_along_array_axis(ax)
        agatston = None
        if volume.meta.get("modality") == "CT":
            agatston = _agatston(lab, kji[:, ax], values, n,
                                 geom.cross_section_area_mm2(ax), geom.spacing_along_array_axis(ax))

    unit = volume.intensity_unit
    for r in range(n):
        row = {
            "lesion_id": int(ids[r]), "source_segment": lesions.source[int(ids[r]) - 1], "voxel_count": int(counts[r]),
            "equivalent_diameter_mm": float(eq_d[r]),
            "mean_intensity": float(mean[r]), "min_intensity": float(vmin[r]), "max_intensity": float(vmax[r]),
            "std_intensity": float(std[r]), "intensity_unit": unit,
            "centroid_r_mm": float(centroid[r, 0]), "centroid_a_mm": float(centroid[r, 1]),
            "centroid_s_mm": float(centroid[r, 2]),
            "bbox_r_min_mm": float(bbox_ras_min[r, 0]), "bbox_r_max_mm": float(bbox_ras_max[r, 0]),
            "bbox_a_min_mm": float(bbox_ras_min[r, 1]), "bbox_a_max_mm": float(bbox_ras_max[r, 1]),
            "bbox_s_min_mm": float(bbox_ras_min[r, 2]), "bbox_s_max_mm": float(bbox_ras_max[r, 2]),
            "bbox_i_min": int(kmin[r, 2]), "bbox_i_max": int(kmax[r, 2]),
            "bbox_j_min": int(kmin[r, 1]), "bbox_j_max": int(kmax[r, 1]),
            "bbox_k_min": int(kmin[r, 0]), "bbox_k_max": int(kmax[r, 0]),
            "principal_axis_major_mm": float(axes[r, 0]),
        }
        if is_2d:
            row["area_mm2"] = float(size[r])
            row["principal_axis_minor_mm"] = float(axes[r, 1])
        else:
            row.update({
                "volume_mm3": float(size[r]), "projected_area_mm2": float(projected[r]),
                "axial_slice_first": int(first[r]), "axial_slice_last": int(last[r]),
                "axial_slice_count": int(nslices[r]), "axial_extent_mm": float(extent[r]),
                "principal_axis_mid_mm": float(axes[r, 1]), "principal_axis_minor_mm": float(axes[r, 2]),
                "agatston_score": None if agatston is None else float(agatston[r]),
            })
        table.append(row)
    return table


def _ras_boxes(geom: Geometry, kmin: np.ndarray, kmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RAS box around each index box, through its 8 corners at the voxel edges."""
    lo = kmin[:, ::-1].astype(float) - 0.5  # to ijk
    hi = kmax[:, ::-1].astype(float) + 0.5
    if geom.is_2d:
        lo[:, 2] = 0.0
        hi[:, 2] = 0.0
    corners = []
    for ci in (lo[:, 0], hi[:, 0]):
        for cj in (lo[:, 1], hi[:, 1]):
            for ck in (lo[:, 2], hi[:, 2]):
                corners.append(geom.ijk_to_ras(np.stack([ci, cj, ck], axis=1)))
    c = np.stack(corners, axis=0)
    return c.min(axis=0), c.max(axis=0)


def _distinct_columns(lab: np.ndarray, kji: np.ndarray, axis: int, shape) -> np.ndarray:
    """Per lesion, the number of distinct voxel columns along numpy ``axis``."""
    a, b = [x for x in (0, 1, 2) if x != axis]
    key = (lab.astype(np.int64) * shape[a] + kji[:, a]) * shape[b] + kji[:, b]
    u = np.unique(key)
    return np.bincount(u // (shape[a] * shape[b]))[1:] if u.size else np.zeros(0)


def _slice_counts(lab: np.ndarray, s: np.ndarray, n: int):
    stride = int(s.max()) + 1
    u = np.unique(lab.astype(np.int64) * stride + s)
    L, S = u // stride, u % stride
    first = np.full(n + 1, 0, dtype=np.int64)
    last = np.full(n + 1, 0, dtype=np.int64)
    starts = np.r_[True, L[1:] != L[:-1]]
    ends = np.r_[L[1:] != L[:-1], True]
    first[L[starts]] = S[starts]
    last[L[ends]] = S[ends]
    count = np.bincount(L, minlength=n + 1)
    return first[1:], last[1:], count[1:]


def _agatston(lab: np.ndarray, s: np.ndarray, hu: np.ndarray, n: int, pixel_area_mm2: float,
              slice_spacing_mm: float) -> np.ndarray:
    stride = int(s.max()) + 1
    key = lab.astype(np.int64) * stride + s
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    peak = np.maximum.reduceat(hu[order], starts)
    area = np.diff(np.r_[starts, key_sorted.size]) * pixel_area_mm2
    per_slice = area * agatston_weight(peak)
    score = np.bincount(key_sorted[starts] // stride, weights=per_slice, minlength=n + 1)[1:]
    return score * (slice_spacing_mm / 3.0)
