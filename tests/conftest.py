import os
from pathlib import Path

import pytest


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core, at most four. Many tests start `python -m harness` processes of
    their own, so more workers only add memory and contention."""
    return max(1, min(4, _cores()))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_configure(config) -> None:
    # In a parallel run each worker's in-process torch gets its share of the cores, not all of them
    # (processes the tests start keep their own settings).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, _cores() // workers))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module's in-process training (restored afterwards): on two shared cores
    a busy neighbour makes OpenMP's spin-waits several times slower than one thread, and float sums depend
    on the thread count."""
    from sweep_fixtures import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Caches (the synthetic data set among them) go to a temporary folder, never the user's home."""
    if not os.environ.get("HARNESS_CACHE"):
        os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return Path(os.environ["HARNESS_CACHE"])


@pytest.fixture(scope="session", autouse=True)
def no_downloads():
    """No test reaches the internet: downloads are off unless a test turns them on for its loopback server."""
    os.environ["HARNESS_OFFLINE"] = "1"
    os.environ.pop("HARNESS_MIRROR", None)


@pytest.fixture
def isolated_data_env(tmp_path, monkeypatch):
    """A per-test cache and no data-set environment, so adapter tests see only their own fixtures."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    monkeypatch.delenv("HARNESS_ARRAY_CACHE", raising=False)


@pytest.fixture
def processes():
    """`python -m harness` commands started in the background; whatever a failed test leaves running is killed."""
    from sweep_fixtures import start_harness

    started = []

    def start(*args, **popen):
        started.append(start_harness(*args, **popen))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
