#!/usr/bin/env python3
"""Write docs/commandline.md: every ``calcinosis`` command's ``--help``, from the parser itself.

    python Utilities/make_cli_docs.py          # rewrite
    python Utilities/make_cli_docs.py --check  # exit 1 when the page is out of date

``Testing/core/test_docs.py`` fails when the page is out of date.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "commandline.md"
WIDTH = "100"


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:  # noqa: SLF001 - walking our own parser
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            yield from action.choices.items()


def _pages(parser, path=()):
    yield path, parser
    for name, sub in _subparsers(parser):
        yield from _pages(sub, path + (name,))


def reference_markdown() -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps to the terminal: fix the width
    try:
        from calcinosis.cli.main import build_parser
        parser = build_parser(full=True)
        out = ["# Command reference", "",
               "[Back to the README](../README.md)", "",
               "Generated from the command line's own parser by `python Utilities/make_cli_docs.py`; "
               "each section is what `--help` prints.", ""]
        pages = list(_pages(parser))
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


def main(argv: list[str]) -> int:
    text = reference_markdown()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"out of date: {PAGE.relative_to(ROOT)} (run python Utilities/make_cli_docs.py)")
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
