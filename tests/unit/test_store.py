"""The episode store: round trips, WAL, migrations, resume keys, and a writer killed
mid-episode (see test_store_export.py for the exports and the CLI)."""

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from greenloop.store import (SCHEMA_VERSION, DuplicateEpisodeError, EpisodeMode, EpisodeRecord, EpisodeStore,
                             RunStatus, SchemaVersionError, StepRecord, StoreError)
from greenloop.store.schema import migrate
from greenloop.types import Outcome

REPO = Path(__file__).resolve().parents[2]


def sample_episode(task_id="humaneval/0", sample_idx=0, outcome=Outcome.FAILED, **fields):
    values = dict(run_id="r1", cycle=0, phase="day", task_id=task_id, sample_idx=sample_idx, outcome=outcome,
                  policy="tiny-gpt", completion="    return a + b\n", error_signature="AssertionError",
                  tokens_in=120, tokens_out=14, seconds=0.25, meta={"temperature": 0.8})
    return EpisodeRecord(**{**values, **fields})


def agent_episode(task_id="repair/7", sample_idx=0):
    steps = [StepRecord("run_tests", model_text="run the tests", observation="1 failed", outcome=Outcome.FAILED,
                        error_signature="NameError: x", tokens_in=300, tokens_out=20, seconds=0.5),
             StepRecord("apply_patch", model_text="fix", diff="-x\n+y\n", observation="applied", seconds=0.01),
             StepRecord("run_tests", observation="3 passed", outcome=Outcome.PASSED, seconds=0.4)]
    return EpisodeRecord(run_id="r1", cycle=1, phase="day", task_id=task_id, sample_idx=sample_idx,
                         outcome=Outcome.PASSED, mode=EpisodeMode.AGENT, policy="agent:v1", steps_to_green=3,
                         first_error_signature="NameError: x", completion="y\n", steps=steps,
                         meta={"budget": {"steps": 8}, "tags": ["a", "b"]})


@pytest.fixture
def store(tmp_path):
    with EpisodeStore(tmp_path / "episodes.sqlite") as store:
        store.start_run("r1", "loop", {"lr": 0.001, "tasks": "humaneval"})
        yield store


def unstored(record):
    return dataclasses.replace(record, episode_id=None, created_at=None)


def test_episodes_round_trip_with_steps_in_order(store):
    originals = [sample_episode(), agent_episode(), sample_episode(sample_idx=1, outcome=Outcome.PASSED)]
    ids = [store.add_episode(record) for record in originals]
    assert ids == sorted(ids) and len(set(ids)) == 3
    got = store.episodes()
    assert [r.episode_id for r in got] == ids and all(r.created_at for r in got)
    assert [unstored(r) for r in got] == originals
    agent = got[1]
    assert agent.mode is EpisodeMode.AGENT and agent.task_family == "repair" and agent.steps_to_green == 3
    assert [s.command for s in agent.steps] == ["run_tests", "apply_patch", "run_tests"]
    assert agent.steps[0].outcome is Outcome.FAILED and agent.steps[1].outcome is None
    assert got[0].steps == () and got[0].passed is False and got[2].passed is True


def test_filters(store):
    store.add_episode(sample_episode())
    store.add_episode(sample_episode(sample_idx=1, outcome=Outcome.PASSED))
    store.add_episode(agent_episode())
    store.add_episode(sample_episode(phase="eval", outcome=Outcome.PASSED))
    assert len(store.episodes(run_id="r1")) == 4 and store.episodes(run_id="other") == []
    assert [r.sample_idx for r in store.episodes(passed=True, phase="day", cycle=0)] == [1]
    assert [r.task_id for r in store.episodes(passed=True, phase="day")] == ["humaneval/0", "repair/7"]
    assert [r.task_id for r in store.episodes(cycle=1)] == ["repair/7"]
    assert [r.phase for r in store.episodes(passed=False)] == ["day"]
    many = list(store.iter_episodes(batch=1))  # every batch boundary
    assert [unstored(r) for r in many] == [unstored(r) for r in store.episodes()]


def test_wal_mode_and_a_reader_beside_the_writer(store):
    assert store.journal_mode == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.add_episode(sample_episode())
    with EpisodeStore(store.path, readonly=True) as reader:
        store._db.execute("BEGIN IMMEDIATE")  # the writer is mid-transaction
        store._db.execute("UPDATE episodes SET policy = 'uncommitted'")
        assert [r.policy for r in reader.episodes()] == ["tiny-gpt"]  # not blocked, sees committed state
        store._db.execute("ROLLBACK")
        with pytest.raises(StoreError, match="read-only"):
            reader.add_episode(sample_episode(sample_idx=1))


def test_duplicate_key_raises_and_keeps_the_first(store):
    store.add_episode(sample_episode(outcome=Outcome.PASSED))
    with pytest.raises(DuplicateEpisodeError, match=r"cycle 0 phase 'day' already has 'humaneval/0' sample 0"):
        store.add_episode(sample_episode(outcome=Outcome.FAILED))
    assert [r.outcome for r in store.episodes()] == [Outcome.PASSED]
    store.add_episode(sample_episode(cycle=1))  # another cycle is another key


def test_done_keys(store):
    assert store.done_keys("r1", 0, "day") == set()
    store.add_episode(sample_episode())
    store.add_episode(sample_episode(sample_idx=3))
    store.add_episode(sample_episode(task_id="mbpp/2"))
    store.add_episode(sample_episode(phase="eval"))
    store.add_episode(sample_episode(cycle=1))
    assert store.done_keys("r1", 0, "day") == {("humaneval/0", 0), ("humaneval/0", 3), ("mbpp/2", 0)}
    assert store.done_keys("r1", 0, "eval") == {("humaneval/0", 0)}
    assert store.done_keys("r1", 2, "day") == set()


def test_runs_are_idempotent_and_finish(store):
    first = store.run("r1")
    again = store.start_run("r1", "loop", {"lr": 99})
    assert again == first and again.config == {"lr": 0.001, "tasks": "humaneval"}  # the stored config wins
    with pytest.raises(StoreError, match="exists as a 'loop' run"):
        store.start_run("r1", "eval")
    finished = store.finish_run("r1", "interrupted")
    assert finished.status is RunStatus.INTERRUPTED and finished.finished_at
    resumed = store.start_run("r1", "loop")
    assert resumed.status is RunStatus.RUNNING and resumed.finished_at is None
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.finish_run("nope", RunStatus.FAILED)
    with pytest.raises(ValueError, match="not one of"):
        store.finish_run("r1", "done")
    assert [r.run_id for r in store.runs()] == ["r1"]


def test_bad_records_are_refused_before_writing(store):
    with pytest.raises(ValueError, match="contradicts outcome"):
        sample_episode(passed=True, outcome=Outcome.FAILED)
    with pytest.raises(ValueError, match="'trajectory' is not one of"):
        sample_episode(mode="trajectory")
    with pytest.raises(ValueError, match="meta is not JSON"):
        sample_episode(meta={"when": object()})
    with pytest.raises(ValueError, match="step 0 is a dict"):
        sample_episode(steps=[{"command": "run_tests"}])
    with pytest.raises(StoreError, match="no run 'ghost'; call start_run first"):
        store.add_episode(sample_episode(run_id="ghost"))
    assert store.episodes() == []


def test_eval_results_per_family_and_replaced_on_rerun(store):
    store.add_eval_results("r1", 0, "ckpt-0", {"pass@1": 0.25, "pass@10": 0.5})
    store.add_eval_results("r1", 0, "ckpt-0", {"pass@1": 0.4}, family="mbpp")
    store.add_eval_results("r1", 1, "ckpt-1", {"pass@1": 0.3})
    store.add_eval_results("r1", 0, "ckpt-0", {"pass@1": 0.3})  # a re-run replaces, NULL family included
    rows = [(r.cycle, r.checkpoint, r.metric, r.value, r.family) for r in store.eval_results("r1", cycle=0)]
    assert rows == [(0, "ckpt-0", "pass@1", 0.3, None), (0, "ckpt-0", "pass@10", 0.5, None),
                    (0, "ckpt-0", "pass@1", 0.4, "mbpp")]
    assert len(store.eval_results("r1")) == 4
    with pytest.raises(StoreError, match="no run"):
        store.add_eval_results("ghost", 0, "c", {"m": 1.0})


def test_phase_counts_leave_infra_errors_out_of_the_pass_rate(store):
    store.add_episode(sample_episode(outcome=Outcome.PASSED))
    store.add_episode(sample_episode(sample_idx=1, outcome=Outcome.FAILED))
    store.add_episode(sample_episode(sample_idx=2, outcome=Outcome.INFRA_ERROR))
    store.add_episode(sample_episode(phase="eval", outcome=Outcome.INFRA_ERROR))
    day, evaluation = store.phase_counts("r1")
    assert (day.phase, day.episodes, day.passed, day.infra_errors, day.pass_rate) == ("day", 3, 1, 1, 0.5)
    assert evaluation.pass_rate is None


def make_v1_store(path):
    """A store as the first released schema left it, with a row in every table."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        assert migrate(db, str(path), target=1) == 1
        db.execute("INSERT INTO runs VALUES ('old', 'loop', '2024-01-01T00:00:00+00:00', '{}', 'succeeded', NULL)")
        db.execute("INSERT INTO episodes (run_id, cycle, phase, task_id, policy, mode, sample_idx, passed, outcome, "
                   "steps_to_green, error_signature, first_error_signature, completion, tokens_in, tokens_out, "
                   "seconds, created_at, meta) VALUES ('old', 0, 'day', 'mbpp/11', 'p', 'agent', 0, 1, 'passed', "
                   "1, '', '', 'c', 1, 2, 0.5, '2024-01-01T00:00:01+00:00', '{\"k\": 1}')")
        db.execute("INSERT INTO episodes (run_id, cycle, phase, task_id, policy, mode, sample_idx, passed, outcome, "
                   "steps_to_green, error_signature, first_error_signature, completion, tokens_in, tokens_out, "
                   "seconds, created_at, meta) VALUES ('old', 0, 'day', 'bare', 'p', 'sample', 0, 0, 'failed', "
                   "NULL, 'E', 'E', 'c', 1, 2, 0.5, '2024-01-01T00:00:02+00:00', '{}')")
        db.execute("INSERT INTO steps VALUES (1, 0, 'run_tests', 'm', '', 'ok', 'passed', '', 1, 1, 0.1)")
        db.execute("INSERT INTO eval_results VALUES ('old', 0, 'ckpt', 'pass@1', 0.5, '2024-01-01T00:00:03+00:00')")
        assert "task_family" not in {row[1] for row in db.execute("PRAGMA table_info(episodes)")}


def test_migration_from_v1_keeps_data_and_backfills_families(tmp_path):
    path = tmp_path / "old.sqlite"
    make_v1_store(path)
    with pytest.raises(SchemaVersionError, match="older .* opened read-only"):
        EpisodeStore(path, readonly=True)
    with EpisodeStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        versions = [row[0] for row in store._db.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == [1, 2]
        first, bare = store.episodes(run_id="old")
        assert (first.task_family, first.meta, len(first.steps), first.steps[0].outcome) == ("mbpp", {"k": 1}, 1,
                                                                                             Outcome.PASSED)
        assert bare.task_family == ""
        assert [(r.metric, r.value, r.family) for r in store.eval_results("old")] == [("pass@1", 0.5, None)]
        store.add_eval_results("old", 0, "ckpt", {"pass@1": 0.7}, family="mbpp")  # the v2 key takes a family
        store.add_eval_results("old", 0, "ckpt", {"pass@1": 0.6})
        assert [(r.value, r.family) for r in store.eval_results("old")] == [(0.6, None), (0.7, "mbpp")]
    with EpisodeStore(path) as store:  # opening again migrates nothing
        assert store.schema_version == 2


def test_a_newer_schema_is_refused_clearly(tmp_path):
    path = tmp_path / "new.sqlite"
    with EpisodeStore(path) as store:
        store._db.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    for readonly in (False, True):
        with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1} is newer than this "
                                                     f"greenloop knows \\({SCHEMA_VERSION}\\); .*upgrade greenloop"):
            EpisodeStore(path, readonly=readonly)


def test_other_files_are_refused(tmp_path):
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StoreError, match="not a greenloop episode store"):
        EpisodeStore(other)
    with pytest.raises(StoreError, match="no such episode store"):
        EpisodeStore(tmp_path / "missing.sqlite", readonly=True)


WRITER = textwrap.dedent("""
    import sys, time
    from greenloop.store import EpisodeStore, EpisodeRecord, StepRecord
    path, pause_at = sys.argv[1], int(sys.argv[2])  # pause_at < 0: never pause
    with EpisodeStore(path) as store:
        store.start_run("k", "loop", {})
        done = store.done_keys("k", 0, "day")
        print("resumed", len(done), flush=True)
        added = 0
        def pause_inside_the_transaction(sql):
            # the episode row is written, its steps not yet: the moment a kill must not tear
            if added == pause_at and sql.startswith("INSERT INTO steps"):
                print("in-steps", flush=True)
                time.sleep(60)
        store._db.set_trace_callback(pause_inside_the_transaction)
        for task in range(10):
            for sample in range(2):
                if (f"koans/{task}", sample) in done:
                    continue
                n = 1 + (task + sample) % 4
                print("adding", task, sample, flush=True)
                store.add_episode(EpisodeRecord(
                    run_id="k", cycle=0, phase="day", task_id=f"koans/{task}", sample_idx=sample,
                    outcome="failed", mode="agent", meta={"n_steps": n},
                    steps=[StepRecord("run_tests", observation=f"step {i}") for i in range(n)]))
                print("committed", task, sample, flush=True)
                added += 1
                time.sleep(0.005)
""")


def run_writer(path, pause_at=-1):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(pause_at)],
                            stdout=subprocess.PIPE, text=True, env=env)


def check_complete(path):
    """Every stored episode has exactly its steps, numbered 0..n-1; no step is orphaned."""
    with EpisodeStore(path) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert store._db.execute("SELECT COUNT(*) FROM steps WHERE episode_id NOT IN "
                                 "(SELECT episode_id FROM episodes)").fetchone()[0] == 0
        records = store.episodes(run_id="k")
        for record in records:
            assert len(record.steps) == record.meta["n_steps"], record.task_id
            assert [s.observation for s in record.steps] == [f"step {i}" for i in range(record.meta["n_steps"])]
        return records, store.done_keys("k", 0, "day")


def test_a_killed_writer_loses_only_the_episode_in_flight_and_resumes(tmp_path):
    path = tmp_path / "killed.sqlite"
    writer = run_writer(path, pause_at=6)
    committed, in_flight = set(), None
    try:
        for line in writer.stdout:
            word, *rest = line.split()
            if word == "adding":
                in_flight = (f"koans/{rest[0]}", int(rest[1]))
            elif word == "committed":
                committed.add(in_flight)
            elif word == "in-steps":
                with EpisodeStore(path, readonly=True) as reader:  # the writer holds an open transaction
                    assert {(r.task_id, r.sample_idx) for r in reader.episodes()} == committed
                writer.send_signal(signal.SIGKILL)  # mid-transaction: episode row written, steps not
                break
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL and len(committed) == 6 and in_flight not in committed
    records, done = check_complete(path)
    assert done == committed and len(records) == len(committed)

    resumed = run_writer(path)
    out, _ = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, out
    assert out.splitlines()[0] == f"resumed {len(committed)}"
    assert sum(line.startswith("committed") for line in out.splitlines()) == 20 - len(committed)
    records, done = check_complete(path)
    assert len(records) == len(done) == 20 and (in_flight in done)
