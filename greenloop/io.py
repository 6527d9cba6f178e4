"""Reading and writing the files stages exchange: JSONL (optionally gzipped).

Every error names the file and line, and the field where one is at fault. Readers can
either stop at the first bad line or report it and go on (`on_error`), so one malformed
sample never costs the others.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO

class DataError(ValueError):
    """A problem in an input file, located by file, line and field."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {message}")


def cache_root() -> str:
    """greenloop's cache folder: $GREENLOOP_CACHE, else $XDG_CACHE_HOME/greenloop, else
    ~/.cache/greenloop. Its parts: `records/` (the verifier's reference recordings),
    `repair/` (made repair tasks), `openai/` (server responses)."""
    return os.environ.get("GREENLOOP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "greenloop")


def open_text(path: str | os.PathLike, mode: str = "r", gz: bool | None = None) -> TextIO:
    """Open a text file, gzipped when the name ends in .gz (or `gz` says so)."""
    path = str(path)
    if gz if gz is not None else path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, mode.replace("t", "") + "b"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


@dataclass(frozen=True)
class Record:
    """One JSON object from a JSONL file, with where it came from."""

    path: str
    line: int
    data: dict[str, Any]


def read_jsonl(
    path: str | os.PathLike,
    on_error: Callable[[DataError], None] | None = None,
) -> Iterator[Record]:
    """Yield each non-blank line's JSON object. A bad line raises DataError, or, when
    `on_error` is given, is passed to it and skipped."""
    path = str(path)
    if not os.path.exists(path):
        raise DataError(path, None, "file not found")
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise DataError(path, lineno, f"expected a JSON object, got {type(data).__name__}")
            except (json.JSONDecodeError, DataError) as exc:
                err = exc if isinstance(exc, DataError) else DataError(path, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
                if on_error is None:
                    raise err from None
                on_error(err)
                continue
            yield Record(path, lineno, data)


def require(record: Record, name: str, kind: type | tuple[type, ...] = str, optional: bool = False) -> Any:
    """Fetch a field, raising a DataError that names file:line and the field."""
    if name not in record.data:
        if optional:
            return None
        raise DataError(record.path, record.line, "missing", field=name)
    value = record.data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(record.path, record.line, f"expected {names}, got {type(value).__name__}", field=name)
    return value


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows, one JSON object a line; returns how many. Written to a temporary file
    and renamed, so a reader never sees half a file."""
    path = str(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    count = 0
    tmp = f"{path}.tmp-{os.getpid()}"
    with open_text(tmp, "w", gz=path.endswith(".gz")) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count
