"""The panels' shared progress dialog (``calcinosis.mrml.panel``), with a stand-in dialog:
the step's progress reaches the dialog, Cancel stops the step and is reported, and the
dialog is closed whatever happens."""

from __future__ import annotations

import types

import pytest

pytestmark = pytest.mark.mrml


@pytest.fixture
def dialogs(monkeypatch, mrml_scene):
    import slicer
    import slicer.util

    made = []

    class Dialog(types.SimpleNamespace):
        wasCanceled = False
        closed = False

        def close(self):
            self.closed = True

    def create(**kwargs):
        made.append(Dialog(**kwargs))
        return made[-1]

    monkeypatch.setattr(slicer.util, "createProgressDialog", create, raising=False)
    return made


def test_progress_reaches_the_dialog_and_the_result_comes_back(dialogs):
    from calcinosis.mrml.panel import run_with_progress

    def work(progress):
        progress.update(0.5, "half way")
        assert dialogs[0].value == 50 and dialogs[0].labelText == "half way"
        return "done"

    assert run_with_progress("Measuring", work) == ("done", False)
    assert dialogs[0].maximum == 100 and dialogs[0].closed


def test_cancel_stops_the_step(dialogs):
    from calcinosis.mrml.panel import run_with_progress

    steps = []

    def work(progress):
        steps.append(1)
        dialogs[0].wasCanceled = True
        progress.update(0.2, "next")        # Cancel pressed: the next report stops the step
        steps.append(2)

    assert run_with_progress("Detecting", work) == (None, True)
    assert steps == [1] and dialogs[0].closed


def test_an_error_closes_the_dialog_and_propagates(dialogs):
    from calcinosis.core.errors import InputError
    from calcinosis.mrml.panel import run_with_progress

    def work(progress):
        raise InputError("no image")

    with pytest.raises(InputError, match="no image"):
        run_with_progress("Exporting", work)
    assert dialogs[0].closed
