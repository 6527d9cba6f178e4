"""The episode store: one SQLite file (WAL) recording a self-improvement loop's runs,
the episodes of each cycle and phase (a sampled candidate or an agent trajectory, with
its steps), and evaluation results; and its exports to JSONL and Parquet.

    with EpisodeStore("runs/loop.sqlite") as store:
        store.start_run("r1", "loop", config)
        done = store.done_keys("r1", cycle=0, phase="day")
        ...
        store.add_episode(EpisodeRecord(run_id="r1", cycle=0, phase="day", task_id="humaneval/0",
                                        outcome=Outcome.PASSED, steps=[StepRecord("run_tests")]))

`store.py` owns the durability and concurrency rules, `schema.py` the schema and its
migrations, `records.py` the record types, `export.py` the file exports.
"""

from greenloop.store.records import (EpisodeMode, EpisodeRecord, EvalResult, PhaseCounts, RunRecord, RunStatus,
                                     StepRecord)
from greenloop.store.schema import SCHEMA_VERSION, SchemaVersionError, StoreError
from greenloop.store.store import DuplicateEpisodeError, EpisodeStore

__all__ = ["SCHEMA_VERSION", "DuplicateEpisodeError", "EpisodeMode", "EpisodeRecord", "EpisodeStore", "EvalResult",
           "PhaseCounts", "RunRecord", "RunStatus", "SchemaVersionError", "StepRecord", "StoreError"]
