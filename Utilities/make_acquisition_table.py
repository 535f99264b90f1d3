"""The nine-acquisition table of docs/validation.md (issue 14): the same 18 deposits (1-15 mm,
200-1,500 HU) imaged with 0.6 / 1.25 / 3 mm slices and three kernels, with noise, measured as
``calcinosis measure --partial-volume`` measures them (``core.acquisition_study``).

    .venv/bin/python Utilities/make_acquisition_table.py [NOISE_HU]     (about 12 s)

Prints Markdown: per acquisition the blur measured on the skin, the 130 HU and the
partial-volume totals against the truth, and the range of each per-lesion ratio."""

from __future__ import annotations

import sys

from calcinosis.core.acquisition_phantom import KERNEL_FWHM_MM, Acquisition, Deposit
from calcinosis.core.acquisition_study import acquisition_study


def _range(values) -> str:
    values = [v for v in values if v is not None]
    return "-" if not values else f"{min(values):.2f}-{max(values):.2f}"


def main(argv: list[str]) -> int:
    noise = float(argv[0]) if argv else 15.0
    deposits = [Deposit(d, hu) for d in (1.0, 2.0, 3.0, 5.0, 8.0, 15.0) for hu in (200.0, 600.0, 1500.0)]
    acquisitions = [Acquisition(t, k) for t in (0.6, 1.25, 3.0) for k in KERNEL_FWHM_MM]
    table = acquisition_study(deposits, acquisitions, noise_sd=noise, seed=3)
    print(f"Noise {noise:g} HU; ratios measured / true.\n")
    print("| acquisition | FWHM measured (mm) | 130 HU total | pv total | pv total < 15 mm | 130 HU, 3-8 mm "
          "| pv, 3 mm >= 600 HU | pv, 3 mm 200 HU | pv, 5-15 mm |")
    print("|---|---|---|---|---|---|---|---|---|")
    for acq in acquisitions:
        rows = [r for r in table.rows if r["acquisition"] == acq.name]
        true = sum(r["true_volume_mm3"] for r in rows)
        small = [r for r in rows if r["diameter_mm"] < 15.0]

        def ratio(r, key):
            return None if r[key] is None else r[key] / r["true_volume_mm3"]

        cells = [
            acq.name, f"{rows[0]['measured_fwhm_mm']:.2f} ({KERNEL_FWHM_MM[acq.kernel]:g})",
            f"{sum(r['threshold_volume_mm3'] or 0.0 for r in rows) / true:.3f}",
            f"{sum(r['pv_volume_mm3'] or 0.0 for r in rows) / true:.3f}",
            f"{sum(r['pv_volume_mm3'] or 0.0 for r in small) / sum(r['true_volume_mm3'] for r in small):.3f}",
            _range(ratio(r, "threshold_volume_mm3") for r in rows if 3.0 <= r["diameter_mm"] <= 8.0),
            _range(ratio(r, "pv_volume_mm3") for r in rows if r["diameter_mm"] == 3.0 and r["hu"] >= 600.0),
            _range(ratio(r, "pv_volume_mm3") for r in rows if r["diameter_mm"] == 3.0 and r["hu"] == 200.0),
            _range(ratio(r, "pv_volume_mm3") for r in rows if r["diameter_mm"] >= 5.0),
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
