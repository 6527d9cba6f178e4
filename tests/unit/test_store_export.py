"""The episode store's exports (JSONL, Parquet) read back, and `greenloop store ...`."""

import argparse
import json

import pytest

from greenloop.cli import store as store_cli
from greenloop.io import read_jsonl
from greenloop.store import EpisodeStore
from greenloop.types import Outcome
from tests.unit.test_store import agent_episode, make_v1_store, sample_episode


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "episodes.sqlite"
    with EpisodeStore(path) as store:
        store.start_run("r1", "loop", {"lr": 0.001})
        store.add_episode(sample_episode(outcome=Outcome.PASSED))
        store.add_episode(sample_episode(sample_idx=1, meta={"nested": {"ok": [1, 2]}, "text": "é"}))
        store.add_episode(agent_episode())
        store.add_episode(sample_episode(phase="eval", outcome=Outcome.INFRA_ERROR))
        store.start_run("r2", "eval", {})
        store.add_episode(sample_episode(run_id="r2", task_id="mbpp/4", phase="eval"))
    return path


def test_jsonl_export_nests_steps_and_reads_back(db, tmp_path):
    out = tmp_path / "out" / "episodes.jsonl.gz"
    with EpisodeStore(db, readonly=True) as store:
        assert store.export_jsonl(out) == 5
        rows = [record.data for record in read_jsonl(out)]
        assert rows == [record.to_dict() for record in store.episodes()]
        assert store.export_jsonl(tmp_path / "day.jsonl", run_id="r1", phase="day") == 3
    agent = rows[2]
    assert agent["mode"] == "agent" and agent["outcome"] == "passed" and agent["passed"] is True
    assert [step["command"] for step in agent["steps"]] == ["run_tests", "apply_patch", "run_tests"]
    assert agent["steps"][0]["outcome"] == "failed" and agent["steps"][1]["outcome"] is None
    assert rows[1]["meta"] == {"nested": {"ok": [1, 2]}, "text": "é"} and rows[0]["steps"] == []


def test_parquet_export_reads_back_with_nested_steps(db, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "episodes.parquet"
    with EpisodeStore(db, readonly=True) as store:
        assert store.export_parquet(out) == 5
        expected = [record.to_dict() for record in store.episodes()]
    rows = pq.read_table(out).to_pylist()
    for row in rows:
        row["meta"] = json.loads(row["meta"])
    assert rows == expected
    assert rows[2]["steps"][2] == {"command": "run_tests", "model_text": "", "diff": "", "observation": "3 passed",
                                   "outcome": "passed", "error_signature": "", "tokens_in": 0, "tokens_out": 0,
                                   "seconds": 0.4}
    with EpisodeStore(db, readonly=True) as store:
        assert store.export_parquet(tmp_path / "none.parquet", run_id="nobody") == 0
    empty = pq.read_table(tmp_path / "none.parquet")
    assert empty.num_rows == 0 and "steps" in empty.column_names
    assert not list(tmp_path.glob("*.tmp-*"))


def parse(argv):
    parser = argparse.ArgumentParser(prog="greenloop")
    store_cli.add_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_stats(db, capsys):
    args = parse(["store", "stats", "--db", str(db)])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "2 runs, 5 episodes" in out and "run r1 (loop, running" in out
    assert any(line.split()[:6] == ["0", "day", "2", "1", "0", "50.0%"] for line in out.splitlines())
    assert any(line.split()[:6] == ["0", "eval", "1", "0", "1", "-"] for line in out.splitlines())
    args = parse(["store", "stats", "--db", str(db), "--run", "r2", "--json"])
    assert args.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [run["run_id"] for run in summary["runs"]] == ["r2"] and summary["phases"][0]["pass_rate"] == 0.0


def test_cli_export_both_formats_and_filters(db, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    out = tmp_path / "day.jsonl"
    args = parse(["store", "export", "--db", str(db), "--out", str(out), "--run", "r1", "--phase", "day"])
    assert args.run(args) == 0 and "3 episodes" in capsys.readouterr().out
    assert {r.data["phase"] for r in read_jsonl(out)} == {"day"}
    args = parse(["store", "export", "--db", str(db), "--out", str(tmp_path / "all.parquet")])
    assert args.run(args) == 0 and capsys.readouterr().out.strip().endswith("5 episodes -> " + args.out + " (parquet)")
    args = parse(["store", "export", "--db", str(db), "--out", str(tmp_path / "x"), "--run", "r9"])
    with pytest.raises(ValueError, match=r"no run 'r9' \(runs: r1, r2\)"):
        args.run(args)


def test_cli_help_and_migrate(tmp_path, capsys):
    for command in ("export", "stats", "migrate"):
        with pytest.raises(SystemExit) as exit_info:
            parse(["store", command, "--help"])
        assert exit_info.value.code == 0
    assert "--db" in capsys.readouterr().out
    old = tmp_path / "old.sqlite"
    make_v1_store(old)
    args = parse(["store", "migrate", "--db", str(old)])
    assert args.run(args) == 0 and "schema version 1 -> 2" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no such episode store"):
        args = parse(["store", "migrate", "--db", str(tmp_path / "missing.sqlite")])
        args.run(args)
