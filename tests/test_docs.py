"""The documentation against the code: README's size and first line, links that resolve, every command-line
flag documented, and no example that writes a run folder into the checkout."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from harness.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def flags(parser: argparse.ArgumentParser, command: tuple[str, ...] = ()):
    """(command path, long option) for every option of the parser and of every subcommand, at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from flags(sub, (*command, name))
        else:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    yield command, option


def documentation() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in [README, *DOCS])


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")}


def test_flag_walk_sees_nested_subcommands():
    """The walk reaches `data fetch` options and top-level ones (a walk that finds nothing proves nothing)."""
    found = set(flags(build_parser()))
    assert ((), "--version") in found and (("data", "fetch"), "--mirror") in found
    assert (("report",), "--caption") in found and (("bench",), "--repeats") in found


def test_every_flag_of_every_command_is_documented():
    text = documentation()
    missing = sorted(
        f"{' '.join(command) or '(top level)'} {option}"
        for command, option in set(flags(build_parser()))
        if not re.search(re.escape(option) + r"(?![\w-])", text)
    )
    assert not missing, f"flags documented nowhere in README.md or docs/**/*.md: {', '.join(missing)}"


def test_readme_is_short_and_starts_with_install_and_run():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    first_block = lines[lines.index("```bash") + 1]
    assert first_block == "pip install -e . && python -m harness run"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path):
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://|mailto:", target):
            continue  # external: not checked offline
        file, _, fragment = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists() or fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: links to nothing: {', '.join(broken)}"


def test_examples_write_no_run_folder_into_the_checkout():
    """`--out NAME` in an example must name a temporary folder or one under results/ (which git ignores)."""
    for path in [README, *DOCS]:
        for value in re.findall(r"--out[ =]+(\S+)", path.read_text(encoding="utf-8")):
            value = value.strip("\"'`")
            assert value.startswith(("$", "results/", "/", "DIR", "OUT", "X")) or value.isupper(), (
                f"{path.relative_to(ROOT)}: --out {value} writes into the checkout"
            )
