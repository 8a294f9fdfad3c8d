"""The plugin API: public names, entry points (installed distributions), register_*, the method contract and
its one-line refusals, the Python API beside the command line, and the profile a method runs under."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import harness
from harness import datasets, methods
from harness.cli import main
from harness.errors import HarnessError
from harness.sweep.plan import Sweep

from sweep_fixtures import one_thread

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A tiny method: the mean training image; scores and maps are distances to it.
PLUGIN_SOURCE = '''
import dataclasses
import numpy as np
import harness


@dataclasses.dataclass
class MeanSettings:
    image_size: int = 32
    seed: int = 0


class MeanImage(harness.Method):
    """Distance to the mean training image."""

    label = "Mean"
    Settings = MeanSettings

    def fit(self, images, *, callbacks=()):
        if not len(images):
            raise harness_error("no training images")
        self.mean = images.astype(np.float32).mean(axis=0)
        log = harness.EpochLog(1, 1, 0.0, 0.0)
        for callback in callbacks:
            callback(log)
        return [log]

    def predict(self, images):
        maps = np.abs(images.astype(np.float32) - self.mean).mean(axis=-1).astype(np.float32)
        return maps.max(axis=(1, 2)).astype(np.float32), maps

    def state_dict(self):
        return {"mean": self.mean}

    def load_state_dict(self, state):
        self.mean = np.asarray(state["mean"], dtype=np.float32)


def harness_error(text):
    from harness.errors import HarnessError

    return HarnessError(text)


class NotADataclass(MeanImage):
    class Settings:
        image_size = 32
        seed = 0


class NoPredict(harness.Method):
    Settings = MeanSettings

    def fit(self, images, *, callbacks=()):
        return []

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass
'''


def install(site: Path, distribution: str, version: str, entry_points: dict[str, dict[str, str]], modules: dict):
    """A distribution as pip leaves it in site-packages: its modules and a dist-info with entry_points.txt."""
    site.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{distribution}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines += [f"[{group}]"] + [f"{name} = {target}" for name, target in entries.items()] + [""]
    (info / "entry_points.txt").write_text("\n".join(lines))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site folder on sys.path whose distributions the registries read afresh; forgotten afterwards."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for registry in (methods.REGISTRY, datasets.REGISTRY):
        registry.reread_entry_points()
    import sys

    for name in [m for m in sys.modules if m.startswith("plugin_")]:
        del sys.modules[name]


def reread() -> None:
    for registry in (methods.REGISTRY, datasets.REGISTRY):
        registry.reread_entry_points()


def test_public_names_are_the_api():
    assert harness.Method is methods.Method and harness.EpochLog is methods.EpochLog
    assert harness.Adapter is datasets.Adapter and harness.Split is datasets.Split
    assert harness.CategoryData is datasets.CategoryData
    assert set(harness.__all__) == {
        "Method",
        "Adapter",
        "CategoryData",
        "Split",
        "EpochLog",
        "register_method",
        "register_dataset",
        "run",
        "report",
        "check",
    }
    from harness.report import tables  # the subpackage stays a package, and its name is the callable API

    assert callable(harness.report) and harness.report.tables is tables
    with pytest.raises(AttributeError):
        harness.no_such_name  # noqa: B018


def test_an_installed_plugin_is_listed_with_its_distribution_and_a_broken_one_is_one_line(site, capsys):
    install(
        site,
        "mean-plugin",
        "1.2.3",
        {"rd_harness.methods": {"mean": "plugin_mean:MeanImage", "broken": "plugin_broken:Nothing"}},
        {"plugin_mean": PLUGIN_SOURCE, "plugin_broken": "import no_such_module_anywhere\n"},
    )
    reread()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("mean "))
    assert "mean-plugin 1.2.3" in line and "Distance to the mean training image" in line
    broken = next(line for line in out.splitlines() if line.startswith("broken "))
    assert "failed to load: ModuleNotFoundError" in broken
    assert main(["run", "--method", "broken", "--out", str(site / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "rd_harness.methods 'broken = plugin_broken:Nothing'" in err
    assert "of mean-plugin 1.2.3 failed to load: ModuleNotFoundError" in err
    assert not (site / "out").exists()


def test_a_name_declared_twice_is_one_line_and_other_names_still_work(site, capsys):
    for dist in ("one", "two"):
        install(site, dist, "1.0", {"rd_harness.methods": {"mean": "plugin_mean:MeanImage"}}, {})
    (site / "plugin_mean.py").write_text(PLUGIN_SOURCE)
    install(site, "three", "1.0", {"rd_harness.methods": {"rd": "plugin_mean:MeanImage"}}, {})
    reread()
    with pytest.raises(HarnessError, match=r"method 'mean' is declared twice: by one 1.0 .* and by two 1.0"):
        methods.get("mean")
    with pytest.raises(HarnessError, match=r"method 'rd' is declared twice: by built-in .* and by three 1.0"):
        methods.get("rd")
    assert main(["list"]) == 0  # listing still works and shows the conflict
    assert "declared twice" in capsys.readouterr().out


def test_register_refuses_a_taken_name_and_classes_that_break_the_contract(site):
    (site / "plugin_mean.py").write_text(PLUGIN_SOURCE)
    import plugin_mean

    with pytest.raises(HarnessError, match=r"method 'rd' is already taken by built-in"):
        harness.register_method("rd", plugin_mean.MeanImage)
    with pytest.raises(HarnessError, match=r"Settings must be a dataclass"):
        harness.register_method("bad", plugin_mean.NotADataclass)
    with pytest.raises(HarnessError, match=r"NoPredict\) does not implement predict$"):
        harness.register_method("bad", plugin_mean.NoPredict)
    with pytest.raises(HarnessError, match=r"is not a subclass of harness.Adapter"):
        harness.register_dataset("bad", plugin_mean.MeanImage)
    assert "bad" not in methods.names() and "bad" not in datasets.names()


@pytest.mark.parametrize("broken", ["NotADataclass", "NoPredict"])
def test_a_bad_entry_point_class_is_one_line_and_nothing_is_written(site, capsys, broken):
    install(site, "bad-plugin", "0.1", {"rd_harness.methods": {"bad": f"plugin_mean:{broken}"}}, {})
    (site / "plugin_mean.py").write_text(PLUGIN_SOURCE)
    reread()
    out = site / "run"
    assert main(["run", "--method", "bad", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"plugin_mean.{broken}" in err
    assert not out.exists()


def test_a_class_registered_in_this_process_only_is_refused_for_process_backends(site, capsys):
    (site / "plugin_mean.py").write_text(PLUGIN_SOURCE)
    import plugin_mean

    harness.register_method("mean_here", plugin_mean.MeanImage)
    try:
        out = site / "run"
        for flags in (["--backend", "local"], ["--job-timeout", "60"]):
            assert main(["run", "--method", "mean_here", *flags, "--out", str(out)]) == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and "registered in this process only" in err
            assert not out.exists()
        # the serial backend runs it, with the method's Settings defaults (no profile of its own)
        assert main(["run", "--method", "mean_here", "--categories", "disc", "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "no profile (the mean_here settings' defaults" in printed
        (record,) = [json.loads(p.read_text()) for p in out.glob("jobs/*/record.json")]
        assert record["method_label"] == "Mean" and record["settings"] == {"image_size": 32, "seed": 0}
        assert record["profile"] == "defaults" and record["execution_settings"] == []
    finally:
        methods.REGISTRY.unregister("mean_here")


def test_checkpoint_flags_need_the_declared_capability(site, tmp_path):
    (site / "plugin_mean.py").write_text(PLUGIN_SOURCE)
    import plugin_mean

    harness.register_method("mean_ck", plugin_mean.MeanImage)
    try:
        checkpoint = tmp_path / "model.pth"
        checkpoint.write_bytes(b"x")
        with pytest.raises(HarnessError, match=r"--checkpoint: method 'mean_ck' does not save or load checkpoints"):
            Sweep(method="mean_ck", checkpoint=str(checkpoint)).resolve()
        with pytest.raises(HarnessError, match=r"--save-checkpoints: method 'mean_ck'"):
            Sweep(method="mean_ck", save_checkpoints=True).resolve()
    finally:
        methods.REGISTRY.unregister("mean_ck")


def test_a_method_without_a_device_setting_is_not_given_one():
    from harness.sweep.backends import with_settings

    job = Sweep(categories=("disc",)).resolve().jobs[0]
    assert with_settings(job, device="cpu", progress=False).settings["device"] == "cpu"
    bare = Sweep(categories=("disc",)).resolve().jobs[0]
    import dataclasses

    bare = dataclasses.replace(bare, settings={"image_size": 32, "seed": 0}, execution_settings=())
    assert with_settings(bare, device="cpu", progress=False).settings == {"image_size": 32, "seed": 0}
    assert with_settings(bare, device="cpu").job_id == bare.job_id


def test_rdpp_without_a_profile_uses_its_own_default_profile():
    assert Sweep(method="rdpp").resolve().profile == "rdpp-demo"  # synthetic data: the demo profile's counterpart
    assert Sweep(method="rd").resolve().profile == "demo"
    assert Sweep().resolve().profile == "demo"
    assert Sweep(method="rdpp", profile="demo").resolve().profile == "demo"  # an explicit profile wins
    with_paper = Sweep(dataset="mvtec", method="rdpp", categories=("carpet",)).resolve()
    assert with_paper.profile == "rdpp-paper" and with_paper.jobs[0].settings["epochs"] == 10


def _comparable(record: dict) -> dict:
    """A record without what differs between two executions of the same job: clocks, memory, process facts."""
    kept = {k: v for k, v in record.items() if k not in ("timings", "memory", "provenance")}
    kept["history"] = [{k: v for k, v in e.items() if k != "seconds"} for e in record["history"]]
    cache = dict(kept["method_info"].get("teacher_cache") or {})
    cache.pop("budget_mib", None)  # a share of the memory free at the time
    kept["method_info"] = kept["method_info"] | {"teacher_cache": cache}
    return kept


def test_python_api_and_command_line_make_the_same_jobs_and_records(tmp_path, capsys):
    flags = ["--categories", "disc", "--epochs", "1", "--image-size", "32", "--seeds", "3"]
    assert main(["run", *flags, "--out", str(tmp_path / "cli")]) == 0
    assert "profile demo" in capsys.readouterr().out  # every run says which profile it uses
    with one_thread():
        result = harness.run(categories=["disc"], epochs=1, image_size=32, seeds=3, out=tmp_path / "api", quiet=True)
    cli = [json.loads(p.read_text()) for p in sorted((tmp_path / "cli").glob("jobs/*/record.json"))]
    assert [r["job_id"] for r in result.records] == [r["job_id"] for r in cli]
    assert [_comparable(r) for r in result.records] == [_comparable(r) for r in cli]
    for record in cli:
        ours = np.load(result.run_dir / "jobs" / record["job_id"] / "predictions.npz")
        theirs = np.load(tmp_path / "cli" / "jobs" / record["job_id"] / "predictions.npz")
        assert ours.files == theirs.files and all(np.array_equal(ours[k], theirs[k]) for k in ours.files)
    frame = result.results
    assert (
        list(frame["category"]) == ["disc"]
        and frame["image_auroc"].iloc[0] == cli[0]["metrics"]["image_auroc"]["value"]
    )
    # report and check as functions: the outcome, not an exit
    output = harness.report(result.run_dir, formats=["md", "csv"], out=tmp_path / "report")
    assert {p.name for p in output.written} == {"report.md", "report.csv"} and "disc" in output.markdown
    baseline = tmp_path / "baseline.json"
    assert harness.check(result.run_dir, baseline, update=True).ok
    outcome = harness.check(tmp_path / "cli", baseline)
    assert outcome.exit_code == 0 and outcome.drift is None and len(outcome.comparisons) == 3


def test_python_api_validates_like_the_command_line(tmp_path):
    with pytest.raises(HarnessError, match=r"harness.run: 'epochs' must be a positive integer, got 0"):
        harness.run(epochs=0, out=tmp_path / "x")
    with pytest.raises(HarnessError, match=r"method 'rd' has no setting\(s\) no_such_setting"):
        harness.run(no_such_setting=1, out=tmp_path / "x")
    with pytest.raises(HarnessError, match=r"--jobs needs --backend local or dask"):
        harness.run(jobs=2, out=tmp_path / "x")
    with pytest.raises(HarnessError, match=r"report: unknown option 'colour'"):
        harness.report(tmp_path, colour="red")
    assert not (tmp_path / "x").exists()
