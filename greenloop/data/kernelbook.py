"""KernelBook-style training pairs: a PyTorch module and its Triton version, read as
prompt/completion records for supervised fine-tuning.

Input: JSONL (optionally gzipped) or Parquet (`.parquet`/`.pq`), one pair a row:

- `python_code` (str): the PyTorch program that defines the module;
- `triton_code` (str): the same program with the module rewritten in Triton, as `<Class>New`;
- optional `entry_point` (the module's class name; when absent, the class of `python_code`
  whose `<Class>New` the Triton program defines), `repo_name`, and `uuid` or `id`.

Each pair becomes `{"id", "prompt", "completion", "entry_point", "source"}`: the prompt is
the kernel tasks' request (`greenloop.tasks.kernels.kernel_instruction`) applied to
`python_code`, the completion is `triton_code` in a python block, `entry_point` is the
class the completion defines, and `source` the repository (else the file). Class names
stay as written: the pairs teach `<Class>` -> `<Class>New`, the kernel tasks ask for
`Model` -> `ModelNew` in the same words.

A malformed row raises DataError naming file:line (the row, 1-based, in Parquet) and the
field; with `on_error` it is passed there and skipped, so one bad row never costs the rest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from greenloop.io import DataError, Record, read_jsonl, require
from greenloop.tasks.kernels import kernel_instruction, python_block

PARQUET_SUFFIXES = (".parquet", ".pq")
COLUMNS = ("python_code", "triton_code", "entry_point", "repo_name", "uuid", "id")
_TOP_LEVEL_CLASS = re.compile(r"^class\s+([A-Za-z_]\w*)", re.MULTILINE)


def _optional(record: Record, name: str, kind: type | tuple[type, ...]) -> Any:
    """An optional field, None when absent or null (Parquet's empty cells)."""
    if record.data.get(name) is None:
        return None
    return require(record, name, kind)


def _defines_class(code: str, name: str) -> bool:
    return name in _TOP_LEVEL_CLASS.findall(code)


def _entry_point(record: Record, python_code: str, triton_code: str) -> str:
    """The module's class: the field, else the last class of python_code that the Triton
    program rewrites as `<Class>New`."""
    named = _optional(record, "entry_point", str)
    if named is not None:
        if not _defines_class(python_code, named):
            raise DataError(record.path, record.line, f"python_code defines no class {named!r}", field="entry_point")
        return named
    rewritten = [c for c in _TOP_LEVEL_CLASS.findall(python_code) if _defines_class(triton_code, f"{c}New")]
    if not rewritten:
        raise DataError(record.path, record.line, "missing, and triton_code defines no `<Class>New` for a class "
                                                  "of python_code", field="entry_point")
    return rewritten[-1]


def kernelbook_record(record: Record) -> dict[str, Any]:
    """One pair as a prompt/completion record."""
    python_code = require(record, "python_code")
    triton_code = require(record, "triton_code")
    module = _entry_point(record, python_code, triton_code)
    new_name = f"{module}New"
    if not _defines_class(triton_code, new_name):
        raise DataError(record.path, record.line, f"defines no class {new_name!r}, the rewrite of {module!r}",
                        field="triton_code")
    ident = _optional(record, "uuid", (str, int))
    if ident is None:
        ident = _optional(record, "id", (str, int))
    return {
        "id": str(ident) if ident is not None else f"{os.path.basename(record.path)}:{record.line}",
        "prompt": kernel_instruction(python_code, module, new_name),
        "completion": python_block(triton_code),
        "entry_point": new_name,
        "source": _optional(record, "repo_name", str) or record.path,
    }


def _parquet_rows(path: str) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not os.path.exists(path):
        raise DataError(path, None, "file not found")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, None, f"not a Parquet file: {exc}") from None
    columns = [c for c in COLUMNS if c in parquet.schema_arrow.names]
    row = 0
    for batch in parquet.iter_batches(batch_size=1024, columns=columns):
        for data in batch.to_pylist():
            row += 1
            yield Record(path, row, data)


def read_kernelbook(
    path: str | os.PathLike,
    on_error: Callable[[DataError], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield each pair of a JSONL or Parquet file as a prompt/completion record."""
    path = str(path)
    rows = _parquet_rows(path) if path.endswith(PARQUET_SUFFIXES) else read_jsonl(path, on_error=on_error)
    for record in rows:
        try:
            yield kernelbook_record(record)
        except DataError as err:
            if on_error is None:
                raise
            on_error(err)
