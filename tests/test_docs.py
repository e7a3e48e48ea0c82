"""The README and docs/ stay a self-contained, linkable user's guide.

Every relative link resolves to a file of this repository (and a ``#anchor`` to a heading of
its target page), nothing points outside the repository, the README stays short, every
``harness`` subcommand has its entry in the CLI reference, and every page is in the site's nav.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from orbench_harness.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 220

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\n]|\][^(\n])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

# Things a reader of this repository does not have: sibling folders, design notes kept elsewhere.
FORBIDDEN = ("../shared", "shared/docs", "shared/datasets", "DESIGN.md", "STYLE.md", "METHODS.md")
# An absolute path on somebody's machine: a Unix top-level folder that holds user data, or a
# Windows drive. Endpoint paths such as /v1/models do not match.
MACHINE_ROOTS = ("home", "Users", "root", "tmp", "var", "opt", "mnt", "srv", "scratch", "work", "data", "nfs")
MACHINE_PATH = re.compile(r"(?<![\w./~-])/(?:" + "|".join(MACHINE_ROOTS) + r")/|(?<![\w])[A-Za-z]:\\")
PARENT_STEPS = re.compile(r"(?<![\w./-])((?:\.\./)+)")


def doc_files() -> list[Path]:
    """README.md and every markdown page under docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where links are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(text: str) -> Iterator[str]:
    """Targets of inline and reference-style links outside code."""
    body = prose(text)
    for pattern in (INLINE_LINK, REFERENCE_LINK):
        for m in pattern.finditer(body):
            yield m.group(1)


def slugs(heading: str) -> set[str]:
    """The anchor ids a heading gets: mkdocs' default slug and GitHub's."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    mkdocs = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_text).strip().lower())
    github = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    return {mkdocs, github}


def anchors(page: Path) -> set[str]:
    """Every anchor id the headings of a markdown page define."""
    found: set[str] = set()
    for m in HEADING.finditer(FENCE.sub("", page.read_text(encoding="utf-8"))):
        found |= slugs(m.group(1))
    return found


@pytest.mark.parametrize("page", doc_files(), ids=rel)
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    """A relative link names a file of this repository; an anchor names a heading there."""
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            continue  # https:, mailto: ... are not files of the repository
        path_part, _, anchor = target.partition("#")
        if target.startswith("/"):
            broken.append(f"{target}: absolute link (use a path relative to {rel(page)})")
            continue
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.is_relative_to(ROOT):
            broken.append(f"{target}: points outside the repository")
        elif not dest.is_file():
            broken.append(f"{target}: no such file ({rel(dest) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: {rel(dest)} has no heading with the anchor #{anchor}")
    assert not broken, f"{rel(page)}:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("page", doc_files(), ids=rel)
def test_nothing_refers_outside_the_repository(page: Path) -> None:
    """No sibling folders, design notes kept elsewhere, or paths on one machine."""
    text = page.read_text(encoding="utf-8")
    problems = [f"mentions {word!r}" for word in FORBIDDEN if word in text]
    problems += [f"absolute machine path near {text[m.start():m.start() + 40]!r}" for m in MACHINE_PATH.finditer(text)]
    depth = len(page.relative_to(ROOT).parts) - 1
    for m in PARENT_STEPS.finditer(text):
        if m.group(1).count("../") > depth:
            problems.append(f"climbs out of the repository: {text[m.start():m.start() + 40]!r}")
    assert not problems, f"{rel(page)}:\n  " + "\n  ".join(problems)


def test_the_readme_stays_short() -> None:
    """The README is the front door; details belong in docs/."""
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES})"


def test_the_cli_reference_covers_every_subcommand() -> None:
    """docs/cli.md names each subcommand ``harness <name>``, plugin ones included."""
    parser = build_parser()
    actions = [a for a in parser._actions if a.choices and a.dest == "command"]
    assert actions, "build_parser() registers no subcommands"
    commands = sorted(actions[0].choices)
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [c for c in commands if not re.search(rf"harness {re.escape(c)}\b", text)]
    assert not missing, f"docs/cli.md does not describe: {', '.join(missing)}"


def _nav_pages(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_pages(value)


def test_every_docs_page_is_in_the_site_nav() -> None:
    """mkdocs.yml's nav lists exactly the pages under docs/ (mkdocs --strict checks it too,
    but that needs the docs extra; this does not)."""
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    nav = set(_nav_pages(config["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert not nav - pages, f"in the nav but not under docs/: {sorted(nav - pages)}"
    assert not pages - nav, f"under docs/ but not in the nav: {sorted(pages - nav)}"


# The errors and warnings the fault-injection and integrity tests (test_fault_*.py,
# test_run_integrity.py, test_reliability.py) produce, by the words that open them in the code.
FAULT_MESSAGES = (
    "no space left on the device",
    "the cache could not be written",
    "left as it is",
    "holds a different run",
    "cannot be matched",
    "is in use by another harness run",
    "cannot use PATH as the cache directory",
    "stayed locked by another process",
    "terminated (SIGTERM)",
    "is corrupted",
    "is not a complete record",
    "was written by a run of another spec",
    "has two different records",
    "prompts this run does not have",
    "last line was cut off",
)


def _source_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "orbench_harness").rglob("*.py"))


@pytest.mark.parametrize("message", FAULT_MESSAGES)
def test_the_readme_troubleshooting_table_lists_each_fault_message(message: str) -> None:
    code = _source_text().replace("{path}", "PATH").replace("{self.dir}", "PATH")
    assert message.replace("PATH", "") in code.replace("PATH", ""), f"no longer in the code: {message!r}"
    section = README.read_text(encoding="utf-8").split("## When something goes wrong", 1)[1].split("\n## ", 1)[0]
    assert message in section, f"the README's troubleshooting table lacks {message!r}"
