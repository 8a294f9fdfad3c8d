"""Named plugins: the built-in classes, those installed packages declare as entry points, and those registered
in this process with `harness.register_method` / `harness.register_dataset`.

A class is imported on first use, so one broken plugin (or one missing optional dependency of a built-in)
breaks only the commands that use it: every other name still resolves, and `harness list` shows the error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")

BUILTIN, ENTRY_POINT, REGISTERED = "built-in", "entry point", "registered"


@dataclass(frozen=True)
class Origin:
    """Where a name comes from: built in, an installed distribution's entry point, or `register_*` here."""

    kind: str  # BUILTIN | ENTRY_POINT | REGISTERED
    target: str  # "module:Class"
    distribution: str = ""
    version: str = ""

    def describe(self) -> str:
        if self.kind == ENTRY_POINT:
            return f"{self.distribution} {self.version}".strip()
        return self.kind


class Registry(Generic[T]):
    """One kind of plugin (methods or data sets): name -> class, with where each came from.

    `check` validates a class when it is first resolved and raises HarnessError naming what is wrong.
    """

    def __init__(self, what: str, group: str, builtins: dict[str, str], check: Callable[[str, type], None]) -> None:
        self.what = what  # "method" | "data set"
        self.group = group
        self._origins: dict[str, Origin] = {name: Origin(BUILTIN, target) for name, target in builtins.items()}
        self._classes: dict[str, type[T]] = {}
        self._conflicts: dict[str, list[Origin]] = {}  # a name declared more than once: every declaration
        self._check = check
        self._entry_points_read = False

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for entry in importlib.metadata.entry_points(group=self.group):
            dist = entry.dist
            origin = Origin(
                ENTRY_POINT,
                entry.value,
                dist.metadata["Name"] if dist is not None else "?",
                dist.version if dist is not None else "",
            )
            known = self._origins.get(entry.name)
            if known is not None and known != origin:
                self._conflicts.setdefault(entry.name, [known]).append(origin)
            else:
                self._origins[entry.name] = origin

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self._origins)

    def origin(self, name: str) -> Origin:
        self._read_entry_points()
        if name not in self._origins:
            raise HarnessError(f"unknown {self.what} '{name}'; known {self.what}s: {', '.join(self.names())}")
        return self._origins[name]

    def get(self, name: str) -> type[T]:
        """The class registered under `name`; HarnessError (one line) when it is unknown, declared twice,
        fails to import or breaks the contract."""
        origin = self.origin(name)
        if name in self._conflicts:
            ordered = sorted(self._conflicts[name], key=lambda o: (o.kind != BUILTIN, o.describe()))
            sources = " and by ".join(f"{o.describe()} ({o.target})" for o in ordered)
            raise HarnessError(
                f"{self.what} '{name}' is declared twice: by {sources}; uninstall one of the packages or rename one"
            )
        if name not in self._classes:
            cls = self._import(name, origin)
            self._check(name, cls)
            self._classes[name] = cls
        return self._classes[name]

    def _import(self, name: str, origin: Origin) -> type[T]:
        module_name, _, attribute = origin.target.partition(":")
        where = (
            f"entry point {self.group} '{name} = {origin.target}' of {origin.describe()}"
            if origin.kind == ENTRY_POINT
            else f"{self.what} '{name}' ({origin.target})"
        )
        try:
            found: object = importlib.import_module(module_name)
            for part in attribute.split("."):
                found = getattr(found, part)
        except HarnessError:
            raise
        except Exception as error:  # a plugin's import error of any kind is one line naming the plugin
            raise HarnessError(f"{where} failed to load: {type(error).__name__}: {error}") from None
        if not isinstance(found, type):
            raise HarnessError(f"{where} is not a class")
        return found

    def register(self, name: str, cls: type[T]) -> None:
        """Add `cls` under `name` in this process; a name already taken (by another class) is an error."""
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise HarnessError(f"{self.what} name {name!r} must be letters, digits, '_' or '-'")
        if not isinstance(cls, type):
            raise HarnessError(f"register {self.what} '{name}': expected a class, got {cls!r}")
        self._read_entry_points()
        target = f"{cls.__module__}:{cls.__qualname__}"
        known = self._origins.get(name)
        if known is not None and self._classes.get(name) is not cls:
            raise HarnessError(
                f"{self.what} '{name}' is already taken by {known.describe()} ({known.target}); "
                "register yours under another name"
            )
        self._check(name, cls)
        self._origins[name] = Origin(REGISTERED, target)
        self._classes[name] = cls

    def reread_entry_points(self) -> None:
        """Forget what the entry points declared, so that the next lookup reads them again (after installing a
        package in this process)."""
        for name in [n for n, o in self._origins.items() if o.kind == ENTRY_POINT]:
            del self._origins[name]
            self._classes.pop(name, None)
        self._conflicts.clear()
        self._entry_points_read = False

    def unregister(self, name: str) -> None:
        """Remove a name registered in this process (tests; built-ins and entry points stay)."""
        if name in self._origins and self._origins[name].kind == REGISTERED:
            del self._origins[name]
            self._classes.pop(name, None)

    def registered_here(self, name: str) -> bool:
        """True for a class known only to this process (register_*): other processes cannot find it."""
        return self.origin(name).kind == REGISTERED

    def load_error(self, name: str) -> str | None:
        """Why `name` cannot be used, or None when it can."""
        try:
            self.get(name)
        except HarnessError as error:
            return str(error)
        return None
