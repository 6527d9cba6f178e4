"""The episode store's schema and its history: an ordered list of migrations, each
taking the database from version N to N+1, applied when a store is opened.

`schema_version` holds one row per applied version (and when it was applied); the
database's version is the largest. Each migration runs in its own transaction together
with its version row, so a kill mid-migration leaves the previous version intact.

A released migration is never edited: a change to the schema is a new function
appended to MIGRATIONS. Version 1 is the first released schema; version 2 added task
families (a column on episodes, backfilled from the family-qualified task ids, and one
on eval_results so a metric can be recorded per family).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Callable


class StoreError(ValueError):
    """The episode store cannot do what was asked; the message says why and what to do."""


class SchemaVersionError(StoreError):
    """The database's schema is not the one this code works with."""


def utc_now() -> str:
    """The store's timestamps: ISO 8601 in UTC, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _execute_all(db: sqlite3.Connection, statements: tuple[str, ...]) -> None:
    # one statement at a time: executescript() would commit the migration's transaction
    for statement in statements:
        db.execute(statement)


V1_INITIAL = (
    """CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        config      TEXT NOT NULL,  -- JSON object
        status      TEXT NOT NULL,
        finished_at TEXT
    )""",
    """CREATE TABLE episodes (
        episode_id            INTEGER PRIMARY KEY,
        run_id                TEXT NOT NULL REFERENCES runs(run_id),
        cycle                 INTEGER NOT NULL,
        phase                 TEXT NOT NULL,
        task_id               TEXT NOT NULL,
        policy                TEXT NOT NULL,
        mode                  TEXT NOT NULL CHECK (mode IN ('sample', 'agent')),
        sample_idx            INTEGER NOT NULL,
        passed                INTEGER NOT NULL CHECK (passed IN (0, 1)),
        outcome               TEXT NOT NULL,
        steps_to_green        INTEGER,
        error_signature       TEXT NOT NULL,
        first_error_signature TEXT NOT NULL,
        completion            TEXT NOT NULL,
        tokens_in             INTEGER NOT NULL,
        tokens_out            INTEGER NOT NULL,
        seconds               REAL NOT NULL,
        created_at            TEXT NOT NULL,
        meta                  TEXT NOT NULL,  -- JSON object
        UNIQUE (run_id, cycle, phase, task_id, sample_idx)
    )""",
    """CREATE TABLE steps (
        episode_id      INTEGER NOT NULL REFERENCES episodes(episode_id),
        idx             INTEGER NOT NULL,
        command         TEXT NOT NULL,
        model_text      TEXT NOT NULL,
        diff            TEXT NOT NULL,
        observation     TEXT NOT NULL,
        outcome         TEXT,
        error_signature TEXT NOT NULL,
        tokens_in       INTEGER NOT NULL,
        tokens_out      INTEGER NOT NULL,
        seconds         REAL NOT NULL,
        PRIMARY KEY (episode_id, idx)
    )""",
    """CREATE TABLE eval_results (
        run_id     TEXT NOT NULL REFERENCES runs(run_id),
        cycle      INTEGER NOT NULL,
        checkpoint TEXT NOT NULL,
        metric     TEXT NOT NULL,
        value      REAL NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX eval_results_key ON eval_results (run_id, cycle, checkpoint, metric)",
)


V2_TASK_FAMILIES = (
    "ALTER TABLE episodes ADD COLUMN task_family TEXT NOT NULL DEFAULT ''",
    """UPDATE episodes SET task_family = substr(task_id, 1, instr(task_id, '/') - 1)
       WHERE instr(task_id, '/') > 1""",
    "CREATE INDEX episodes_family ON episodes (run_id, task_family)",
    "ALTER TABLE eval_results ADD COLUMN family TEXT",  # NULL: over all families
    "DROP INDEX eval_results_key",
    # NULLs are distinct in a UNIQUE index; COALESCE makes "all families" one key
    """CREATE UNIQUE INDEX eval_results_key
       ON eval_results (run_id, cycle, checkpoint, metric, COALESCE(family, ''))""",
)


def _v1_initial(db: sqlite3.Connection) -> None:
    _execute_all(db, V1_INITIAL)


def _v2_task_families(db: sqlite3.Connection) -> None:
    _execute_all(db, V2_TASK_FAMILIES)


# MIGRATIONS[i] takes a database from version i to version i + 1 (version 0: empty).
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1_initial, _v2_task_families)
SCHEMA_VERSION = len(MIGRATIONS)


def _has_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is not None


def read_version(db: sqlite3.Connection, path: str) -> int:
    """The database's schema version; 0 for an empty database. A database with tables
    but no schema_version is something else and is refused."""
    table = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if table is None:
        if _has_tables(db):
            raise StoreError(f"{path}: an SQLite database but not a greenloop episode store (no schema_version table)")
        return 0
    return db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]


def check_version(version: int, path: str, writable: bool, target: int = SCHEMA_VERSION) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: schema version {version} is newer than this greenloop knows ({SCHEMA_VERSION}); "
            "a newer greenloop wrote it, so upgrade greenloop to read it")
    if version < target and not writable:
        raise SchemaVersionError(
            f"{path}: schema version {version} is older than this greenloop's ({SCHEMA_VERSION}) and this "
            "store was opened read-only; open it once for writing to migrate it "
            "(`greenloop store migrate --db PATH`)")


def migrate(db: sqlite3.Connection, path: str, target: int = SCHEMA_VERSION) -> int:
    """Apply the pending migrations up to `target`, each in its own transaction; returns
    the version reached. `db` must be in autocommit mode (isolation_level=None)."""
    check_version(read_version(db, path), path, writable=True, target=target)
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    while True:
        db.execute("BEGIN IMMEDIATE")  # takes the write lock: a concurrent opener waits, then sees our version
        try:
            version = read_version(db, path)
            if version >= target:
                db.execute("COMMIT")
                return version
            MIGRATIONS[version](db)
            db.execute("INSERT INTO schema_version VALUES (?, ?)", (version + 1, utc_now()))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
