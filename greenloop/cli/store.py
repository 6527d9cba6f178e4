"""`greenloop store ...`: look into an episode store (`greenloop.store`): export its
episodes to JSONL or Parquet, print counts and pass rates, migrate an old file."""

from __future__ import annotations

import json
import sys

EXPORT_DESCRIPTION = """\
Export episodes from an episode store, filtered by run and phase.

--format jsonl: one episode a line, its steps nested in order under "steps" (a .gz name
  is gzipped). --format parquet: one row per episode; "steps" is a nested list column,
  "meta" a JSON string. The default format follows the --out name (.parquet), else jsonl.

The store is opened read-only, so exporting while a loop is writing is safe: the export
holds every episode committed before it started, and never half an episode."""

STATS_DESCRIPTION = """\
Print the runs in an episode store and, per run, cycle and phase, how many episodes it
holds and how many passed. The pass rate leaves out episodes the verifier itself failed
on (infra_error), which never count against the policy. Opened read-only: safe while a
loop is writing."""


def add_commands(commands) -> None:
    p = commands.add_parser("store", help="export episodes from an episode store; print its counts and pass rates",
                            description="The episode store: the SQLite file a loop records its runs, episodes, "
                                        "steps and evaluation results in. Typical: `greenloop store stats --db D` "
                                        "then `greenloop store export --db D --out episodes.parquet --phase day`.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="write episodes (steps nested) to JSONL or Parquet",
                            description=EXPORT_DESCRIPTION, formatter_class=_raw())
    export.add_argument("--db", required=True, help="the episode store (an SQLite file)")
    export.add_argument("--out", required=True, help="output file (.jsonl, .jsonl.gz or .parquet)")
    export.add_argument("--format", choices=["jsonl", "parquet"], help="default: from the --out name")
    export.add_argument("--run", dest="run_id", metavar="RUN", help="only this run (default: all)")
    export.add_argument("--cycle", type=int, metavar="N", help="only this cycle (default: all)")
    export.add_argument("--phase", metavar="PHASE", help="only this phase, e.g. day or eval (default: all)")
    export.set_defaults(run=run_export)
    stats = sub.add_parser("stats", help="runs, episodes per run/cycle/phase, pass rates",
                           description=STATS_DESCRIPTION, formatter_class=_raw())
    stats.add_argument("--db", required=True, help="the episode store (an SQLite file)")
    stats.add_argument("--run", dest="run_id", metavar="RUN", help="only this run (default: all)")
    stats.add_argument("--json", action="store_true", help="print the counts as one JSON object instead")
    stats.set_defaults(run=run_stats)
    migrate = sub.add_parser("migrate", help="bring an episode store written by an older greenloop up to date",
                             description="Apply the pending schema migrations to an episode store, each in its "
                                         "own transaction. Opening a store for writing does the same; this is "
                                         "for stores that only readers open.")
    migrate.add_argument("--db", required=True, help="the episode store (an SQLite file)")
    migrate.set_defaults(run=run_migrate)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def run_export(args) -> int:
    from greenloop.store import EpisodeStore

    fmt = args.format or ("parquet" if args.out.endswith(".parquet") else "jsonl")
    filters = {"run_id": args.run_id, "cycle": args.cycle, "phase": args.phase}
    with EpisodeStore(args.db, readonly=True) as store:
        if args.run_id is not None and store.run(args.run_id) is None:
            known = ", ".join(run.run_id for run in store.runs()) or "none"
            raise ValueError(f"{args.db}: no run {args.run_id!r} (runs: {known})")
        export = store.export_parquet if fmt == "parquet" else store.export_jsonl
        count = export(args.out, **filters)
    print(f"{count} episodes -> {args.out} ({fmt})")
    return 0


def store_summary(store, run_id: str | None = None) -> dict:
    """The counts `greenloop store stats` prints, as plain data."""
    runs = [run for run in store.runs() if run_id is None or run.run_id == run_id]
    phases = store.phase_counts(run_id)
    return {
        "db": store.path,
        "schema_version": store.schema_version,
        "runs": [{"run_id": run.run_id, "kind": run.kind, "status": run.status.value, "created_at": run.created_at,
                  "finished_at": run.finished_at,
                  "episodes": sum(p.episodes for p in phases if p.run_id == run.run_id)} for run in runs],
        "phases": [{"run_id": p.run_id, "cycle": p.cycle, "phase": p.phase, "episodes": p.episodes,
                    "passed": p.passed, "infra_errors": p.infra_errors, "pass_rate": p.pass_rate} for p in phases],
    }


def run_stats(args) -> int:
    from greenloop.store import EpisodeStore

    with EpisodeStore(args.db, readonly=True) as store:
        if args.run_id is not None and store.run(args.run_id) is None:
            raise ValueError(f"{args.db}: no run {args.run_id!r}")
        summary = store_summary(store, args.run_id)
    if args.json:
        print(json.dumps(summary))
        return 0
    print_summary(summary, sys.stdout)
    return 0


def print_summary(summary: dict, out) -> None:
    total = sum(run["episodes"] for run in summary["runs"])
    print(f"{summary['db']}: schema {summary['schema_version']}, {len(summary['runs'])} runs, {total} episodes",
          file=out)
    for run in summary["runs"]:
        ended = f", finished {run['finished_at']}" if run["finished_at"] else ""
        print(f"\nrun {run['run_id']} ({run['kind']}, {run['status']}, started {run['created_at']}{ended}): "
              f"{run['episodes']} episodes", file=out)
        rows = [p for p in summary["phases"] if p["run_id"] == run["run_id"]]
        if not rows:
            continue
        print(f"  {'cycle':>5}  {'phase':<10} {'episodes':>8} {'passed':>7} {'infra':>6} {'pass rate':>9}", file=out)
        for p in rows:
            rate = f"{p['pass_rate']:.1%}" if p["pass_rate"] is not None else "-"
            print(f"  {p['cycle']:>5}  {p['phase']:<10} {p['episodes']:>8} {p['passed']:>7} {p['infra_errors']:>6} "
                  f"{rate:>9}", file=out)


def run_migrate(args) -> int:
    import os
    import sqlite3
    from contextlib import closing

    from greenloop.store import EpisodeStore
    from greenloop.store.schema import read_version

    if not os.path.exists(args.db):  # migrate never creates a store
        raise ValueError(f"{args.db}: no such episode store")
    with closing(sqlite3.connect(args.db)) as db:
        old = read_version(db, args.db)
    with EpisodeStore(args.db) as store:
        print(f"{args.db}: schema version {old} -> {store.schema_version}")
    return 0
