"""`EpisodeStore`: the SQLite file a self-improvement loop records itself in: runs, the
episodes of each cycle and phase with their steps, and evaluation results.

Durability. Every write is one transaction, committed before the call returns: an
episode and all its steps land together or not at all, so a killed run loses at most
the episode in flight, and `done_keys` tells a resumed phase exactly what is finished.

The file is in WAL mode with `synchronous=FULL`. WAL lets readers (a report, `greenloop
store stats`, a trainer) open the file while the loop writes, without blocking it or
being blocked. FULL syncs the log at every commit, so a committed episode survives a
power loss or a preempted machine too, not only a killed process (NORMAL's guarantee).
An episode costs seconds of generation and sandbox time; the sync costs well under a
millisecond (a 5-step episode commits in 0.5 ms with FULL, 0.2 ms with NORMAL, on a
local SSD), so the stronger promise is nearly free here.

Concurrency: one writer process at a time (writes take the lock up front with BEGIN
IMMEDIATE, so an accidental second writer waits rather than interleaving); any number
of readers, in other processes, opened with `readonly=True`.

Adding an episode whose key (run, cycle, phase, task_id, sample_idx) is already stored
raises DuplicateEpisodeError: two writes of one key mean the caller's resume logic is
wrong, and silently keeping either would hide that. Skip finished work with `done_keys`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from greenloop.store.records import (EpisodeRecord, EvalResult, PhaseCounts, RunRecord, RunStatus, StepRecord,
                                     as_enum)
from greenloop.store.schema import StoreError, check_version, migrate, read_version, utc_now
from greenloop.types import Outcome

EPISODE_COLUMNS = ("run_id", "cycle", "phase", "task_id", "task_family", "policy", "mode", "sample_idx", "passed",
                   "outcome", "steps_to_green", "error_signature", "first_error_signature", "completion",
                   "tokens_in", "tokens_out", "seconds", "created_at", "meta")
STEP_COLUMNS = ("command", "model_text", "diff", "observation", "outcome", "error_signature", "tokens_in",
                "tokens_out", "seconds")
INSERT_EPISODE = f"INSERT INTO episodes ({', '.join(EPISODE_COLUMNS)}) VALUES ({', '.join('?' * len(EPISODE_COLUMNS))})"
INSERT_STEP = (f"INSERT INTO steps (episode_id, idx, {', '.join(STEP_COLUMNS)}) "
               f"VALUES ({', '.join('?' * (len(STEP_COLUMNS) + 2))})")


class DuplicateEpisodeError(StoreError):
    """An episode with this (run, cycle, phase, task_id, sample_idx) is already stored."""


class EpisodeStore:
    """The episode store at `path` (created if missing, migrated to the current schema).

    `readonly=True` opens an existing store for reading only, safe beside a running
    writer. `timeout` is how long to wait for a lock another process holds.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False, timeout: float = 30.0):
        self.path, self.readonly = str(path), readonly
        self._db = _connect(self.path, readonly, timeout)
        try:
            if readonly:
                check_version(read_version(self._db, self.path), self.path, writable=False)
            else:
                migrate(self._db, self.path)
        except BaseException:
            self._db.close()
            raise

    # -- lifetime -------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return read_version(self._db, self.path)

    @property
    def journal_mode(self) -> str:
        return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one state of the database (one read transaction)."""
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")

    # -- runs -----------------------------------------------------------------------

    def start_run(self, run_id: str, kind: str, config: Mapping[str, Any] | Any = None) -> RunRecord:
        """Record a new run, or reopen an existing one (its status goes back to running;
        its stored config is kept and returned, for the caller to resume with)."""
        if not run_id or not kind:
            raise ValueError("start_run: run_id and kind must be non-empty")
        config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
        try:
            config_json = json.dumps(config, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"start_run {run_id!r}: config is not JSON-serialisable: {exc}") from None
        with self._write() as db:
            row = db.execute("SELECT kind, status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, NULL)",
                           (run_id, kind, utc_now(), config_json, RunStatus.RUNNING.value))
            elif row["kind"] != kind:
                raise StoreError(f"{self.path}: run {run_id!r} exists as a {row['kind']!r} run, not {kind!r}")
            elif row["status"] != RunStatus.RUNNING.value:
                db.execute("UPDATE runs SET status = ?, finished_at = NULL WHERE run_id = ?",
                           (RunStatus.RUNNING.value, run_id))
        return self.run(run_id)

    def finish_run(self, run_id: str, status: RunStatus | str = RunStatus.SUCCEEDED) -> RunRecord:
        status = as_enum(RunStatus, status, "run status")
        if status is RunStatus.RUNNING:
            raise ValueError("finish_run: status must be succeeded, failed or interrupted")
        with self._write() as db:
            cursor = db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                                (status.value, utc_now(), run_id))
            if cursor.rowcount == 0:
                raise StoreError(f"{self.path}: no run {run_id!r}")
        return self.run(run_id)

    def run(self, run_id: str) -> RunRecord | None:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run_from_row(row) if row else None

    def runs(self) -> list[RunRecord]:
        return [_run_from_row(row) for row in self._db.execute("SELECT * FROM runs ORDER BY created_at, run_id")]

    # -- episodes -------------------------------------------------------------------

    def add_episode(self, record: EpisodeRecord) -> int:
        """Store an episode and its steps in one transaction, committed before returning;
        returns its episode_id. Raises DuplicateEpisodeError if its key is stored."""
        with self._write() as db:
            self._check_addable(db, record)
            values = [getattr(record, name) for name in EPISODE_COLUMNS[:-2]]
            values[EPISODE_COLUMNS.index("mode")] = record.mode.value
            values[EPISODE_COLUMNS.index("outcome")] = record.outcome.value
            values[EPISODE_COLUMNS.index("passed")] = int(record.passed)
            episode_id = db.execute(INSERT_EPISODE, (*values, utc_now(), json.dumps(dict(record.meta)))).lastrowid
            db.executemany(INSERT_STEP, (_step_values(episode_id, idx, step) for idx, step in enumerate(record.steps)))
        return episode_id

    def _check_addable(self, db: sqlite3.Connection, record: EpisodeRecord) -> None:
        if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (record.run_id,)).fetchone() is None:
            raise StoreError(f"{self.path}: no run {record.run_id!r}; call start_run first")
        found = db.execute("SELECT episode_id FROM episodes WHERE run_id = ? AND cycle = ? AND phase = ? "
                           "AND task_id = ? AND sample_idx = ?", record.key).fetchone()
        if found is not None:
            run_id, cycle, phase, task_id, sample_idx = record.key
            raise DuplicateEpisodeError(
                f"{self.path}: run {run_id!r} cycle {cycle} phase {phase!r} already has {task_id!r} sample "
                f"{sample_idx} (episode {found[0]}); skip finished work with done_keys()")

    def done_keys(self, run_id: str, cycle: int, phase: str) -> set[tuple[str, int]]:
        """The (task_id, sample_idx) pairs already stored for this phase of this cycle."""
        rows = self._db.execute("SELECT task_id, sample_idx FROM episodes WHERE run_id = ? AND cycle = ? AND phase = ?",
                                (run_id, cycle, phase))
        return {(task_id, sample_idx) for task_id, sample_idx in rows}

    def iter_episodes(self, run_id: str | None = None, cycle: int | None = None, phase: str | None = None,
                      passed: bool | None = None, batch: int = 500) -> Iterator[EpisodeRecord]:
        """The matching episodes with their steps, in the order they were stored, read
        `batch` at a time (each batch one consistent snapshot), so memory stays flat."""
        where, params = _where(run_id=run_id, cycle=cycle, phase=phase, passed=passed)
        last_id = 0
        while True:
            with self._snapshot() as db:
                rows = db.execute(f"SELECT * FROM episodes WHERE episode_id > ?{where} ORDER BY episode_id LIMIT ?",
                                  (last_id, *params, batch)).fetchall()
                steps = self._steps_of(db, [row["episode_id"] for row in rows])
            yield from (_episode_from_row(row, steps.get(row["episode_id"], ())) for row in rows)
            if len(rows) < batch:
                return
            last_id = rows[-1]["episode_id"]

    def episodes(self, run_id: str | None = None, cycle: int | None = None, phase: str | None = None,
                 passed: bool | None = None) -> list[EpisodeRecord]:
        """The matching episodes with their steps, in the order they were stored."""
        return list(self.iter_episodes(run_id=run_id, cycle=cycle, phase=phase, passed=passed))

    @staticmethod
    def _steps_of(db: sqlite3.Connection, episode_ids: list[int]) -> dict[int, list[StepRecord]]:
        steps: dict[int, list[StepRecord]] = {}
        if not episode_ids:
            return steps
        marks = ", ".join("?" * len(episode_ids))
        for row in db.execute(f"SELECT * FROM steps WHERE episode_id IN ({marks}) ORDER BY episode_id, idx",
                              episode_ids):
            steps.setdefault(row["episode_id"], []).append(_step_from_row(row))
        return steps

    def phase_counts(self, run_id: str | None = None) -> list[PhaseCounts]:
        """Episodes, passes and verifier failures per run, cycle and phase."""
        where, params = _where(run_id=run_id)
        rows = self._db.execute(
            "SELECT run_id, cycle, phase, COUNT(*), SUM(passed), SUM(outcome = ?) FROM episodes "
            f"WHERE 1{where} GROUP BY run_id, cycle, phase ORDER BY run_id, cycle, MIN(episode_id)",
            (Outcome.INFRA_ERROR.value, *params))
        return [PhaseCounts(*row) for row in rows]

    # -- evaluation results ---------------------------------------------------------

    def add_eval_results(self, run_id: str, cycle: int, checkpoint: str, metrics: Mapping[str, float],
                         family: str | None = None) -> None:
        """Record a checkpoint's metrics (one transaction). `family` None: over all task
        families. Recording a metric again for the same key replaces it."""
        now = utc_now()
        rows = [(run_id, cycle, checkpoint, metric, float(value), family, now) for metric, value in metrics.items()]
        with self._write() as db:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"{self.path}: no run {run_id!r}; call start_run first")
            db.executemany("INSERT OR REPLACE INTO eval_results (run_id, cycle, checkpoint, metric, value, family, "
                           "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def eval_results(self, run_id: str, cycle: int | None = None) -> list[EvalResult]:
        where, params = _where(run_id=run_id, cycle=cycle)
        rows = self._db.execute("SELECT run_id, cycle, checkpoint, metric, value, family, created_at FROM eval_results "
                                f"WHERE 1{where} ORDER BY cycle, checkpoint, COALESCE(family, ''), metric", params)
        return [EvalResult(*row) for row in rows]

    # -- exports --------------------------------------------------------------------

    def export_jsonl(self, path: str | os.PathLike, **filters: Any) -> int:
        """One episode a line, steps nested; filters as for `episodes`. Returns the count."""
        from greenloop.store.export import export_jsonl

        return export_jsonl(self, path, **filters)

    def export_parquet(self, path: str | os.PathLike, **filters: Any) -> int:
        """The episodes as one Parquet table, steps a nested list column (see
        greenloop.store.export). Needs pyarrow. Returns the count."""
        from greenloop.store.export import export_parquet

        return export_parquet(self, path, **filters)


def _connect(path: str, readonly: bool, timeout: float) -> sqlite3.Connection:
    if readonly:
        if not os.path.exists(path):
            raise StoreError(f"{path}: no such episode store")
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                             isolation_level=None)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        if not readonly:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{path}: SQLite could not use WAL mode here (got {mode!r}); "
                                 "put the store on a local file system")
            db.execute("PRAGMA synchronous=FULL")  # why FULL: see the module docstring
        db.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        db.close()
        raise
    return db


def _where(**filters: Any) -> tuple[str, tuple]:
    """` AND col = ?` for each filter that is not None, and the values."""
    used = {name: value for name, value in filters.items() if value is not None}
    clause = "".join(f" AND {name} = ?" for name in used)
    return clause, tuple(int(value) if isinstance(value, bool) else value for value in used.values())


def _step_values(episode_id: int, idx: int, step: StepRecord) -> tuple:
    values = [getattr(step, name) for name in STEP_COLUMNS]
    values[STEP_COLUMNS.index("outcome")] = step.outcome.value if step.outcome is not None else None
    return (episode_id, idx, *values)


def _step_from_row(row: sqlite3.Row) -> StepRecord:
    return StepRecord(**{name: row[name] for name in STEP_COLUMNS})


def _episode_from_row(row: sqlite3.Row, steps: Any) -> EpisodeRecord:
    values = {name: row[name] for name in EPISODE_COLUMNS}
    values.update(passed=bool(row["passed"]), meta=json.loads(row["meta"]))
    return EpisodeRecord(**values, steps=tuple(steps), episode_id=row["episode_id"])


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(run_id=row["run_id"], kind=row["kind"], config=json.loads(row["config"]),
                     status=RunStatus(row["status"]), created_at=row["created_at"], finished_at=row["finished_at"])
