"""Every HumanEval canonical solution passes; a plainly wrong answer fails on every task;
benchmark quirks keep their meaning because the check program itself judges."""

from greenloop.cli.tasks import reference_completion
from greenloop.types import Candidate, Outcome
from tests.unit.conftest import verify


def test_all_canonical_solutions_pass_and_wrong_ones_fail(humaneval, he_verifier):
    tasks = list(humaneval.tasks.values())
    assert len(tasks) == 164
    good = [Candidate(t.task_id, reference_completion(t)) for t in tasks]
    bad = [Candidate(t.task_id, "    return None\n") for t in tasks]
    verdicts = verify(he_verifier, good + bad)
    failures = [(c.task_id, v.detail) for c, v in zip(good, verdicts[:164]) if not v.passed]
    assert failures == []
    wrongly_passed = [c.task_id for c, v in zip(bad, verdicts[164:]) if v.passed]
    assert wrongly_passed == []
    assert all(v.meta["judge"] == "parent" for v in verdicts[:164])
    assert all(v.tests_passed == v.tests_total > 0 for v in verdicts[:164])


def test_any_root_is_accepted_for_find_zero(he_verifier):
    # HumanEval/32 accepts any root; a bisection that finds a different root than the
    # reference must pass, and a wrong number must fail.
    bisect = (
        "    lo, hi = -1e3, 1e3\n"
        "    while poly(xs, lo) * poly(xs, hi) > 0:\n"
        "        lo, hi = lo * 2, hi * 2\n"
        "    for _ in range(200):\n"
        "        mid = (lo + hi) / 2\n"
        "        if poly(xs, lo) * poly(xs, mid) <= 0:\n"
        "            hi = mid\n"
        "        else:\n"
        "            lo = mid\n"
        "    return (lo + hi) / 2\n")
    ok, wrong = verify(he_verifier, [Candidate("HumanEval/32", bisect), Candidate("HumanEval/32", "    return 12345.0\n")])
    assert ok.passed, ok.detail
    assert wrong.outcome is Outcome.FAILED


def test_first_failure_stops_at_smoke_and_counts_prefix(he_verifier):
    # has_close_elements: always True is right on the first assert, wrong on the second.
    verdict, = verify(he_verifier, [Candidate("HumanEval/0", "    return True\n")])
    assert verdict.outcome is Outcome.FAILED
    assert verdict.stage == "tests" and verdict.tests_passed == 1
    stub, = verify(he_verifier, [Candidate("HumanEval/0", "    return False\n")])
    assert stub.stage == "smoke" and stub.tests_passed == 0


def test_raw_chat_completion_with_fenced_code_is_extracted(he_verifier):
    text = ("Here you go:\n```python\nfrom typing import List\n\n"
            "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
            "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```\n")
    verdict, = verify(he_verifier, [Candidate("HumanEval/0", text)])
    assert verdict.passed, verdict.detail
    assert verdict.stages[0].detail == "fenced"


def test_syntax_errors_fail_statically_and_empty_is_rejected(he_verifier):
    broken, empty, unknown = verify(he_verifier, [Candidate("HumanEval/1", "    return (\n"),
                                                  Candidate("HumanEval/1", "   \n"),
                                                  Candidate("HumanEval/9999", "pass")])
    assert broken.outcome is Outcome.FAILED and broken.stage == "static"
    assert empty.outcome is Outcome.REJECTED
    assert unknown.outcome is Outcome.REJECTED and "unknown task_id" in unknown.detail


def test_exceptions_timeouts_and_memory_are_told_apart(he_verifier):
    raising, looping, hungry = verify(he_verifier, [
        Candidate("HumanEval/2", "    raise ValueError('no')\n"),
        Candidate("HumanEval/2", "    while True:\n        pass\n"),
        Candidate("HumanEval/2", "    x = bytearray(8 * 1024 ** 3)\n    return 0.5\n")])
    assert raising.outcome is Outcome.FAILED and "ValueError" in raising.detail
    assert looping.outcome is Outcome.TIMEOUT
    assert hungry.outcome is Outcome.MEMORY
    assert raising.reward == 0.0 and looping.reward == 0.0
