"""VTK console messages: capture them around calls known to be noisy, keep real errors.

VTK reports through ``vtkOutputWindow`` (and, outside Slicer, also prints through
``vtkLogger`` to stderr).  Some MRML calls print harmless errors when run headless or at
scale (e.g. colour logics looking for colour files that a ``slicer-core`` install does not
ship).  :func:`vtk_messages` captures every message raised inside its block, drops the ones
matching the ``expected`` patterns (logged at DEBUG level) and re-emits every other one
through :mod:`logging` (logger ``calcinosis.mrml``) so that nothing real is hidden;
the block's messages are also returned for tests to inspect.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

log = logging.getLogger("calcinosis.mrml")


#: A labelmap whose values exceed its colour table (any label image with more than ~256
#: labels shown with Slicer's default table) makes vtkMRMLColorTableNode report every
#: missing entry; harmless: the segments get generated colours.
COLOR_TABLE_RANGE_NOISE = (r"GetColor: requested color entry \d+ is out of table range",)


@dataclass(frozen=True)
class VtkMessage:
    kind: str  # 'error', 'warning', 'text', 'debug'
    text: str
    expected: bool


class MessageList(list):
    """Messages captured in a :func:`vtk_messages` block."""

    @property
    def unexpected(self) -> list[VtkMessage]:
        return [m for m in self if not m.expected]

    @property
    def errors(self) -> list[VtkMessage]:
        return [m for m in self if m.kind == "error"]


def _split(text: str) -> list[tuple[str, str]]:
    out = []
    for chunk in re.split(r"\n\s*\n", text):
        chunk = chunk.strip()
        if not chunk:
            continue
        head = chunk.split("\n", 1)[0]
        if head.startswith("ERROR"):
            kind = "error"
        elif head.startswith("Warning") or head.startswith("Generic Warning"):
            kind = "warning"
        elif head.startswith("Debug"):
            kind = "debug"
        else:
            kind = "text"
        out.append((kind, chunk))
    return out


def _in_slicer_application() -> bool:
    try:
        import slicer
    except ImportError:
        return False
    return hasattr(slicer, "app")


@contextmanager
def vtk_messages(expected: Sequence[str] = (), reemit: bool = True) -> Iterator[MessageList]:
    """Capture VTK messages raised inside the block.

    ``expected``: regular expressions; a message matching one is dropped (DEBUG log).
    Every other message is re-emitted through :mod:`logging` when ``reemit``."""
    import vtk

    patterns = [re.compile(p) for p in expected]
    messages = MessageList()
    previous = vtk.vtkOutputWindow.GetInstance()
    capture = vtk.vtkStringOutputWindow()
    vtk.vtkOutputWindow.SetInstance(capture)
    headless = not _in_slicer_application()
    if headless:
        # outside Slicer VTK also prints every message through vtkLogger to stderr
        saved_verbosity = vtk.vtkLogger.GetCurrentVerbosityCutoff()
        vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    try:
        yield messages
    finally:
        vtk.vtkOutputWindow.SetInstance(previous)
        if headless:
            vtk.vtkLogger.SetStderrVerbosity(saved_verbosity)
        for kind, text in _split(capture.GetOutput() or ""):
            is_expected = any(p.search(text) for p in patterns)
            messages.append(VtkMessage(kind, text, is_expected))
            if is_expected:
                log.debug("VTK (expected): %s", text)
            elif reemit:
                level = logging.ERROR if kind == "error" else logging.WARNING if kind == "warning" else logging.INFO
                log.log(level, "VTK: %s", text)
