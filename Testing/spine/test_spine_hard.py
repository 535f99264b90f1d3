"""The spine map on phantoms built to be hard (issue 16): calcifications against bone at
every sub-site, thoracic discs 3-5 mm tall, osteophytes and end-plate spurs outside the
vertebra labels, contrast-filled vena cava, iliac and renal veins, renal arteries and the
azygos (only the vena cava and iliac veins labelled), shoulders with 45 HU noise, and
vertebra labels off by up to 1 mm plus a local wobble (:mod:`calcinosis.spine.phantom_hard`).

Targets (the issue's): recall >= 95% overall and >= 90% of the calcifications against
bone; level >= 95%, segment >= 90%, sub-site >= 85%, pattern >= 85%; no osteophyte, no
vessel and no noise cluster reported (precision: at most 5% spurious, as on the base
phantom - the truth lists every calcification, so anything else reported is spurious).
Where a target is not met yet, the test says so with ``xfail(strict=True)`` and the
measured value: it fails the day the target is met, so the marker cannot outlive the gap.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.spine import pipeline, vertebrae
from calcinosis.spine import phantom
from calcinosis.spine.params import SpineParams

from spine_helpers import get_hard_phantom, labels_of, mapped_hard, score, touching_recall, volume_of

CASES = [("tap", 0, (1.0, 1.0, 1.25)), ("tap", 1, (1.0, 1.0, 1.25)), ("lumbar", 3, (1.0, 1.0, 1.25))]
CHEST = ("chest", 2, (0.8, 0.8, 1.25))
THICK = ("tap", 0, (1.0, 1.0, 3.0))
#: the same phantom on 2.5 mm slices (a common reconstruction)
MID = ("tap", 0, (1.0, 1.0, 2.5))
#: seed 1 on 2 mm slices: where asking for two slices lost the most (5 of 63)
TWO = ("tap", 1, (1.0, 1.0, 2.0))
#: the lumbar phantom on 0.625 mm slices (a thin reconstruction; the study rule asks for 3)
THIN = ("lumbar", 3, (1.0, 1.0, 0.625))
#: TAP seed 0 on 0.9 mm slices: two disc calcifications touch one end plate's label directly
DISC_09 = ("tap", 0, (1.0, 1.0, 0.9))


def _gap(reason: str):
    return pytest.mark.xfail(strict=True, reason=reason)


@pytest.mark.parametrize("coverage,seed,spacing", [
    CASES[0], CASES[1], CASES[2],
    CHEST,
    pytest.param(*THICK, marks=_gap("3 mm slices: recall 92% (58 of 63): calcifications against bone in "
                                    "their slice against the cortex, within its partial-volume rim")),
    MID, THIN])
def test_accuracy_on_hard_phantom(coverage, seed, spacing):
    r = get_hard_phantom(coverage, seed, spacing)
    s = score(r, mapped_hard(coverage, seed, spacing))
    msg = f"{coverage}/{seed}/{spacing}: {s['wrong']}"
    assert s["found_rate"] >= 0.95, msg
    assert s["level_rate"] >= 0.95, msg
    assert s["segment_rate"] >= 0.90, msg
    assert s["subsite_rate"] >= 0.85, msg
    assert s["pattern_rate"] >= 0.85, msg


@pytest.mark.parametrize("coverage,seed,spacing", CASES + [CHEST, THICK, pytest.param(*MID, marks=_gap(
    "2.5 mm slices: 7 reported that are not calcifications (rim fragments of bone one slice thick, as on 3 mm "
    "slices)")), THIN])
def test_no_osteophyte_vessel_or_noise_reported(coverage, seed, spacing):
    """Osteophytes and spurs (bone continuous with the marrow), the enhanced veins and
    arteries (labelled or not), vascular wall calcifications and the noisy shoulder slices
    give nothing, and at most 5% of what is reported is not a calcification - on every hard
    phantom (on 2.5 mm slices only the last is not met: a strict xfail; on 3 mm slices 3 of
    63 since pieces lying wholly against bone and on average no denser than cancellous bone
    count as bone, 7 before)."""
    r = get_hard_phantom(coverage, seed, spacing)
    res = mapped_hard(coverage, seed, spacing)
    s = score(r, res)
    assert s["osteophytes_reported"] == []
    assert s["vascular_reported"] == []
    assert len(s["false_positives"]) <= max(1, int(0.05 * s["n"])), s["false_positives"]


@pytest.mark.parametrize("coverage,seed,spacing", [
    CASES[0], CASES[1],
    pytest.param(*CASES[2], marks=_gap("lumbar: 5 of 6 - a 4 mm posterior longitudinal ligament calcification "
                                       "(peak 778 HU, the cortex 750) whose label holds its core is no denser "
                                       "than the cortex: nothing in the CT tells it from bone")),
    CHEST,
    pytest.param(*MID, marks=_gap("2.5 mm slices: 15 of 18 - a 4 mm transverse-process, a posterior and an anterior "
                                  "longitudinal ligament calcification against the cortex within its rim")),
    THIN, DISC_09])
def test_calcifications_against_bone_are_kept(coverage, seed, spacing):
    r = get_hard_phantom(coverage, seed, spacing)
    s = score(r, mapped_hard(coverage, seed, spacing))
    found, placed = touching_recall(r, s)
    assert placed >= 6
    assert found >= 0.90 * placed, (found, placed, s["wrong"])


def test_disc_filling_kept_only_so_is_dropped_behind_the_canal(monkeypatch):
    """TAP seed 0 on 0.9 mm slices: its two thin-disc calcifications touch one end plate's
    label directly (no rim there) and are kept from the bone-contact rule only as filling a
    disc (``disc_fill_only``); with every segment made posterior (no disc there), the map
    drops both as ``bone_rim_posterior`` - the rule for a process's tip the label missed."""
    from calcinosis.spine import assign, candidates
    r = get_hard_phantom(*DISC_09)
    lab = labels_of(r)
    cand = candidates.find_candidates(volume_of(r), lab, candidates.CandidateOptions.from_params(SpineParams()))
    lo = np.asarray(lab.box.lo)
    names = ["T2-T3_intervertebral_disc_touching_3", "T7-T8_intervertebral_disc_touching_8"]
    ids = []
    for row, vox in zip(r.truth.rows, r.truth_voxels):
        if row["name"] in names:
            kji = np.stack(np.unravel_index(vox, r.ct.shape), axis=1) - lo
            hit = cand.lesions.labels[tuple(kji.T)]
            ids.append(int(np.bincount(hit[hit > 0]).argmax()))
    assert len(ids) == 2 and all(cand.disc_fill_only[i - 1] for i in ids)

    real = assign.assign_lesions

    def all_posterior(*args, **kwargs):
        asg = real(*args, **kwargs)
        asg.segment = ["posterior"] * len(asg.segment)
        return asg

    monkeypatch.setattr(pipeline, "assign_lesions", all_posterior)
    res = pipeline.map_spine(volume_of(r), labels_of(r), SpineParams())
    missed = {w[0] for w in score(r, res)["wrong"] if w[1] == "missed"}
    assert set(names) <= missed
    assert res.stats["calcifications_dropped"]["bone_rim_posterior"] >= 2


def test_hard_phantom_has_what_it_promises():
    """The hard cases are in the image: calcifications against bone at every sub-site,
    thin discs, osteophytes outside the labels, veins above the threshold with and without
    labels, noisy shoulders, labels off the bone."""
    r = get_hard_phantom("tap", 0)
    ph = r.phantom
    touching = {row["subsite"] for row in r.truth.rows if "_touching_" in row["name"]}
    assert touching == {"anterior_longitudinal_ligament", "intervertebral_disc", "posterior_longitudinal_ligament",
                        "costotransverse", "transverse_process", "interspinous", "facet_joint"}
    assert min(v.disc_below for v in ph.vertebrae if v.name.startswith("T")) < 4.0
    assert sum(row["kind"] == "osteophyte" for row in r.truth.rows) == 6
    keys = {k for k, _, _ in ph.vein_paths}
    assert {"inferior_vena_cava", "iliac_vena_left", "iliac_vena_right", ""} <= keys
    # the veins are above the threshold in places (so they must be recognised, not missed)
    assert np.mean(r.ct[r.labels == 63] >= 130) > 0.3
    # shoulders: the noise measured on the top slices is several times the bottom's
    top, bottom = r.ct[-3:, :20, :20].std(), r.ct[:3, :20, :20].std()
    assert top > 2.5 * bottom


@pytest.mark.parametrize("mm", [2.0, -2.0])
def test_vertebra_labels_dilated_or_eroded_by_2mm(mm):
    """The label is a guide, not the border: with every vertebra label dilated or eroded
    by 2 mm the map finds the same calcifications (recall, no vessel, no osteophyte, no
    spurious ones) - lumbar hard phantom.  (Eroded, laminae thinner than 4 mm lose their
    label entirely; their pieces are bone by their density: ``bone.cancellous``.)  Exact
    equality is the issue's target (below)."""
    r = get_hard_phantom("lumbar", 3)
    base = score(r, mapped_hard("lumbar", 3))
    res = pipeline.map_spine(volume_of(r), labels_of(r, _morph(r, mm)), SpineParams())
    s = score(r, res)
    assert s["osteophytes_reported"] == [] and s["vascular_reported"] == []
    assert s["found"] >= base["found"] - 1, s["wrong"]
    assert len(s["false_positives"]) <= max(1, int(0.05 * s["n"])), s["false_positives"]


@pytest.mark.parametrize("mm", [
    pytest.param(2.0, marks=pytest.mark.xfail(
        strict=True, reason="issue 16 open: with labels grown 2 mm the posterior longitudinal ligament "
                            "calcification the base labels swallow is found (its label no longer holds its "
                            "core) and a 4 mm transverse-process one at L1-L2 is lost in the grown zone")),
    pytest.param(-2.0, marks=pytest.mark.xfail(
        strict=True, reason="issue 16 open: with labels eroded 2 mm the swallowed posterior longitudinal "
                            "ligament calcification is found, and a 12.5 mm3 piece of a thin process's cortex "
                            "(its label eroded away, beyond the neighbouring rib's zone) is reported at T12-L1"))])
def test_vertebra_labels_moved_2mm_give_the_same_answer(mm):
    """The same calcifications (level, segment, sub-site) with every vertebra label grown or
    shrunk by 2 mm.  Grown: a calcification the label swallowed touches only the bone the CT
    shows dense, not the label's own soft tissue (it was taken for bone)."""
    r = get_hard_phantom("lumbar", 3)
    base = mapped_hard("lumbar", 3)
    res = pipeline.map_spine(volume_of(r), labels_of(r, _morph(r, mm)), SpineParams())
    key = [(x["level"], x["segment"], x["subsite"]) for x in base.table.rows]
    assert sorted(key) == sorted((x["level"], x["segment"], x["subsite"]) for x in res.table.rows)


def _morph(r, mm: float) -> np.ndarray:
    """The label map with every vertebra label grown (mm > 0, into the background only)
    or shrunk by |mm| (Euclidean distance, physical spacing)."""
    from calcinosis.spine.conventions import category
    vals = [v for v, n in r.label_names.items() if category(n) == "vertebra" or n in ("S1", "sacrum_rest")]
    sp = r.geometry.spacing[::-1]
    vm = np.isin(r.labels, vals)
    out = r.labels.copy()
    if mm > 0:
        d, ind = ndimage.distance_transform_edt(~vm, sampling=sp, return_indices=True)
        grow = (r.labels == 0) & (d <= mm)
        out[grow] = r.labels[tuple(i[grow] for i in ind)]
    else:
        out[vm & (ndimage.distance_transform_edt(vm, sampling=sp) <= -mm)] = 0
    return out


def test_points_mode_never_reports_trabecular_bone():
    """Vertebrae given as one point per body: the bodies' trabecular interiors (190 HU,
    above the threshold) are filled slice by slice, and bone cut off by the slab planes
    stays bone: nothing spurious is reported, no osteophyte, no vessel."""
    r = get_hard_phantom("lumbar", 3)
    lab = vertebrae.labels_from_points(dict(phantom.vertebra_body_points(r.phantom, r.geometry)), volume_of(r))
    res = pipeline.map_spine(volume_of(r), lab, SpineParams())
    s = score(r, res)
    assert s["false_positives"] == [] and s["osteophytes_reported"] == [] and s["vascular_reported"] == []
    # the trabecular interiors (vertebra labels 2 voxels in) are inside the vertebra masks
    from calcinosis.spine.conventions import category
    vals = [v for v, n in r.label_names.items() if category(n) == "vertebra"]
    interior = ndimage.binary_erosion(np.isin(r.labels, vals), iterations=2)
    box = np.zeros(r.ct.shape, bool)
    box[lab.box.slices] = lab.vert > 0
    assert box[interior].mean() > 0.9


def test_noise_and_effective_rules_are_recorded():
    """Provenance holds the noise measured per slice (the phantom's 12 HU, 45 HU at the
    shoulders: within 15%, the local-SD estimate's bias on white noise), the effective
    thresholds and study-rule slices; 3 mm slices ask for one slice (the study's 2 x
    1.25 mm span)."""
    res = mapped_hard("tap", 0)
    noise = res.stats["noise_hu"]
    assert abs(noise["median"] - 12.0) <= 0.15 * 12.0
    assert abs(noise["max"] - 45.0) <= 0.15 * 45.0
    assert res.stats["study_rule_slices"] == 2
    assert res.stats["effective_threshold_hu"]["peak_above_surroundings_hu_median_slice"] == pytest.approx(
        5 * noise["median"], rel=0.01)
    assert mapped_hard(*THICK).stats["study_rule_slices"] == 1
    assert mapped_hard(*MID).stats["study_rule_slices"] == 1
    fits = res.stats["label_surfaces"]
    assert {"T8", "L1", "ribs"} <= set(fits)


@pytest.mark.parametrize("slice_mm,expected", [
    (0.4, 5), (0.4687, 4), (0.5, 4), (0.6, 4), (0.6249, 3), (0.625, 3), (0.6251, 3), (0.8, 3), (0.9, 3), (0.9375, 2),
    (1.0, 2), (1.25, 2),
    (1.5, 2), (1.86, 2), (1.875, 1), (2.0, 1), (2.4, 1), (2.5, 1), (3.0, 1), (5.0, 1)])
def test_study_rule_slices_see_the_studys_calcifications(slice_mm, expected):
    """The study's 2 slices of 1.25 mm as the same calcification size on other slices: the
    number of slices whose half-way extent (n - 1/2) t - the extent a calcification must
    have to hold that many slice centres half the time - is nearest the study's 1.875 mm;
    half-way between two numbers (within a thousandth of a slice) the fewer (three of
    0.625 mm, one of 1.875 mm)."""
    from calcinosis.spine.candidates import CandidateOptions, effective_min_slices
    assert effective_min_slices(CandidateOptions(), slice_mm) == expected
    # the size a calcification must have grows with the study's slices asked for
    assert effective_min_slices(CandidateOptions(study_min_slices=3), slice_mm) >= expected


@pytest.mark.parametrize("slice_mm", [0.6, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0])
def test_study_rule_slices_by_simulation(slice_mm):
    """Independently of the formula: calcifications of many extents placed at random along
    the slices, the extent at which each number of slices is reached half the time found by
    counting slice centres - the number asked for is the one whose half-way extent is
    nearest the study's (2 slices of 1.25 mm).  Tolerance: 20,000 placements per extent on a
    0.01 mm grid of extents (the half-way extent to about 0.02 mm), and numbers whose
    half-way extents lie within 0.05 mm of equally near are not told apart."""
    from calcinosis.spine.candidates import CandidateOptions, effective_min_slices
    rng = np.random.default_rng(0)
    start = rng.uniform(0.0, 1.0, 20000)              # where a calcification begins, in slices

    def half_way_mm(n, t):
        extents = np.arange(0.01, (n + 1) * t, 0.01)
        seen = [np.mean(np.floor(start + e / t) - np.ceil(start) + 1 >= n) for e in extents]
        return float(extents[np.argmax(np.asarray(seen) >= 0.5)])

    study = half_way_mm(2, 1.25)
    assert study == pytest.approx(1.875, abs=0.03)
    n = effective_min_slices(CandidateOptions(), slice_mm)
    mine = abs(half_way_mm(n, slice_mm) - study)
    for other in (n - 1, n + 1):
        if other >= 1:
            assert mine <= abs(half_way_mm(other, slice_mm) - study) + 0.05, (n, other)


def test_study_rule_loses_no_calcification_on_2mm_slices():
    """On 2 mm slices the study rule (one slice) rejects none of the hard phantom's
    calcifications: switched off, the map finds no more of them.  Asking for two slices of
    2 mm (the same minimal span as the study's) lost 5 of its 63 (52 found, 57 without the
    rule)."""
    r = get_hard_phantom(*TWO)
    with_rule = score(r, mapped_hard(*TWO))
    without = score(r, pipeline.map_spine(volume_of(r), labels_of(r), SpineParams(study_rule=False)))
    assert with_rule["found"] >= without["found"], (with_rule["wrong"], without["wrong"])
    assert mapped_hard(*TWO).stats["study_rule_slices"] == 1


def test_thinner_slices_find_no_fewer():
    """The same hard phantom on 2.5 and on 3 mm slices: the thinner slices blur less, so
    they find at least as many of its calcifications (when the study rule asked for two
    slices of 2.5 mm - a calcification spanning more than 2.5 mm - they found 53 of 63, fewer
    than the 56 that 3 mm slices found then)."""
    mid = score(get_hard_phantom(*MID), mapped_hard(*MID))
    thick = score(get_hard_phantom(*THICK), mapped_hard(*THICK))
    assert mid["found"] >= thick["found"], (mid["wrong"], thick["wrong"])


def test_thick_slices_are_warned_about():
    """A CT on slices thicker than the 1.25 mm the map's accuracy is asserted on says so in
    its warnings (what it can lose, what it can report, where the measurements are); the
    study's own slices do not."""
    from calcinosis.spine.pipeline import slice_thickness_warning
    thick = [w for w in mapped_hard(*THICK).warnings if w.startswith("slices of")]
    assert len(thick) == 1 and "3 mm" in thick[0] and "docs/validation.md" in thick[0]
    assert not any(w.startswith("slices of") for w in mapped_hard("tap", 0).warnings)
    assert slice_thickness_warning(1.25) is None and slice_thickness_warning(1.375) is None
    assert slice_thickness_warning(1.5) is not None


def test_faint_bodies_wholly_against_bone_are_bone_on_thick_slices(monkeypatch):
    """TAP seed 0 on 3 mm slices: the pieces of bone a label missed that a thick slice cuts
    (an end plate's rim, an arch, an articular process: 50 mm3 or more, 90% of their voxels
    against bone, averaging below 450 HU) are rejected as bone (``bone:wholly``) - with the
    rule off the map reports at least 4 more that are not calcifications - and the rule
    loses no calcification (the same ones found either way)."""
    from calcinosis.spine import candidates
    r = get_hard_phantom(*THICK)
    on = score(r, mapped_hard(*THICK))
    monkeypatch.setattr(candidates, "WHOLLY_AGAINST_FRACTION", 2.0)       # no component qualifies
    off = score(r, pipeline.map_spine(volume_of(r), labels_of(r), SpineParams()))
    assert len(off["false_positives"]) >= len(on["false_positives"]) + 4
    missed = lambda s: {w[0] for w in s["wrong"] if w[1] == "missed"}    # noqa: E731
    assert missed(on) == missed(off)
