"""Time limits scaled to the reference: `VerifyConfig.timeout_factor`."""

import pytest

from greenloop.tasks import load_tasks
from greenloop.types import Candidate, Outcome
from greenloop.verify.funnel import Verifier, VerifyConfig

LOOP = "def add(x, y):\n    while True:\n        pass\n"


@pytest.fixture(scope="module")
def tasks():
    return load_tasks("humaneval")


def test_limit_is_the_reference_time_times_the_factor_within_bounds(tasks):
    config = VerifyConfig(workers=1, timeout_s=10, timeout_factor=20, min_timeout_s=0.4)
    with Verifier(tasks, config) as verifier:
        verifier.plan_for([Candidate("HumanEval/53", LOOP)])
        plan = verifier.plans["HumanEval/53"]
        assert plan.reference_cpu_s is not None and plan.reference_cpu_s > 0
        limit = verifier._job(plan, LOOP)["limits"]["timeout_s"]
        assert limit == pytest.approx(min(10, max(0.4, 20 * plan.reference_cpu_s)))
        assert limit < 10
        verdicts = dict(verifier.verify([Candidate("HumanEval/53", LOOP), Candidate("HumanEval/53", tasks.tasks["HumanEval/53"].reference)]))
    assert verdicts[0].outcome is Outcome.TIMEOUT
    assert verdicts[1].passed


def test_without_a_factor_every_task_gets_timeout_s(tasks):
    with Verifier(tasks, VerifyConfig(workers=1, timeout_s=7)) as verifier:
        verifier.plan_for([Candidate("HumanEval/53", LOOP)])
        plan = verifier.plans["HumanEval/53"]
        assert plan.reference_cpu_s is None
        assert verifier._job(plan, LOOP)["limits"]["timeout_s"] == 7


def test_factor_must_be_positive():
    with pytest.raises(ValueError, match="timeout_factor"):
        VerifyConfig(timeout_factor=0)
