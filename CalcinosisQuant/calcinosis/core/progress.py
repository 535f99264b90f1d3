"""Progress reporting and cancellation for long work.

Core functions take ``progress: Progress | None``.  They call ``progress.update(f, msg)``
with ``f`` in [0, 1]; the callback may raise :class:`~calcinosis.core.errors.Cancelled`
to stop the work (the Slicer modules do that when the user presses Cancel).
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from .errors import Cancelled


class Progress:
    """A progress sink.  ``callback(fraction, message)``; ``cancel_requested()`` polled."""

    def __init__(self, callback: Callable[[float, str], None] | None = None,
                 cancel_requested: Callable[[], bool] | None = None):
        self._callback = callback
        self._cancel_requested = cancel_requested

    def update(self, fraction: float, message: str = "") -> None:
        if self._cancel_requested is not None and self._cancel_requested():
            raise Cancelled(message or "cancelled")
        if self._callback is not None:
            self._callback(max(0.0, min(1.0, float(fraction))), message)

    def sub(self, start: float, stop: float) -> "Progress":
        """A child reporting into [start, stop] of this one."""
        def cb(f: float, msg: str) -> None:
            self.update(start + (stop - start) * f, msg)
        return Progress(cb, None)


def report(progress: Progress | None, fraction: float, message: str = "") -> None:
    if progress is not None:
        progress.update(fraction, message)


#: No estimate of the time left before this much work and time have passed (too unsteady)
ETA_MIN_FRACTION, ETA_MIN_SECONDS = 0.05, 3.0


def duration_text(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def time_left_s(elapsed_s: float, fraction: float) -> float | None:
    """Seconds left if the rest goes as fast as the part done (``elapsed_s`` for
    ``fraction``); None while too little is done to tell."""
    if fraction < ETA_MIN_FRACTION or elapsed_s < ETA_MIN_SECONDS or fraction >= 1.0:
        return None
    return elapsed_s * (1.0 - fraction) / fraction


class StderrProgressBar:
    """A text progress bar on stderr (redrawn in place on a terminal, sparse lines otherwise),
    with the time left estimated from the pace so far (``~2 min 10 s left``)."""

    def __init__(self, label: str = "", stream=None, width: int = 30, min_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._start = clock()
        self._last = -1.0
        self._last_pct = -1
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def eta_text(self, fraction: float) -> str:
        left = time_left_s(self._clock() - self._start, fraction)
        return "" if left is None else f"~{duration_text(left)} left"

    def __call__(self, fraction: float, message: str) -> None:
        now = self._clock()
        pct = int(round(100 * fraction))
        eta = self.eta_text(fraction)
        if self._tty:
            if fraction < 1.0 and now - self._last < self.min_interval_s:
                return
            filled = int(self.width * fraction)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {pct:3d}% {eta:>16} {message[:40]:<40}")
            if fraction >= 1.0:
                self.stream.write("\n")
        else:
            # one line per 10% step keeps CI logs readable
            if pct // 10 == self._last_pct // 10 and fraction < 1.0:
                return
            self.stream.write(f"{self.label} {pct:3d}% {message}{f' ({eta})' if eta else ''}\n")
        self._last = now
        self._last_pct = pct
        self.stream.flush()

    def progress(self) -> Progress:
        return Progress(self)
