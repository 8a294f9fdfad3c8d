"""RD and the backends on a CUDA GPU: what scripts/gpu-check runs, as tests.

Tests marked `cuda` skip themselves without a GPU; `python -m pytest -m cuda` runs only them. Most are
parametrised over the device, so the CPU variant of each (not marked) runs everywhere and exercises the
same helpers; the CUDA-only checks have CPU counterparts for the parts that need no GPU (the backends'
GPU pinning, with the processes and the cluster faked).

Tolerances (stated, not tuned on a GPU):
- fp32 on CUDA against the CPU with the same weights: maps and scores within FP32_ATOL (TF32 is off by
  default, so both are fp32 arithmetic that differs only in summation order); the first training loss
  within a relative 1e-4.
- bf16 autocast against fp32 on the same GPU: mean |difference| of the maps at most BF16_MEAN_RTOL of the
  mean fp32 map, and a correlation of at least BF16_MIN_CORR (bf16 keeps 8 bits of mantissa).
- teacher cache on against off (deterministic algorithms on both): losses within a relative 1e-5 on the
  CPU, 1e-4 on CUDA (the teacher sees its images in another batch composition).
- torch.compile against eager with the same weights: maps within COMPILE_ATOL (fused kernels round differently).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from image_fixtures import stripes

import harness.methods.rd as rd_module
import harness.methods.rd_cache as rd_cache
from harness import cli
from harness.errors import HarnessError
from harness.methods.rd import RDSettings, ReverseDistillation, resolve_device
from harness.methods.rd_maps import rd_loss
from harness.store import RunStore
from harness.sweep.plan import Sweep

from sweep_fixtures import FAST, make_dataset, records, run_in_process

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = f"needs a CUDA GPU (torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}; none visible)"
CUDA_MARKS = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)]
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA_MARKS)]

FP32_ATOL = 1e-4
BF16_MEAN_RTOL = 0.1
BF16_MIN_CORR = 0.95
COMPILE_ATOL = 1e-4


def requires_cuda(test):
    for mark in reversed(CUDA_MARKS):
        test = mark(test)
    return test


def tiny(device: str, **overrides) -> RDSettings:
    settings = dict(
        backbone="resnet18",
        weights="none",
        image_size=64,
        epochs=1,
        batch_size=4,
        predict_batch_size=4,
        progress=False,
        seed=3,
        device=device,
    )
    return RDSettings(**(settings | overrides))


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    """8 training images (two batches of 4) and 6 test images, the first three with a bright square."""
    rng = np.random.default_rng(0)
    train, test = stripes(8, 64, rng), stripes(6, 64, rng)
    test[:3, 20:36, 20:36] = 255
    return train, test


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two shared cores: see tests/conftest.py


@pytest.fixture
def numeric_flags():
    """Restores torch's global floating-point and determinism switches after the test."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (
        cudnn.allow_tf32,
        matmul.allow_tf32,
        cudnn.deterministic,
        cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    yield
    cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved[:4]
    torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])


def networks(model: ReverseDistillation):
    return (model.teacher, model.bottleneck, model.decoder)


def fit_recording(settings: RDSettings, train: np.ndarray, monkeypatch, probe=None) -> tuple[ReverseDistillation, list]:
    """A model fitted on `train`, with every training loss (and `probe()` at each step, if given) recorded."""
    seen: list = []

    def recording(teacher, student):
        loss = rd_loss(teacher, student)
        seen.append(loss.item() if probe is None else (loss.item(), probe()))
        return loss

    monkeypatch.setattr(rd_module, "rd_loss", recording)
    try:
        model = ReverseDistillation(settings)
        model.fit(train)
    finally:
        monkeypatch.setattr(rd_module, "rd_loss", rd_loss)
    return model, seen


def first_loss(device: str, train: np.ndarray, **overrides) -> float:
    """The loss of the first training step (before any update): the forward pass alone."""
    model = ReverseDistillation(tiny(device, cache_teacher="off", **overrides))
    with model.trainer(train) as trainer:
        return trainer.step(np.arange(4))


# ---------------------------------------------------------------------------------------------------
# device selection


@requires_cuda
def test_auto_picks_the_first_gpu():
    assert resolve_device("auto").type == "cuda"
    model = ReverseDistillation(tiny("auto"))
    assert {p.device for net in networks(model) for p in net.parameters()} == {torch.device("cuda", 0)}
    assert model.describe()["device"].startswith("cuda") and model.precision == "fp32"


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA: auto picks it (test_auto_picks_the_first_gpu)")
def test_auto_picks_the_cpu_without_a_gpu():
    model = ReverseDistillation(tiny("auto"))
    assert {p.device for net in networks(model) for p in net.parameters()} == {torch.device("cpu")}


@requires_cuda
def test_a_gpu_index_beyond_the_count_is_a_one_line_error(tmp_path, capsys):
    count = torch.cuda.device_count()
    with pytest.raises(HarnessError) as error:
        resolve_device(f"cuda:{count}")
    assert f"only {count} CUDA device(s) exist" in str(error.value) and "\n" not in str(error.value)
    code = cli.main(
        [
            "bench",
            "train",
            "--device",
            f"cuda:{count}",
            "--backbone",
            "resnet18",
            "--image-size",
            "64",
            "--json",
            str(tmp_path / "bench.json"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"cuda:{count}" in err[0] and not (tmp_path / "bench.json").exists()


# ---------------------------------------------------------------------------------------------------
# training and inference


@pytest.mark.parametrize(
    "device, precision",
    [
        ("cpu", "fp32"),
        pytest.param("cuda", "fp32", marks=CUDA_MARKS),
        pytest.param("cuda", "bf16", marks=CUDA_MARKS),
    ],
)
def test_tiny_fit_and_predict(device, precision, images):
    train, test = images
    model = ReverseDistillation(tiny(device, precision=precision))
    logs = model.fit(train)
    scores, maps = model.predict(test)
    assert model.precision == precision and model.describe()["precision"] == precision
    assert all(np.isfinite(log.loss) for log in logs)
    assert scores.shape == (6,) and maps.shape == (6, 64, 64) and scores.dtype == maps.dtype == np.float32
    assert np.isfinite(maps).all() and np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, maps.reshape(6, -1).max(axis=1))  # the image score is the map's maximum
    if device == "cpu":
        return
    # the same weights on the CPU (the random teacher comes from the seed; bottleneck and decoder are loaded)
    cpu = ReverseDistillation(tiny("cpu"))
    cpu.load_state_dict(model.state_dict())
    cpu_scores, cpu_maps = cpu.predict(test)
    if precision == "fp32":
        np.testing.assert_allclose(maps, cpu_maps, rtol=0, atol=FP32_ATOL)
        np.testing.assert_allclose(scores, cpu_scores, rtol=0, atol=FP32_ATOL)
    else:
        assert_bf16_close(maps, cpu_maps)


def assert_bf16_close(maps: np.ndarray, reference: np.ndarray) -> None:
    mean_diff = float(np.abs(maps - reference).mean())
    assert mean_diff <= BF16_MEAN_RTOL * float(np.abs(reference).mean()), mean_diff
    assert np.corrcoef(maps.ravel(), reference.ravel())[0, 1] >= BF16_MIN_CORR


def test_bf16_tolerance_accepts_rounding_and_rejects_garbage():
    rng = np.random.default_rng(1)
    reference = rng.uniform(0.2, 1.5, (4, 64, 64)).astype(np.float32)
    rounded = torch.from_numpy(reference).bfloat16().float().numpy()
    assert_bf16_close(rounded, reference)
    for garbage in (np.zeros_like(reference), rng.permutation(reference.ravel()).reshape(reference.shape)):
        with pytest.raises(AssertionError):
            assert_bf16_close(garbage, reference)


@requires_cuda
@pytest.mark.parametrize("precision, rel", [("fp32", 1e-4), ("bf16", 2e-2)])
def test_first_training_loss_matches_the_cpu(precision, rel, images):
    train, _ = images
    assert first_loss("cuda", train, precision=precision) == pytest.approx(first_loss("cpu", train), rel=rel)


@pytest.mark.parametrize("device", DEVICES)
def test_parameters_and_inputs_use_the_device_memory_format(device, images):
    """channels_last on CUDA and on the CPU with oneDNN (no layout reorders in cuDNN or oneDNN); kept by training."""
    train, test = images
    layout = torch.channels_last
    model = ReverseDistillation(tiny(device))

    def weights():
        return [p for net in networks(model) for p in net.parameters() if p.dim() == 4]

    assert weights() and all(p.is_contiguous(memory_format=layout) for p in weights())
    assert model._to_tensor(test[:2]).is_contiguous(memory_format=layout)
    model.fit(train)
    assert all(p.is_contiguous(memory_format=layout) for p in weights())


def compiler_missing() -> str:
    """Why torch.compile cannot run on this CUDA machine ('' when it can).

    Inductor needs triton, and triton a C compiler.
    """
    if importlib.util.find_spec("triton") is None:
        return "torch.compile on CUDA needs triton"
    if not any(shutil.which(name) for name in (os.environ.get("CC") or "cc", "gcc", "clang")):
        return "torch.compile on CUDA needs a C compiler (triton builds its launcher)"
    return ""


@requires_cuda
def test_compiled_model_predicts_like_the_eager_one(images):
    if compiler_missing():
        pytest.skip(compiler_missing())
    _, test = images
    eager = ReverseDistillation(tiny("cuda"))
    compiled = ReverseDistillation(tiny("cuda", compile=True))
    assert compiled.compiled and compiled.describe()["compiled"] and compiled._run_decoder is not compiled.decoder
    for part in ("bn", "decoder"):  # the compiled wrappers keep the official checkpoint names
        assert list(compiled.state_dict()[part]) == list(eager.state_dict()[part])
    compiled.load_state_dict(eager.state_dict())
    eager_scores, eager_maps = eager.predict(test[:4])
    scores, maps = compiled.predict(test[:4])
    np.testing.assert_allclose(maps, eager_maps, rtol=0, atol=COMPILE_ATOL)
    np.testing.assert_allclose(scores, eager_scores, rtol=0, atol=COMPILE_ATOL)


# ---------------------------------------------------------------------------------------------------
# the teacher cache and the copies to the device


@pytest.mark.parametrize(
    "device, where",
    [
        ("cpu", "cpu"),
        pytest.param("cuda", "cuda", marks=CUDA_MARKS),
        pytest.param("cuda", "pinned", marks=CUDA_MARKS),  # on the host, pinned, copied without blocking
    ],
)
def test_teacher_cache_gives_the_losses_of_the_teacher_run_every_step(device, where, images, monkeypatch):
    train, _ = images
    settings = dict(epochs=2, deterministic=True)
    plain, plain_losses = fit_recording(tiny(device, cache_teacher="off", **settings), train, monkeypatch)
    if where == "pinned":
        monkeypatch.setattr(rd_cache, "free_gpu_memory", lambda device: 0)  # over the GPU budget: cached on the host
    cached, cached_losses = fit_recording(tiny(device, cache_teacher="on", **settings), train, monkeypatch)
    info = cached.describe()["teacher_cache"]
    assert info["used"] and info["location"] == ("cpu" if where == "pinned" else device)
    assert plain.describe()["teacher_cache"]["used"] is False
    assert len(plain_losses) == len(cached_losses) == 4  # 2 epochs x 2 batches
    rel = 1e-5 if device == "cpu" else 1e-4
    np.testing.assert_allclose(cached_losses, plain_losses, rtol=rel, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_pinned_non_blocking_copies_deliver_every_batch(device):
    """Batches copied one after another without waiting arrive intact (no staging buffer reused too early)."""
    model = ReverseDistillation(tiny(device))
    reference = ReverseDistillation(tiny("cpu"))
    batches = [np.random.default_rng(i).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8) for i in range(16)]
    moved = [model._to_tensor(batch) for batch in batches]  # queued; nothing waits in between
    if device == "cuda":
        torch.cuda.synchronize()
    for batch, tensor in zip(batches, moved, strict=False):
        assert tensor.device.type == device
        torch.testing.assert_close(tensor.cpu(), reference._to_tensor(batch), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# determinism and floating-point switches


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_fit_twice_gives_bitwise_identical_maps(device, images):
    train, test = images
    runs = []
    for _ in range(2):
        model = ReverseDistillation(tiny(device, deterministic=True, epochs=2))
        losses = [log.loss for log in model.fit(train)]
        runs.append((losses, *model.predict(test)))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tf32", [False, True])
def test_numeric_switches_during_fit_follow_the_settings(device, tf32, images, monkeypatch, numeric_flags):
    train, _ = images
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    deterministic = not tf32  # both combinations of the two settings' values, in two runs
    # the opposite of what the job asks for, to see the job set them and put them back
    cudnn.allow_tf32 = matmul.allow_tf32 = not tf32
    cudnn.deterministic, cudnn.benchmark = not deterministic, deterministic
    torch.use_deterministic_algorithms(not deterministic)

    def switches():
        return (
            cudnn.allow_tf32,
            matmul.allow_tf32,
            cudnn.deterministic,
            cudnn.benchmark,
            torch.are_deterministic_algorithms_enabled(),
        )

    model, seen = fit_recording(tiny(device, tf32=tf32, deterministic=deterministic), train, monkeypatch, switches)
    assert {flags for _, flags in seen} == {
        (tf32, tf32, deterministic, device == "cuda" and not deterministic, deterministic)
    }
    assert switches() == (not tf32, not tf32, not deterministic, deterministic, not deterministic)  # restored
    numerics = model.describe().get("cuda_numerics")
    if device == "cuda":
        assert numerics == {"cudnn_deterministic": deterministic, "cudnn_benchmark": not deterministic, "tf32": tf32}
    else:
        assert numerics is None


# ---------------------------------------------------------------------------------------------------
# backends: one job per GPU, each process or worker seeing only its GPU


@requires_cuda
def test_local_backend_pins_the_gpu_in_the_child(tmp_path):
    data = make_dataset(tmp_path / "data", categories=("amber",))
    out = tmp_path / "run"
    assert (
        run_in_process("run", *FAST, "--root", str(data), "--backend", "local", "--gpus", "0", "--out", str(out)) == 0
    )
    [record] = records(out).values()
    provenance = record["provenance"]
    assert provenance["backend"] == "local" and provenance["gpu"] == 0 and provenance["pid"] != os.getpid()
    assert provenance["cuda_visible_devices"] == "0"  # set in the child before CUDA initialised
    assert provenance["device"].startswith("cuda") and record["settings"]["device"] == "cuda"
    assert provenance["machine"]["gpu"] and record["memory"]["cuda_max_allocated_mib"] > 0


@requires_cuda
def test_dask_gpu_workers_run_one_job_per_gpu(tmp_path):
    pytest.importorskip("distributed", reason='the dask backend needs dask.distributed (pip install -e ".[dask]")')
    data = make_dataset(tmp_path / "data", categories=("amber",))
    out = tmp_path / "run"
    assert run_in_process("run", *FAST, "--root", str(data), "--backend", "dask", "--gpus", "0", "--out", str(out)) == 0
    [record] = records(out).values()
    provenance = record["provenance"]
    assert provenance["backend"] == "dask" and provenance["worker_name"] == "gpu0"
    assert provenance["cuda_visible_devices"] == "0" and provenance["device"].startswith("cuda")
    assert record["settings"]["device"] == "cuda" and record["settings"]["progress"] is False


def test_a_gpu_slot_pins_its_job_to_that_gpu(tmp_path, monkeypatch):
    """The local backend's GPU slot, without a GPU: the child is told its GPU and the job runs on 'cuda'."""
    from harness.sweep.backends import pool

    started = {}

    class Child:
        def __init__(self, context, job, log_path, **options):
            started.update(job=job, log_path=log_path, **options)

    monkeypatch.setattr(pool, "ChildJob", Child)
    job = Sweep(categories=("disc",)).resolve().jobs[0]
    backend = pool.ProcessBackend([2, 5], threads=4, job_timeout=None)
    backend._start(None, job, 1, RunStore(tmp_path / "run"))
    assert started["gpu"] == 5 and started["threads"] == 4 and started["execution"]["gpu"] == 5
    assert started["job"].job_id == job.job_id and started["job"].settings["device"] == "cuda"
    assert started["job"].settings["progress"] is False  # two slots: no interleaved epoch bars
    assert "2 GPU(s) 2,5, one job each" in backend.describe()


def test_dask_gpu_cluster_gives_each_worker_one_gpu(monkeypatch):
    """The local GPU cluster's spec and the tasks' GPU resource, with dask faked."""
    from harness.sweep.backends import Execution, cluster

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("harness.sweep.backends.available_gpus", lambda: 4)  # the GPUs the spec names exist
    fake = SimpleNamespace(
        Nanny="Nanny",
        Scheduler="Scheduler",
        SpecCluster=lambda workers, scheduler, silence_logs: SimpleNamespace(workers=workers),
    )
    spec = cluster._gpu_cluster(fake, (0, 3), threads=8).workers
    assert set(spec) == {"gpu0", "gpu3"}
    for gpu in (0, 3):
        options = spec[f"gpu{gpu}"]["options"]
        assert options["resources"] == {"GPU": 1} and options["nthreads"] == 1
        assert options["env"] == {"CUDA_VISIBLE_DEVICES": str(gpu), "OMP_NUM_THREADS": "8"}

    submitted = {}

    class Client:
        scheduler = SimpleNamespace(address="tcp://127.0.0.1:1")

        def submit(self, function, job, task_key, threads, capture, execution, **options):
            submitted.update(job=job, threads=threads, execution=execution, **options)

    backend = cluster.DaskBackend(Execution(backend="dask", gpus=(0,)), "auto")
    backend.client, backend.cluster, backend.use_gpu, backend.threads = Client(), object(), True, 8
    job = Sweep(categories=("disc",)).resolve().jobs[0]
    backend._submit(job)
    assert submitted["resources"] == {"GPU": 1} and submitted["job"].settings["device"] == "cuda"
    assert submitted["job"].job_id == job.job_id and submitted["execution"]["backend"] == "dask"
