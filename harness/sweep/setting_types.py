"""Method settings given by the user (flags, a sweep file's [settings]) checked against the type each field
of the method's Settings dataclass declares, before any job: `betas = 5` or `sigma = true` is one clear
line, not a traceback inside a job or a silently wrong run.

The rules are JSON's and TOML's: an integer is not a boolean, a number is an integer or a float (finite),
a tuple or list is an array (a TOML array becomes a tuple where the field is one).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from harness.errors import HarnessError


def _describe(kind: Any) -> str:
    """How a message names what a field of type `kind` expects."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a finite number"
    if kind is str:
        return "a string"
    if kind is type(None):
        return "none"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return f"a list of {len(args)} values ({', '.join(_describe(arg) for arg in args)})"
    if origin in (tuple, list) and args:
        return f"a list of {_plural(args[0])}"
    return getattr(kind, "__name__", str(kind))


def _plural(kind: Any) -> str:
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(kind, _describe(kind))


def conform(value: Any, kind: Any) -> Any:
    """`value` as a field of type `kind` holds it (an array as a tuple where `kind` is a tuple); raises
    TypeError when it is of another type."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return value
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is type(None):
        if value is None:
            return value
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return conform(value, arg)
            except TypeError:
                continue
    elif origin is typing.Literal:
        if value in args:
            return value
    elif origin in (tuple, list) and isinstance(value, (list, tuple)):
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) == len(args):
                return tuple(conform(item, arg) for item, arg in zip(value, args, strict=True))
        else:
            item_kind = args[0] if args else Any
            items = [conform(item, item_kind) for item in value]
            return tuple(items) if origin is tuple else items
    elif isinstance(kind, type) and isinstance(value, kind):
        return value
    raise TypeError(_describe(kind))


def check_setting_types(method_name: str, settings_class: type, given: dict) -> dict:
    """`given` (setting name -> value) with each value checked against `settings_class`'s field type
    (arrays turned into tuples where the field is a tuple); HarnessError naming the first wrong one."""
    hints = typing.get_type_hints(settings_class)
    fields = {field.name for field in dataclasses.fields(settings_class)}
    checked = {}
    for name, value in given.items():
        if name not in fields:
            checked[name] = value  # unknown names are refused with the list of known ones elsewhere
            continue
        try:
            checked[name] = conform(value, hints[name])
        except TypeError:
            raise HarnessError(
                f"setting {name} = {value!r} is invalid for method '{method_name}': expected {_describe(hints[name])}"
            ) from None
    return checked
