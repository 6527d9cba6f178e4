"""MBPP's reference solutions pass their own tests through the verifier."""

from pathlib import Path

import pytest

from greenloop.cli.tasks import reference_completion
from greenloop.tasks import load_tasks
from greenloop.types import Candidate
from greenloop.verify.funnel import VerifyConfig, verify_candidates

MBPP = Path(__file__).resolve().parents[3] / "shared" / "data" / "mbpp" / "mbpp.jsonl"


@pytest.mark.skipif(not MBPP.exists(), reason="../shared/data/mbpp not present")
def test_mbpp_reference_solutions_pass():
    tasks = load_tasks(f"mbpp:{MBPP}")
    candidates = [Candidate(t.task_id, reference_completion(t)) for t in tasks.tasks.values()]
    wrong = [Candidate(t.task_id, f"def {t.entry_point}(*args):\n    return None\n") for t in tasks.tasks.values()]
    verdicts = verify_candidates(tasks, candidates + wrong, VerifyConfig(timeout_s=10))
    n = len(candidates)
    failing = [(c.task_id, v.detail) for c, v in zip(candidates, verdicts[:n]) if not v.passed]
    assert failing == []
    judged_in_child = [c.task_id for c, v in zip(candidates, verdicts[:n]) if v.meta["judge"] == "child"]
    assert len(judged_in_child) <= 10  # tasks whose tests pass custom objects
    assert not [c.task_id for c, v in zip(wrong, verdicts[n:]) if v.passed]
