"""Command line: `python -m harness run | list | data | report | rescore | check | bench | compare`.

Exit codes: 0 success; 1 a job failed or metrics drifted; 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

import harness
from harness.errors import HarnessError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _key_values(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"--data-option {pair}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


def _positive_seconds(text: str) -> float:
    from harness.sweep.options import MAX_JOB_TIMEOUT, valid_timeout

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not valid_timeout(value):
        raise argparse.ArgumentTypeError(
            f"expected a positive number of seconds up to {MAX_JOB_TIMEOUT:.0f} (30 days), got '{text}'"
        )
    return value


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line with a pointer to --help, not the usage block (subcommands inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # found by the top-level parser: point at the help of the command they were given to
            words = [w for w in (getattr(parsed, "command", None), getattr(parsed, "data_command", None)) if w]
            self.exit(
                EXIT_USAGE,
                f"error: unrecognized arguments: {' '.join(extras)} (see `{' '.join([self.prog, *words])} --help`)\n",
            )
        return parsed


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """States a default only where there is one: run's defaults come from the sweep file and the profile."""

    def _get_help_string(self, action):
        if action.default is None or action.default == [] or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _add_run_parser(commands) -> None:
    from harness.paths import cache_dir

    run = commands.add_parser(
        "run",
        help="train and evaluate one model per category",
        description="Train and evaluate one model per category of a data set, store every job's record and "
        "predictions in a run folder, and print a per-category table. With no arguments: the built-in "
        f"synthetic data set (generated on first use under {cache_dir() / 'synthetic'}; set HARNESS_CACHE "
        "or pass --root to put it elsewhere) with the 'demo' profile on CPU. Rerunning the same command "
        "resumes: finished jobs are skipped. Options may come from a sweep file (--sweep); flags given "
        "on the command line override it.",
        formatter_class=_HelpFormatter,
    )
    run.add_argument(
        "--sweep",
        metavar="FILE.toml",
        help="read the options from a TOML sweep file (keys = these "
        "flags' long names; method settings in a [settings] table, adapter options in [data_options])",
    )
    run.add_argument("--dataset", help="data set name (see `python -m harness list`; default: synthetic)")
    run.add_argument("--root", help="folder of the data set on disk (default: $HARNESS_DATA/<dataset>)")
    run.add_argument(
        "--data-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="adapter option, repeatable (e.g. split=2cls_highshot for visa, cache=true)",
    )
    run.add_argument("--categories", help="comma-separated categories, or 'all' (default: all)")
    run.add_argument(
        "--protocol",
        choices=["single", "unified"],
        help="single: one model per category (the RD4AD paper's); unified: one model per seed trained on "
        "the training images of all selected categories together, evaluated per category (the "
        "multi-class setting of UniAD and ADer). Default: the profile's (single; unified for ader-rd)",
    )
    run.add_argument("--method", help="method name (default: the profile's method)")
    run.add_argument(
        "--profile",
        help="settings profile (default: the data set's default profile when it is made for the method, else the "
        "method's own counterpart of it, else none: the method's settings defaults)",
    )
    run.add_argument("--backbone", help="teacher backbone: resnet18, resnet34, resnet50, wide_resnet50_2")
    run.add_argument(
        "--weights",
        help="teacher weights: imagenet (torchvision cache; downloaded there once when "
        "missing, unless --offline), none (random), or a file path",
    )
    run.add_argument("--checkpoint", help="evaluate this checkpoint (official RD format) instead of training")
    run.add_argument("--image-size", type=_positive_int, help="input side in pixels")
    run.add_argument("--epochs", type=_positive_int, help="training epochs")
    run.add_argument("--batch-size", type=_positive_int, help="training batch size")
    run.add_argument("--seeds", type=_int_list, help="comma-separated seeds, one job per seed")
    run.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    run.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        help="autocast precision (CPU: bf16 where it has AVX512-BF16 or AMX; fp16 runs fp32)",
    )
    run.add_argument("--deterministic", action="store_true", default=None, help="use deterministic algorithms")
    run.add_argument("--metrics", help="comma-separated metric names (default: image_auroc,pixel_auroc,au_pro)")
    run.add_argument(
        "--backend",
        choices=["serial", "local", "dask"],
        help="serial: one job at a time in this process (default); local: a pool of processes, "
        "--jobs at a time on CPU or one per GPU; dask: a dask.distributed cluster",
    )
    run.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="local: processes at a time on the CPU (default: half the cores); dask: workers of the local cluster",
    )
    run.add_argument(
        "--gpus",
        type=_int_list,
        metavar="0,1,...",
        help="CUDA devices for local or dask: one job per GPU at a time, each process pinned to its "
        "GPU (default with CUDA: all)",
    )
    run.add_argument(
        "--job-timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="kill a job still running after this many seconds and mark it failed (serial then "
        "runs each job in a child process)",
    )
    run.add_argument(
        "--dask-address",
        metavar="HOST:PORT",
        help="scheduler of an existing dask.distributed cluster (default: start a local cluster)",
    )
    run.add_argument(
        "--eval-every",
        type=_positive_int,
        metavar="K",
        help="also score the test set every K epochs and log it (never used to pick a model: the last "
        "epoch is reported, as in the paper)",
    )
    run.add_argument(
        "--save-checkpoints",
        action="store_true",
        default=None,
        help="keep each trained model as jobs/<job-id>/checkpoint.pth in the official RD format",
    )
    run.add_argument(
        "--portable",
        action="store_true",
        default=None,
        help="CPU numerics meant to give the same bits on any x86-64 CPU (same package versions and "
        "thread count; checked across emulated CPUs, docs/drift-check.md; one thread unless OMP_NUM_THREADS "
        "is set): slower, for drift baselines that travel. Restarts the command once with the environment it needs",
    )
    run.add_argument("--rerun", action="store_true", default=None, help="run jobs again even when their record exists")
    run.add_argument(
        "--offline",
        action="store_true",
        help="never download (as HARNESS_OFFLINE=1): missing ImageNet weights are an error instead",
    )
    run.add_argument(
        "--out",
        help="run folder (default: results/runs/<dataset>-<method>-<profile>[-<what differs from it>]-<hash>)",
    )
    run.add_argument("--name", dest="run_name", metavar="NAME", help="run folder results/runs/NAME (instead of --out)")
    run.add_argument(
        "--track",
        action="append",
        metavar="TRACKER",
        help="also log every job and the sweep to mlflow or tensorboard (repeatable; docs/tracking.md)",
    )
    run.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI, e.g. http://host:5000 (default: $MLFLOW_TRACKING_URI, else RUN/mlflow.db)",
    )
    run.set_defaults(handler=command_run)


def _add_runs_parser(commands) -> None:
    def command_runs(args: argparse.Namespace) -> int:
        from harness.sweep.runs import command_runs as runs

        return runs(args.folder)

    runs = commands.add_parser(
        "runs",
        help="list run folders: data set, method, profile, what differs from it, seeds, jobs, date",
        description="One line per run folder under FOLDER (default results/runs): data set, method, profile, the "
        "settings that differ from the profile, seeds, jobs done/failed/planned and when it last started.",
    )
    runs.add_argument("folder", nargs="?", metavar="FOLDER", help="folder of run folders, or one run folder")
    runs.set_defaults(handler=command_runs)


def _flag_options(args: argparse.Namespace) -> dict:
    """The run options given explicitly on the command line, in RunOptions' terms (each flag's dest is its key)."""
    from harness.sweep.options import OPTION_KINDS, SETTING_KEYS

    options: dict = {}
    settings: dict = {}
    for key, kind in OPTION_KINDS.items():
        value = getattr(args, key, None)
        if value is None or kind == "table":
            continue
        flag = "--" + key.replace("_", "-")
        value = ",".join(value) if isinstance(value, list) else value  # a repeatable flag (--track)
        if kind == "names":
            names = tuple(part.strip() for part in value.split(",") if part.strip())
            if not names:
                raise HarnessError(f"{flag}: expected comma-separated names, got '{value}'")
            value = () if key == "categories" and names == ("all",) else names
        elif kind == "integers" and not value:
            raise HarnessError(f"{flag}: expected comma-separated integers, got an empty list")
        (settings if key in SETTING_KEYS else options)[key] = value
    if settings:
        options["settings"] = settings
    if args.data_option:
        options["data_options"] = _key_values(args.data_option)
    return options


def run_options(args: argparse.Namespace):
    """Defaults, then the sweep file, then the explicit flags; validated (HarnessError on conflicts)."""
    from harness.sweep.options import merge_options
    from harness.sweep.sweepfile import read_sweep_file

    return merge_options(read_sweep_file(args.sweep) if args.sweep else {}, _flag_options(args))


def command_run(args: argparse.Namespace) -> int:
    from harness.report.summary import summary_table
    from harness.store import RunStore
    from harness.sweep.runner import execute
    from harness.sweep.runs import run_folder_name
    from harness.sweep.schedule import SweepInterrupted, interrupted_message

    options = run_options(args)
    name = getattr(args, "run_name", None)
    name = run_folder_name(name, options.out) if name is not None else None
    if options.portable:
        from harness.sweep import numerics

        if not numerics.process_is_portable():
            if not getattr(args, "can_restart", False):
                raise HarnessError(
                    "--portable needs a process started in portable mode: run it from the command line "
                    f"(`python -m harness run --portable`) or set {numerics.missing_environment()}"
                )
            numerics.restart_portable(args.command_line)  # does not return
    try:
        result = execute(options, name=name)
    except SweepInterrupted as interrupted:
        store = RunStore(interrupted.run_dir or ".")
        print(interrupted_message(interrupted, store, getattr(args, "command_line", ["run"])), file=sys.stderr)
        return interrupted.exit_code

    if result.records:
        print()
        print(summary_table(result.records, list(result.metrics)))
    print(f"\nrun folder: {result.run_dir}")
    print(f"{len(result.finished)} job(s) run, {len(result.skipped)} already done, {len(result.failed)} failed")
    if result.failed:
        print(f"{len(result.failed)} job(s) failed:", file=sys.stderr)
        for job_id, message in result.failed:
            print(f"  {job_id}: {message} (see {RunStore(result.run_dir).log_path(job_id)})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _add_report_parser(commands) -> None:
    from harness.report.options import add_report_arguments

    report = commands.add_parser(
        "report",
        help="tables (Markdown, LaTeX, CSV, HTML) and plots of runs, beside published numbers",
        description="Per-category tables of one or more run folders (mean and sample std over seeds), side by side "
        "with other runs and published references, with notes on definitions and protocol. Reads the "
        "store only. Prints the Markdown; writes report.md/.tex/.csv (.html, plots/) to --out.",
    )
    add_report_arguments(report)
    report.set_defaults(handler=command_report)


def _add_rescore_parser(commands) -> None:
    rescore = commands.add_parser(
        "rescore",
        help="recompute metrics from stored predictions, without training",
        description="Recompute metrics of every finished job of a run from its predictions.npz and update the "
        "records and results.csv. Without --metrics: the metrics each record already has.",
    )
    rescore.add_argument("run", help="run folder")
    rescore.add_argument("--metrics", help="comma-separated metric names to compute (added to the records)")
    rescore.set_defaults(handler=command_rescore)


def command_report(args: argparse.Namespace) -> int:
    from harness.report.commands import command_report as run

    return run(args)


def command_rescore(args: argparse.Namespace) -> int:
    from harness.report.commands import command_rescore as run

    return run(args)


def _first_line(method_class) -> str:
    """A method's one-line description: its class docstring, else its module's (a missing one is not an error)."""
    for text in (method_class.__doc__, getattr(sys.modules.get(method_class.__module__), "__doc__", None)):
        if text and text.strip():
            return text.strip().splitlines()[0]
    return ""


def command_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from harness import datasets, methods
    from harness.sweep import profiles

    rows = []
    for name in datasets.names():
        source = datasets.REGISTRY.origin(name).describe()
        problem = datasets.REGISTRY.load_error(name)
        if problem:  # a broken plugin is listed with why; every other name still works
            rows.append([name, source, "", problem, ""])
            continue
        adapter = datasets.get(name)
        try:
            categories = ", ".join(adapter().categories)
        except HarnessError:
            categories = "(read from --root)"
        rows.append([name, source, adapter.default_profile, adapter.description, categories])
    print("Data sets")
    print(
        tabulate(
            rows,
            headers=["name", "from", "default profile", "description", "categories"],
            tablefmt="simple",
            maxcolwidths=[None, None, None, 40, 50],
        )
    )
    print("\nMethods")
    method_rows = []
    for name in methods.names():
        problem = methods.REGISTRY.load_error(name)
        description = problem or _first_line(methods.get(name))
        method_rows.append([name, methods.REGISTRY.origin(name).describe(), description])
    print(tabulate(method_rows, headers=["name", "from", "description"], tablefmt="simple"))
    print("\nProfiles")
    print(
        tabulate(
            [[p.name, p.method, p.description] for p in profiles.PROFILES.values()],
            headers=["name", "method", "description"],
            tablefmt="simple",
            maxcolwidths=[None, None, 80],
        )
    )
    return EXIT_OK


def _add_check_parser(commands) -> None:
    check = commands.add_parser(
        "check",
        help="fail when a run's metrics drift from a baseline",
        description="Compare every (category, metric) of a run with a baseline file. Exit 0 when all are within "
        "tolerance, 1 on drift in either direction (an improvement is drift too unless "
        "--allow-improvement), 2 on bad input. With --update, write or refresh the baseline instead.",
    )
    check.add_argument("run", help="run folder (results/runs/<run>)")
    check.add_argument("--baseline", required=True, help="baseline JSON file, e.g. results/baselines/ci-synthetic.json")
    check.add_argument("--atol", type=float, help="absolute tolerance (overrides the baseline's)")
    check.add_argument("--rtol", type=float, help="relative tolerance (overrides the baseline's)")
    check.add_argument("--metrics", help="comma-separated metrics to compare (default: all in the baseline)")
    check.add_argument(
        "--categories", help="comma-separated categories to compare or, with --update, to write (default: all)"
    )
    check.add_argument("--allow-improvement", action="store_true", help="do not fail when a metric got better")
    check.add_argument("--update", action="store_true", help="write the baseline from the run (keeps its tolerances)")
    check.set_defaults(handler=command_check)


def command_check(args: argparse.Namespace) -> int:
    from harness.report.commands import command_check as run

    return run(args)


def _add_bench_parser(commands) -> None:
    def command_bench(args: argparse.Namespace) -> int:
        from harness.bench.command import command_bench as run

        return run(args)

    from harness.bench.command import add_arguments

    bench = commands.add_parser(
        "bench",
        help="measure training, inference, data and metric throughput; estimate a sweep's duration",
        description="Measure on this machine: RD training images/s (teacher on the fly and from cached features), "
        "inference images/s (anomaly map and blur included), peak memory, image decode+resize images/s "
        "of a data set, and the metric times against one argsort. With --dataset, estimate how long a "
        "sweep of that data set and profile takes. Prints tables and writes JSON.",
    )
    add_arguments(bench, _positive_int)
    bench.set_defaults(handler=command_bench)


def _add_data_parser(commands) -> None:
    def command_data(args: argparse.Namespace) -> int:
        from harness.datasets import fetch

        return fetch.command_fetch(args) if args.data_command == "fetch" else fetch.command_list(args)

    data = commands.add_parser(
        "data",
        help="download data sets (data fetch) and show which are present (data list)",
        description="Download a data set into the folder its adapter reads, with its published checksums, or show "
        "the state of every data set under $HARNESS_DATA.",
    )
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch",
        help="download, verify and unpack a data set",
        description="Download a data set (resuming an interrupted download), check it against its published "
        "checksums, unpack it into the layout the harness reads and check that layout. Data sets behind "
        "a licence form (mvtec, brats, brats_bmad) are not downloaded: the command says where to get them.",
        formatter_class=_HelpFormatter,
    )
    fetch.add_argument(
        "name", metavar="NAME", help="data set: visa, cifar10, mnist, fashion_mnist (comma-separated, or all)"
    )
    fetch.add_argument("--root", help="folder to put it in (default: $HARNESS_DATA/<name>)")
    fetch.add_argument(
        "--mirror",
        metavar="URL",
        help="take every file from URL/<name>/<file name> instead of its "
        "original address (a folder works too; default: $HARNESS_MIRROR)",
    )
    fetch.add_argument(
        "--force", action="store_true", default=None, help="download again even when the data set was fetched before"
    )
    fetch.add_argument(
        "--keep-archive",
        action="store_true",
        default=None,
        help="keep the downloaded archive after unpacking it (in ROOT/.download/)",
    )
    listing = actions.add_parser(
        "list",
        help="show each data set's state under $HARNESS_DATA",
        description="Show, for each data set, whether it is present under $HARNESS_DATA, "
        "its fingerprint or file count, and how to get it.",
    )
    listing.add_argument("--data", metavar="DIR", help="look in DIR instead of $HARNESS_DATA")
    data.set_defaults(handler=command_data)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m harness",
        description="Reproduce and benchmark Reverse Distillation (RD4AD) anomaly detection: train one model per "
        "category, compute exact metrics, keep every result.",
    )
    parser.add_argument("--version", action="version", version=f"rd-harness {harness.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_parser(commands)
    listing = commands.add_parser(
        "list",
        help="show data sets, methods and profiles",
        description="Show the data sets, methods and profiles the harness knows.",
    )
    listing.set_defaults(handler=command_list)
    _add_data_parser(commands)
    _add_report_parser(commands)
    _add_rescore_parser(commands)
    _add_check_parser(commands)
    _add_bench_parser(commands)
    _add_runs_parser(commands)
    from harness.stats.options import add_compare_parser

    add_compare_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # to tell how to resume an interrupted run
    args.can_restart = argv is None  # the real command line: `run --portable` may restart the process
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    from harness.downloads import permit_downloads

    if getattr(args, "offline", False):
        os.environ["HARNESS_OFFLINE"] = "1"  # nothing is downloaded, in this process or the jobs' processes
    try:
        # This process may download what is missing (ImageNet weights, in `run`'s check before any job);
        # the jobs' child processes and workers never do.
        with permit_downloads():
            code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at the interpreter's exit
        return code
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted: finished jobs are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly like other command-line tools. Standard output
        # is pointed at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe
