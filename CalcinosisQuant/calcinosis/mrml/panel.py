"""What both Slicer panels do around their long steps (Slicer application only; headless,
``slicer.util.createProgressDialog`` is whatever the caller provides)."""

from __future__ import annotations

from typing import Any, Callable

from calcinosis.core.errors import Cancelled
from calcinosis.core.progress import Progress


def run_with_progress(title: str, work: Callable[[Progress], Any]) -> tuple[Any, bool]:
    """Run ``work(progress)`` with a progress dialog whose *Cancel* stops it:
    ``(its result, False)``, or ``(None, True)`` when the user cancelled (the steps cancel
    only before they change anything)."""
    import slicer

    dialog = slicer.util.createProgressDialog(windowTitle=title, labelText=title, maximum=100, value=0)
    app = getattr(slicer, "app", None)

    def update(fraction: float, message: str | None) -> None:
        dialog.value = int(round(100 * fraction))
        dialog.labelText = message or title
        if app is not None:
            app.processEvents()

    try:
        return work(Progress(update, lambda: dialog.wasCanceled)), False
    except Cancelled:
        return None, True
    finally:
        dialog.close()
