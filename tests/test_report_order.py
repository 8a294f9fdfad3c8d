"""One category order everywhere: the end-of-run table, every report format and check's baselines."""

from harness.datasets.synthetic import CATEGORIES
from harness.order import SYNTHETIC, ordered
from harness.report import tables
from harness.report.build import build_report
from harness.report.check import run_stats
from harness.report.records import load_records
from harness.report.summary import summary_table

from report_fixtures import dataset_run


def rows_of(markdown: str) -> list[str]:
    return [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("|")][2:]


def test_synthetic_order_is_the_generators():
    assert SYNTHETIC == CATEGORIES


def test_run_table_and_reports_share_the_data_sets_order(tmp_path):
    # job folders sort as disc, tiles, weave: the order records are read in
    run = dataset_run(tmp_path / "run", "synthetic", ["disc", "tiles", "weave"], seeds=(0,))
    records = load_records(run)
    assert [r["category"] for r in records] == ["disc", "tiles", "weave"]
    expected = ["weave", "tiles", "disc"]
    report = build_report([run])
    assert report.categories == expected
    assert rows_of(summary_table(records, ["image_auroc"]))[:3] == expected
    assert rows_of(tables.markdown(report))[:3] == expected
    csv_categories = [line.split(",")[0] for line in tables.csv_text(report).splitlines()[1:]]
    assert list(dict.fromkeys(csv_categories))[:3] == expected
    assert list(run_stats(records, ["image_auroc"])) == expected


def test_mvtec_run_table_in_the_papers_order(tmp_path):
    run = dataset_run(tmp_path / "run", "mvtec", ["bottle", "carpet", "zipper", "grid"], seeds=(0,))
    records = load_records(run)
    assert rows_of(summary_table(records, ["image_auroc"])) == ["carpet", "grid", "bottle", "zipper", "mean"]
    assert ordered("mvtec", ["zipper", "grid", "bottle"]) == ["grid", "bottle", "zipper"]
    assert ordered("brats", ["b", "a"]) == ["b", "a"]  # no published order: as given
