"""Typed configs: defaults < a YAML file < dotted command-line overrides.

Every config is a frozen dataclass validated in its own `__post_init__`; this module only
layers values onto one and writes the resolved result next to a run's outputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, TypeVar, get_type_hints

C = TypeVar("C")


class ConfigError(ValueError):
    pass


def _coerce(name: str, hint: Any, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    text = str(hint)
    if raw.lower() in ("none", "null") and "None" in text:
        return None
    if "bool" in text:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    for kind in (int, float):
        if kind.__name__ in text:
            try:
                return kind(raw)
            except ValueError:
                if kind is int and "float" in text:
                    continue
                raise ConfigError(f"{name}: expected {kind.__name__}, got {raw!r}") from None
    return raw


def load_config(cls: type[C], path: str | None = None, overrides: list[str] = (), **explicit: Any) -> C:
    """Build `cls` from its defaults, then a YAML file, then `key=value` overrides, then
    keyword arguments that are not None (what the command line set explicitly)."""
    values: dict[str, Any] = {}
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if path:
        import yaml

        if not os.path.exists(path):
            raise ConfigError(f"{path}: config file not found")
        try:
            with open(path) as fh:
                loaded = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        for key, value in loaded.items():
            if key not in names:
                raise ConfigError(f"{path}: unknown field {key!r} for {cls.__name__}; known: {', '.join(sorted(names))}")
            values[key] = value
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in names:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(names))}")
        values[key] = _coerce(key, hints[key], raw.strip())
    values.update({k: v for k, v in explicit.items() if v is not None})
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def write_resolved(config: Any, path: str, **extra: Any) -> None:
    """Write the resolved config (and anything else worth keeping) as JSON."""
    payload = {"config": {"type": type(config).__name__, **dataclasses.asdict(config)}, **extra}
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, default=str)
        fh.write("\n")
