"""Cohort work: batch runs, the studies' statistics and reports (Slicer-free).

Public API (imported on first use; Dask and matplotlib only by the functions that need them):

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

# The statistics are imported on first use (PEP 562), not with the package: the batch and the
# command line import calcinosis.cohort.* without paying for scipy.stats.
_EXPORTS = {
    "bland_altman": "agreement", "cohen_kappa": "agreement", "icc_a1": "agreement", "kappa_from_table": "agreement",
    "reader_agreement": "agreement", "change_table": "change", "classify_change": "change",
    "StatsResult": "formatting", "compare_groups": "groups", "fisher_exact": "groups", "mann_whitney": "groups",
    "pearson_chi2": "groups", "student_t": "groups", "welch_t": "groups", "compare_columns": "modalities",
    "compare_modalities": "modalities", "friedman": "modalities", "paired": "modalities", "spearman": "modalities",
    "wilson_ci": "prevalence",
}
_RENAMED = {"spine_prevalence": ("prevalence", "prevalence")}

__all__ = sorted([*_EXPORTS, *_RENAMED])


def __getattr__(name: str):
    import importlib
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name in _RENAMED:
        module, attr = _RENAMED[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
