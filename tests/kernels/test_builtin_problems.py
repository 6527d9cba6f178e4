"""Every built-in kernel problem through the whole funnel, in the sandbox: its reference
passes with a speedup near 1 (and is flagged for calling the op it should replace), a
wrong answer fails, a candidate that changes its inputs fails for that reason, and one
that returns its first answer again fails on the second input set."""

from __future__ import annotations

import pytest

from greenloop.tasks.kernels import builtin_problems
from greenloop.types import Outcome
from greenloop.verify.kernel_verify import KernelConfig, KernelVerifier
from tests.kernels.candidates import KINDS, candidate

PROBLEMS = builtin_problems()


@pytest.fixture(scope="module", params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def verifier(request):
    """The same checks on a CPU and, marked `gpu`, on a CUDA device (CUDA events, L2 flush)."""
    if request.param == "cuda":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
    config = KernelConfig(device=request.param, trials=20, warmup=5, min_time_s=0.0, keep_fraction=0.5)
    with KernelVerifier(config) as v:
        yield v


def test_there_are_enough_problems():
    assert len(PROBLEMS) >= 20
    assert {p.level for p in PROBLEMS} == {1, 2}


@pytest.mark.parametrize("problem", PROBLEMS, ids=[p.name for p in PROBLEMS])
def test_problem(verifier, problem):
    results = dict(zip(KINDS, verifier.verify(problem, [candidate(problem.source, k) for k in KINDS])))

    reference = results["reference"]
    assert reference.verdict.passed, reference.verdict.detail
    assert reference.verdict.tests_passed == reference.verdict.tests_total == 5
    # The same code: its interval reaches 1, give or take what the machine's own noise
    # (the reference timed against itself) allows.
    low, high = reference.verdict.meta["speedup_ci"]
    slack = 1.5 * (1 + reference.verdict.meta["noise_floor"])
    assert low < slack and high > 1 / slack, reference.verdict.detail
    assert any(f.startswith("calls_reference_op") for f in reference.flags)
    assert reference.verdict.meta["credited_speedup"] == 1.0 and reference.reward == 0.5

    wrong = results["wrong"].verdict
    assert wrong.outcome is Outcome.FAILED and wrong.stage == "smoke", wrong.detail
    assert "outside tolerance" in wrong.detail

    mutates = results["mutates_input"].verdict
    assert mutates.outcome is Outcome.FAILED and "changed an input in place" in mutates.detail, mutates.detail

    cached = results["cached"].verdict
    assert cached.outcome is Outcome.FAILED and cached.stage == "inputs", cached.detail
    assert cached.detail.startswith("input set 1") and cached.tests_passed == 1
