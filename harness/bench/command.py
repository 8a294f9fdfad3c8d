"""`python -m harness bench`: measure on this machine, print tables and a sweep estimate, write JSON.

Everything that can be wrong with the input (settings, device, data set, category, output path) is
checked before the first measurement, so a bad flag fails at once with one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import HarnessError
from harness.files import atomic_write_text

SECTIONS = {
    "train": ("train",),
    "infer": ("infer",),
    "data": ("data",),
    "metrics": ("metrics",),
    "all": ("train", "infer", "data", "metrics"),
    "estimate": ("train", "infer"),
    "official": ("versus",),
    "phases": ("phases",),
}


def model_settings(args: argparse.Namespace):
    """The method (--method, else the profile's, else rd), its settings: the profile's (--profile, else the
    data set's default, else the paper defaults), then the explicit flags; and the profile. Random teacher
    weights unless --weights: they do not change the speed."""
    from harness import datasets, methods
    from harness.sweep import profiles

    profile_name = args.profile or (datasets.get(args.dataset).default_profile if args.dataset else "")
    profile = profiles.get(profile_name) if profile_name else None
    method = getattr(args, "method", None) or (profile.method if profile else "rd")
    if method not in ("rd", "rdpp"):  # the methods whose training steps model_speed knows how to time
        raise HarnessError(f"bench measures methods rd and rdpp, not '{method}'")
    if args.what in ("official", "phases") and method != "rd":
        raise HarnessError(f"bench {args.what} measures method rd, not '{method}'")
    flags = {
        "backbone": args.backbone,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "epochs": args.epochs,
        "teacher_cache_dtype": args.teacher_cache_dtype,
    }
    values = (profile.settings if profile else {}) | {"weights": args.weights or "none", "compile": args.compile}
    values |= {k: v for k, v in flags.items() if v is not None} | {"progress": False}
    settings = methods.get(method).Settings(**values)
    settings.predict_batch_size = settings.batch_size  # inference measured at the same batch size
    settings.validate()
    return settings, profile, method


def json_path(args: argparse.Namespace, what: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(args.json) if args.json else Path("results") / "bench" / f"bench-{what}-{stamp}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() or not os.access(path.parent, os.W_OK):
            raise OSError("not a writable file location")
    except OSError as error:
        raise HarnessError(f"{path}: cannot write the JSON file ({error.strerror or error})") from None
    return path


def cores_available() -> int:
    """The CPU cores this process may run on (its affinity mask; all of them where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_warning(start: float, end: float, cores: int) -> str | None:
    """One line when the 1-minute load average, at the start or the end, exceeded the cores available: other
    work then competed for the CPU, and the figures say more about it than about the code."""
    if max(start, end) <= cores:
        return None
    return (
        f"warning: load average {start:.2f} at the start, {end:.2f} at the end, above the {cores} core(s) "
        "available: other work competed for the CPU, so these figures mean little; measure on an idle machine"
    )


def machine_info(device: str | None) -> dict:
    from harness.sweep import provenance

    return provenance.software() | {
        "device_name": provenance.device_name(device or "cpu"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cores_available": cores_available(),
    }


def command_bench(args: argparse.Namespace) -> int:
    from harness.bench import data_speed, estimate, metric_speed, model_speed, phases, versus
    from harness.methods.rd import resolve_device
    from harness.methods.rd_cache import cache_bytes, plan_cache
    from harness.sweep import numerics

    what = args.what
    sections = SECTIONS[what]
    if args.portable and not numerics.process_is_portable():
        if not getattr(args, "can_restart", False):
            raise HarnessError(f"--portable needs a process started with {numerics.missing_environment()}")
        numerics.restart_portable(args.command_line)  # does not return
    if what == "estimate" and not args.dataset:
        raise HarnessError("bench estimate needs --dataset NAME (e.g. mvtec, visa, synthetic)")
    settings, profile, method = model_settings(args)
    model_sections = bool({"train", "infer", "versus", "phases"} & set(sections))
    device = resolve_device(settings.device) if model_sections else None
    if "versus" in sections and device is not None and device.type != "cpu":
        raise HarnessError("bench official runs on the CPU only (--device cpu)")
    timed_model = "train" in sections or "infer" in sections
    split = estimate.split_counts(args.dataset, args.root) if args.dataset and timed_model else None
    protocol = (args.protocol or profile.protocol) if split else "single"
    # per-category epochs of the profile (rdpp-paper), unless --epochs sets one count for all
    category_epochs = (
        None
        if args.epochs or not split
        else {c: o["epochs"] for c, o in profile.category_settings.items() if c in split[0] and "epochs" in o}
    )
    if split and protocol == "unified" and category_epochs:  # refused before anything is measured
        estimate.unified_epochs(split[0], settings.epochs, category_epochs)
    source = (
        data_speed.data_source(args.dataset or "synthetic", args.root, args.category) if "data" in sections else None
    )
    path = json_path(args, what)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    result: dict = {
        "command": what,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(str(device) if device else None),
    }
    blocks = []
    if model_sections:
        result["settings"] = dataclasses.asdict(settings)
        result["method"] = method
        result["setup"] = model_speed.describe_setup(settings, method)
        result["numerics"] = "portable" if args.portable else "native"
        with numerics.numerics(result["numerics"]):
            if "train" in sections:
                off = model_speed.bench_train(
                    settings, steps=args.steps, warmup=args.warmup, cache_teacher="off", method=method
                )
                on = model_speed.bench_train(
                    settings, steps=args.steps, warmup=args.warmup, cache_teacher="on", method=method
                )
                result["train"] = {
                    "uncached": off,
                    "cached": on,
                    "cache_speedup": on["images_per_s"] / off["images_per_s"],
                }
            if "infer" in sections:
                result["infer"] = model_speed.bench_infer(settings, steps=args.steps, warmup=args.warmup, method=method)
            if "versus" in sections:
                result["versus_official"] = versus.bench_versus(settings, rounds=args.steps, warmup=args.warmup)
            if "phases" in sections:
                result["phases"] = phases.bench_phases(settings, steps=args.steps, warmup=args.warmup, method=method)
        if "phases" in sections:
            blocks.append(
                phases.format_phases(result["setup"], result["phases"]) + f"\nCPU numerics: {result['numerics']}"
            )
        elif "versus" in sections:
            blocks.append(
                versus.format_versus(result["setup"], result["versus_official"])
                + f"\nCPU numerics: {result['numerics']}"
            )
        else:
            blocks.append(
                model_speed.format_model_table(result["setup"], result.get("train"), result.get("infer"))
                + f"\nCPU numerics: {result['numerics']}"
            )
    if source is not None:  # the data section
        result["data"] = data_speed.bench_data(source, settings.image_size)
        blocks.append(data_speed.format_bench_data(result["data"]))
    if "metrics" in sections:
        result["metrics"] = metric_speed.bench_metrics(args.n_images, args.size, repeats=args.repeats)
        blocks.append(metric_speed.format_bench_metrics(result["metrics"]))
        from harness.bench import bootstrap_speed

        result["bootstrap"] = bootstrap_speed.bench_bootstrap(args.n_images, args.size)
        blocks.append(bootstrap_speed.format_bench_bootstrap(result["bootstrap"]))
    if split and device is not None:  # split counts are taken with a model section, which resolves the device
        per_category, counted = split
        size = settings.image_size
        # the teacher cache holds one model's training images: a category's, or all of them (unified)
        cached_images = (sum if protocol == "unified" else max)(n for n, _ in per_category.values())
        needed = cache_bytes(settings.backbone, cached_images, size, size, settings.teacher_cache_dtype)
        plan = plan_cache(settings.cache_teacher, needed, device)
        data = result.get("data") if result.get("data", {}).get("dataset") == args.dataset else None
        sweep_estimate = estimate.estimate_sweep(
            per_category,
            epochs=settings.epochs,
            seeds=len(profile.seeds),
            cache_used=plan.use,
            train=result.get("train"),
            infer=result.get("infer"),
            data=data,
            protocol=protocol,
            category_epochs=category_epochs or None,
        )
        sweep_estimate |= {
            "dataset": args.dataset,
            "profile": profile.name,
            "counts": counted,
            "teacher_cache_plan": plan.to_dict(),
        }
        result["estimate"] = sweep_estimate
        header = (
            f"sweep estimate: {args.dataset} ({counted}), method {method}, profile {profile.name} "
            f"({settings.backbone}, {size} px, {estimate.epochs_text(sweep_estimate)}, batch {settings.batch_size}), "
            f"{len(per_category)} categories x "
            f"{len(profile.seeds)} seed(s), protocol {protocol}, on {device}; teacher cache "
            f"{'on' if plan.use else 'off'}: {plan.reason}"
        )
        blocks.append(estimate.format_estimate(sweep_estimate, header))
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]

    machine = result["machine"]
    warning = load_warning(machine["load_average"][0], machine["load_average_after"][0], machine["cores_available"])
    machine["load_warning"] = warning
    print("\n\n".join(blocks))
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")
    load = ", ".join(f"{x:.2f}" for x in machine["load_average"])
    print(f"\nload average at start {load} ({machine['cores_available']} cores available); JSON: {path}")
    if warning:
        print(warning, file=sys.stderr)
    return 0  # a measurement, not a test: no figure makes it fail


def add_arguments(bench: argparse.ArgumentParser, positive_int) -> None:
    """The flags of `bench` (the parser itself is made in harness.cli)."""
    bench.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=list(SECTIONS),
        help="what to measure: train, infer, data, metrics, all (those four), estimate "
        "(train + infer and the sweep estimate; needs --dataset), or official (RD's training step "
        "and inference beside the official code's, interleaved; --steps rounds, best kept), or phases "
        "(time per phase of a training step and of predict)",
    )
    model = bench.add_argument_group("model (train, infer)")
    model.add_argument("--method", choices=["rd", "rdpp"], help="method to measure (default: the profile's, else rd)")
    model.add_argument("--backbone", help="teacher backbone (default: the profile's, else wide_resnet50_2)")
    model.add_argument(
        "--image-size", type=positive_int, help="input side in pixels (default: the profile's, else 256)"
    )
    model.add_argument(
        "--batch-size", type=positive_int, help="training and inference batch size (default: the profile's, else 16)"
    )
    model.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    model.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        help="autocast precision (CPU: bf16 where it has AVX512-BF16 or AMX; fp16 runs fp32)",
    )
    model.add_argument("--weights", help="teacher weights (default none: random; the weights do not change the speed)")
    model.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the networks (CUDA; on the CPU predict only, with a C++ compiler)",
    )
    model.add_argument("--teacher-cache-dtype", choices=["fp32", "fp16"], help="storage of cached teacher features")
    model.add_argument("--steps", type=positive_int, default=5, help="timed steps (batches) per measurement")
    model.add_argument("--warmup", type=positive_int, default=1, help="untimed warm-up steps before each measurement")
    model.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's choice)")
    model.add_argument(
        "--portable",
        action="store_true",
        help="measure in the portable CPU numerics of `run --portable` (restarts the command once)",
    )
    sweep = bench.add_argument_group("data set and sweep estimate")
    sweep.add_argument("--dataset", help="data set for `data` (default synthetic) and for the sweep estimate")
    sweep.add_argument("--root", help="folder of the data set (counts its files for the estimate)")
    sweep.add_argument("--category", help="category `data` decodes (default: the first)")
    sweep.add_argument("--profile", help="settings profile (default: the data set's default profile)")
    sweep.add_argument("--epochs", type=positive_int, help="epochs for the estimate (default: the profile's)")
    sweep.add_argument(
        "--protocol",
        choices=["single", "unified"],
        help="single: one model per category; unified: one model for all categories (default: the profile's)",
    )
    metrics = bench.add_argument_group("metrics")
    metrics.add_argument("--n-images", type=positive_int, default=150, help="maps in the synthetic test set")
    metrics.add_argument("--size", type=positive_int, default=256, help="side of each map in pixels")
    metrics.add_argument("--repeats", type=positive_int, default=3, help="timings per measurement (best is kept)")
    bench.add_argument("--json", metavar="FILE", help="JSON output (default results/bench/bench-<what>-<time>.json)")
