"""A catalogue of bad inputs (issue 12, deliverable 2), run through the command line in-process.

Every case is generated from a table built below: DICOM header fields the readers use
(removed, zero, NaN, negative, huge, text), every numeric option of every sub-command (NaN,
infinity, text, and -1 / 0 / 1e308 where they are no physical value), CSV inputs (manifests,
landmark lists, structural forms, statistics tables, clinical tables: text, NaN, infinity,
empty cells, BOM, CRLF, semicolons, missing columns) and path options (a file for a folder, a
folder for a file, nothing, a place that cannot be written).

Each case states the exit code it must give:

* 2, bad input: one line on stderr (``calcinosis: error: ...``) naming the file, row, column
  or option, no traceback, nothing written (the output folder absent, an earlier result and
  every input byte-identical);
* 0, acceptable input: a result that is right (checked per case), no traceback, inputs
  untouched.

The inputs are small phantoms written once per module by ``calcinosis phantom``.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from calcinosis.cli.main import build_parser, walk_parsers
from calcinosis.core.tables import Table


# ---------------------------------------------------------------------- shared inputs
def _cli_run(capsys, *argv):
    from calcinosis.cli.main import main
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Small phantoms and results, made once: paths by name."""
    from calcinosis.cli.main import main
    root = tmp_path_factory.mktemp("catalogue")

    def make(*argv, quiet=True):
        code = main([str(a) for a in argv] + (["-q"] if quiet else []))
        assert code == 0, argv

    make("phantom", "spheres", "--diameters", "3,5", "--format", "dicom", "-o", root / "sph_dcm")
    make("phantom", "spheres", "--diameters", "3,5", "-o", root / "sph")
    make("phantom", "radiograph", "--diameters", "2,3", "-o", root / "xr")
    make("phantom", "radiograph", "--diameters", "2,3", "--spacing-tag", "imager", "--magnification", "1.1",
         "-o", root / "xr_imager")
    make("phantom", "hand-xr", "--spacing", "0.4", "-o", root / "hand")
    make("phantom", "spine-ct", "--coverage", "lumbar", "--spacing", "1.5,1.5,2.5", "--size", "128,128",
         "-o", root / "spine")
    make("measure", root / "sph" / "ct.nrrd", "--threshold", "130", "-o", root / "case")
    make("measure", root / "xr" / "xr.dcm", "--threshold", "100", "-o", root / "xr_result")
    make("hand", root / "hand" / "xr.dcm", "--landmarks", root / "hand" / "landmarks.mrk.json", "-o", root / "hand_res")
    make("hand-form", "blank", "-o", root / "form.csv", quiet=False)
    series = root / "sph_dcm" / "ct"
    e = {
        "root": root,
        "series": series,
        "nrrd": root / "sph" / "ct.nrrd",
        "truth": Table.read_csv(root / "sph" / "truth.csv"),
        "xr": root / "xr" / "xr.dcm",
        "xr_imager": root / "xr_imager" / "xr.dcm",
        "hand_xr": root / "hand" / "xr.dcm",
        "landmarks_json": root / "hand" / "landmarks.mrk.json",
        "landmarks_csv": root / "hand" / "landmarks.csv",
        "spine_ct": root / "spine" / "ct",
        "vertebrae": root / "spine" / "vertebrae.nii.gz",
        "points": root / "spine" / "points.mrk.json",
        "case": root / "case",
        "xr_result": root / "xr_result",
        "hand_res": root / "hand_res",
        "form": root / "form.csv",
    }
    (root / "stats.csv").write_text(_STATS_TEXT, encoding="utf-8")
    e["stats"] = root / "stats.csv"
    (root / "manifest.csv").write_text(f"case_id,patient_id,task,image,threshold\nc1,P1,measure,{e['nrrd']},130\n",
                                       encoding="utf-8")
    e["manifest"] = root / "manifest.csv"
    return e


_STATS_TEXT = ("patient_id,reader,read,time_point,group,volume_mm3,count\n"
               + "".join(f"P{i},R{r},1,{t},{'a' if i % 2 else 'b'},{10 + i + r + (3 if t == 'M12' else 0)},{i % 3}\n"
                         for i in range(1, 9) for r in (1, 2) for t in ("baseline", "M12")))


# ---------------------------------------------------------------------- the case model
@dataclass
class Expect:
    argv: list
    code: int
    needle: str | tuple = ""            # what the one-line message must name (any of a tuple)
    out: Path | None = None             # the output that must not appear (code 2)
    keep: list = field(default_factory=list)   # files / folders that must stay byte-identical
    check: Callable | None = None       # for code 0: check(out_text, err_text)


CASES: list = []


def case(name: str, marks=()):
    def register(fn):
        CASES.append(pytest.param(fn, id=name, marks=marks))
        return fn
    return register


def _digest(paths) -> dict:
    out = {}
    for p in paths:
        p = Path(p)
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else ([p] if p.exists() else [])
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
        if not files:
            out[str(p)] = "absent" if not p.exists() else "empty folder"
    return out


def _lesion_count(folder: Path) -> int:
    return len(Table.read_csv(folder / "lesions.csv"))


# ---------------------------------------------------------------------- 1. DICOM header fields
#: mutation name -> value written (None: the element removed)
_DS_MUTATIONS = {"removed": None, "zero": "0", "nan": "nan", "negative": "-1", "huge": "1e308", "text": "abc"}
_US_MUTATIONS = {"removed": None, "zero": 0, "huge": 65535}


def _set(ds, keyword: str, value, n: int = 1):
    """Write ``value`` (n times, multi-valued) into ``keyword``; text goes in as LO so that
    pydicom writes what no valid DS would hold."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    if value is None:
        if keyword in ds:
            delattr(ds, keyword)
        return
    tag = tag_for_keyword(keyword)
    vr = dictionary_VR(tag)
    if keyword in ds:
        del ds[tag]
    if isinstance(value, str) and vr == "DS" and value not in ("0", "-1", "1e308", "nan"):
        ds.add_new(tag, "LO", "\\".join([value] * n))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # pydicom warns that nan is no valid DS: that is the point
        ds.add_new(tag, vr, [value] * n if n > 1 else value)


def _mutated_series(env, tmp: Path, keyword: str, value, n: int = 1, only: int | None = None) -> Path:
    import pydicom
    folder = tmp / "series"
    shutil.copytree(env["series"], folder, ignore=shutil.ignore_patterns("*.nrrd", "*.csv", "*.json"))
    files = sorted(folder.glob("*.dcm"))
    for k, f in enumerate(files):
        if only is not None and k != only:
            continue
        ds = pydicom.dcmread(f)
        _set(ds, keyword, value, n)
        ds.save_as(f)
    return folder


def _mutated_xr(env, tmp: Path, keyword: str, value, n: int = 1, source: str = "xr") -> Path:
    import pydicom
    f = tmp / "xr.dcm"
    shutil.copy(env[source], f)
    ds = pydicom.dcmread(f)
    _set(ds, keyword, value, n)
    ds.save_as(f)
    return f


def _measure_refused(image: Path, tmp: Path, needle, keep=()) -> Expect:
    out = tmp / "out"
    return Expect(["measure", image, "--threshold", "130", "-o", out, "-q"], 2, needle, out, [image, *keep])


def _measure_counts_spheres(env, image: Path, tmp: Path) -> Expect:
    out = tmp / "out"

    def check(_o, _e):
        assert _lesion_count(out) == len(env["truth"])
    return Expect(["measure", image, "--threshold", "130", "-o", out, "-q"], 0, out=out, keep=[image], check=check)


#: series fields whose bad values must be refused naming the field: keyword -> (values, tag)
_SERIES_REFUSED = {
    "PixelSpacing": (2, ("removed", "zero", "nan", "negative", "text"), "(0028,0030)"),
    "ImagePositionPatient": (3, ("removed", "nan", "huge", "text"), "(0020,0032)"),
    "ImageOrientationPatient": (6, ("zero", "nan", "negative", "huge", "text"), "(0020,0037)"),
    "RescaleSlope": (1, ("zero", "nan", "huge", "text"), "(0028,1053)"),
    "RescaleIntercept": (1, ("nan", "huge", "text"), "(0028,1052)"),
}
for _kw, (_n, _muts, _tag) in _SERIES_REFUSED.items():
    for _m in _muts:
        def _series_case(env, tmp, kw=_kw, n=_n, m=_m, tag=_tag):
            return _measure_refused(_mutated_series(env, tmp, kw, _DS_MUTATIONS[m], n), tmp, tag)
        case(f"series-{_kw}-{_m}")(_series_case)

for _kw, _tag in (("Rows", "(0028,0010)"), ("Columns", "(0028,0011)"), ("BitsAllocated", "(0028,0100)"),
                  ("SamplesPerPixel", "(0028,0002)")):
    for _m, _v in _US_MUTATIONS.items():
        if _kw == "SamplesPerPixel" and _m == "removed":
            continue          # 1 is its only value here: absent is read as 1 (below, accepted)
        # a huge size is caught as pixel data too short for it: the file is named, and why
        _needle = ("truncated or its header is wrong", _tag) if _m == "huge" and _kw in ("Rows", "Columns") else _tag

        def _us_case(env, tmp, kw=_kw, v=_v, needle=_needle):
            return _measure_refused(_mutated_series(env, tmp, kw, v), tmp, needle)
        case(f"series-{_kw}-{_m}")(_us_case)


@case("series-PixelSpacing-huge")
def _(env, tmp):
    return _measure_refused(_mutated_series(env, tmp, "PixelSpacing", "1e308", 2), tmp, "not a plausible size")


@case("series-ImagePositionPatient-all-equal")
def _(env, tmp):
    return _measure_refused(_mutated_series(env, tmp, "ImagePositionPatient", "0", 3), tmp, "share one position")


@case("series-one-slice-other-size")
def _(env, tmp):
    import numpy as np
    import pydicom
    folder = _mutated_series(env, tmp, "SliceThickness", "0.6")
    f = sorted(folder.glob("*.dcm"))[5]
    ds = pydicom.dcmread(f)
    a = np.ascontiguousarray(ds.pixel_array[:-2, :-2])
    ds.Rows, ds.Columns = a.shape
    ds.PixelData = a.tobytes()
    ds.save_as(f)
    return _measure_refused(folder, tmp, f.name)


@case("series-one-slice-truncated")
def _(env, tmp):
    folder = _mutated_series(env, tmp, "SliceThickness", "0.6")
    f = sorted(folder.glob("*.dcm"))[4]
    f.write_bytes(f.read_bytes()[:-301])
    return _measure_refused(folder, tmp, (f.name, "truncated"))


@case("series-one-slice-missing")
def _(env, tmp):
    folder = _mutated_series(env, tmp, "SliceThickness", "0.6")
    sorted(folder.glob("*.dcm"))[6].unlink()
    return _measure_refused(folder, tmp, "irregular slice spacing")


@case("series-one-slice-moved")
def _(env, tmp):
    import pydicom
    folder = _mutated_series(env, tmp, "SliceThickness", "0.6")
    f = sorted(folder.glob("*.dcm"))[3]
    ds = pydicom.dcmread(f)
    ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]) + 5, *ds.ImagePositionPatient[1:]]
    ds.save_as(f)
    return _measure_refused(folder, tmp, (f.name, "(0020,0032)", "off the line"))


@case("series-not-dicom-files")
def _(env, tmp):
    folder = tmp / "notdicom"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"not a dicom file")
    return _measure_refused(folder, tmp, "holds no DICOM files")


# fields the measure does not depend on: any value gives the same, correct result
for _kw, _m in (("SliceThickness", "nan"), ("SliceThickness", "removed"), ("Modality", "removed"),
                ("SeriesInstanceUID", "removed"), ("BitsStored", "removed"), ("ImageOrientationPatient", "removed"),
                ("SamplesPerPixel", "removed"), ("RescaleSlope", "removed")):
    def _fine_series(env, tmp, kw=_kw, m=_m):
        n = {"ImageOrientationPatient": 6}.get(kw, 1)
        v = _DS_MUTATIONS[m] if m in _DS_MUTATIONS else None
        if kw == "Modality" or kw == "SeriesInstanceUID" or kw == "BitsStored":
            v = None
        if kw == "SliceThickness" and m == "nan":
            v = "nan"
        return _measure_counts_spheres(env, _mutated_series(env, tmp, kw, v, n), tmp)
    case(f"series-{_kw}-{_m}-accepted")(_fine_series)


# radiograph: Pixel Spacing on the patient plane
for _m in ("removed", "zero", "nan", "negative", "text"):
    def _xr_ps(env, tmp, m=_m):
        return _measure_refused(_mutated_xr(env, tmp, "PixelSpacing", _DS_MUTATIONS[m], 2), tmp, "(0028,0030)")
    case(f"xr-PixelSpacing-{_m}")(_xr_ps)


@case("xr-PixelSpacing-huge")
def _(env, tmp):
    return _measure_refused(_mutated_xr(env, tmp, "PixelSpacing", "1e308", 2), tmp, "not a plausible size")


# radiograph: Imager Pixel Spacing and the magnification factor (a detector-plane file)
for _m in ("removed", "zero", "nan", "negative", "text"):
    def _xr_ips(env, tmp, m=_m):
        return _measure_refused(_mutated_xr(env, tmp, "ImagerPixelSpacing", _DS_MUTATIONS[m], 2, "xr_imager"), tmp,
                                "(0018,1164)")
    case(f"xr-ImagerPixelSpacing-{_m}")(_xr_ips)

for _m in ("zero", "nan", "negative", "huge"):
    def _xr_mag(env, tmp, m=_m):
        f = _mutated_xr(env, tmp, "EstimatedRadiographicMagnificationFactor", _DS_MUTATIONS[m], 1, "xr_imager")
        return _measure_refused(f, tmp, "(0018,1114)")
    case(f"xr-EstimatedRadiographicMagnificationFactor-{_m}")(_xr_mag)


@case("xr-EstimatedRadiographicMagnificationFactor-removed-warned")
def _(env, tmp):
    f = _mutated_xr(env, tmp, "EstimatedRadiographicMagnificationFactor", None, 1, "xr_imager")
    out = tmp / "out"

    def check(_o, err):
        assert "spacing is the detector's" in err and "--magnification" in err
        import json
        prov = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
        assert "detector plane" in json.dumps(prov)
    return Expect(["measure", f, "--threshold", "100", "-o", out, "-q"], 0, out=out, keep=[f], check=check)


for _kw, _tag in (("Rows", "(0028,0010)"), ("Columns", "(0028,0011)"), ("BitsAllocated", "(0028,0100)"),
                  ("SamplesPerPixel", "(0028,0002)")):
    for _m, _v in _US_MUTATIONS.items():
        if _kw == "SamplesPerPixel" and _m == "removed":
            continue
        _needle = ("truncated or its header is wrong", _tag) if _m == "huge" and _kw in ("Rows", "Columns") else _tag

        def _xr_us(env, tmp, kw=_kw, v=_v, needle=_needle):
            return _measure_refused(_mutated_xr(env, tmp, kw, v), tmp, needle)
        case(f"xr-{_kw}-{_m}")(_xr_us)

for _kw, _muts, _tag in (("RescaleSlope", ("zero", "nan", "huge", "text"), "(0028,1053)"),
                         ("RescaleIntercept", ("nan", "huge", "text"), "(0028,1052)")):
    for _m in _muts:
        def _xr_rescale(env, tmp, kw=_kw, m=_m, tag=_tag):
            return _measure_refused(_mutated_xr(env, tmp, kw, _DS_MUTATIONS[m]), tmp, tag)
        case(f"xr-{_kw}-{_m}")(_xr_rescale)


@case("xr-NumberOfFrames-two")
def _(env, tmp):
    return _measure_refused(_mutated_xr(env, tmp, "NumberOfFrames", "2"), tmp, "(0028,0008)")


@case("xr-NumberOfFrames-zero")
def _(env, tmp):
    return _measure_refused(_mutated_xr(env, tmp, "NumberOfFrames", "0"), tmp, "(0028,0008)")


@case("xr-PixelData-removed")
def _(env, tmp):
    return _measure_refused(_mutated_xr(env, tmp, "PixelData", None), tmp, "no Pixel Data")


@case("xr-truncated")
def _(env, tmp):
    f = tmp / "xr.dcm"
    data = env["xr"].read_bytes()
    f.write_bytes(data[: len(data) * 2 // 3])
    return _measure_refused(f, tmp, ("xr.dcm", "truncated"))


@case("xr-truncated-in-header")
def _(env, tmp):
    f = tmp / "xr.dcm"
    f.write_bytes(env["xr"].read_bytes()[:300])
    return _measure_refused(f, tmp, "xr.dcm")


for _kw in ("Modality", "ImageLaterality", "PhotometricInterpretation", "RescaleIntercept"):
    def _xr_fine(env, tmp, kw=_kw):
        f = _mutated_xr(env, tmp, kw, None)
        out = tmp / "out"

        def check(_o, _e):
            assert (out / "lesions.csv").read_bytes() == (env["xr_result"] / "lesions.csv").read_bytes()
        return Expect(["measure", f, "--threshold", "100", "-o", out, "-q"], 0, out=out, keep=[f], check=check)
    case(f"xr-{_kw}-removed-accepted")(_xr_fine)


# ---------------------------------------------------------------------- 2. numeric options
def _base_argv(env, path: tuple) -> list:
    """An otherwise valid command line for ``path`` (the sub-command), before the option."""
    e = env
    return {
        ("measure",): ["measure", e["nrrd"], "--threshold", "130"],
        ("hand",): ["hand", e["hand_xr"], "--landmarks", e["landmarks_json"]],
        ("spine",): ["spine", e["spine_ct"], "--vertebrae", e["vertebrae"]],
        ("batch",): ["batch", e["manifest"]],
        ("stats", "agreement"): ["stats", "agreement", e["stats"], "--var", "volume_mm3", "--between", "reader",
                                 "--where", "time_point=baseline"],
        ("stats", "change"): ["stats", "change", e["stats"], "--value", "volume_mm3", "--where", "reader=R1"],
        ("report",): ["report", e["case"]],
    }.get(path, [*path])


def _numeric_options() -> list[tuple[tuple, str]]:
    """(command path, option) of every option that takes numbers, from the parser itself
    (an option added later is in the catalogue without an edit here)."""
    found = []
    for path, parser in walk_parsers(build_parser(full=True)):
        for action in parser._actions:  # noqa: SLF001 - argparse has no public list
            if not action.option_strings or action.type is None or action.type is str:
                continue
            found.append((path, action.option_strings[-1]))
    # options that take numbers as text, validated after parsing
    found += [(("measure",), "--threshold"), (("spine",), "--param")]
    return sorted(set(found))


def _value_for(option: str, value: str) -> str:
    if option == "--param":
        return f"points_bone_hu={value}"
    return value


#: values no numeric option may take
_NEVER = ("nan", "inf", "text")
#: -1 / 0 / 1e308 are refused except where they are a physical value of that option
_ALLOWED = {
    "-1": {"--threshold", "--cortical-hu", "--oblique", "--intensity", "--param"},
    "0": {"--threshold", "--cortical-hu", "--oblique", "--intensity", "--param", "--min-size", "--noise", "--seed",
          "--workers", "--min-confidence", "--cortex-max", "--bone-rim", "--max-ray-distance", "--joint-radius",
          "--periarticular-distance", "--wrist-reach", "--wrist-width", "--side-reach", "--landmark-margin",
          "--vessel-margin", "--per-level", "--turn", "--bend"},
    "1e308": {"--threshold", "--cortical-hu", "--min-size", "--param", "--oblique", "--max-ray-distance",
              "--joint-radius", "--periarticular-distance", "--wrist-reach", "--wrist-width", "--side-reach",
              "--landmark-margin", "--cortex-max", "--bone-rim", "--vessel-margin", "--search-margin",
              "--pseudotumoral-diameter", "--linear-elongation"},
}
_TEXT = {"text": "abc"}

for _path, _opt in _numeric_options():
    for _v in (*_NEVER, "-1", "0", "1e308"):
        if _v in _ALLOWED and _opt in _ALLOWED[_v]:
            continue     # a physical value: accepted (the cheap ones are run below)
        if _opt == "--oblique" and _v == "1e308":
            continue

        def _option_case(env, tmp, path=_path, opt=_opt, v=_v):
            out = tmp / "out"
            value = _value_for(opt, _TEXT.get(v, v))
            argv = _base_argv(env, path) + [opt, value, "-o", out]
            return Expect(argv, 2, opt.split("=")[0] if opt != "--param" else "--param points_bone_hu", out,
                          keep=[env["nrrd"], env["manifest"], env["stats"], env["case"]])
        case(f"option-{'-'.join(_path)}{_opt}={_v}")(_option_case)


# physical values that are accepted: run where it is cheap, and the result checked
@case("option-measure--min-size=0-accepted")
def _(env, tmp):
    return _measure_counts_spheres_with(env, tmp, ["--min-size", "0"])


@case("option-measure--threshold=-1-accepted")
def _(env, tmp):
    out = tmp / "out"

    def check(_o, _e):
        assert _lesion_count(out) >= 1      # soft tissue at 0 HU with noise: above -1 HU almost everywhere
    return Expect(["measure", env["nrrd"], "--threshold", "-1", "-o", out, "-q"], 0, out=out, keep=[env["nrrd"]],
                  check=check)


def _measure_counts_spheres_with(env, tmp, extra) -> Expect:
    out = tmp / "out"

    def check(_o, _e):
        assert _lesion_count(out) == len(env["truth"])
    return Expect(["measure", env["nrrd"], "--threshold", "130", *extra, "-o", out, "-q"], 0, out=out,
                  keep=[env["nrrd"]], check=check)


for _opt, _v in (("--oblique", "-1"), ("--oblique", "0"), ("--intensity", "0"), ("--noise", "0"), ("--seed", "0")):
    def _phantom_ok(env, tmp, opt=_opt, v=_v):
        out = tmp / "out"

        def check(_o, _e):
            assert (out / "ct.nrrd").is_file() and len(Table.read_csv(out / "truth.csv")) == 1
        return Expect(["phantom", "spheres", "--diameters", "4", opt, v, "-o", out, "-q"], 0, out=out, check=check)
    case(f"option-phantom-spheres{_opt}={_v}-accepted")(_phantom_ok)


# an earlier result is left byte-identical by a refused rerun, even with --force
@case("earlier-result-kept-after-refused-force")
def _(env, tmp):
    out = tmp / "out"
    shutil.copytree(env["case"], out)
    return Expect(["measure", env["nrrd"], "--threshold", "nan", "-o", out, "--force", "-q"], 2, "--threshold",
                  None, keep=[out])


@case("earlier-result-kept-without-force")
def _(env, tmp):
    out = tmp / "out"
    shutil.copytree(env["case"], out)
    return Expect(["measure", env["nrrd"], "--threshold", "130", "-o", out, "-q"], 2, ("--force", "earlier"),
                  None, keep=[out])


# ---------------------------------------------------------------------- 3. CSV inputs
def _write(tmp: Path, name: str, text: str, encoding="utf-8") -> Path:
    p = tmp / name
    p.write_bytes(text.encode(encoding))
    return p


def _manifest_text(env, threshold="130", extra_col="", extra_val="") -> str:
    head = "case_id,patient_id,task,image,threshold" + (f",{extra_col}" if extra_col else "")
    row = f"c1,P1,measure,{env['nrrd']},{threshold}" + (f",{extra_val}" if extra_col else "")
    return head + "\n" + row + "\n"


for _name, _col, _val, _needle in (
        ("threshold-text", "threshold", "abc", "column threshold"),
        ("threshold-nan", "threshold", "nan", "column threshold"),
        ("threshold-inf", "threshold", "inf", "column threshold"),
        ("min_size-nan", "min_size", "nan", "column min_size"),
        ("min_size-inf", "min_size", "inf", "column min_size"),
        ("min_size-negative", "min_size", "-1", "column min_size"),
        ("min_size-text", "min_size", "abc", "column min_size"),
        ("min_slices-zero", "min_slices", "0", "column min_slices"),
        ("min_slices-nan", "min_slices", "nan", "column min_slices"),
        ("read-text", "read", "abc", "column read"),
        ("spacing-nan", "spacing", "nan", "column spacing"),
        ("spacing-inf", "spacing", "inf", "column spacing"),
        ("spacing-huge", "spacing", "1e308", "column spacing"),
        ("below-text", "below", "maybe", "column below"),
        ("connectivity-text", "connectivity", "diagonal", "column connectivity"),
        ("modality-text", "modality", "pet", "column modality"),
        ("case_id-path", "case_id", "../../etc", "column case_id"),
        ("options-output", "options", "--force", "column options"),
        ("options-unbalanced-quote", "options", "'--keep-segments", "column options")):
    def _manifest_cell(env, tmp, col=_col, val=_val, needle=_needle):
        if col in ("threshold", "case_id"):
            text = _manifest_text(env, threshold=val) if col == "threshold" else \
                _manifest_text(env).replace("c1,P1", f"{val},P1")
        else:
            text = _manifest_text(env, extra_col=col, extra_val=val)
        m = _write(tmp, "m.csv", text)
        out = tmp / "out"
        return Expect(["batch", m, "-o", out, "--workers", "0", "-q"], 2, ("m.csv", "row 2", needle), out, keep=[m])
    case(f"manifest-{_name}")(_manifest_cell)


@case("manifest-empty-required-cell")
def _(env, tmp):
    m = _write(tmp, "m.csv", _manifest_text(env).replace(",P1,", ",,"))
    return Expect(["batch", m, "-o", tmp / "out", "--workers", "0", "-q"], 2, "row 2, column patient_id",
                  tmp / "out", keep=[m])


@case("manifest-missing-column")
def _(env, tmp):
    m = _write(tmp, "m.csv", f"case_id,task,image\nc1,measure,{env['nrrd']}\n")
    return Expect(["batch", m, "-o", tmp / "out", "--workers", "0", "-q"], 2, "'patient_id' missing", tmp / "out",
                  keep=[m])


@case("manifest-semicolons")
def _(env, tmp):
    m = _write(tmp, "m.csv", _manifest_text(env).replace(",", ";"))
    return Expect(["batch", m, "-o", tmp / "out", "--workers", "0", "-q"], 2, ("m.csv", "column"), tmp / "out",
                  keep=[m])


@case("manifest-short-row")
def _(env, tmp):
    m = _write(tmp, "m.csv", "case_id,patient_id,task,image,threshold\nc1,P1,measure\n")
    return Expect(["batch", m, "-o", tmp / "out", "--workers", "0", "-q"], 2, "row 2", tmp / "out", keep=[m])


@case("manifest-not-utf8")
def _(env, tmp):
    m = _write(tmp, "m.csv", _manifest_text(env).replace("c1", "c1") + "c2,P\xe9,measure,x,1\n", encoding="latin-1")
    return Expect(["batch", m, "-o", tmp / "out", "--workers", "0", "-q"], 2, ("m.csv", "UTF-8"), tmp / "out",
                  keep=[m])


@case("manifest-only-header")
def _(env, tmp):
    m = _write(tmp, "m.csv", "case_id,patient_id,task,image\n")
    return Expect(["batch", m, "-o", tmp / "out", "--workers", "0", "-q"], 2, ("m.csv", "no case rows"), tmp / "out",
                  keep=[m])


@case("manifest-bom-crlf-accepted")
def _(env, tmp):
    m = _write(tmp, "m.csv", "\ufeff" + _manifest_text(env).replace("\n", "\r\n"))
    out = tmp / "out"

    def check(_o, _e):
        rows = Table.read_csv(out / "patients.csv").rows
        counts = [v for k, v in rows[0].items() if k.endswith("_lesion_count")]
        assert len(rows) == 1 and counts == [len(env["truth"])]
    return Expect(["batch", m, "-o", out, "--workers", "0", "-q"], 0, out=out, keep=[m], check=check)


@case("manifest-changed-earlier-tables-kept")
def _(env, tmp):
    """A rerun with a changed row and no --force: the earlier cohort tables are not rewritten
    without the case (was: patients.csv and lesions.csv rewritten empty, exit 3)."""
    m = _write(tmp, "m.csv", _manifest_text(env))
    out = tmp / "out"
    from calcinosis.cli.main import main
    assert main(["batch", str(m), "-o", str(out), "--workers", "0", "-q"]) == 0
    m.write_text(_manifest_text(env, threshold="200"), encoding="utf-8")
    return Expect(["batch", m, "-o", out, "--workers", "0", "-q"], 2, ("row 2", "c1", "--force"), None, keep=[out, m])


# landmark CSV (hand --landmarks)
def _landmarks_csv(env) -> str:
    return env["landmarks_csv"].read_text(encoding="utf-8")


def _hand_refused(env, tmp, lm: Path, needle) -> Expect:
    out = tmp / "out"
    return Expect(["hand", env["hand_xr"], "--landmarks", lm, "-o", out, "-q"], 2, needle, out, keep=[lm])


def _replace_first_coordinate(text: str, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    k = next(i for i, h in enumerate(header) if h.strip().lower() in ("r", "r_mm", "l", "l_mm"))
    cells = lines[1].split(",")
    cells[k] = value
    lines[1] = ",".join(cells)
    return "\n".join(lines) + "\n"


for _name, _val in (("text", "abc"), ("nan", "nan"), ("inf", "inf"), ("huge", "1e308")):
    def _lm_cell(env, tmp, val=_val):
        lm = _write(tmp, "lm.csv", _replace_first_coordinate(_landmarks_csv(env), val))
        return _hand_refused(env, tmp, lm, ("lm.csv", "row 2", "three"))
    case(f"landmarks-csv-coordinate-{_name}")(_lm_cell)


@case("landmarks-csv-semicolons")
def _(env, tmp):
    lm = _write(tmp, "lm.csv", _landmarks_csv(env).replace(",", ";"))
    return _hand_refused(env, tmp, lm, ("lm.csv", "column"))


@case("landmarks-csv-no-label-column")
def _(env, tmp):
    lm = _write(tmp, "lm.csv", _landmarks_csv(env).replace("label", "name", 1))
    return _hand_refused(env, tmp, lm, ("lm.csv", "'label'"))


@case("landmarks-csv-xyz-columns")
def _(env, tmp):
    text = _landmarks_csv(env)
    head, rest = text.split("\n", 1)
    head = ",".join({"r": "x", "a": "y", "s": "z", "l": "x", "p": "y"}.get(h, h) for h in head.split(","))
    lm = _write(tmp, "lm.csv", head + "\n" + rest)
    return _hand_refused(env, tmp, lm, ("lm.csv", "coordinate columns"))


@case("landmarks-csv-empty")
def _(env, tmp):
    return _hand_refused(env, tmp, _write(tmp, "lm.csv", ""), ("lm.csv", "empty"))


@case("landmarks-json-truncated")
def _(env, tmp):
    text = env["landmarks_json"].read_text(encoding="utf-8")
    return _hand_refused(env, tmp, _write(tmp, "lm.mrk.json", text[: len(text) // 2]), ("lm.mrk.json", "JSON"))


@case("landmarks-json-nan-position")
def _(env, tmp):
    import json
    doc = json.loads(env["landmarks_json"].read_text(encoding="utf-8"))
    doc["markups"][0]["controlPoints"][0]["position"] = ["nan", 0, 0]
    return _hand_refused(env, tmp, _write(tmp, "lm.mrk.json", json.dumps(doc)), ("lm.mrk.json", "control point 1"))


@case("landmarks-json-units-um")
def _(env, tmp):
    import json
    doc = json.loads(env["landmarks_json"].read_text(encoding="utf-8"))
    doc["markups"][0]["coordinateUnits"] = "um"
    return _hand_refused(env, tmp, _write(tmp, "lm.mrk.json", json.dumps(doc)), ("lm.mrk.json", "mm of one another"))


@case("landmarks-csv-bom-crlf-accepted")
def _(env, tmp):
    lm = _write(tmp, "lm.csv", "\ufeff" + _landmarks_csv(env).replace("\n", "\r\n"))
    out = tmp / "out"

    def check(_o, _e):
        ref = Table.read_csv(env["hand_res"] / "hand.csv").rows
        got = Table.read_csv(out / "hand.csv").rows
        assert [r["lesion_count"] for r in got] == [r["lesion_count"] for r in ref]
    return Expect(["hand", env["hand_xr"], "--landmarks", lm, "-o", out, "-q"], 0, out=out, keep=[lm], check=check)


# structural form (hand-form check)
def _form_with(env, cell: str) -> str:
    lines = env["form"].read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[len(header) - 1] = cell
    lines[1] = ",".join(cells)
    return "\n".join(lines) + "\n"


for _name, _val in (("text", "abc"), ("nan", "nan"), ("inf", "inf"), ("two", "2"), ("negative", "-1")):
    def _form_cell(env, tmp, val=_val):
        f = _write(tmp, "form.csv", _form_with(env, val))
        out = tmp / "summary.csv"
        return Expect(["hand-form", "check", f, "-o", out], 2, ("form.csv", "row 2"), out, keep=[f])
    case(f"form-cell-{_name}")(_form_cell)


@case("form-semicolons")
def _(env, tmp):
    f = _write(tmp, "form.csv", env["form"].read_text(encoding="utf-8").replace(",", ";"))
    return Expect(["hand-form", "check", f, "-o", tmp / "s.csv"], 2, "form.csv", tmp / "s.csv", keep=[f])


@case("form-missing-column")
def _(env, tmp):
    lines = env["form"].read_text(encoding="utf-8").splitlines()
    f = _write(tmp, "form.csv", "\n".join(",".join(ln.split(",")[:-1]) for ln in lines) + "\n")
    return Expect(["hand-form", "check", f, "-o", tmp / "s.csv"], 2, ("form.csv", "column"), tmp / "s.csv", keep=[f])


@case("form-bom-crlf-accepted")
def _(env, tmp):
    f = _write(tmp, "form.csv", "\ufeff" + _form_with(env, "1").replace("\n", "\r\n"))
    out = tmp / "s.csv"

    def check(_o, _e):
        assert out.is_file() and len(Table.read_csv(out)) >= 1
    return Expect(["hand-form", "check", f, "-o", out], 0, out=out, keep=[f], check=check)


# statistics tables (readings of 8 patients x 2 readers x 2 time points; each command told which)
_GROUPS = ("groups", "--by", "group", "--vars", "volume_mm3", "--where", "reader=R1", "--where", "time_point=baseline")
_STATS_COMMANDS = (_GROUPS,
                   ("agreement", "--var", "volume_mm3", "--between", "reader", "--where", "time_point=baseline"),
                   ("change", "--value", "volume_mm3", "--where", "reader=R1"))


def _stats_with(cell: str, row: int = 3, col: str = "volume_mm3") -> str:
    lines = _STATS_TEXT.splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(col)] = cell
    lines[row - 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


for _name, _val in (("text", "abc"), ("inf", "inf"), ("huge", "1e308"), ("minus-inf", "-inf")):
    for _cmd in _STATS_COMMANDS:
        def _stats_cell(env, tmp, val=_val, cmd=_cmd):
            t = _write(tmp, "t.csv", _stats_with(val, row=2))
            out = tmp / "out"
            return Expect(["stats", *cmd[:1], t, *cmd[1:], "-o", out], 2, ("volume_mm3", "row 2"), out, keep=[t])
        case(f"stats-{_cmd[0]}-cell-{_name}")(_stats_cell)


for _cmd in _STATS_COMMANDS[:2]:
    def _stats_missing(env, tmp, cmd=_cmd):
        t = _write(tmp, "t.csv", _STATS_TEXT.replace("volume_mm3", "vol"))
        out = tmp / "out"
        return Expect(["stats", cmd[0], t, *cmd[1:], "-o", out], 2, "volume_mm3", out, keep=[t])
    case(f"stats-{_cmd[0]}-missing-column")(_stats_missing)

    def _stats_semicolon(env, tmp, cmd=_cmd):
        t = _write(tmp, "t.csv", _STATS_TEXT.replace(",", ";"))
        out = tmp / "out"
        return Expect(["stats", cmd[0], t, *cmd[1:], "-o", out], 2, ("t.csv", "volume_mm3"), out, keep=[t])
    case(f"stats-{_cmd[0]}-semicolons")(_stats_semicolon)


for _name, _val in (("empty", ""), ("nan", "nan"), ("NA", "NA"), ("na", "na"), ("N-A", "N/A"), ("excel-NA", "#N/A")):
    def _stats_missing_value(env, tmp, val=_val):
        """A missing value (empty, NaN, NA, N/A, #N/A: issue 13) is a missing value: that patient
        is counted as missing for the variable (n_missing), exit 0."""
        t = _write(tmp, "t.csv", _stats_with(val, row=2))
        out = tmp / "out"

        def check(_o, _e):
            rows = [r for r in Table.read_csv(out / "groups.csv").rows if r["variable"] == "volume_mm3"]
            # the variable's row, and the row counting its missing value per group
            assert [r["level"] for r in rows] == [None, "(missing)"] and int(rows[0]["n_missing"]) == 1
            assert rows[1]["total"] == "1"
        return Expect(["stats", "groups", t, *_GROUPS[1:], "-o", out, "-q"], 0, out=out, keep=[t], check=check)
    case(f"stats-groups-cell-{_name}-accepted")(_stats_missing_value)


@case("stats-groups-bom-crlf-accepted")
def _(env, tmp):
    t = _write(tmp, "t.csv", "\ufeff" + _STATS_TEXT.replace("\n", "\r\n"))
    ref = _write(tmp, "ref.csv", _STATS_TEXT)
    out, ref_out = tmp / "out", tmp / "ref_out"
    from calcinosis.cli.main import main
    assert main(["stats", "groups", str(ref), *_GROUPS[1:], "-o", str(ref_out), "-q"]) == 0

    def check(_o, _e):
        assert (out / "groups.csv").read_bytes() == (ref_out / "groups.csv").read_bytes()
    return Expect(["stats", "groups", t, *_GROUPS[1:], "-o", out, "-q"], 0, out=out,
                  keep=[t], check=check)


# clinical table (batch --clinical)
for _name, _text, _needle in (("no-patient-column", "pid,age\nP1,50\n", "patient_id"),
                              ("duplicate-patient", "patient_id,age\nP1,50\nP1,51\n", "P1"),
                              ("semicolons", "patient_id;age\nP1;50\n", "patient_id")):
    def _clinical(env, tmp, text=_text, needle=_needle):
        c = _write(tmp, "clinical.csv", text)
        out = tmp / "out"
        return Expect(["batch", env["manifest"], "--clinical", c, "-o", out, "--workers", "0", "-q"], 2,
                      ("clinical.csv", needle), out, keep=[c, env["manifest"]])
    case(f"clinical-{_name}")(_clinical)


# ---------------------------------------------------------------------- 4. path options
def _paths_table(env, tmp) -> dict:
    folder = tmp / "a_folder"
    folder.mkdir(exist_ok=True)
    (folder / "x.txt").write_text("x", encoding="utf-8")
    text = _write(tmp, "a_file.txt", "hello\n")
    return {"folder": folder, "file": text, "nothing": tmp / "nothing_here", "empty-folder": _empty(tmp)}


def _empty(tmp: Path) -> Path:
    p = tmp / "empty_folder"
    p.mkdir(exist_ok=True)
    return p


#: (command path, option or positional (None), what it takes) with a builder of the argv
_PATH_OPTIONS = [
    ("measure-image", lambda e, v, o: ["measure", v, "--threshold", "130", "-o", o]),
    ("measure--mask", lambda e, v, o: ["measure", e["nrrd"], "--mask", v, "-o", o]),
    ("measure--region", lambda e, v, o: ["measure", e["nrrd"], "--threshold", "130", "--region", v, "-o", o]),
    ("measure--exclude", lambda e, v, o: ["measure", e["nrrd"], "--threshold", "130", "--exclude", v, "-o", o]),
    ("hand-image", lambda e, v, o: ["hand", v, "--landmarks", e["landmarks_json"], "-o", o]),
    ("hand--landmarks", lambda e, v, o: ["hand", e["hand_xr"], "--landmarks", v, "-o", o]),
    ("hand--roi", lambda e, v, o: ["hand", e["hand_xr"], "--landmarks", e["landmarks_json"], "--roi", v, "-o", o]),
    ("spine-image", lambda e, v, o: ["spine", v, "--vertebrae", e["vertebrae"], "-o", o]),
    ("spine--vertebrae", lambda e, v, o: ["spine", e["spine_ct"], "--vertebrae", v, "-o", o]),
    ("spine--points", lambda e, v, o: ["spine", e["spine_ct"], "--points", v, "-o", o]),
    ("spine--overrides", lambda e, v, o: ["spine", e["spine_ct"], "--vertebrae", e["vertebrae"], "--overrides", v,
                                          "-o", o]),
    ("batch-manifest", lambda e, v, o: ["batch", v, "-o", o, "--workers", "0"]),
    ("batch--clinical", lambda e, v, o: ["batch", e["manifest"], "--clinical", v, "-o", o, "--workers", "0"]),
    ("stats-groups-table", lambda e, v, o: ["stats", "groups", v, *_GROUPS[1:], "-o", o]),
    ("stats-modalities--digits", lambda e, v, o: ["stats", "modalities", e["stats"], "--digits", v, "-o", o]),
    ("report-dir", lambda e, v, o: ["report", v, "-o", o]),
    ("report--image", lambda e, v, o: ["report", e["case"], "--image", v, "-o", o]),
    ("report--manifest", lambda e, v, o: ["report", e["case"], "--manifest", v, "-o", o]),
    ("hand-compare-result", lambda e, v, o: ["hand-compare", v, e["hand_res"], "-o", o]),
    ("hand-form-check-file", lambda e, v, o: ["hand-form", "check", v, "-o", o]),
]
#: what a path may not be, by name: the message must name the path's file name
for _name, _build in _PATH_OPTIONS:
    for _kind in ("file", "folder", "nothing"):
        if _kind == "folder" and _name in ("measure-image", "spine-image", "hand-image", "report-dir",
                                            "hand-compare-result", "report--image"):
            _kind = "empty-folder"     # a folder is what these take: an empty one is bad
        if _kind == "file" and _name in ("stats-groups-table", "hand-form-check-file", "batch-manifest",
                                          "batch--clinical", "stats-modalities--digits", "spine--overrides",
                                          "hand--landmarks"):
            continue                   # a text file is what these take (its content: section 3)

        def _path_case(env, tmp, build=_build, kind=_kind, name=_name):
            paths = _paths_table(env, tmp)
            value = paths[kind]
            out = tmp / "out"
            argv = build(env, value, out)
            if argv[0] in ("measure", "hand", "spine", "batch", "report", "stats", "hand-compare"):
                argv.append("-q")
            return Expect(argv, 2, value.name, out, keep=[value, env["manifest"], env["case"]])
        case(f"path-{_name}-{_kind}")(_path_case)


# the output option: a file, inside a file, a place that cannot be made
_OUTPUT_COMMANDS = [
    ("measure", lambda e, o: ["measure", e["nrrd"], "--threshold", "130", "-o", o, "-q"]),
    ("phantom-spheres", lambda e, o: ["phantom", "spheres", "--diameters", "4", "-o", o, "-q"]),
    ("stats-groups", lambda e, o: ["stats", "groups", e["stats"], *_GROUPS[1:], "-o", o, "-q"]),
    ("report", lambda e, o: ["report", e["case"], "-o", o, "-q"]),
    ("batch", lambda e, o: ["batch", e["manifest"], "-o", o, "--workers", "0", "-q"]),
    ("hand-landmarks", lambda e, o: ["hand-landmarks", "-o", o / "lm.mrk.json" if o.suffix == "" else o]),
    ("hand-form-blank", lambda e, o: ["hand-form", "blank", "-o", o / "form.csv" if o.suffix == "" else o]),
]
for _name, _build in _OUTPUT_COMMANDS:
    for _kind in ("is-a-file", "under-a-file", "unmakeable"):
        def _output_case(env, tmp, build=_build, kind=_kind, name=_name):
            a_file = _write(tmp, "a_file.txt", "keep me\n")
            o = {"is-a-file": a_file, "under-a-file": a_file / "out", "unmakeable": Path("/proc/calcinosis-out")}[kind]
            if kind == "is-a-file" and name in ("hand-landmarks", "hand-form-blank"):
                o = _write(tmp, "existing.csv" if name == "hand-form-blank" else "existing.mrk.json", "keep me\n")
            needle = {"is-a-file": o.name, "under-a-file": "a_file.txt", "unmakeable": "/proc"}[kind]
            return Expect(build(env, o), 2 if kind == "is-a-file" else (2, 1), needle, None, keep=[o, a_file])
        case(f"output-{_name}-{_kind}")(_output_case)


# demo options
@case("demo--only-unknown")
def _(env, tmp):
    out = tmp / "demo"
    return Expect(["demo", "--only", "nonsense", "-o", out], 2, "--only", out)


@case("demo-output-is-a-file")
def _(env, tmp):
    f = _write(tmp, "a_file.txt", "keep me\n")
    return Expect(["demo", "--only", "foundation", "-o", f], 2, "a_file.txt", None, keep=[f])


# ---------------------------------------------------------------------- the test
@pytest.mark.parametrize("make_case", CASES)
def test_bad_input(make_case, env, tmp_path, capsys):
    e = make_case(env, tmp_path)
    before = _digest(e.keep)
    code, out, err = _cli_run(capsys, *e.argv)
    assert "Traceback" not in err and "internal error" not in err, err
    codes = e.code if isinstance(e.code, tuple) else (e.code,)
    assert code in codes, f"exit {code}, expected {e.code}: {err}"
    if code != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("calcinosis: error:"), err
        needles = e.needle if isinstance(e.needle, tuple) else (e.needle,)
        assert all(n in lines[0] for n in needles), f"{needles} not in: {lines[0]}"
        if e.out is not None:
            assert not e.out.exists(), f"{e.out} was written"
        assert not list(tmp_path.rglob(".*partial*")), "a partial output was left"
    elif e.check is not None:
        e.check(out, err)
    assert _digest(e.keep) == before, "an input or an earlier result changed"


def test_catalogue_is_large_enough():
    assert len(CASES) >= 150
