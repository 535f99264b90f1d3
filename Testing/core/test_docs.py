"""The docs stay true: no dead links, command examples that still parse, a command reference
that lists every command and option, a README that stays an index."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from calcinosis.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
PLACEHOLDER = ("[", "|", "…", "...", "{", "<")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    heads = {_slug(m.group(1)) for m in re.finditer(r"(?m)^#{1,6} (.+)$", text)}
    ids = set(re.findall(r'<a id="([^"]+)"', text))
    return heads | ids


def dead_links(paths: list[Path]) -> list[str]:
    problems = []
    for path in paths:
        text = re.sub(r"(?s)```.*?```", "", path.read_text(encoding="utf-8"))
        for m in LINK.finditer(text):
            target = m.group(1) or m.group(2)
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto: - not checked offline
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(REPO)}: link {target}"
            if not dest.exists():
                problems.append(f"{where}: {file_part} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(REPO)}")
    return problems


def command_examples(paths: list[Path]) -> list[tuple[str, str]]:
    """(where, command line) of every concrete ``calcinosis ...`` line in a bash block."""
    found = []
    for path in paths:
        for block in re.findall(r"(?s)```(?:bash|sh|shell)\n(.*?)```", path.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" # ")[0].strip()
                if line.startswith("calcinosis ") and not any(p in line for p in PLACEHOLDER):
                    found.append((str(path.relative_to(REPO)), line))
    return found


def unparsable(examples: list[tuple[str, str]]) -> list[str]:
    parser = build_parser(full=True)
    problems = []
    for where, line in examples:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(shlex.split(line)[1:])
        except SystemExit as e:
            if e.code:
                problems.append(f"{where}: `{line}`: {err.getvalue().strip().splitlines()[-1]}")
    return problems


def test_docs_exist():
    for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "docs/hand.md", "docs/spine.md", "docs/cohort.md",
                 "docs/validation.md", "docs/benchmarks.md", "docs/commandline.md", "docs/methods/README.md"):
        assert (REPO / name).is_file(), name


def test_no_dead_links():
    assert dead_links(DOCS) == []


def test_command_examples_parse():
    examples = command_examples(DOCS)
    assert len(examples) >= 10  # the scan finds the examples
    assert unparsable(examples) == []


def test_the_checks_catch_a_dead_link_and_a_stale_command(tmp_path):
    page = REPO / "docs" / "_planted_for_test.md"
    page.write_text("[gone](nowhere.md) [anchor](hand.md#no-such-heading)\n\n```bash\n"
                    "calcinosis measure ct.nrrd --rim-mm 2 -o out\n```\n", encoding="utf-8")
    try:
        links = dead_links([page])
        assert any("nowhere.md does not exist" in p for p in links)
        assert any("no heading #no-such-heading" in p for p in links)
        assert any("--rim-mm" in p for p in unparsable(command_examples([page])))
    finally:
        page.unlink()


def test_command_reference_lists_every_command_and_option():
    from calcinosis.cli.main import walk_parsers
    page = (REPO / "docs" / "commandline.md").read_text(encoding="utf-8")
    for path, parser in walk_parsers(build_parser(full=True)):
        assert f"## `{' '.join(('calcinosis',) + path)}`" in page, f"no section for {path} (run Utilities/make_cli_docs.py)"
        for option in parser._option_string_actions:  # noqa: SLF001
            assert option in page, f"{' '.join(path)} {option} is not in docs/commandline.md (run Utilities/make_cli_docs.py)"


def test_readme_is_an_index():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for needed in ("make demo", "make test", "not a medical device", "Medicine", "Hughes"):
        assert needed.lower() in text.lower(), needed


@pytest.mark.parametrize("module", ["calcinosis.hand.detect", "calcinosis.spine.pipeline", "calcinosis.cohort.agreement"])
def test_methods_pages_named_in_docstrings_exist(module):
    """A docstring that points to docs/methods/X.md points to a page that exists."""
    import importlib
    source = Path(importlib.import_module(module).__file__).read_text(encoding="utf-8")
    for page in re.findall(r"docs/methods/([\w-]+\.md)", source):
        assert (REPO / "docs" / "methods" / page).is_file(), page
