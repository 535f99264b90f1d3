#!/usr/bin/env python3
"""Write the generated reference pages: docs/commandline.md (every ``calcinosis`` command's
``--help``, from the parser itself) and docs/parameters.md (every parameter of the hand and
spine pipelines, from ``calcinosis.hand.params`` and ``calcinosis.spine.params``).

    python Utilities/make_cli_docs.py          # rewrite
    python Utilities/make_cli_docs.py --check  # exit 1 when a page is out of date

``Testing/core/test_docs.py`` and ``Testing/gui/test_panel_parameters.py`` fail when a page
is out of date.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "commandline.md"
PARAMETERS_PAGE = ROOT / "docs" / "parameters.md"
WIDTH = "100"


def reference_markdown() -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps to the terminal: fix the width
    try:
        from calcinosis.cli.main import build_parser, walk_parsers
        parser = build_parser(full=True)
        out = ["# Command reference", "",
               "[Back to the README](../README.md)", "",
               "Generated from the command line's own parser by `python Utilities/make_cli_docs.py`; "
               "each section is what `--help` prints.", ""]
        pages = list(walk_parsers(parser))
        out += [f"- [`{' '.join(('calcinosis',) + p)}`](#{'-'.join(('calcinosis',) + p)})" for p, _ in pages if p]
        out.append("")
        for path, p in pages:
            title = " ".join(("calcinosis",) + path)
            out += [f'<a id="{"-".join(("calcinosis",) + path)}"></a>', f"## `{title}`", "", "```text",
                    p.format_help().rstrip(), "```", ""]
        return "\n".join(out)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(value) -> str:
    if value is None:
        return "automatic"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parameters_markdown() -> str:
    """The parameter tables, from the parameters' own definitions."""
    from dataclasses import fields

    from calcinosis.hand import params as hand_params
    from calcinosis.spine import params as spine_params

    out = ["# Parameters", "", "[Back to the README](../README.md)", "",
           "Every parameter of the hand and spine pipelines, generated from their one definition "
           "(`calcinosis/hand/params.py`, `calcinosis/spine/params.py`) by `python Utilities/make_cli_docs.py`. "
           "All are recorded in each result's `provenance.json`; the Slicer panels take their defaults from the "
           "same definitions.", ""]
    for title, cls in (("Hand: detection (`DetectParams`)", hand_params.DetectParams),
                       ("Hand: assignment to side, digit and zone (`AssignParams`)", hand_params.AssignParams)):
        out += [f"## {title}", "", "| parameter | option | unit | default | meaning |", "|---|---|---|---|---|"]
        for row in hand_params.describe(cls):
            option = f"`{row['option']}`" if row["option"] else "(Python only)"
            out.append(f"| `{row['name']}` | {option} | {_cell(row['unit'])} | {_default(row['default'])} | "
                       f"{_cell(row['help'])} |")
        out.append("")
    out += ["## Spine map (`SpineParams`)", "",
            "Options for the most used; `--param NAME=VALUE` sets any of them.", "",
            "| parameter | option | default | meaning |", "|---|---|---|---|"]
    d = spine_params.SpineParams()
    for f in fields(spine_params.SpineParams):
        option = spine_params.OPTIONS.get(f.name)
        out.append(f"| `{f.name}` | {'`' + option + '`' if option else '`--param`'} | {_default(getattr(d, f.name))} | "
                   f"{_cell(f.metadata.get('help', ''))} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for page, text in ((PAGE, reference_markdown()), (PARAMETERS_PAGE, parameters_markdown())):
        current = page.read_text(encoding="utf-8") if page.exists() else ""
        if current == text:
            continue
        stale.append(str(page.relative_to(ROOT)))
        if "--check" not in argv:
            page.write_text(text, encoding="utf-8")
    if stale:
        print(("out of date: " if "--check" in argv else "wrote ") + ", ".join(stale))
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
