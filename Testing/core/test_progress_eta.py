"""The progress bar's estimate of the time left (batch runs of hours need one)."""

import io

import pytest

from calcinosis.core.progress import StderrProgressBar, duration_text, time_left_s


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_time_left_is_the_pace_so_far():
    assert time_left_s(60.0, 0.25) == pytest.approx(180.0)        # a quarter in a minute: 3 minutes more
    assert time_left_s(60.0, 0.01) is None                       # too little done to tell
    assert time_left_s(1.0, 0.5) is None                         # too early to tell
    assert time_left_s(60.0, 1.0) is None
    assert [duration_text(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]


def test_bar_prints_the_estimate_in_logs():
    clock, out = _Clock(), io.StringIO()
    bar = StderrProgressBar("batch", stream=out, clock=clock)
    bar(0.0, "10 case(s) to run")
    clock.t += 30
    bar(0.1, "c1 ok")                                            # 10 % in 30 s: 270 s left
    clock.t += 30
    bar(0.2, "c2 ok")                                            # 20 % in 60 s: 240 s left
    bar(1.0, "done")
    lines = out.getvalue().splitlines()
    assert lines[0] == "batch   0% 10 case(s) to run"
    assert lines[1] == "batch  10% c1 ok (~4 min 30 s left)"
    assert lines[2] == "batch  20% c2 ok (~4 min 00 s left)"
    assert lines[3] == "batch 100% done"
