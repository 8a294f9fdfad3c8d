"""Sweep files: `run --sweep FILE.toml`, the run flags written down (flags given on the command line win).

    dataset = "mvtec"
    root = "/data/mvtec"                  # paths are relative to the current folder, as on the command line
    categories = ["bottle", "grid"]       # or "all"
    profile = "paper"
    seeds = [0, 1, 2]
    metrics = ["image_auroc", "pixel_auroc", "au_pro"]
    backend = "local"
    gpus = [0, 1]
    job_timeout = 7200

    [settings]                            # method settings (any field of the method's Settings)
    epochs = 50
    backbone = "wide_resnet50_2"

    [data_options]                        # adapter options, as --data-option KEY=VALUE
    cache = true

Keys are the long flag names with '_' or '-'; the settings flags (backbone, weights, image_size,
epochs, batch_size, device, precision, deterministic) may also stand at the top level.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from harness.errors import HarnessError
from harness.sweep.options import MAX_JOB_TIMEOUT, SETTING_KEYS, valid_timeout
from harness.sweep.options import OPTION_KINDS as KEYS

ALIASES = {"overrides": "settings", "data_option": "data_options", "sweep": None}
EXPECTED = {
    "text": "a string",
    "names": "a list of strings (or one comma-separated string)",
    "integers": "a list of integers (or one integer)",
    "count": "a positive integer",
    "seconds": f"a positive number of seconds up to {MAX_JOB_TIMEOUT:.0f} (30 days)",
    "switch": "true or false",
    "table": "a table ([name] section)",
}


def _check(source: str, key: str, value, kind: str):
    """The value in the form the command line produces, or a HarnessError naming the key and what it expects."""

    def bad() -> HarnessError:
        return HarnessError(f"{source}: '{key}' must be {EXPECTED[kind]}, got {value!r}")

    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise bad()
        return value.strip()
    if kind == "names":
        if isinstance(value, str):
            value = [part for part in value.split(",")]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad()
        names = tuple(v.strip() for v in value if v.strip())
        if not names:  # an empty list is a mistake, not "the default"
            raise bad()
        return () if names == ("all",) else names
    if kind == "integers":
        value = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise bad()
        return tuple(value)
    if kind == "count":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad()
        return value
    if kind == "seconds":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not valid_timeout(float(value)):
            raise bad()
        return float(value)
    if kind == "switch":
        if not isinstance(value, bool):
            raise bad()
        return value
    if not isinstance(value, dict):
        raise bad()
    nested = [k for k, v in value.items() if isinstance(v, dict)]
    if nested:
        raise HarnessError(f"{source}: [{key}] holds values, not tables; found [{key}.{nested[0]}]")
    return {str(k).replace("-", "_") if key == "settings" else str(k): v for k, v in value.items()}


def read_sweep_file(path: str | Path) -> dict:
    """The file's options as {key: value} in the command line's form; HarnessError (one line) when it is not
    valid TOML, has an unknown key, or a value of the wrong kind."""
    path = Path(path)
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{source}: sweep file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise HarnessError(f"{source}: cannot read the sweep file ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise HarnessError(f"{source}: not a valid TOML sweep file ({error})") from None

    return parse_options(raw, source)


def parse_options(raw: dict, source: str) -> dict:
    """Options given as {key: value} (a sweep file's, or `harness.run`'s keywords) in the command line's form;
    HarnessError naming `source` on an unknown key or a value of the wrong kind."""
    options: dict = {}
    for given, value in raw.items():
        key = given.replace("-", "_")
        alias = ALIASES.get(key, key)
        if alias is None:
            raise HarnessError(f"{source}: a sweep file cannot name another sweep file ('{given}')")
        key = alias
        if key not in KEYS:
            raise HarnessError(
                f"{source}: unknown key '{given}'; known keys: {', '.join(sorted(KEYS))} "
                "(method settings go in a [settings] table)"
            )
        if key in options:
            raise HarnessError(f"{source}: '{given}' is given twice")
        options[key] = _check(source, given, value, KEYS[key])

    settings = options.pop("settings", {})
    for key in SETTING_KEYS:
        if key in options:
            value = options.pop(key)
            if key in settings and settings[key] != value:
                raise HarnessError(
                    f"{source}: '{key}' is {value!r} at the top level but {settings[key]!r} in [settings]; keep one"
                )
            settings[key] = value
    if settings:
        options["settings"] = settings
    return options
