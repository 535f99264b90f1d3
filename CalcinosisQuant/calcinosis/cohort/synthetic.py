"""Synthetic case results written exactly to the shared summary-table contract.

For tests and the demo of the cohort tools *without* running the hand and spine
pipelines: a hand or spine "case" is a list of lesions with known side/digit/zone/kind or
level/segment/sub-site/pattern, from which the contract files (``lesions.csv``,
``digits.csv``, ``hand.csv`` / ``levels.csv``, ``patient.csv``, ``provenance.json``) are
written.  The summaries are plain sums over the lesion list, so a test knows every number
of the cohort tables before it runs the join.  Everything written says ``synthetic``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from calcinosis.core.measure import lesion_columns
from calcinosis.core.output import OutputTransaction
from calcinosis.core.provenance import build_record
from calcinosis.core.tables import Column, Table
from .contract import DIGIT_COLUMNS, HAND_DIGITS, HAND_ZONES, LEVEL_COLUMNS, LEVELS, PATTERNS, SEGMENTS, SPINE_PATIENT_COLUMNS, SUBSITE_SEGMENT, SUBSITES, level_index


@dataclass
class HandLesion:
    side: str
    digit: str
    zone: str
    kind: str
    size: float          # mm2 for XR, mm3 for CT/MR
    projected_area_mm2: float | None = None


@dataclass
class SpineLesion:
    level: str
    subsite: str
    pattern: str
    volume_mm3: float = 20.0

    @property
    def segment(self) -> str:
        return SUBSITE_SEGMENT[self.subsite]


_INT = "int"
_DBL = "double"
_STR = "string"


def _engine_row(n: int, is_2d: bool, size: float, rng, projected: float | None = None) -> dict:
    cols = lesion_columns(is_2d)
    row = {}
    for c in cols:
        if c.type == _STR:
            row[c.name] = "HU" if c.name == "intensity_unit" else ("threshold" if c.name == "source_segment" else "")
        elif c.type == _INT:
            row[c.name] = int(rng.integers(1, 50))
        else:
            row[c.name] = float(rng.uniform(-50, 50))
    row["lesion_id"] = n
    if is_2d:
        row["area_mm2"] = size
    else:
        row["volume_mm3"] = size
        row["projected_area_mm2"] = projected if projected is not None else (np.pi / 4) ** (1 / 3) * size ** (2 / 3) * 1.2
    row["equivalent_diameter_mm"] = 2 * (size / np.pi) ** 0.5 if is_2d else (6 * size / np.pi) ** (1 / 3)
    return row


def hand_tables(lesions: Sequence[HandLesion], modality: str, seed: int = 0) -> dict[str, Table]:
    """The contract tables of one hand case (``modality`` 'XR', 'CT' or 'MR')."""
    rng = np.random.default_rng(seed)
    is_2d = modality.upper() == "XR"
    lcols = lesion_columns(is_2d) + [Column("side", _STR, "", "L | R | unknown"),
                                     Column("digit", _STR, "", "thumb ... little | unassigned"),
                                     Column("zone", _STR, "", "distal_phalanx | DIP | PIP | MCP | wrist | other"),
                                     Column("kind", _STR, "", "periarticular | subcutaneous")]
    lt = Table(lcols, name="lesions", description="synthetic hand lesions (contract test data)")
    for n, l in enumerate(lesions, start=1):
        row = _engine_row(n, is_2d, l.size, rng, l.projected_area_mm2)
        row.update(side=l.side, digit=l.digit, zone=l.zone, kind=l.kind)
        lt.append(row)
    sides = sorted({l.side for l in lesions}) or ["R"]
    dcols = [Column(c, _STR if c in ("side", "digit", "modality") else (_INT if c == "lesion_count" else _DBL),
                    "mm2" if c.endswith("mm2") else ("mm3" if c.endswith("mm3") else ""), f"synthetic {c}")
             for c in DIGIT_COLUMNS]
    dt = Table(dcols, name="digits")
    hcols = [Column("side", _STR), Column("modality", _STR)] + [
        Column(c, _INT if c in ("lesion_count", "n_subcutaneous", "n_periarticular", "digits_affected") or c.endswith("_count")
               else _DBL, "mm2" if c.endswith("mm2") else ("mm3" if c.endswith("mm3") else ""))
        for c in ("lesion_count", "total_area_mm2", "total_volume_mm3", "largest_area_mm2", "largest_volume_mm3",
                  "total_projected_area_mm2", "n_subcutaneous", "n_periarticular", "zone_distal_phalanx_count",
                  "zone_dip_count", "zone_pip_count", "zone_mcp_count", "zone_wrist_count", "zone_other_count",
                  "digits_affected")]
    ht = Table(hcols, name="hand")
    for side in sides:
        ls = [l for l in lesions if l.side == side]
        for digit in HAND_DIGITS:
            dl = [l for l in ls if l.digit == digit]
            sizes = [l.size for l in dl]
            dt.append({"side": side, "digit": digit, "modality": modality, "lesion_count": len(dl),
                       "total_area_mm2": sum(sizes) if is_2d else None,
                       "largest_area_mm2": (max(sizes) if sizes else 0.0) if is_2d else None,
                       "total_volume_mm3": None if is_2d else sum(sizes),
                       "largest_volume_mm3": None if is_2d else (max(sizes) if sizes else 0.0),
                       "total_projected_area_mm2": None if is_2d else sum(_proj(l, lt, lesions) for l in dl)})
        sizes = [l.size for l in ls]
        row = {"side": side, "modality": modality, "lesion_count": len(ls),
               "total_area_mm2": sum(sizes) if is_2d else None,
               "largest_area_mm2": (max(sizes) if sizes else 0.0) if is_2d else None,
               "total_volume_mm3": None if is_2d else sum(sizes),
               "largest_volume_mm3": None if is_2d else (max(sizes) if sizes else 0.0),
               "total_projected_area_mm2": None if is_2d else sum(_proj(l, lt, lesions) for l in ls),
               "n_subcutaneous": sum(l.kind == "subcutaneous" for l in ls),
               "n_periarticular": sum(l.kind == "periarticular" for l in ls),
               "digits_affected": len({l.digit for l in ls if l.digit != "unassigned"})}
        for z in HAND_ZONES:
            row[f"zone_{z.lower()}_count"] = sum(l.zone == z for l in ls)
        ht.append(row)
    return {"lesions": lt, "digits": dt, "hand": ht}


def _proj(l: HandLesion, lt: Table, lesions: Sequence[HandLesion]) -> float:
    i = list(lesions).index(l)
    return float(lt.rows[i]["projected_area_mm2"])


def spine_tables(lesions: Sequence[SpineLesion], assessed: Sequence[str], coverage: str = "TAP",
                 seed: int = 0) -> dict[str, Table]:
    """The contract tables of one spine case; levels not in ``assessed`` are not_assessed."""
    rng = np.random.default_rng(seed)
    for l in lesions:
        if l.level not in assessed:
            raise ValueError(f"lesion at {l.level} outside the assessed levels")
    lcols = lesion_columns(False) + [Column("level", _STR), Column("segment", _STR), Column("subsite", _STR),
                                     Column("pattern", _STR)]
    lt = Table(lcols, name="lesions", description="synthetic spine calcifications (contract test data)")
    for n, l in enumerate(lesions, start=1):
        row = _engine_row(n, False, l.volume_mm3, rng)
        row.update(level=l.level, segment=l.segment, subsite=l.subsite, pattern=l.pattern)
        lt.append(row)
    vcols = [Column(c, _STR if c in ("level", "status") else _INT) for c in LEVEL_COLUMNS]
    vt = Table(vcols, name="levels")
    for lv in LEVELS:
        ok = lv in assessed
        ls = [l for l in lesions if l.level == lv]
        row = {"level": lv, "status": "assessed" if ok else "not_assessed", "count_total": len(ls) if ok else None}
        for s in SEGMENTS:
            row[f"count_{s}"] = sum(l.segment == s for l in ls) if ok else None
        for s in SUBSITES:
            if s not in SEGMENTS:
                row[f"count_{s}"] = sum(l.subsite == s for l in ls) if ok else None
        vt.append(row)
    order = sorted(assessed, key=level_index)
    pcols = [Column(c, _STR if c in ("coverage", "first_level_assessed", "last_level_assessed") else _INT)
             for c in SPINE_PATIENT_COLUMNS]
    pt = Table(pcols, name="patient")
    row = {"coverage": coverage, "levels_assessed": len(order), "first_level_assessed": order[0] if order else None,
           "last_level_assessed": order[-1] if order else None, "calcification_count": len(lesions),
           "any_calcification": int(bool(lesions))}
    for s in SEGMENTS:
        row[f"any_{s}"] = int(any(l.segment == s for l in lesions))
        row[f"count_{s}"] = sum(l.segment == s for l in lesions)
    row["any_all_three_segments"] = int(all(row[f"any_{s}"] for s in SEGMENTS))
    for s in SUBSITES:
        if s not in SEGMENTS:  # contract name clash: count_intracanal / any_intracanal are the segment's
            row[f"any_{s}"] = int(any(l.subsite == s for l in lesions))
            row[f"count_{s}"] = sum(l.subsite == s for l in lesions)
    for p in PATTERNS:
        row[f"count_{p}"] = sum(l.pattern == p for l in lesions)
    pt.append(row)
    return {"lesions": lt, "levels": vt, "patient": pt}


def write_case(outdir: str | Path, tables: dict[str, Table], task: str, modality: str | None = None,
               force: bool = False) -> Path:
    with OutputTransaction(outdir, force=force) as out:
        for name, t in tables.items():
            out.write_table(t, f"{name}.csv")
        out.write_json(build_record(f"synthetic {task}", {"image": {"modality": modality, "input_id": "synthetic"}},
                                    {"synthetic": True}, {"n_lesions": len(tables["lesions"])},
                                    ["synthetic contract data, not measured from an image"],
                                    outputs=out.written + ["provenance.json"]), "provenance.json")
    return Path(outdir)


# ---------------------------------------------------------------------- random cohorts
CHEST = LEVELS[:LEVELS.index("T12-L1") + 1]
TAP = LEVELS
LUMBAR = LEVELS[LEVELS.index("T12-L1"):]


def random_spine_lesions(rng, assessed: Sequence[str], rate: float = 6.8) -> list[SpineLesion]:
    """Calcifications with study 2's mix (mostly anterior, thoracic peak at T8-T9)."""
    n = int(rng.poisson(rate * len(assessed) / len(LEVELS)))
    weights = np.array([3.0 if lv in ("T8-T9",) else (2.0 if lv in ("T9-T10", "L5-S1", "T7-T8") else 1.0)
                        for lv in assessed])
    # study 2's counts per sub-site; it did not score facet joints apart (weight 0 keeps
    # the synthetic cohorts it was tuned to)
    sub_p = np.array([207, 87, 36, 34, 9, 25, 20, 17, 0], float)
    out = []
    for _ in range(n):
        lv = assessed[int(rng.choice(len(assessed), p=weights / weights.sum()))]
        sub = SUBSITES[int(rng.choice(len(SUBSITES), p=sub_p / sub_p.sum()))]
        if sub == "anterior_longitudinal_ligament":
            pat = PATTERNS[int(rng.choice(2, p=[0.3, 0.7]))]
        elif sub in ("foraminal", "intracanal", "costotransverse", "interspinous", "transverse_process",
                     "facet_joint"):
            pat = PATTERNS[1 + int(rng.choice(2, p=[0.85, 0.15]))]
        else:
            pat = "punctate"
        out.append(SpineLesion(lv, sub, pat, float(rng.lognormal(3.0, 1.0))))
    return out


def random_hand_lesions(rng, n_mean: float = 5.5, side: str = "R") -> list[tuple[str, str, str]]:
    """(digit, zone, kind) triples; sizes are drawn per modality by the caller."""
    n = int(rng.poisson(n_mean))
    digits = ("thumb", "index", "middle", "ring", "little")
    dp = np.array([0.28, 0.32, 0.16, 0.12, 0.12])
    zones = ("distal_phalanx", "DIP", "PIP", "MCP", "wrist")
    out = []
    for _ in range(n):
        d = digits[int(rng.choice(5, p=dp))]
        z = zones[int(rng.choice(5, p=[0.35, 0.3, 0.15, 0.12, 0.08]))]
        k = "subcutaneous" if z == "distal_phalanx" or rng.random() < 0.5 else "periarticular"
        out.append((d, z, k))
    return out


# ---------------------------------------------------------------------- a whole synthetic cohort
def _perturb_hand(rng, lesions: list[HandLesion], drop: float = 0.1, noise: float = 0.12) -> list[HandLesion]:
    out = [HandLesion(l.side, l.digit, l.zone, l.kind, float(l.size * rng.lognormal(0, noise)), l.projected_area_mm2)
           for l in lesions if rng.random() > drop]
    return out


def _perturb_spine(rng, lesions: list[SpineLesion], assessed, drop: float = 0.1) -> list[SpineLesion]:
    out = [l for l in lesions if rng.random() > drop]
    if rng.random() < 0.2:
        out += random_spine_lesions(rng, assessed, rate=1.0)[:1]
    return out


def write_synthetic_cohort(folder: str | Path, n_patients: int = 6, seed: int = 0, *, measure_images: bool = True,
                           hand: bool = True, spine: bool = True, phantom_spacing_mm: float = 0.6) -> dict:
    """A small cohort on disk: contract result folders for hand (XR, CT, MRI) and spine
    cases, small sphere phantoms for ``measure`` cases (two time points), a manifest with two
    readers and repeated reads, and a clinical table.  Returns the paths and the truth."""
    from calcinosis.core import image_io, phantoms
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    clinical = []
    truth: dict = {"hand": {}, "spine": {}, "measure": {}}
    for p in range(1, n_patients + 1):
        pid = f"P{p:02d}"
        subset = "dcSSc" if p % 3 == 0 else "lcSSc"
        clinical.append({"patient_id": pid, "subset": subset, "age_years": float(np.round(rng.normal(57, 12), 1)),
                         "pah": int(rng.random() < 0.25), "digital_ulcers": int(rng.random() < 0.5)})
        if hand:
            base = [HandLesion("R", d, z, k, 0.0) for d, z, k in random_hand_lesions(rng)]
            vols = rng.lognormal(4.0, 1.3, len(base))
            for mod, key in (("XR", "xr"), ("CT", "ct"), ("MR", "mri")):
                for reader, read in (("R1", 1), ("R1", 2), ("R2", 1)):
                    if key != "xr" and (reader, read) != ("R1", 1):
                        continue
                    ls = []
                    for l, v in zip(base, vols):
                        size = v ** (2 / 3) * 1.2 if key == "xr" else v * (1.3 if key == "ct" else 1.0)
                        ls.append(HandLesion(l.side, l.digit, l.zone, l.kind, float(size)))
                    if (reader, read) != ("R1", 1) or key == "mri":
                        ls = _perturb_hand(rng, ls)
                    cid = f"{pid}-hand-{key}-{reader}-{read}"
                    d = write_case(folder / "results" / cid, hand_tables(ls, mod, seed=p), "hand", mod, force=True)
                    truth["hand"][cid] = ls
                    rows.append({"case_id": cid, "patient_id": pid, "task": "hand", "result": str(d.relative_to(folder)),
                                 "modality": key, "reader": reader, "read": read, "time_point": "baseline"})
        if spine:
            cov, assessed = (("TAP", TAP) if p % 2 else ("chest", CHEST))
            ls0 = random_spine_lesions(rng, list(assessed))
            for reader, read in (("R1", 1), ("R1", 2), ("R2", 1)):
                ls = ls0 if (reader, read) == ("R1", 1) else _perturb_spine(rng, ls0, list(assessed))
                cid = f"{pid}-spine-{reader}-{read}"
                d = write_case(folder / "results" / cid, spine_tables(ls, assessed, cov, seed=p), "spine", "CT", force=True)
                truth["spine"][cid] = (ls, assessed, cov)
                rows.append({"case_id": cid, "patient_id": pid, "task": "spine", "result": str(d.relative_to(folder)),
                             "reader": reader, "read": read, "time_point": "baseline"})
        if measure_images:
            diam = tuple(float(x) for x in np.round(rng.uniform(3, 9, 3), 1))
            growth = float(rng.choice([0.7, 1.0, 1.3]))
            for tp, scale in (("baseline", 1.0), ("M12", growth)):
                ds = tuple(d * scale ** (1 / 3) for d in diam)
                arr, geom, ells = phantoms.spheres_phantom(ds, 400.0, (phantom_spacing_mm,) * 3, noise_sd=8.0, seed=p)
                img = folder / "images" / f"{pid}-{tp}.nrrd"
                img.parent.mkdir(parents=True, exist_ok=True)
                image_io.write_image(arr.round().astype("int16"), geom, img)
                truth["measure"][(pid, tp)] = [e.volume_mm3 for e in ells]
                readings = (("R1", 1, 220), ("R1", 2, 210), ("R2", 1, 200)) if tp == "baseline" else (("R1", 1, 220),)
                for reader, read, thr in readings:
                    rows.append({"case_id": f"{pid}-ct-{tp}-{reader}-{read}", "patient_id": pid, "task": "measure",
                                 "image": str(img.relative_to(folder)), "modality": "ct", "reader": reader, "read": read,
                                 "time_point": tp, "threshold": thr, "min_size": 2})
    cols = ["case_id", "patient_id", "task", "image", "result", "modality", "reader", "read", "time_point", "threshold",
            "min_size"]
    from .manifest import write_manifest
    manifest = write_manifest(folder / "manifest.csv", rows, cols)
    ct = Table([Column("patient_id", _STR), Column("subset", _STR, "", "lcSSc | dcSSc"),
                Column("age_years", _DBL, "years"), Column("pah", _INT, "", "pulmonary arterial hypertension 0/1"),
                Column("digital_ulcers", _INT, "", "0/1")], clinical, "clinical")
    clinical_path = folder / "clinical.csv"
    ct.write_csv(clinical_path)
    return {"manifest": manifest, "clinical": clinical_path, "truth": truth, "rows": rows}
