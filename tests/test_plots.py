"""`report --plots` from a tiny hand-made run (records, predictions.npz, images on disk; nothing trained)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from harness.metrics import au_pro, pro_curve
from harness.report import plots
from harness.report.build import build_report

from report_fixtures import golden_run, plot_run

EXPECTED = ["bars", "curves-disc", "curves-weave", "gallery-A-disc", "gallery-A-weave", "loss"]


def test_every_plot_is_written_as_png_and_pdf(tmp_path):
    run = plot_run(tmp_path, size=16)
    result = plots.make_plots(build_report([run]), tmp_path / "plots")
    assert result.notes == []
    assert sorted(p.name for p in result.files) == sorted(f"{stem}.{fmt}" for stem in EXPECTED for fmt in ("png", "pdf"))
    for path in result.files:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else b"%PDF-"), path
        assert path.stat().st_size > 5000, path
    gallery = np.asarray(Image.open(tmp_path / "plots" / "gallery-A-disc.png").convert("RGB"))
    assert gallery.shape[0] > 300 and gallery.std() > 10  # a picture, not a blank page


def test_missing_images_skip_the_gallery_with_a_note(tmp_path):
    run = plot_run(tmp_path, categories=("disc",), seeds=(0,), images_on_disk=False)
    result = plots.make_plots(build_report([run]), tmp_path / "plots")
    names = {p.stem for p in result.files}
    assert names == {"bars", "curves-disc", "loss"}
    assert result.notes == [f"gallery A disc skipped: 6 test image(s) not on disk under {tmp_path / 'data'}"]


def test_records_without_predictions_or_history_still_give_bars(tmp_path):
    run = golden_run(tmp_path / "demo-run")
    result = plots.make_plots(build_report([run], vs="rd4ad_paper"), tmp_path / "plots")
    assert {p.name for p in result.files} == {"bars.png", "bars.pdf"}
    assert "curves bottle skipped: no predictions.npz in any run" in result.notes
    assert any(note.startswith("loss curves skipped") for note in result.notes)


def test_pro_curve_integrates_to_au_pro():
    """The PRO curve drawn is the one AU-PRO integrates (up to FPR 0.3, divided by 0.3)."""
    rng = np.random.default_rng(3)
    masks = rng.random((4, 12, 12)) > 0.8
    maps = np.round(rng.random((4, 12, 12)) + masks * 0.3, 2).astype(np.float32)  # ties included
    fpr, pro = pro_curve(maps, masks)
    keep = fpr < 0.3
    x, y = np.append(fpr[keep], 0.3), np.append(pro[keep], np.interp(0.3, fpr, pro))
    assert np.trapezoid(y, x) / 0.3 == pytest.approx(au_pro(maps, masks), abs=1e-9)


def test_gallery_rows_best_and_worst():
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.7, 0.2, 0.6])
    labels = np.array([1, 0, 1, 1, 0, 0, 1], dtype=bool)
    assert plots._pick(scores, labels) == [("anomalous, highest scores (best)", [0, 2]),
                                           ("anomalous, lowest scores (worst)", [3, 6]),
                                           ("normal, highest scores (worst)", [4, 5, 1])]


def test_cli_report_with_plots_never_imports_torch(tmp_path):
    run = plot_run(tmp_path, categories=("disc",), seeds=(0,), size=16)
    code = ("import sys; from harness.cli import main; code = main(['report', sys.argv[1], '--plots', '--format', 'md']);"
            "assert 'torch' not in sys.modules, 'report imported torch'; raise SystemExit(code)")
    result = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=120,
                            env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("**Results of plot-run (synthetic), per category**")
    assert len(list((run / "report" / "plots").glob("*.pdf"))) == 4
