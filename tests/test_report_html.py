"""`report --format html`: one self-contained file (tables, notes, figures, gallery), rendered by a real browser.

The rendering test runs headless Chromium (Debian package `chromium`; .ci/run installs it) and is
skipped when no Chromium is installed.
"""

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from harness.cli import main

from report_fixtures import plot_run

CHROMIUM = next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if (path := shutil.which(name))
    ),
    None,
)
FIGURES = 6  # per-category, curves x 2, gallery x 2, loss


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    run = plot_run(tmp, size=16)
    assert (
        main(
            ["report", str(run), "--format", "html", "--caption", "RD <on> synthetic & more", "--out", str(tmp / "out")]
        )
        == 0
    )
    return tmp / "out" / "report.html"


def test_html_is_one_self_contained_file(page):
    assert [p.name for p in page.parent.iterdir()] == ["report.html"]  # figures embedded, nothing beside it
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)  # loads nothing from anywhere
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == FIGURES
    assert all(base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert "<h1>RD &lt;on&gt; synthetic &amp; more</h1>" in text  # escaped
    assert 'class="results"' in text and "100.0 ± 0.0" in text and "<h2>Gallery</h2>" in text
    assert "randomly initialised teacher" in text


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian package chromium)")
def test_html_renders_in_headless_chromium(page, tmp_path):
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    ink = (pixels < 240).any(axis=2).mean()
    assert ink > 0.03, f"only {ink:.1%} of the page is not white"  # text, table, figures
    colour = (pixels.max(axis=2) - pixels.min(axis=2) > 60).sum()
    assert colour > 5000, "no coloured pixels: the embedded figures did not render"
