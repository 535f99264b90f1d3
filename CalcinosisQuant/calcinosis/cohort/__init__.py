"""Cohort work: batch runs, the studies' statistics and reports (Slicer-free).

Public API (numpy/scipy only at import time; Dask and matplotlib are imported lazily by
the functions that need them):

* Batch — :func:`batch.run_batch` (manifest → ``cases/``, ``patients.csv`` ...),
  :func:`manifest.read_manifest`, :func:`batch.run_case` (one case, used by workers),
  :func:`join.build_cohort_tables`.
* Statistics — each returns a :class:`formatting.StatsResult` (tables + Markdown + HTML):
  :func:`groups.compare_groups`, :func:`agreement.reader_agreement`,
  :func:`modalities.compare_modalities`, :func:`modalities.compare_columns`,
  :func:`prevalence.prevalence` (also as ``spine_prevalence``), :func:`change.change_table`; and the single statistics
  :func:`agreement.cohen_kappa`, :func:`agreement.kappa_from_table`, :func:`agreement.icc_a1`,
  :func:`agreement.bland_altman`, :func:`groups.pearson_chi2`, :func:`groups.fisher_exact`,
  :func:`groups.student_t`, :func:`groups.welch_t`, :func:`groups.mann_whitney`,
  :func:`modalities.friedman`, :func:`modalities.paired`, :func:`modalities.spearman`,
  :func:`prevalence.wilson_ci`, :func:`change.classify_change`.
* Reports — :func:`report.case_report_html`, :func:`report.cohort_report_html`,
  :func:`report.write_reports`.
* Contract data for tests/demos — :mod:`synthetic`.
"""

from .agreement import bland_altman, cohen_kappa, icc_a1, kappa_from_table, reader_agreement
from .change import change_table, classify_change
from .formatting import StatsResult
from .groups import compare_groups, fisher_exact, mann_whitney, pearson_chi2, student_t, welch_t
from .modalities import compare_columns, compare_modalities, friedman, paired, spearman
from .prevalence import prevalence as spine_prevalence, wilson_ci

__all__ = [
    "StatsResult", "bland_altman", "change_table", "classify_change", "cohen_kappa", "compare_columns",
    "compare_groups", "compare_modalities", "fisher_exact", "friedman", "icc_a1", "kappa_from_table",
    "mann_whitney", "paired", "pearson_chi2", "reader_agreement", "spine_prevalence", "spearman", "student_t",
    "welch_t", "wilson_ci",
]
