"""Self-contained HTML reports (figures embedded as ``data:`` URIs), per case and per cohort.

Every number in a report says where it came from: each table and figure carries a
"source" line (file, columns, filter, method), and the provenance records of the runs
(parameters, versions, pseudonymous input ids) are shown at the end.  Without
matplotlib (or without the image for the slice views) the report still has every table
and says what was left out and why.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path
from typing import Sequence

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Table
from .contract import SEGMENTS, TASK_SUMMARY_FILE
from .data import apply_where, where_text
from .formatting import StatsResult, html_table, table_text_rows
from .titles import column_tip, column_title, human_title, value_text

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:18px 28px 40px;background:#fff}
h1{font-size:22px;margin:8px 0 2px} h2{font-size:17px;margin:28px 0 8px;border-bottom:2px solid #e5e5e5;padding-bottom:3px}
h3{font-size:14px;margin:18px 0 6px} h4{font-size:13px;margin:12px 0 4px}
.meta{color:#666;font-size:12px} .back{font-size:12px;margin:0 0 6px}
nav.toc{font-size:12px;background:#f6f8fa;border:1px solid #e5e5e5;padding:6px 12px;margin:10px 0}
nav.toc ol{margin:4px 0 2px 18px;padding:0;columns:2} nav.toc li{margin:1px 0}
table{border-collapse:collapse;font-size:12px;margin:6px 0 10px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f1f3f5} th abbr{text-decoration:none;border-bottom:1px dotted #999;cursor:help}
tr.sub td:first-child{padding-left:18px;color:#444}
tr.failed td{background:#fdecea}
.source{color:#555;font-size:11px;margin:0 0 10px} .note{background:#fff8e1;border-left:3px solid #f0b400;padding:6px 10px;font-size:12px;margin:4px 0}
.warnings{background:#fdecea;border-left:3px solid #c62828;padding:6px 12px;font-size:12px;margin:8px 0}
.warnings ul{margin:4px 0 2px 18px;padding:0}
ul.notes{font-size:11px;color:#555} img{max-width:100%;box-sizing:border-box;border:1px solid #eee;margin:4px 0}
figure{margin:6px 0} figcaption{font-size:11px;color:#555}
.kpi{display:inline-block;margin:4px 18px 4px 0} .kpi b{font-size:18px;display:block}
details{font-size:11px} pre{white-space:pre-wrap;background:#f6f8fa;padding:8px;font-size:11px}
.scroll{max-height:420px;overflow:auto}
@page{size:A4;margin:14mm 12mm}
@media print{
 body{background:#fff} main{max-width:none;padding:0}
 .scroll{max-height:none;overflow:visible}
 h1,h2,h3,h4{break-after:avoid;page-break-after:avoid}
 h2+*,h3+*,h4+*{break-before:avoid;page-break-before:avoid}
 figure,img,.kpis,.note,.warnings,nav.toc{break-inside:avoid;page-break-inside:avoid}
 table{font-size:9px;max-width:100%;break-inside:auto} th,td{padding:2px 4px;overflow-wrap:anywhere}
 tr{break-inside:avoid;page-break-inside:avoid} thead{display:table-header-group}
 a{color:inherit;text-decoration:none} details pre{display:none}
}
"""

#: The title of each analysis, for pages and headings
ANALYSIS_TITLES = {"groups": "Group comparison", "agreement": "Reader agreement", "modalities": "Comparison of modalities",
                   "prevalence": "Prevalence of spinal calcification", "change": "Change over time",
                   "outcomes": "Lesions followed over time"}


class HtmlDoc:
    """An HTML page built in order: headings of level 2 become its table of contents (placed
    where :meth:`toc_here` was called), tables show human column titles with the column
    name one hover away, and the stylesheet prints without cut tables or stranded headings."""

    def __init__(self, title: str, back: tuple[str, str] | None = None):
        self.title = title
        self.back = back                  # (href, text) of the page this one belongs to
        self.parts: list[str] = []
        self.toc: list[tuple[str, str]] = []
        self._toc_at: int | None = None

    def h(self, level: int, text: str) -> None:
        if level == 2:
            anchor = "s-" + "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")[:60]
            while anchor in (a for a, _ in self.toc):
                anchor += "-2"
            self.toc.append((anchor, text))
            self.parts.append(f'<h2 id="{html.escape(anchor)}">{html.escape(text)}</h2>')
        else:
            self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def toc_here(self) -> None:
        self._toc_at = len(self.parts)

    def raw(self, s: str) -> None:
        self.parts.append(s)

    def p(self, text: str, cls: str = "") -> None:
        self.parts.append(f'<p{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>{html.escape(text)}</p>')

    def source(self, text: str) -> None:
        self.p("Source: " + text, "source")

    def note(self, text: str) -> None:
        self.parts.append(f'<div class="note">{html.escape(text)}</div>')

    def warnings(self, items: Sequence[str], title: str = "Warnings") -> None:
        if items:
            self.parts.append(f'<div class="warnings"><b>{html.escape(title)}</b><ul>'
                              + "".join(f"<li>{html.escape(str(w))}</li>" for w in items) + "</ul></div>")

    def kpis(self, items: Sequence[tuple[str, object]]) -> None:
        self.parts.append('<div class="kpis">' + "".join(
            f'<span class="kpi"><b>{html.escape(str(v))}</b>{html.escape(k)}</span>' for k, v in items) + "</div>")

    def img(self, png: bytes, alt: str, caption: str = "") -> None:
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,'
                          f'{base64.b64encode(png).decode()}">{cap}</figure>')

    def table(self, t: Table, columns: Sequence[str] | None = None, max_rows: int = 500, digits: int = 2,
              row_classes=None, first_column_links: Sequence[str | None] | None = None) -> None:
        names = [c for c in (columns or t.column_names) if t.has_column(c)]
        _, rows = table_text_rows(t, names, digits)
        specs = [t.column_spec(c) for c in names]
        more = len(rows) - max_rows
        self.parts.append('<div class="scroll">' + html_table([column_title(c) for c in specs], rows[:max_rows],
                                                              row_classes=row_classes,
                                                              header_tips=[column_tip(c) for c in specs],
                                                              first_column_links=first_column_links) + "</div>")
        if more > 0:
            self.p(f"… {more} more rows in the CSV file.", "source")

    def columns_as_rows(self, t: Table, heads: Sequence[str], columns: Sequence[str] | None = None) -> None:
        """A table of few rows turned on its side: one line per column (its human title, the
        name on hover), one column per row of ``t`` (headed ``heads[1:]``)."""
        specs = [t.column_spec(c) for c in (columns or t.column_names)]
        cells = [[column_title(c)] + ["" if r[c.name] is None else
                                      (f"{r[c.name]:.2f}" if isinstance(r[c.name], float) else str(r[c.name]))
                                      for r in t.rows] for c in specs]
        self.parts.append(html_table(heads, cells, first_column_tips=[column_tip(c) for c in specs]))

    def params(self, params: dict) -> None:
        """Parameters as a two-column table: the human name (the parameter's own name on hover)
        and its value in words."""
        rows = [[human_title(str(k)), value_text(v)] for k, v in params.items()]
        self.parts.append(html_table(["Parameter", "Value"], rows, header_tips=None,
                                     first_column_tips=[str(k) for k in params]))

    def stats(self, res: StatsResult) -> None:
        self.parts.append(res.full_html())

    def render(self) -> str:
        parts = list(self.parts)
        if self.toc and self._toc_at is not None:
            nav = ('<nav class="toc"><b>Contents</b><ol>' + "".join(
                f'<li><a href="#{html.escape(a)}">{html.escape(t)}</a></li>' for a, t in self.toc) + "</ol></nav>")
            parts.insert(self._toc_at, nav)
        if self.back:
            parts.insert(0, f'<p class="back"><a href="{html.escape(self.back[0])}">← {html.escape(self.back[1])}</a></p>')
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width\"><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><main>\n" + "\n".join(parts) + "\n</main></body></html>\n")


def _figure(doc: HtmlDoc, make, alt: str, notes: list[str], caption: str = "") -> None:
    from .figures import FiguresUnavailable
    try:
        doc.img(make(), alt, caption)
    except FiguresUnavailable as e:
        doc.note(f"Figure left out ({alt}): {e}")
        _left_out(notes, str(e), alt)
    except (ValueError, KeyError) as e:
        doc.note(f"Figure left out ({alt}): {e}")


def _left_out(notes: list[str], reason: str, what: str) -> None:
    """One closing note per reason, naming every figure it left out."""
    head = f"Figures left out, {reason}: "
    for k, n in enumerate(notes):
        if n.startswith(head):
            notes[k] = f"{n}; {what}"
            return
    notes.append(head + what)


def _provenance_block(doc: HtmlDoc, prov: dict | None, title: str = "Parameters and provenance") -> None:
    """The parameters as a readable table, then where the result came from; the whole record
    (pseudonymous input ids) folded below."""
    doc.h(2, title)
    if not prov:
        doc.note("No provenance.json found.")
        return
    params = prov.get("parameters", {})
    if params:
        doc.h(3, "Parameters")
        doc.params(params)
    doc.h(3, "Provenance")
    versions = prov.get("versions", {})
    items = [("Command", prov.get("command")),
             ("Software", ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, dict) else versions),
             ("Created (UTC)", prov.get("created_utc")), ("Case ID", prov.get("case_id")),
             ("Coordinates", prov.get("coordinate_system"))]
    doc.raw(html_table(["Field", "Value"], [[k, "—" if v in (None, "") else str(v)] for k, v in items]))
    doc.raw("<details><summary>Full provenance record (inputs are pseudonymous ids)</summary><pre>"
            + html.escape(json.dumps(prov, indent=2, ensure_ascii=False)) + "</pre></details>")


def _has_case_page(batch_dir: Path, case_id: str) -> bool:
    """A case gets its page (and the cohort report a link to it) when its folder holds its
    summary: a case folder that is missing or incomplete gets neither."""
    case_dir = Path(batch_dir) / "cases" / str(case_id)
    return any((case_dir / f).is_file() for f in TASK_SUMMARY_FILE.values())


def _read_prov(d: Path) -> dict | None:
    """The folder's provenance record; None when it has none; an error naming the file when
    it has one that cannot be read (a report must not say "none found" of a corrupt record)."""
    p = d / "provenance.json"
    if not p.exists():
        return None
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: unreadable provenance record ({str(e).splitlines()[0]}); restore it or run the "
                         "case again") from None
    if not isinstance(record, dict):
        raise InputError(f"{p}: not a provenance record (a JSON object was expected)")
    return record


def _task_of(case_dir: Path, prov: dict | None) -> str:
    cmd = (prov or {}).get("command", "") or ""
    for t in ("hand", "spine", "measure"):
        if cmd.split(" ")[-1] == t or cmd.startswith(t):
            return t
    for t, f in (("hand", "hand.csv"), ("spine", "patient.csv")):
        if (case_dir / f).is_file():
            return t
    if (case_dir / "lesions.csv").is_file():
        return "measure"
    raise InputError(f"{case_dir}: not a case result (no hand.csv, patient.csv or lesions.csv)")


# ---------------------------------------------------------------------- case report
TASK_TITLES = {"hand": "hand calcinosis", "spine": "spinal calcification map", "measure": "lesion measurement"}


def case_report_html(case_dir: str | Path, image: str | Path | None = None, case_id: str | None = None,
                     spacing=None, modality: str | None = None, strict_image: bool = False,
                     back: tuple[str, str] | None = None, image_cache: dict | None = None) -> str:
    """The case report: summary and warnings first, a picture of this patient (spine or hand
    schematic), the per-hand or per-level table, the lesions in their slices and as a table,
    then parameters and provenance.  ``strict_image``: ``image`` was given by the user, so an
    image that cannot be read, or is not the one the case was measured on, is an error (else
    a note).  ``back``: (href, text) of the cohort report this page belongs to.
    ``image_cache``: images already read, by (path, spacing, modality) - the readings of one
    image in a batch read it once."""
    from . import figures, schematics
    case_dir = Path(case_dir)
    prov = _read_prov(case_dir)
    task = _task_of(case_dir, prov)
    cid = case_id or (prov or {}).get("case_id") or case_dir.name
    doc = HtmlDoc(f"Case {cid}", back=back)
    notes: list[str] = []
    doc.h(1, f"Case {cid}: {TASK_TITLES.get(task, task)}")
    doc.p(f"Report made {_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()} from the files in the "
          f"case folder; coordinates RAS (as Slicer shows them), lengths in mm.", "meta")
    lesions = Table.read_csv(case_dir / "lesions.csv") if (case_dir / "lesions.csv").is_file() else None
    is_2d = lesions is not None and lesions.has_column("area_mm2")
    size_col = "area_mm2" if is_2d else "volume_mm3"
    unit = "mm²" if is_2d else "mm³"
    pt = Table.read_csv(case_dir / "patient.csv") if task == "spine" else None     # the spine's findings
    doc.h(2, "Summary")
    if lesions is not None:
        sizes = [float(v) for v in lesions.column(size_col) if v is not None] if lesions.has_column(size_col) else []
        kp = [("lesions" if task != "spine" else "calcifications", len(lesions)), (f"total {unit}", f"{sum(sizes):.1f}"),
              (f"largest {unit}", f"{max(sizes):.1f}" if sizes else "-")]
        if pt is not None:
            p0 = pt.rows[0]
            kp += [(f"{s} segment", p0.get(f"count_{s}")) for s in SEGMENTS if f"count_{s}" in p0]
            kp += [("levels assessed", p0.get("levels_assessed"))]
        doc.kpis([(k, "—" if v is None else v) for k, v in kp])
        doc.source(f"lesions.csv, column {size_col} (count of rows; sum; maximum)")
    doc.warnings((prov or {}).get("warnings") or [], "Warnings of the run")
    doc.toc_here()
    if task == "hand":
        if lesions is not None and len(lesions) and lesions.has_column("digit"):
            doc.h(2, "This hand")
            _figure(doc, lambda: schematics.hand_schematic(lesions.rows, size_col, unit), "hand schematic", notes,
                    caption="Each lesion at its digit and zone (from lesions.csv); marker area in proportion to its "
                            f"{'area' if is_2d else 'volume'}; colour: periarticular or subcutaneous. Check the "
                            "assignment against the slice views below.")
        ht = Table.read_csv(case_dir / "hand.csv")
        doc.h(2, "Per hand")
        heads = ["Measure"] + [f"{'Right' if r['side'] == 'R' else 'Left' if r['side'] == 'L' else r['side']} hand "
                               f"({r['modality']})" for r in ht.rows]
        # the hand's measures, without those this modality has none of (areas on a CT, volumes on a radiograph)
        cols = [c.name for c in ht.columns if c.name not in ("side", "modality")
                and any(r[c.name] is not None for r in ht.rows)]
        doc.columns_as_rows(ht, heads, cols)
        doc.source("hand.csv (one row per hand)")
        if (case_dir / "digits.csv").is_file():
            dt = Table.read_csv(case_dir / "digits.csv")
            doc.h(2, "Per digit")
            rows = [dict(r, modality=_mk(r.get("modality"))) for r in dt.rows]
            _figure(doc, lambda: figures.digit_bars(rows, "lesion_count", "Lesions per digit"), "lesions per digit", notes)
            doc.table(dt)
            doc.source("digits.csv (one row per side × digit)")
    elif task == "spine":
        lt = Table.read_csv(case_dir / "levels.csv")
        doc.h(2, "This spine")
        _figure(doc, lambda: schematics.spine_schematic(lesions.rows if lesions is not None else [], lt.rows),
                "spine schematic", notes,
                caption="Every calcification at its disco-vertebral level and segment (sub-site when known), pattern "
                        "by symbol, colour by segment; levels outside the scan greyed (from lesions.csv and levels.csv).")
        na = [r["level"] for r in lt.rows if r["status"] != "assessed"]
        if na:
            doc.p(f"Not assessed (outside the scan): {', '.join(na)}.", "source")
        doc.h(2, "Findings")
        doc.columns_as_rows(pt, ["Finding", "Value"])
        doc.source("patient.csv")
        doc.h(2, "Levels × segments")
        doc.table(lt)
        doc.source("levels.csv (one row per disco-vertebral level; counts empty when not assessed)")
    if lesions is not None and len(lesions):
        doc.h(2, "Lesion images")
        _slices(doc, case_dir, lesions, image, prov, notes, spacing, modality, strict_image, task, image_cache)
        doc.h(2, "Lesions")
        key = [c for c in ("lesion_id", "side", "digit", "zone", "kind", "level", "segment", "subsite", "pattern",
                           size_col, "projected_area_mm2", "equivalent_diameter_mm", "mean_intensity", "max_intensity",
                           "centroid_r_mm", "centroid_a_mm", "centroid_s_mm", "axial_slice_count", "agatston_score")
               if lesions.has_column(c)]
        doc.table(lesions, key, max_rows=300)
        doc.source("lesions.csv (all columns, with units and descriptions, in the CSV, its .schema.csv and tables.xlsx)")
    _provenance_block(doc, prov)
    for n in notes:
        doc.note(n)
    return doc.render()


def _mk(v):
    from .contract import modality_key
    return modality_key(v) or (str(v).lower() if v else None)


def _image_input(prov: dict | None) -> dict:
    """The provenance entry of the image a case was measured on (``image``; ``ct`` for the
    spine map)."""
    inputs = (prov or {}).get("inputs", {}) or {}
    for key in ("image", "ct"):
        if isinstance(inputs.get(key), dict):
            return inputs[key]
    return {}


#: Half-width (mm) of the field of view around a lesion, per task: the vertebra (about 45 mm
#: across) or the finger must be in view so that the assigned site can be checked by eye
SLICE_CONTEXT_MM = {"spine": 40.0, "hand": 18.0, "measure": 12.0}


def _slices(doc, case_dir, lesions, image, prov, notes, spacing=None, modality=None, strict=False,
            task: str = "measure", image_cache: dict | None = None) -> None:
    from .figures import FiguresUnavailable
    labels_path = next((p for p in (case_dir / "lesion_labels.nrrd", case_dir / "lesions.seg.nrrd") if p.exists()), None)
    if labels_path is None:
        cands = sorted(case_dir.glob("*_labels.nrrd")) + sorted(case_dir.glob("*.seg.nrrd"))
        labels_path = cands[0] if cands else None
    if image is None:
        path = _image_input(prov).get("path")
        image = path if path and Path(path).exists() else None
    if image is None or labels_path is None:
        doc.note("Slice images left out: " + ("the image is not known (the provenance holds no path unless "
                                              "--record-paths; give --image, or --manifest for a batch)"
                                              if image is None else "the case folder has no lesion label map"))
        return
    try:
        from calcinosis.core import image_io
        from .slices import lesion_panels
        key = (str(Path(image).resolve()), tuple(spacing) if spacing else None, modality)
        vol = image_cache.get(key) if image_cache is not None else None
        if vol is None:
            vol = image_io.load_image(image, spacing=spacing, modality=modality)
            if image_cache is not None:
                image_cache.clear()                # one image at a time: the readings of it are adjacent
                image_cache[key] = vol
        measured = _image_input(prov).get("input_id")
        if measured and vol.meta.get("input_id") and vol.meta["input_id"] != measured:
            raise InputError(f"--image: not the image this case was measured on (its id {vol.meta['input_id']}, "
                             f"the case's {measured})")
        lab = image_io.load_label_image(labels_path, reference=vol.geometry)
        arr = lab.layers[0]
        if labels_path.name.endswith(".seg.nrrd"):
            import numpy as np
            arr = np.zeros(vol.geometry.shape, np.int32)
            for k, s in enumerate(lab.segments, start=1):
                arr[lab.mask(s)] = k
        png = lesion_panels(vol, arr, lesions.rows, context_mm=SLICE_CONTEXT_MM.get(task, 12.0),
                            title="Largest lesions (thick outline = the lesion named; other lesions thin)")
        doc.img(png, "lesions outlined")
        doc.source(f"image + {labels_path.name} (label = lesion_id); "
                   + ("axial planes resampled in RAS, patient right on the left" if not vol.is_2d else "radiograph"))
    except FiguresUnavailable as e:
        doc.note(f"Slice images left out: {e}")
        _left_out(notes, str(e), "slice images of the lesions")
    except (InputError, ValueError, OSError) as e:
        if strict:
            raise
        doc.note(f"Slice images left out: {str(e).splitlines()[0]}")


# ---------------------------------------------------------------------- cohort report
def default_reading(patients: Table) -> list[str]:
    """--where conditions choosing one reading per patient: the first reader, read 1 and the
    first time point (baseline when present)."""
    conds = []
    for col, pref in (("reader", None), ("read", "1"), ("time_point", "baseline")):
        if not patients.has_column(col):
            continue
        vals = sorted({where_text(r[col]) for r in patients.rows})
        if len(vals) > 1:
            conds.append(f"{col}={pref if pref in vals else vals[0]}")
    return conds


def _try(doc: HtmlDoc, title: str, fn, notes_out: list[str]):
    try:
        res = fn()
    except InputError as e:
        doc.h(2, title)
        doc.note(f"Not computed: {str(e).splitlines()[0]}")
        return None
    doc.h(2, title)
    doc.stats(res)
    return res


def cohort_report_html(batch_dir: str | Path, *, by: str | None = None, where: Sequence[str] | None = None,
                       case_links: bool = True) -> str:
    from . import figures
    from .agreement import reader_agreement
    from .change import change_table
    from .groups import compare_groups
    from .modalities import compare_modalities
    from .prevalence import prevalence
    batch_dir = Path(batch_dir)
    if not (batch_dir / "patients.csv").is_file():
        raise InputError(f"{batch_dir}: not a batch output folder (no patients.csv)")
    prov = _read_prov(batch_dir)
    patients = Table.read_csv(batch_dir / "patients.csv")
    patients.name = str(batch_dir / "patients.csv")
    cases = Table.read_csv(batch_dir / "cases.csv") if (batch_dir / "cases.csv").is_file() else None
    notes: list[str] = []
    doc = HtmlDoc("Cohort report")
    doc.h(1, "Cohort report")
    doc.p(f"Batch folder {batch_dir.name}; report made {_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}. "
          "Every table names its source; the statistics are those of study 1 and study 2 (see each note).", "meta")
    n_pat = len({r["patient_id"] for r in patients.rows})
    doc.h(2, "Summary")
    kp = [("patients", n_pat), ("readings", len(patients))]
    failed = [r for r in cases.rows if r["status"] != "ok"] if cases is not None else []
    if cases is not None:
        kp += [("cases ok", len(cases) - len(failed)), ("cases failed", len(failed))]
    doc.kpis(kp)
    warn = [f"{len(failed)} case(s) failed ({', '.join(str(r['case_id']) for r in failed[:10])}"
            f"{', …' if len(failed) > 10 else ''}): their numbers are missing from the tables below (n_failed in "
            "patients.csv)."] if failed else []
    warn += [str(w) for w in (prov or {}).get("warnings") or []]
    if cases is not None and cases.has_column("warnings"):
        n_warned = sum(1 for r in cases.rows if r.get("warnings"))
        if n_warned:
            warn.append(f"{n_warned} case(s) ran with warnings: see the column 'warnings' of the case list and each "
                        "case's page.")
    doc.warnings(warn)
    doc.toc_here()
    # ------------------------------------------------------------ cases
    if cases is not None:
        doc.h(2, "Cases")
        cols = [c for c in ["case_id", "patient_id", "reader", "read", "time_point", "task", "modality", "status",
                            "reason", "run", "duration_s", "warnings"] if cases.has_column(c)]
        links = [f"cases/{r['case_id']}.html" if case_links and r["status"] == "ok"
                 and _has_case_page(batch_dir, r["case_id"]) else None for r in cases.rows]
        doc.table(cases, cols, digits=1, row_classes=["failed" if r["status"] != "ok" else "" for r in cases.rows],
                  first_column_links=links)
        doc.source("cases.csv (one row per manifest row; a case's own page has its picture, parameters and provenance)")
    sel = list(where) if where else default_reading(patients)
    if sel:
        doc.note("Per-patient analyses use one reading per patient: " + " and ".join(sel)
                 + " (agreement and change compare the readings).")
    has_spine = patients.has_column("spine_any_calcification")
    hand_mods = [m for m in ("xr", "ct", "mri") if patients.has_column(f"hand_{m}_lesion_count")]
    # ------------------------------------------------------------ spine prevalence
    if has_spine:
        levels = Table.read_csv(batch_dir / "levels.csv") if (batch_dir / "levels.csv").is_file() else None
        res = _try(doc, "Spine: prevalence and distribution", lambda: prevalence(patients, levels, where=sel), notes)
        if res is not None:
            lr = [r for r in res.tables["prevalence"].rows if r["scope"] in ("level", "level_segment")]
            if lr:
                _figure(doc, lambda: figures.level_segment_chart(lr, "Level × segment (study 2, Figure 3)"),
                        "level by segment", notes)
                doc.source("levels.csv: count_<segment> per level; N per level = patients in whom the level was assessed")
            cov = "spine_coverage"
            if patients.has_column(cov):
                covs = sorted({str(r[cov]) for r in patients.rows if r[cov]})
                for c in covs if len(covs) > 1 else []:
                    r2 = _try(doc, f"Spine: subgroup {cov} = {c}",
                              lambda c=c: prevalence(patients, levels, where=sel + [f"{cov}={c}"]), notes)
                    if r2 is not None:
                        lr2 = [r for r in r2.tables["prevalence"].rows if r["scope"] in ("level", "level_segment")]
                        if lr2:
                            _figure(doc, lambda lr2=lr2, c=c: figures.level_segment_chart(lr2, f"{cov} = {c}"),
                                    f"level by segment {c}", notes)
    # ------------------------------------------------------------ hands
    if hand_mods:
        doc.h(2, "Hands: lesions per digit")
        dpath = batch_dir / "digits.csv"
        if dpath.is_file():
            digits = Table.read_csv(dpath)
            digits.name = str(dpath)
            try:
                dsel = apply_where(digits, sel) if sel else digits
                rows = list(dsel.rows)
                _figure(doc, lambda: figures.digit_bars(rows, "lesion_count", "Lesions per digit (all patients)"),
                        "lesions per digit", notes)
                doc.source("digits.csv: lesion_count summed over patients, per modality" + (f"; {' and '.join(sel)}" if sel else ""))
            except InputError as e:
                doc.note(f"Not drawn: {e}")
            hpath = batch_dir / "hands.csv"
            hands = Table.read_csv(hpath) if hpath.is_file() else None
            if hands is not None:
                hands.name = str(hpath)
            if len(hand_mods) >= 2:
                res = _try(doc, "Hands: comparison of modalities (study 1)",
                           lambda: compare_modalities(hands, digits, where=sel), notes)
                if res is not None:
                    try:
                        from .modalities import pivot
                        dd = apply_where(digits, sel) if sel else digits
                        keys = [c for c in ("patient_id", "side", "digit") if dd.has_column(c)]
                        area = pivot(dd, keys, "modality", "total_area_mm2")
                        vol = pivot(dd, keys, "modality", "total_volume_mm3")
                        xy = [(area[k]["xr"], vol[k]["ct"]) for k in area if "xr" in area[k] and k in vol and "ct" in vol[k]]
                        if len(xy) >= 3:
                            _figure(doc, lambda: figures.scatter_plot([p[0] for p in xy], [p[1] for p in xy],
                                                                      "XR area per finger (mm²)", "CT volume per finger (mm³)",
                                                                      "Radiograph vs CT, per finger", log=True),
                                    "XR area vs CT volume per finger", notes)
                            doc.source("digits.csv: total_area_mm2 (XR) vs total_volume_mm3 (CT), same finger")
                    except InputError:
                        pass
    # ------------------------------------------------------------ agreement
    readers = sorted({where_text(r["reader"]) for r in patients.rows}) if patients.has_column("reader") else []
    reads = sorted({where_text(r["read"]) for r in patients.rows}) if patients.has_column("read") else []
    cat_vars = [c for c in (["spine_any_calcification", "spine_any_anterior", "spine_any_intracanal", "spine_any_posterior"]
                            + [f"hand_{m}_any_calcinosis" for m in hand_mods] + [f"hand_{m}_any_periarticular" for m in hand_mods])
                if patients.has_column(c)]
    cont_vars = [c for c in ([f"hand_{m}_total_area_mm2" for m in hand_mods] + [f"hand_{m}_total_volume_mm3" for m in hand_mods]
                             + ["spine_calcification_count"]
                             + [c.name for c in patients.columns if c.name.startswith("measure_") and "_total_" in c.name])
                 if patients.has_column(c)]
    tp = [c for c in sel if c.startswith("time_point=")]
    for between, labels, fixed in (("reader", readers, [c for c in sel if c.startswith("read=")] + tp),
                                   ("read", reads, [c for c in sel if c.startswith("reader=")] + tp)):
        if len(labels) < 2:
            continue
        title = "Inter-reader agreement" if between == "reader" else "Intra-reader agreement (repeated reads)"
        lv = labels[:2]
        vars_ = cat_vars + cont_vars
        if not vars_:
            continue
        res = _try(doc, f"{title}: {between} {lv[0]} vs {lv[1]}",
                   lambda between=between, lv=lv, fixed=fixed: reader_agreement(
                       patients, vars_, between=between, levels=lv, where=fixed or None, skip_insufficient=True), notes)
        if res is not None:
            for name, (a, b, ba, labs) in res.plot_data.items():
                unit = "mm³" if name.endswith("mm3") else ("mm²" if name.endswith("mm2") else "")
                _figure(doc, lambda a=a, b=b, ba=ba, labs=labs, name=name: figures.bland_altman_plot(
                    a, b, ba, labs, name, unit), f"Bland-Altman {name}", notes)
            doc.source("patients.csv, rows paired on patient_id (and the other reading keys)")
    # ------------------------------------------------------------ change
    tps = sorted({where_text(r["time_point"]) for r in patients.rows}) if patients.has_column("time_point") else []
    if len(tps) >= 2:
        fixed = [c for c in sel if not c.startswith("time_point=")]
        b0 = "baseline" if "baseline" in tps else tps[0]
        f0 = [t for t in tps if t != b0][0]
        done_any = False
        for value in [c for c in cont_vars if "total" in c]:
            try:
                res = change_table(patients, value, baseline=b0, followup=f0, where=fixed or None)
            except InputError:
                continue
            doc.h(2, f"Change over time: {value}")
            doc.stats(res)
            rows = res.tables["change"].rows
            _figure(doc, lambda rows=rows, value=value: figures.change_plot(rows, value), f"change of {value}", notes)
            done_any = True
        if not done_any:
            doc.h(2, "Change over time")
            doc.note(f"Not computed: no total measured at both {b0!r} and {f0!r} for at least 2 patients.")
    # ------------------------------------------------------------ lesions followed (issue 14)
    outcomes_path = Path(batch_dir) / "lesion_outcomes.csv"
    if outcomes_path.is_file():
        from .outcomes import lesion_outcomes
        outcome_table = Table.read_csv(outcomes_path)
        outcome_table.name = str(outcomes_path)
        if _try(doc, "Lesions followed over time", lambda: lesion_outcomes(outcome_table), notes) is not None:
            doc.source("lesion_outcomes.csv (each patient's later time points followed from the baseline, lesion "
                       "by lesion: follow/<pair>/lesion_changes.csv)")
    # ------------------------------------------------------------ groups
    if by:
        prefixes = ("hand_", "spine_", "measure_")
        findings = [c for c in cat_vars + cont_vars if patients.has_column(c)]
        clinical = [c.name for c in patients.columns if not c.name.startswith(prefixes) and c.name != by
                    and c.name not in ("patient_id", "reader", "read", "time_point", "n_cases", "n_failed", "cases")]
        _try(doc, f"Group comparison by {by}",
             lambda: compare_groups(patients, by, clinical + findings, where=sel or None), notes)
    _provenance_block(doc, prov, "Parameters and provenance of the batch")
    for n in notes:
        doc.note(n)
    return doc.render()


def write_reports(source: str | Path, outdir: str | Path, *, image: str | Path | None = None, spacing=None,
                  manifest: str | Path | None = None, by: str | None = None, where: Sequence[str] | None = None,
                  case_reports: bool = True, force: bool = False, progress=None, workers: int = 1,
                  followup_image: str | Path | None = None) -> list[Path]:
    """``report.html`` for a case folder; ``cohort.html`` + ``cases/<id>.html`` for a batch folder
    (the case pages on ``workers`` processes; the readings of one image read it once).
    ``spacing``: the pixel spacing of a case's ``image`` that has none (a JPEG)."""
    from calcinosis.core.output import OutputTransaction
    from calcinosis.core.progress import report as prog
    from calcinosis.core.provenance import build_record
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"{source}: not a folder (give a case output folder or a batch output folder)")
    is_batch = (source / "patients.csv").is_file() and (source / "cases").is_dir()
    from .follow_report import follow_report_html, is_follow_folder
    is_follow = not is_batch and is_follow_folder(source)
    if followup_image is not None and not is_follow:
        raise InputError(f"--followup-image: {source.name} is not a result of calcinosis follow")
    with OutputTransaction(outdir, force=force) as out:
        if is_follow:
            out.write_text(follow_report_html(source, image, followup_image), "report.html")
        elif is_batch:
            images = {}
            specs = []
            if manifest is not None:
                from .manifest import read_manifest
                specs = read_manifest(manifest)
                images = {s.case_id: s for s in specs}
            prog(progress, 0.0, "cohort report")
            pool = _process_pool(workers) if case_reports and workers > 1 else None
            try:
                # on a pool, the cohort page is drawn while the first case pages are
                cohort_page = pool.submit(cohort_report_html, source, by=by, where=where, case_links=True) \
                    if pool is not None else None
                if cohort_page is None:
                    out.write_text(cohort_report_html(source, by=by, where=where, case_links=case_reports),
                                   "cohort.html")
                if case_reports:
                    _write_case_pages(out, source, images, pool, progress)
                if cohort_page is not None:
                    out.write_text(cohort_page.result(), "cohort.html")
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
        else:
            out.write_text(case_report_html(source, image=image, spacing=spacing, strict_image=image is not None),
                           "report.html")
        out.write_json(build_record("report", {"source": {"kind": "batch" if is_batch else "follow" if is_follow
                                                          else "case"}},
                                    {"by": by, "where": list(where or []), "case_reports": case_reports},
                                    {"files": len(out.written)}, outputs=out.written + ["provenance.json"]),
                       "provenance.json")
        written = [Path(outdir) / n for n in out.written]
    prog(progress, 1.0, "done")
    return written


def _write_case_pages(out, source: Path, images: dict, pool, progress) -> None:
    """``cases/<id>.html`` for every case of the batch folder ``source`` (on ``pool``, or here)."""
    from calcinosis.core.progress import report as prog
    case_dirs = [cd for cd in sorted(p for p in (source / "cases").iterdir() if p.is_dir())
                 if _has_case_page(source, cd.name)]
    jobs = [(str(cd), cd.name, images.get(cd.name)) for cd in case_dirs]
    # the readings of one image side by side (one read of it), then in groups over processes
    jobs.sort(key=lambda j: (str(j[2].image) if j[2] is not None and j[2].image else "", j[1]))
    groups: list[list] = []
    for j in jobs:
        img = str(j[2].image) if j[2] is not None and j[2].image else None
        if groups and img is not None and groups[-1][-1][2] is not None and str(groups[-1][-1][2].image) == img:
            groups[-1].append(j)
        else:
            groups.append([j])
    done = 0
    for pages in (pool.map(_case_pages, groups) if pool is not None else map(_case_pages, groups)):
        for name, text in pages:
            out.write_text(text, f"cases/{name}.html")
            done += 1
            prog(progress, 0.1 + 0.9 * done / max(len(jobs), 1), name)


def _case_pages(group: list) -> list[tuple[str, str]]:
    """The pages of a group of cases (readings of one image): [(case id, html)]."""
    cache: dict = {}
    return [(name, case_report_html(Path(cd), image=sp.image if sp else None, case_id=name, spacing=_spacing(sp),
                                    modality=sp.modality if sp and sp.task == "measure" else None,
                                    back=("../cohort.html", "Cohort report"), image_cache=cache))
            for cd, name, sp in group]


def _process_pool(workers: int):
    """A pool of ``workers`` processes (forkserver where there is one: no copy of this
    process's state)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def _spacing(spec):
    if spec is None or not spec.spacing:
        return None
    return tuple(float(x) for x in spec.spacing.split(","))
