"""One small registry for every kind of plugin: task families, verifier stages, mutation
operators, policies.

Registration is a decorator or a lazy "module:attr" string (imported on first use, so the
registry costs nothing at import). Plugins from other packages come through the entry
point group named after the registry. An unknown name raises with suggestions; a plugin
that fails to load raises, naming it: a broken plugin is never silently skipped.
"""

from __future__ import annotations

import difflib
import importlib
from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    pass


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group or f"greenloop.{kind}"
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._entry_points_read = False

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """`@registry.register("name")` on a class or function, or `register(name, obj)`."""
        if obj is not None:
            self._add(name, obj)
            return obj

        def decorator(item: T) -> T:
            self._add(name, item)
            return item

        return decorator

    def register_lazy(self, name: str, target: str) -> None:
        """Register "package.module:attr", imported only when `name` is first asked for."""
        if ":" not in target:
            raise ValueError(f"lazy {self.kind} {name!r}: target {target!r} is not 'module:attr'")
        if name in self._items or name in self._lazy:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._lazy[name] = target

    def _add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._lazy.pop(name, None)
        self._items[name] = obj

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name not in self._items and ep.name not in self._lazy:
                self._lazy[ep.name] = ep.value

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        self._read_entry_points()
        if name in self._lazy:
            target = self._lazy[name]
            module_name, _, attr = target.partition(":")
            try:
                obj = getattr(importlib.import_module(module_name), attr)
            except Exception as exc:  # a broken plugin fails loudly, naming itself
                raise RegistryError(
                    f"{self.kind} {name!r} could not be loaded from {target!r}: {exc}"
                ) from exc
            self._add(name, obj)
            return obj
        known = self.names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known) or 'none'}."
        )

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
