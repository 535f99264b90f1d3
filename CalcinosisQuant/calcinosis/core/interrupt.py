"""SIGTERM handled like Ctrl-C: the program unwinds, so nothing is left half-written.

Python turns SIGINT (Ctrl-C) into :class:`KeyboardInterrupt`, which unwinds the stack: every
``with OutputTransaction`` on the way removes its hidden ``.<name>.partial-*`` folder and
every lock is released.  SIGTERM (``kill``, a job scheduler's time limit, a container being
stopped) by default ends the process at once and leaves those behind.
:func:`unwind_on_signals` makes both signals raise :class:`Terminated`, a
``KeyboardInterrupt``, so they take the same clean path.  Once one has arrived, further ones
are ignored until the unwinding is over (a second Ctrl-C must not break off the clean-up).
A signal that arrives while Python runs a callback whose exceptions it ignores (a weak
reference's clean-up during garbage collection, a ``__del__``) has its :class:`Terminated`
printed as "Exception ignored" and dropped; so the handler also records the signal, and
:func:`raise_if_signalled` - called before a result is committed - raises it again: a
signalled run never commits its result.  (It is not raised at every progress step: clean-up
code that runs while the first signal unwinds must not be broken off.)  SIGKILL cannot be
caught: it may leave a hidden ``.partial-*`` folder (never a half-written result; remove
the folder by hand).

The handlers are installed only in the main thread (Python delivers signals there) and only
for the command line and batch worker processes, never inside Slicer.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

#: the signals turned into :class:`Terminated`
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Terminated(KeyboardInterrupt):
    """A termination signal arrived (``signum``): unwind as for Ctrl-C."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal_name(signum))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


#: the signal that arrived since :func:`install`, None if none did
_received: int | None = None


def received() -> int | None:
    """The termination signal that arrived since the handlers were installed, or None."""
    return _received


def record(signum: int) -> None:
    """Remember that ``signum`` arrived (for :func:`raise_if_signalled`)."""
    global _received
    if _received is None:
        _received = int(signum)


def forget() -> None:
    """Forget a recorded signal (a new run, or a new worker process, starts clean)."""
    global _received
    _received = None


def raise_if_signalled() -> None:
    """Raise :class:`Terminated` if a termination signal arrived, even one whose exception was
    swallowed on the way (see the module's text); a no-op otherwise, and always inside Slicer."""
    if _received is not None:
        raise Terminated(_received)


def _handler(signums):
    def handle(signum, frame):  # noqa: ARG001 - the signal module's signature
        record(signum)
        for s in signums:   # the clean-up now running must not be broken off by a second signal
            signal.signal(s, signal.SIG_IGN)
        raise Terminated(signum)
    return handle


def install(signums=SIGNALS) -> dict:
    """Make ``signums`` raise :class:`Terminated` (from the main thread only; a signal the
    process was started with ignored, e.g. SIGINT under ``nohup``, stays ignored).  Returns the
    previous handlers, for :func:`restore`; ``{}`` outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    forget()
    wanted = [s for s in signums if signal.getsignal(s) is not signal.SIG_IGN]
    handler = _handler(wanted)
    return {s: signal.signal(s, handler) for s in wanted}


def restore(previous: dict) -> None:
    for s, h in previous.items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextlib.contextmanager
def unwind_on_signals(signums=SIGNALS) -> Iterator[None]:
    """Within the block SIGTERM and SIGINT raise :class:`Terminated`; the previous handlers
    are put back afterwards."""
    previous = install(signums)
    hook = sys.unraisablehook
    sys.unraisablehook = _quiet_about_signals(hook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        restore(previous)
        forget()          # handled by now: what runs after the block in this process starts clean


def _quiet_about_signals(hook):
    """``sys.unraisablehook`` that does not print a swallowed :class:`Terminated` (its signal
    is recorded and raised again before a commit; the run ends with its one-line message)."""
    def quiet(unraisable):
        if not isinstance(unraisable.exc_value, Terminated):
            hook(unraisable)
    return quiet
