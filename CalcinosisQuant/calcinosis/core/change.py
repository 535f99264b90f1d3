"""Change of an amount of calcinosis between two time points, classed (per patient in
:mod:`calcinosis.cohort.change`, per lesion in :mod:`calcinosis.follow`).

% change = 100 × (follow-up − baseline) / baseline, classed as **progression** (> +25%),
**stable** (−25% … +25%, both limits included) or **improvement** (< −25%) (Valenzuela et
al. 2022's radiographic classes; the limit is a parameter).

A **zero baseline** has no percentage: 0 → 0 is *stable* (0%); 0 → anything above 0 is
*progression* (new calcinosis) with the % change left empty and a note.  A missing value at
either time point gives the class *missing*.
"""

from __future__ import annotations

from fractions import Fraction

from .errors import InputError

CLASSES = ("progression", "stable", "improvement")


def classify_change(baseline: float | None, followup: float | None, limit_pct: float = 25.0) -> tuple[float | None, str, str]:
    """(% change or None, class, note)."""
    if baseline is None or followup is None:
        return None, "missing", "a time point has no value"
    if baseline < 0 or followup < 0:
        raise InputError(f"change: negative amount ({baseline}, {followup}); calcinosis area/volume cannot be negative")
    if baseline == 0:
        if followup == 0:
            return 0.0, "stable", "no calcinosis at either time point"
        return None, "progression", "baseline 0: % change undefined; new calcinosis is progression"
    pct = 100.0 * (followup - baseline) / baseline
    # the class from the values as written (1.2 -> 1.5 is +25% exactly, stable), not from
    # the binary floating-point quotient (which makes it +25.000000000000004%)
    b, f, lim = _exact(baseline), _exact(followup), _exact(limit_pct)
    change = 100 * (f - b)
    if change > lim * b:
        return pct, "progression", ""
    if change < -lim * b:
        return pct, "improvement", ""
    return pct, "stable", ""


def _exact(x: float) -> Fraction:
    """The decimal a value was written as (its shortest repr), as an exact fraction."""
    return Fraction(repr(float(x)))
