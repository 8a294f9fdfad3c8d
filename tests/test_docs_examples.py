"""Every code block of docs/extending.md and docs/python-api.md runs as written (the shell block of
docs/extending.md runs in tests/test_example_plugin.py, where the example plugin is installed)."""

from __future__ import annotations

import re
import sys
import tomllib
import types
from pathlib import Path

import pytest

from harness import datasets, methods

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.usefixtures("one_torch_thread", "isolated_data_env")


def code_blocks(doc: str) -> list[tuple[str, str]]:
    """(language, text) of every fenced block of docs/<doc>, in order."""
    return FENCE.findall((ROOT / "docs" / doc).read_text())


def test_every_block_has_a_language_this_test_knows():
    for doc in ("extending.md", "python-api.md"):
        assert {language for language, _ in code_blocks(doc)} <= {"python", "toml", "bash"}, doc


@pytest.mark.parametrize("doc", ["python-api.md", "extending.md"])
def test_the_python_blocks_run_in_order(doc, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("docs_example")  # a module, as a script would be (dataclasses look theirs up)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    blocks = [text for language, text in code_blocks(doc) if language == "python"]
    assert blocks
    try:
        for number, text in enumerate(blocks, start=1):
            exec(compile(text, f"docs/{doc} python block {number}", "exec"), namespace)
    finally:
        methods.REGISTRY.unregister("mean")
        datasets.REGISTRY.unregister("npz")
    assert capsys.readouterr().out  # the blocks print what they show


def test_the_entry_points_shown_are_the_example_plugins():
    (text,) = [text for language, text in code_blocks("extending.md") if language == "toml"]
    shown = tomllib.loads(text)["project"]["entry-points"]
    example = tomllib.loads((ROOT / "examples" / "gaussian-plugin" / "pyproject.toml").read_text())
    assert shown == example["project"]["entry-points"]
    assert set(shown) == {methods.ENTRY_POINT_GROUP, datasets.ENTRY_POINT_GROUP}
