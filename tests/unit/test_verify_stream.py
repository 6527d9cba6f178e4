"""Verifier.verify_stream: candidates are taken only as workers free up, verdicts match
verify()'s, and a task-source mutate run killed mid-stream resumes to the same output."""

import pytest

from greenloop.data import verified as verified_module
from greenloop.data.mutate import MutateConfig, run_mutate
from greenloop.sandbox.pool import QUEUE_DEPTH
from greenloop.types import Candidate
from greenloop.verify.funnel import Verifier, VerifyConfig
from tests.unit.test_data_pipeline import shard_rows

WRONG = "    return None\n"


def mixed(humaneval, n=12):
    """Passing, failing and rejected candidates, and one for an unknown task."""
    tasks = list(humaneval.tasks.values())[:n]
    out = []
    for i, task in enumerate(tasks):
        body = task.reference[len(task.prompt):] if i % 3 else WRONG
        out.append(Candidate(task.task_id, body if i % 4 else "this is not code ("))
    return out + [Candidate("HumanEval/nope", "def f(): pass")]


def test_stream_takes_candidates_only_as_workers_free_up(humaneval, he_verifier):
    candidates = mixed(humaneval)
    he_verifier.plan_for(candidates)
    pulled, ahead = [], []
    done = 0

    def lazily():
        for candidate in candidates:
            pulled.append(candidate)
            ahead.append(len(pulled) - done)
            yield candidate

    for _ in he_verifier.verify_stream(lazily()):
        done += 1
    assert len(pulled) == done == len(candidates)
    # never more than QUEUE_DEPTH candidates per worker in flight, plus the one being
    # prepared, plus those settled before the sandbox (no code, unknown task) not yet yielded
    settled_early = sum(c.completion.startswith("this is not code") or c.task_id == "HumanEval/nope" for c in candidates)
    assert max(ahead) <= QUEUE_DEPTH * he_verifier.pool.size + 1 + settled_early
    assert max(ahead) < len(candidates)


def test_stream_verdicts_equal_verify_verdicts(humaneval, he_verifier):
    candidates = mixed(humaneval)
    batch = dict(he_verifier.verify(candidates))
    streamed = dict(he_verifier.verify_stream(iter(candidates)))
    assert sorted(batch) == sorted(streamed) == list(range(len(candidates)))
    for i in batch:
        assert (batch[i].outcome, batch[i].stage, batch[i].tests_passed) == \
               (streamed[i].outcome, streamed[i].stage, streamed[i].tests_passed), candidates[i]
    assert {v.outcome.value for v in batch.values()} >= {"passed", "failed", "rejected"}


def test_stream_refuses_a_task_whose_reference_was_not_timed(humaneval):
    with Verifier(humaneval, VerifyConfig(workers=1, timeout_factor=10.0)) as verifier:
        task = next(iter(humaneval.tasks.values()))
        with pytest.raises(ValueError, match=f"{task.task_id}: call plan_for"):
            list(verifier.verify_stream([Candidate(task.task_id, task.reference)]))


def test_task_source_mutate_killed_mid_stream_resumes_to_the_same_output(tmp_path, monkeypatch):
    config = MutateConfig(source="humaneval", operators=("wrong_operator", "off_by_one", "missing_colon"),
                          per_operator=1, limit_files=6, tasks_per_shard=2)
    run_mutate(config, str(tmp_path / "whole"), workers=2)

    real, made = verified_module._task_unit, []

    def dies_at_the_sixth_task(task):
        made.append(task.task_id)
        if len(made) == 6:  # the last shard is being made: the first is finished (2 workers hold 2 jobs each)
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(verified_module, "_task_unit", dies_at_the_sixth_task)
    with pytest.raises(KeyboardInterrupt):
        run_mutate(config, str(tmp_path / "resumed"), workers=2)
    finished = sorted(p.name for p in (tmp_path / "resumed" / "shards").glob("*.report.json"))
    assert 1 <= len(finished) <= 2 and finished[0] == "pairs-00000.report.json"
    monkeypatch.setattr(verified_module, "_task_unit", real)
    run_mutate(config, str(tmp_path / "resumed"), workers=2)
    whole, resumed = shard_rows(tmp_path / "whole"), shard_rows(tmp_path / "resumed")
    assert list(whole) == [f"pairs-0000{i}.jsonl.gz" for i in range(3)]
    strip = lambda rows: [{**r, "meta": {k: v for k, v in r["meta"].items() if k != "detail"}} for r in rows]  # noqa: E731
    assert {k: strip(v) for k, v in resumed.items()} == {k: strip(v) for k, v in whole.items()}
