"""The hand model on CT: the CT projected along the palm's normal is a radiograph of the
hand (the sum of attenuation along each ray), the 2D hand model (:mod:`.handmodel`) finds
the digits and joints on it, and each landmark is lifted back to 3D at the depth of the
bone under it (docs/methods/hand-model.md, CT).

Arrays and explicit geometry in, points (RAS, mm) out.  The palm's normal is the hand's
thinnest principal direction (tissue above :data:`TISSUE_HU`); the projection runs along
the image axis nearest to it (a hand more than :data:`MAX_TILT_DEG` from every axis gets a
warning: its projection is foreshortened).  MRI is not projected: its signal is not an
attenuation (cortex and calcinosis are dark, marrow and fat bright), so a sum along the
rays is no radiograph; placed landmarks remain needed there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from calcinosis.core.geometry import Geometry

from .handmodel import HandModel2D, build_hand_model

#: voxels above this (HU) are tissue (skin, fat and muscle included; air and padding not)
TISSUE_HU = -400.0
#: voxels above this (HU) are bone where a landmark is lifted to its depth
BONE_HU = 300.0
#: the palm's normal more than this from the projection axis: a warning (foreshortening)
MAX_TILT_DEG = 25.0
#: tissue voxels sampled for the principal directions (at most)
MAX_SAMPLES = 200_000


@dataclass
class CTProjection:
    """A CT summed along one image axis, as a 2D image (rows, cols) with square pixels."""
    image: np.ndarray          # (rows, cols) attenuation line integral (mm of water), dense = bright
    pixel_mm: float
    axis: int                  # projected array axis (0: k, 1: j, 2: i)
    row_axis: int              # array axis of the image's rows
    col_axis: int              # array axis of the image's columns
    row_flip: bool             # image rows run against that array axis
    col_flip: bool
    zoom: tuple                # image pixels per array index along (rows, cols)
    tilt_deg: float            # palm normal vs the projection axis
    warnings: list = field(default_factory=list)

    def to_array_index(self, rc: np.ndarray, shape) -> tuple[float, float]:
        """Image (row, col) -> fractional array indices along (row_axis, col_axis)."""
        r, c = float(rc[0]) / self.zoom[0], float(rc[1]) / self.zoom[1]
        if self.row_flip:
            r = shape[self.row_axis] - 1 - r
        if self.col_flip:
            c = shape[self.col_axis] - 1 - c
        return r, c


def palm_normal(hu: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Unit RAS vector of the hand's thinnest principal direction (tissue voxels)."""
    step = max(1, int(np.ceil((hu.size / (20 * MAX_SAMPLES)) ** (1 / 3))))   # a coarse grid is enough
    kji = np.argwhere(hu[::step, ::step, ::step] > TISSUE_HU) * step
    if len(kji) < 100:
        raise ValueError("no hand in the CT (fewer than 100 voxels above -400 HU)")
    if len(kji) > MAX_SAMPLES:
        kji = kji[np.random.default_rng(0).choice(len(kji), MAX_SAMPLES, replace=False)]
    ras = geometry.ijk_to_ras(kji[:, ::-1].astype(float))
    w, v = np.linalg.eigh(np.cov((ras - ras.mean(axis=0)).T))
    return v[:, 0]


def project_ct(hu: np.ndarray, geometry: Geometry) -> CTProjection:
    """The radiograph of a CT along the image axis nearest to the palm's normal, shown as a
    PA radiograph is (the patient's superior up, his right on the left, where those axes lie
    in the image plane), on square pixels of the finer in-plane spacing."""
    n = palm_normal(hu, geometry)
    axes_ras = geometry.direction  # columns: RAS of i, j, k
    cos = [abs(float(np.dot(n, axes_ras[:, a]))) for a in range(3)]   # a: 0=i, 1=j, 2=k
    ijk_axis = int(np.argmax(cos))
    tilt = float(np.degrees(np.arccos(min(cos[ijk_axis], 1.0))))
    arr_axis = 2 - ijk_axis
    spacing_kji = np.asarray(geometry.spacing, float)[::-1]
    mu = np.clip(hu.astype(np.float32) + 1000.0, 0.0, None) / 1000.0
    line = mu.sum(axis=arr_axis) * float(spacing_kji[arr_axis])
    others = [a for a in range(3) if a != arr_axis]

    def ras_dir(a):
        return axes_ras[:, 2 - a]

    # rows: the in-plane axis nearer to S, running toward -S; columns toward the patient's left (+R -> -R)
    s_like = max(others, key=lambda a: abs(ras_dir(a)[2]))
    c_axis = others[0] if others[1] == s_like else others[1]
    r_axis = s_like
    img = line if others.index(r_axis) == 0 else line.T
    row_flip = ras_dir(r_axis)[2] > 0          # index increases toward S: flip so that S is up
    col_flip = ras_dir(c_axis)[0] < 0          # index increases toward -R (left): keep; toward +R: flip
    col_flip = not col_flip
    if row_flip:
        img = img[::-1]
    if col_flip:
        img = img[:, ::-1]
    pr, pc = float(spacing_kji[r_axis]), float(spacing_kji[c_axis])
    pix = min(pr, pc)
    zoom = (pr / pix, pc / pix)
    if zoom != (1.0, 1.0):
        img = ndimage.zoom(img, zoom, order=1)
    warnings = []
    if tilt > MAX_TILT_DEG:
        warnings.append(f"hand model (CT): the palm lies {tilt:.0f} degrees from the image's axes; its projection is "
                        "foreshortened and the automatic landmarks may be off - review them")
    return CTProjection(np.ascontiguousarray(img, np.float32), pix, arr_axis, r_axis, c_axis, row_flip, col_flip,
                        zoom, tilt, warnings)


def lift_to_bone(hu: np.ndarray, geometry: Geometry, proj: CTProjection, rc: np.ndarray) -> np.ndarray:
    """RAS of a projection point at the depth of the bone along its ray (the middle of the
    bone voxels, >= BONE_HU), or of the tissue when the ray meets no bone."""
    a_r, a_c = proj.to_array_index(rc, hu.shape)
    idx = [0, 0, 0]
    idx[proj.row_axis] = int(np.clip(round(a_r), 0, hu.shape[proj.row_axis] - 1))
    idx[proj.col_axis] = int(np.clip(round(a_c), 0, hu.shape[proj.col_axis] - 1))
    sl = list(idx)
    sl[proj.axis] = slice(None)
    ray = hu[tuple(sl)]
    depth = np.flatnonzero(ray >= BONE_HU)
    if depth.size == 0:
        depth = np.flatnonzero(ray > TISSUE_HU)
    d = float(np.median(depth)) if depth.size else (hu.shape[proj.axis] - 1) / 2.0
    kji = [0.0, 0.0, 0.0]
    kji[proj.row_axis], kji[proj.col_axis], kji[proj.axis] = a_r, a_c, d
    return geometry.ijk_to_ras(np.array([kji[::-1]]))[0]


def ct_hand_model(hu: np.ndarray, geometry: Geometry) -> tuple[HandModel2D, CTProjection]:
    """The 2D hand model of a CT's projection (and the projection)."""
    proj = project_ct(hu, geometry)
    model = build_hand_model(proj.image, proj.pixel_mm)
    model.warnings = proj.warnings + model.warnings
    return model, proj


def ct_model_landmarks(hu: np.ndarray, geometry: Geometry, model: HandModel2D, proj: CTProjection,
                       side: str) -> list[tuple[str, np.ndarray]]:
    """The model's landmarks as ``[(label, RAS)]``, each at the depth of its bone."""
    return [(f"{side}_{d.name}_{name}", lift_to_bone(hu, geometry, proj, model.to_input_rc(rc)))
            for d in model.digits for name, rc in d.points.items()]


def landmarks_are_complete(placed) -> bool:
    """Every landmark of the placed side(s) is placed (the model has nothing to add)."""
    from .anatomy import expected_landmark_labels
    if placed is None or not placed.points:
        return False
    have = {k.label for k in placed.points}
    return all(set(expected_landmark_labels(side)) <= have for side in placed.sides)


def automatic_landmarks(volume, modality: str, placed):
    """The placed landmarks (None: none) completed by the hand model of a radiograph or a CT
    (:func:`~.handmodel.complete_landmarks`): (landmarks, warnings, a provenance record).
    MRI, and an image the model cannot read, keep the placed ones."""
    from .handmodel import complete_landmarks, model_landmarks
    if modality not in ("XR", "CT") or landmarks_are_complete(placed):
        return placed, [], None
    laterality = volume.meta.get("laterality")
    if modality == "XR":
        pix = float(np.sqrt(volume.geometry.spacing[0] * volume.geometry.spacing[1]))
        model = build_hand_model(volume.array[0], pix)

        def points(side):
            return model_landmarks(model, volume.geometry, side)
    else:
        try:
            model, proj = ct_hand_model(volume.array, volume.geometry)
        except ValueError as e:
            return placed, [f"hand model (CT): {e}"], None

        def points(side):
            return ct_model_landmarks(volume.array, volume.geometry, model, proj, side)
    merged, side, source, warnings = complete_landmarks(placed, model, laterality, points)
    record = {"found": bool(model.hand.any()), "digits": [d.name for d in model.digits], "side": side,
              "side_source": source,
              "automatic_landmarks": sorted(k.label for k in merged.automatic) if merged is not None else []}
    return merged, list(model.warnings) + warnings, record
