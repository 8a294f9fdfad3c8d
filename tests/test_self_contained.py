"""The repository is self-contained: nothing in it reads a `shared/` folder lying beside a checkout.

A user's clone has nothing beside it, so code, tests and docs may only use files inside the repository
(test data lives in tests/fixtures/, with its source noted).
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("harness", "datasets", "methods", "scripts", "tests", "docs", ".ci", "README.md", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".json", ".cfg", ".ini", ".sh", ".yml", ".yaml", ""}
# The folder beside a checkout: a relative path up into it, its docs/, data/ or hooks/ subfolders, or its
# name quoted for path building. (The samples below spell the name through FOLDER so this file holds none.)
FOLDER = "".join(("sha", "red"))  # joined at run time: this file spells no such path
OUTSIDE = re.compile(r"\.\./+shared\b|(?<![\w.-])shared/(?:data|docs|hooks)\b|[\"']shared[\"']")


def outside_references(paths) -> list[str]:
    found = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                found.append(
                    f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}: {line.strip()[:100]}"
                )
    return found


def scanned_files():
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for candidate in candidates:
            if (
                candidate.suffix in TEXT_SUFFIXES
                and "__pycache__" not in candidate.parts
                and candidate != Path(__file__).resolve()
            ):
                yield candidate


def test_nothing_refers_to_a_shared_folder_outside_the_repository():
    files = list(scanned_files())
    assert any(p.name == "conftest.py" for p in files) and any(p.parent.name == "sweep" for p in files)
    found = outside_references(files)
    assert not found, "files refer to a shared/ folder outside the repository:\n" + "\n".join(found)


def test_the_scan_finds_such_references(tmp_path):
    """A scan that finds nothing proves nothing: each spelling seen in the past is caught."""
    samples = {
        "fixture.py": f'KEYS = Path(__file__).resolve().parents[2] / "{FOLDER}" / "data"\n',
        "doc.py": f'"""Follows ../{FOLDER}/docs/rd4ad.md."""\n',
        "notes.md": f"The key lists are in {FOLDER}/data/rd4ad_checkpoint_keys.\n",
        "fine.py": "# the two cores are shared; one shared sort; shared_dir = tmp_path\n",
    }
    for name, text in samples.items():
        (tmp_path / name).write_text(text)
    found = outside_references(sorted(tmp_path.iterdir()))
    assert sorted(line.split(":")[0] for line in found) == [
        str(tmp_path / n) for n in ("doc.py", "fixture.py", "notes.md")
    ]


def test_documents_cited_in_the_code_are_in_the_repository():
    cited = {}
    for path in scanned_files():
        if path.suffix == ".py":
            for name in re.findall(r"\bdocs/[\w.-]+\.md\b", path.read_text(encoding="utf-8")):
                cited.setdefault(name, path.relative_to(ROOT))
    assert {"docs/metrics.md", "docs/rd4ad.md", "docs/architecture.md"} <= set(cited)
    missing = [f"{where} cites {name}" for name, where in sorted(cited.items()) if not (ROOT / name).is_file()]
    assert not missing, "cited documents missing from the repository: " + "; ".join(missing)
