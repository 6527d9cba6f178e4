"""Exports of the episode store to the files stages exchange: JSONL and Parquet.

JSONL: one episode a line, its fields as in `EpisodeRecord.to_dict` (enums as their
string values, `meta` an object), its steps nested in order under "steps".

Parquet: one file, one row per episode, the same columns; `steps` is a native nested
column (a list of structs with the StepRecord fields, in order), which pandas reads as
a list of dicts and DuckDB/Polars can unnest; `meta` is a JSON string, because its keys
differ from episode to episode. pyarrow is imported only here, on first export.

Both stream the store in batches and write a temporary file renamed into place, so
memory stays flat and a reader never sees half an export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenloop.io import write_jsonl

if TYPE_CHECKING:
    from greenloop.store.store import EpisodeStore

ROWS_PER_GROUP = 1000  # episodes per Parquet row group: bounded memory, still large groups


def export_jsonl(store: EpisodeStore, path: str | os.PathLike, **filters: Any) -> int:
    """Write the episodes matching `filters` (run_id, cycle, phase, passed) to `path`
    (gzipped when it ends in .gz); returns how many."""
    return write_jsonl(path, (record.to_dict() for record in store.iter_episodes(**filters)))


def parquet_schema():
    import pyarrow as pa

    step = pa.struct([("command", pa.string()), ("model_text", pa.string()), ("diff", pa.string()),
                      ("observation", pa.string()), ("outcome", pa.string()), ("error_signature", pa.string()),
                      ("tokens_in", pa.int64()), ("tokens_out", pa.int64()), ("seconds", pa.float64())])
    return pa.schema([
        ("episode_id", pa.int64()), ("run_id", pa.string()), ("cycle", pa.int64()), ("phase", pa.string()),
        ("task_id", pa.string()), ("task_family", pa.string()), ("policy", pa.string()), ("mode", pa.string()),
        ("sample_idx", pa.int64()), ("passed", pa.bool_()), ("outcome", pa.string()),
        ("steps_to_green", pa.int64()), ("error_signature", pa.string()), ("first_error_signature", pa.string()),
        ("completion", pa.string()), ("tokens_in", pa.int64()), ("tokens_out", pa.int64()),
        ("seconds", pa.float64()), ("created_at", pa.string()), ("meta", pa.string()),
        ("steps", pa.list_(step)),
    ])


def export_parquet(store: EpisodeStore, path: str | os.PathLike, **filters: Any) -> int:
    """Write the episodes matching `filters` to one Parquet file; returns how many."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema, path = parquet_schema(), str(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp, count, rows = f"{path}.tmp-{os.getpid()}", 0, []
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for record in store.iter_episodes(**filters):
                row = record.to_dict()
                row["meta"] = json.dumps(row["meta"], ensure_ascii=False)
                rows.append(row)
                if len(rows) == ROWS_PER_GROUP:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    count, rows = count + len(rows), []
            if rows or count == 0:  # an empty export still gets the schema and one empty group
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                count += len(rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return count
