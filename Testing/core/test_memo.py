"""calcinosis.core.memo: values kept only within a sharing scope, handed out as copies, keyed
by what they depend on (file contents by size and time, arrays by their bytes)."""

from __future__ import annotations

import os

import numpy as np

from calcinosis.core import memo


def test_outside_a_scope_nothing_is_kept():
    calls = []
    for _ in range(2):
        memo.remember("t", ("k",), lambda: calls.append(1) or len(calls))
    assert len(calls) == 2
    assert not memo.active()


def test_within_a_scope_one_computation_and_copies():
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(3)}

    with memo.sharing():
        assert memo.active()
        first = memo.remember("t", ("k",), compute)
        first["a"][0] = 99                   # a caller changing its value ...
        second = memo.remember("t", lambda: ("k",), compute)
        other = memo.remember("t", ("other",), compute)
        with memo.sharing():                 # a nested scope uses the outer store
            memo.remember("t", ("k",), compute)
    assert len(calls) == 2                   # "k" once, "other" once
    assert second["a"][0] == 0               # ... does not change what the next one gets
    assert other["a"].tolist() == [0, 1, 2]
    with memo.sharing():                     # the store ended with its scope
        memo.remember("t", ("k",), compute)
    assert len(calls) == 3


def test_a_failed_computation_is_not_kept():
    calls = []

    def fail():
        calls.append(1)
        raise ValueError("bad input")

    with memo.sharing():
        for _ in range(2):
            try:
                memo.remember("t", ("k",), fail)
            except ValueError:
                pass
    assert len(calls) == 2


def test_file_key_follows_the_contents(tmp_path):
    f = tmp_path / "a.nrrd"
    f.write_bytes(b"1234")
    k1 = memo.file_key(f)
    assert memo.file_key(f) == k1
    f.write_bytes(b"12345")                  # another size
    assert memo.file_key(f) != k1
    k2 = memo.file_key(f)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))   # same size, rewritten later
    assert memo.file_key(f) != k2
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "1.dcm").write_bytes(b"x")
    k3 = memo.file_key(folder)
    (folder / "2.dcm").write_bytes(b"y")     # a slice added to a DICOM folder
    assert memo.file_key(folder) != k3
    assert memo.file_key(None) == (None,)


def test_array_key_by_bytes():
    a = np.zeros((4, 5), np.int16)
    b = a.copy()
    assert memo.array_key(a) == memo.array_key(b)
    b[3, 4] = 1
    assert memo.array_key(a) != memo.array_key(b)
    assert memo.array_key(a) != memo.array_key(a.astype(np.int32))
    assert memo.array_key(a) != memo.array_key(a.reshape(5, 4))
    assert memo.array_key(a[:, ::2]) == memo.array_key(np.ascontiguousarray(a[:, ::2]))
    assert memo.array_key(None) == (None,)


def test_paused_keeps_nothing_and_resumes():
    calls = []
    with memo.sharing():
        with memo.paused():
            assert not memo.active()
            for _ in range(2):
                memo.remember("t", ("k",), lambda: calls.append(1))
        assert memo.active()
        for _ in range(2):
            memo.remember("t", ("k",), lambda: calls.append(1))
    assert len(calls) == 3
