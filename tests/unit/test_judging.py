"""How verdicts are reached for tasks with expected values, with a reference only, with a
check program only, and with partial credit."""

import json

import pytest

from greenloop.tasks import TaskSet, load_tasks
from greenloop.types import Candidate, Outcome, Task, TestCase
from greenloop.verify.funnel import VerifyConfig, verify_candidates

SQUARE = Task("t/square", "jsonl", "def square(x):\n", "square",
              tests=(TestCase(args=(2,), expected=4), TestCase(args=(3,), expected=9), TestCase(args=(-1,), expected=1)))
HALF = Task("t/half", "jsonl", "def half(x):\n", "half",
            tests=(TestCase(args=(1,)), TestCase(args=(3,))), reference="def half(x):\n    return x / 2\n",
            meta={"float_tol": 1e-6})
CHECK_ONLY = Task("t/check", "jsonl", "def inc(x):\n", "inc", tests=(TestCase(check="assert inc(1) == 2\n"),))
MIXED = Task("t/mixed", "jsonl", "def neg(x):\n", "neg",
             tests=(TestCase(args=(5,), expected=-5), TestCase(check="for v in range(4):\n    assert neg(v) == -v\n")),
             reference="def neg(x):\n    return -x\n")
TASKS = TaskSet({t.task_id: t for t in (SQUARE, HALF, CHECK_ONLY, MIXED)}, [])


@pytest.fixture(scope="module")
def run():
    from greenloop.verify.funnel import Verifier

    with Verifier(TASKS, VerifyConfig(timeout_s=3, workers=2)) as verifier:
        def go(*candidates, all_tests=False):
            verifier.config = VerifyConfig(timeout_s=3, workers=2, all_tests=all_tests)
            out = [None] * len(candidates)
            for i, v in verifier.verify([Candidate(t, c) for t, c in candidates]):
                out[i] = v
            return out
        yield go


def test_expected_values_are_compared_type_strictly(run):
    right, float_answer, bool_answer = run(("t/square", "    return x * x\n"),
                                           ("t/square", "    return float(x * x)\n"),
                                           ("t/square", "    return True if x == -1 else x * x\n"))
    assert right.passed and right.tests_passed == 3
    assert float_answer.outcome is Outcome.FAILED and "wrong output" in float_answer.detail
    assert not bool_answer.passed  # True is not 1


def test_reference_answers_with_float_tolerance(run):
    close, far = run(("t/half", "    return x * 0.5 + 1e-9\n"), ("t/half", "    return x // 2\n"))
    assert close.passed, close.detail
    assert far.outcome is Outcome.FAILED


def test_check_only_tasks_run_in_the_child_and_say_so(run):
    good, bad = run(("t/check", "    return x + 1\n"), ("t/check", "    return x\n"))
    assert good.passed and good.meta["judge"] == "child"
    assert bad.outcome is Outcome.FAILED and "AssertionError" in bad.detail


def test_direct_calls_then_replayed_check(run):
    good, wrong_check = run(("t/mixed", "    return -x\n"), ("t/mixed", "    return -x if x else 1\n"))
    assert good.passed and good.tests_total == 5 and good.meta["judge"] == "parent"
    assert not wrong_check.passed


def test_all_tests_gives_partial_credit(run):
    # right on 2 and -1 but wrong on 3: stop-at-first counts 1, all-tests counts 2
    code = "    return 9 if x == 2 else x * x\n"
    first, = run(("t/square", code))
    assert first.tests_passed == 0 and first.stage == "smoke"
    code = "    return 0 if x == 3 else x * x\n"
    first, = run(("t/square", code))
    every, = run(("t/square", code), all_tests=True)
    assert (first.tests_passed, every.tests_passed) == (1, 2)
    assert not every.passed


def test_jsonl_family_loads_our_schema(tmp_path):
    path = tmp_path / "tasks.jsonl"
    rows = [
        {"task_id": "my/add", "prompt": "def add(a, b):\n", "entry_point": "add",
         "tests": [{"args": [1, 2], "expected": 3}, {"input": "((1,), (2,))", "output": "(1, 2)"}]},
        {"task_id": "my/ref", "prompt": "", "entry_point": "f", "prompt_is_code": False,
         "reference": "def f(s):\n    return s[::-1]\n", "tests": [{"args": ["abc"]}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = load_tasks(f"jsonl:{path}")
    verdicts = verify_candidates(tasks, [
        Candidate("my/add", "    return a + b\n"),
        Candidate("my/ref", "def f(s):\n    return ''.join(reversed(s))\n"),
        Candidate("my/ref", "def f(s):\n    return s\n")], VerifyConfig(workers=1, timeout_s=3))
    assert [v.passed for v in verdicts] == [True, True, False]


def test_jsonl_errors_name_line_and_field(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"task_id": "a", "prompt": "", "entry_point": "f", "tests": [{"args": [1]}]}\n'
                    '{"task_id": "b", "prompt": "", "entry_point": "f", "tests": [{"input": "(1,"}]}\n')
    with pytest.raises(ValueError, match=r"tasks.jsonl:1: field 'tests': a test without an expected value needs a 'reference'"):
        load_tasks(f"jsonl:{path}")
    path.write_text('{"task_id": "b", "prompt": "", "entry_point": "f", "tests": [{"input": "(1,", "output": "1"}]}\n')
    with pytest.raises(ValueError, match=r"tasks.jsonl:1: field 'tests\[0\].input': not a Python literal"):
        load_tasks(f"jsonl:{path}")


def test_extra_inputs_catch_a_candidate_that_only_fits_the_given_tests():
    from greenloop.verify.inputs import mutate_value, propose_inputs
    from greenloop.verify.record import build_plans
    import random

    task = Task("t/double", "jsonl", "def double(x, items):\n", "double", tests=(TestCase(args=(3, [1, 2])),),
                reference="def double(x, items):\n    return 2 * x + len(items)\n")
    tasks = TaskSet({task.task_id: task}, [])
    overfit = Candidate("t/double", "    return 8 if x == 3 else x\n")
    plain, = verify_candidates(tasks, [overfit], VerifyConfig(workers=1, timeout_s=3))
    extra, = verify_candidates(tasks, [overfit], VerifyConfig(workers=1, timeout_s=3, extra_inputs=5))
    assert plain.passed and plain.tests_total == 1
    assert not extra.passed and extra.tests_total > 1 and "extra input" in extra.detail
    right, = verify_candidates(tasks, [Candidate("t/double", "    return x + x + len(items)\n")],
                               VerifyConfig(workers=1, timeout_s=3, extra_inputs=5))
    assert right.passed and right.tests_total == extra.tests_total
    # mutation is seeded by task id and keeps types
    plan = build_plans([task])[task.task_id]
    assert propose_inputs(plan, 5) == propose_inputs(plan, 5)
    assert all(type(a[0]) is int and type(a[1]) is list for a, _ in propose_inputs(plan, 5))
    assert type(mutate_value((1, "a"), random.Random(0))) is tuple


def test_expected_errors_are_answers_and_broken_tasks_are_infra_errors():
    isqrt = Task("t/isqrt", "jsonl", "", "isqrt", prompt_is_code=False,
                 tests=(TestCase(args=(16,)), TestCase(args=(10,)), TestCase(args=(-1,))),
                 reference="def isqrt(n):\n    if n < 0:\n        raise ValueError('negative')\n    return int(n ** 0.5)\n")
    broken = Task("t/broken", "jsonl", "", "f", prompt_is_code=False,
                  tests=(TestCase(check="assert f(1) == 2\n"),), reference="def f(x):\n    return x\n")
    tasks = TaskSet({t.task_id: t for t in (isqrt, broken)}, [])
    anything, right, no_raise, on_broken = verify_candidates(tasks, [
        Candidate("t/isqrt", "def isqrt(n):\n    return 'anything'\n"),
        Candidate("t/isqrt", "import math\ndef isqrt(n):\n    return math.isqrt(n)\n"),
        Candidate("t/isqrt", "def isqrt(n):\n    return int(abs(n) ** 0.5)\n"),
        Candidate("t/broken", "def f(x):\n    return 2\n")], VerifyConfig(workers=1, timeout_s=3))
    assert anything.outcome is Outcome.FAILED
    assert right.passed and right.tests_total == 3  # math.isqrt raises ValueError too
    assert no_raise.outcome is Outcome.FAILED and "returned instead of raising" in no_raise.detail
    assert on_broken.outcome is Outcome.INFRA_ERROR and on_broken.reward is None
    assert "cannot be judged" in on_broken.detail


def test_order_the_check_can_see_is_never_skipped():
    counts = Task("t/counts", "jsonl", "", "counts", prompt_is_code=False,
                  tests=(TestCase(check="assert list(counts('ba')) == ['b', 'a']\n"),),
                  reference="def counts(s):\n    out = {}\n    for c in s:\n        out[c] = out.get(c, 0) + 1\n    return out\n")
    tasks = TaskSet({counts.task_id: counts}, [])
    sorted_keys, = verify_candidates(tasks, [Candidate("t/counts", "def counts(s):\n    return {c: s.count(c) for c in sorted(s)}\n")],
                                     VerifyConfig(workers=1, timeout_s=3))
    assert sorted_keys.outcome is Outcome.FAILED


def test_in_place_tasks_are_judged_on_their_arguments():
    sort_in_place = Task("t/sort", "jsonl", "", "sort_in_place", prompt_is_code=False,
                         tests=(TestCase(check="a = [3, 1, 2]\nsort_in_place(a)\nassert a == [1, 2, 3]\n"),
                                TestCase(args=([2, 1],))),
                         reference="def sort_in_place(xs):\n    xs.sort()\n")
    tasks = TaskSet({sort_in_place.task_id: sort_in_place}, [])
    for all_tests in (False, True):
        idle, right = verify_candidates(tasks, [Candidate("t/sort", "def sort_in_place(xs):\n    pass\n"),
                                                Candidate("t/sort", "def sort_in_place(xs):\n    xs[:] = sorted(xs)\n")],
                                        VerifyConfig(workers=1, timeout_s=3, all_tests=all_tests))
        assert idle.outcome is Outcome.FAILED
        assert right.passed, right.detail


def test_judging_leaves_the_callers_random_state_alone(tmp_path):
    import random

    from greenloop.cli.tasks import reference_completion
    humaneval = load_tasks("humaneval")
    task = humaneval.tasks["HumanEval/38"]  # its check draws random strings
    random.seed(1234)
    expected = random.random()
    random.seed(1234)
    verdict, = verify_candidates(humaneval, [Candidate(task.task_id, reference_completion(task))], VerifyConfig(workers=1))
    assert verdict.passed
    assert random.random() == expected


def test_whole_function_answers_keep_the_prompts_helpers():
    humaneval = load_tasks("humaneval")
    decode = ("def decode_cyclic(s: str):\n"
              "    return encode_cyclic(encode_cyclic(s))\n")
    fenced = "Sure:\n```python\n" + decode + "```\n"
    plain, in_fence = verify_candidates(humaneval, [Candidate("HumanEval/38", decode), Candidate("HumanEval/38", fenced)],
                                        VerifyConfig(workers=1))
    assert plain.passed, plain.detail
    assert in_fence.passed, in_fence.detail


def test_perf_stage_compares_cpu_time_with_the_reference():
    task = Task("t/total", "jsonl", "", "total", prompt_is_code=False, tests=(TestCase(args=(1,)),),
                reference="def total(n):\n    return sum(i * i for i in range(n))\n")
    # the same answers; one is as fast as the reference, one burns CPU before answering
    fast_code = "def total(n):\n    return 0 if n < 2 else sum(i * i for i in range(n))\n"
    slow_code = "def total(n):\n    sum(range(3 * 10 ** 6))\n    return sum(i * i for i in range(n))\n"
    tasks = TaskSet({task.task_id: task}, [])
    config = VerifyConfig(workers=1, timeout_s=10, perf=True, perf_max_ratio=3.0)
    fast, slow = verify_candidates(tasks, [Candidate("t/total", fast_code), Candidate("t/total", slow_code)], config)
    assert fast.passed and fast.stages[-1].stage == "perf" and "the reference's CPU time" in fast.detail
    assert slow.outcome is Outcome.FAILED and slow.stage == "perf" and slow.error_signature == "perf:slow"
    with pytest.raises(ValueError, match="perf_max_ratio needs perf=True"):
        VerifyConfig(perf_max_ratio=2.0)
