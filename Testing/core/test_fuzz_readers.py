"""Fuzzing the readers (issue 12, deliverable 3).

Mutated and truncated copies of small sample files - a DICOM radiograph and a DICOM CT series
written by ``calcinosis phantom``, a NRRD, a label map, a ``.seg.nrrd``, a ``.mrk.json`` point
list, a landmarks CSV and a batch manifest - are fed to the readers.  Each input must either
load to something valid (finite geometry, a plausible spacing, an array of the header's shape)
or raise :class:`~calcinosis.core.errors.InputError` in one line that names the file: never
another exception, never a hang.

Seeded and bounded: ``CALCINOSIS_FUZZ_N`` mutations per reader (default 60), each within
``CALCINOSIS_FUZZ_SECONDS`` (default 10 s); ``CALCINOSIS_FUZZ_SEED`` changes the seed.
A longer run: ``CALCINOSIS_FUZZ_N=5000 pytest Testing/core/test_fuzz_readers.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from calcinosis.core import image_io, pointlists
from calcinosis.core.errors import InputError

N = int(os.environ.get("CALCINOSIS_FUZZ_N", "60"))
SECONDS = float(os.environ.get("CALCINOSIS_FUZZ_SECONDS", "10"))
SEED = int(os.environ.get("CALCINOSIS_FUZZ_SEED", "20240612"))

#: values written over header fields: none is a valid number of that field's kind
GARBAGE = [b"nan", b"-1", b"0", b"1e308", b"-1e308", b"inf", b"abc", b"", b"\xff\xfe", b"1\\2\\3\\4\\5\\6\\7",
           b"99999999999999999999", b"-0", b"1e-30"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    from calcinosis.cli.main import main
    root = tmp_path_factory.mktemp("fuzz")

    def make(*argv):
        assert main([str(a) for a in argv] + ["-q"]) == 0, argv

    make("phantom", "spheres", "--diameters", "3,5", "--format", "dicom", "-o", root / "sph_dcm")
    make("phantom", "spheres", "--diameters", "3,5", "-o", root / "sph")
    make("phantom", "radiograph", "--diameters", "2,3", "-o", root / "xr")
    make("phantom", "hand-xr", "--spacing", "0.5", "-o", root / "hand")
    make("measure", root / "sph" / "ct.nrrd", "--threshold", "130", "-o", root / "case")
    manifest = root / "manifest.csv"
    manifest.write_text("case_id,patient_id,task,image,threshold,min_size,reader,read,time_point,spacing\n"
                        f"c1,P1,measure,{root / 'sph' / 'ct.nrrd'},130,1,R1,1,baseline,\n"
                        f"c2,P1,measure,{root / 'xr' / 'xr.dcm'},100:900,0.5,R2,2,M12,\"0.1,0.1\"\n",
                        encoding="utf-8")
    return {"series": root / "sph_dcm" / "ct", "xr": root / "xr" / "xr.dcm", "nrrd": root / "sph" / "ct.nrrd",
            "labels": root / "case" / "lesion_labels.nrrd", "seg": root / "case" / "lesions.seg.nrrd",
            "mrk": root / "hand" / "landmarks.mrk.json", "lm_csv": root / "hand" / "landmarks.csv",
            "manifest": manifest}


# ---------------------------------------------------------------------- mutations
def _flip(data: bytes, rng, start: int = 0) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        k = int(rng.integers(start, len(b)))
        b[k] = int(rng.integers(0, 256))
    return bytes(b)


def _truncate(data: bytes, rng) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def _text_header_end(data: bytes) -> int:
    end = data.find(b"\n\n")
    return len(data) if end < 0 else end


def _overwrite_text_field(data: bytes, rng) -> bytes:
    """A number in a text header (NRRD) or body (JSON, CSV) replaced by garbage."""
    end = _text_header_end(data) if data.startswith(b"NRRD") else len(data)
    spans = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?(e-?\d+)?", data[:end])]
    if not spans:
        return _flip(data, rng)
    a, b = spans[int(rng.integers(0, len(spans)))]
    return data[:a] + GARBAGE[int(rng.integers(0, len(GARBAGE)))] + data[b:]


#: DICOM fields the readers use, overwritten with garbage through pydicom (as text, VR kept)
DICOM_FIELDS = ["PixelSpacing", "ImagerPixelSpacing", "EstimatedRadiographicMagnificationFactor", "Rows", "Columns",
                "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel", "NumberOfFrames",
                "RescaleSlope", "RescaleIntercept", "ImagePositionPatient", "ImageOrientationPatient",
                "PhotometricInterpretation", "Modality", "SliceThickness"]


def _overwrite_dicom_field(path: Path, rng) -> None:
    import pydicom
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    ds = pydicom.dcmread(path, force=True)
    keyword = DICOM_FIELDS[int(rng.integers(0, len(DICOM_FIELDS)))]
    tag = tag_for_keyword(keyword)
    if keyword in ds:
        del ds[tag]
    choice = int(rng.integers(0, 4))
    if choice == 0:
        pass                                            # removed
    elif dictionary_VR(tag) in ("US", "SS", "UL"):
        ds.add_new(tag, dictionary_VR(tag), int(rng.choice([0, 1, 3, 7, 255, 65535])))
    else:
        garbage = GARBAGE[int(rng.integers(0, len(GARBAGE)))].decode("latin-1")
        ds.add_new(tag, "LO", garbage)                  # text where a number belongs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path)


def _mutate_file(src: Path, dst: Path, rng, dicom: bool = False) -> str:
    data = src.read_bytes()
    kind = ("flip", "truncate", "field")[int(rng.integers(0, 3))]
    if kind == "flip":
        # DICOM: mostly in the header, where the reader's decisions are (pixel bytes are any values)
        header_end = 1200 if dicom else (_text_header_end(data) if data.startswith(b"NRRD") else len(data))
        hi = min(len(data), header_end + 1) if rng.random() < 0.8 else len(data)
        dst.write_bytes(_flip(data[:hi], rng) + data[hi:])
    elif kind == "truncate":
        dst.write_bytes(_truncate(data, rng))
    elif dicom:
        if src != dst:
            shutil.copy(src, dst)
        try:
            _overwrite_dicom_field(dst, rng)
        except Exception:  # noqa: BLE001 - pydicom would not write that value: flip instead
            dst.write_bytes(_flip(data, rng))
            kind = "flip"
    else:
        dst.write_bytes(_overwrite_text_field(data, rng))
    return kind


# ---------------------------------------------------------------------- what a valid result is
def _valid_volume(vol) -> None:
    g = vol.geometry
    assert np.all(np.isfinite(g.spacing)) and np.all(np.isfinite(g.origin_ras)) and np.all(np.isfinite(g.direction))
    lo, hi = image_io.PLAUSIBLE_SPACING_MM
    axes = g.spacing[:2] if vol.is_2d else g.spacing
    assert all(lo <= float(s) <= hi for s in axes), g.spacing
    assert tuple(vol.array.shape) == tuple(g.shape), (vol.array.shape, g.shape)
    if vol.array.dtype.kind == "f":
        assert np.all(np.isfinite(vol.array))


def _valid_labels(lab) -> None:
    g = lab.geometry
    assert np.all(np.isfinite(g.spacing)) and np.all(np.asarray(g.spacing) > 0)
    assert np.all(np.isfinite(g.origin_ras)) and np.all(np.isfinite(g.direction))
    for layer in lab.layers:
        assert tuple(layer.shape) == tuple(g.shape), (layer.shape, g.shape)
    assert all(isinstance(s.label_value, int) and 0 <= s.layer < len(lab.layers) for s in lab.segments)


def _valid_points(points) -> None:
    for label, p in points:
        assert isinstance(label, str)
        assert p is None or (np.shape(p) == (3,) and np.all(np.isfinite(p)))


def _valid_manifest(specs) -> None:
    import math
    assert specs
    for s in specs:
        assert s.case_id and s.patient_id and s.task in ("measure", "hand", "spine")
        assert s.min_size is None or (math.isfinite(s.min_size) and s.min_size >= 0)
        assert isinstance(s.read, int) and s.read >= 1


# ---------------------------------------------------------------------- the readers
def _read_xr(path):
    _valid_volume(image_io.load_image(path))


def _read_nrrd(path):
    _valid_volume(image_io.load_image(path))


def _read_labels(path):
    _valid_labels(image_io.load_label_image(path))


def _read_points(path):
    _valid_points(pointlists.read_point_list(path))


def _read_manifest(path):
    from calcinosis.cohort.manifest import read_manifest
    _valid_manifest(read_manifest(path))


READERS = {
    # name: (sample, file name of the mutated copy, reader, DICOM)
    "dicom-radiograph": ("xr", "xr.dcm", _read_xr, True),
    "dicom-series": ("series", None, _read_xr, True),
    "nrrd": ("nrrd", "ct.nrrd", _read_nrrd, False),
    "label-map": ("labels", "lesion_labels.nrrd", _read_labels, False),
    "seg-nrrd": ("seg", "lesions.seg.nrrd", _read_labels, False),
    "mrk-json": ("mrk", "landmarks.mrk.json", _read_points, False),
    "landmarks-csv": ("lm_csv", "landmarks.csv", _read_points, False),
    "manifest-csv": ("manifest", "manifest.csv", _read_manifest, False),
}


class _TooSlow(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    def alarm(*_):
        raise _TooSlow(f"no answer within {seconds:g} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("reader", list(READERS))
def test_fuzzed_inputs_load_or_are_refused_in_one_line(reader, samples, tmp_path):
    key, name, read, dicom = READERS[reader]
    rng = np.random.default_rng([SEED, list(READERS).index(reader)])
    failures, outcomes = [], {"loaded": 0, "refused": 0}
    started = time.perf_counter()
    for n in range(N):
        case_dir = tmp_path / f"m{n}"
        case_dir.mkdir()
        if key == "series":     # one slice of the series mutated
            target = case_dir / "ct"
            shutil.copytree(samples["series"], target, ignore=shutil.ignore_patterns("*.nrrd", "*.csv", "*.json"))
            files = sorted(target.glob("*.dcm"))
            victim = files[int(rng.integers(0, len(files)))]
            kind = _mutate_file(victim, victim, rng, dicom=True)
            names = {target.name, *(f.name for f in files)}
        else:
            target = case_dir / name
            kind = _mutate_file(samples[key], target, rng, dicom=dicom)
            names = {target.name}
        try:
            with _time_limit(SECONDS), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                read(target)
            outcomes["loaded"] += 1
        except InputError as e:
            text = str(e)
            if "\n" in text.strip() or not any(nm in text for nm in names):
                failures.append(f"#{n} {kind}: message not one line naming the file: {text!r}")
            outcomes["refused"] += 1
        except AssertionError as e:
            failures.append(f"#{n} {kind}: loaded something invalid: {e}")
        except _TooSlow as e:
            failures.append(f"#{n} {kind}: {e}")
        except Exception as e:  # noqa: BLE001 - the point of the test
            import traceback
            frames = [f for f in traceback.extract_tb(e.__traceback__) if "calcinosis" in f.filename]
            where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
            failures.append(f"#{n} {kind}: {type(e).__name__}{where}: "
                            f"{str(e).splitlines()[0][:200] if str(e) else ''}")
        shutil.rmtree(case_dir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    assert not failures, (f"{reader}: {len(failures)} of {N} mutations (seed {SEED}) gave: "
                          + "; ".join(failures[:12]))
    # both outcomes occur: the mutations reach past the first check (not all refused at once)
    if N >= 30:
        assert outcomes["refused"] > 0, outcomes
    print(f"{reader}: {outcomes} in {elapsed:.1f} s")
