"""Jobs as the verifier hands them to the sandbox: the program compiled in the verifier,
the calls decoded and marshalled once per task, and the wire that carries both past the
fork server unread."""

import marshal
import os

import pytest

from greenloop.sandbox import wire
from greenloop.tasks import TaskSet
from greenloop.types import Candidate, Outcome, Task, TestCase
from greenloop.verify.extract import compile_candidate, static_check
from greenloop.verify.funnel import VerifyConfig, verify_candidates
from greenloop.verify.record import TaskPlan

TOTAL = Task("t/total", "jsonl", "def total(xs):\n", "total",
             tests=(TestCase(check="xs = [1, 2]\nassert total(xs) == 3\nassert total(xs) == 3\n"),),
             reference="def total(xs):\n    return sum(xs)\n")
ADD = Task("t/add", "jsonl", "def add(a, b):\n", "add", tests=(TestCase(args=(1, 2), expected=3),))
TASKS = TaskSet({t.task_id: t for t in (TOTAL, ADD)}, [])


def test_compiling_finds_what_a_parse_does_not():
    assert static_check("return 1\n", 1000)[0] is Outcome.PASSED  # it parses
    outcome, detail, code = compile_candidate("return 1\n", 1000)
    assert outcome is Outcome.FAILED and code is None and "'return' outside function" in detail
    assert compile_candidate("x = (\n", 1000)[:2] == static_check("x = (\n", 1000)
    assert compile_candidate("x = 1\n" * 100, 50)[0] is Outcome.REJECTED


def test_compiled_program_runs_as_the_child_compiled_it():
    outcome, _, code = compile_candidate("def f(x: Undefined) -> int:\n    return x\n", 1000)
    namespace: dict = {}
    exec(marshal.loads(code), namespace)  # annotations postponed (PEP 563): no NameError
    assert namespace["f"].__annotations__ == {"x": "Undefined", "return": "int"}


def test_calls_that_share_an_argument_reach_the_child_as_separate_objects():
    shared = [1, 2]
    plan = TaskPlan(TOTAL, "replay", calls=[((shared,), {}), ((shared,), {"k": shared})])
    (args0, kwargs0), (args1, kwargs1) = marshal.loads(plan.marshalled_calls)
    assert args0 == args1 == [[1, 2]] and kwargs1 == {"k": [1, 2]}
    assert args0[0] is not args1[0] and args1[0] is not kwargs1["k"]


def test_a_candidate_that_changes_its_argument_cannot_change_the_next_call():
    mutating = "    result = sum(xs)\n    xs.append(100)\n    return result\n"
    right, wrong, annotated = verify_candidates(TASKS, [
        Candidate("t/total", mutating), Candidate("t/total", "    return sum(xs) + len(xs) - 2 + 1\n"),
        Candidate("t/add", "def add(a: NotDefinedAnywhere, b) -> int:\n    return a + b\n")],
        VerifyConfig(timeout_s=5, workers=1))
    assert right.passed, right.detail
    assert wrong.outcome is Outcome.FAILED
    assert annotated.passed, annotated.detail
    assert [s.stage for s in right.stages][:3] == ["extract", "static", "compile"]


def test_wire_carries_attached_bytes_and_keeps_message_order():
    read_fd, write_fd = os.pipe()
    try:
        wire.write_all(write_fd, wire.frame({"op": "run", "id": 1}, b"\x00payload\n"))
        wire.send(write_fd, {"op": "abort", "id": 1})
        wire.write_all(write_fd, wire.frame({"op": "run", "id": 2}, marshal.dumps({"code": None})))
        reader = wire.Reader(read_fd)
        first = reader.read_one()
        assert first == {"op": "run", "id": 1, "attached": b"\x00payload\n"}
        assert reader.read_one() == {"op": "abort", "id": 1}
        third = reader.read_one()
        assert marshal.loads(third.pop("attached")) == {"code": None} and third == {"op": "run", "id": 2}
        os.write(write_fd, wire.HEADER.pack(2, 0) + b"[]")
        with pytest.raises(ValueError):
            reader.read_one()
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_an_abort_keeps_the_next_job_that_came_behind_it():
    """A server holds two jobs: the next job's message can arrive in the same read as
    the abort of the running one, and must not be lost with it."""
    from greenloop.sandbox.server import ForkServer

    read_fd, write_fd = os.pipe()
    try:
        server = object.__new__(ForkServer)
        server.control = wire.Reader(read_fd)
        wire.send(write_fd, {"op": "abort", "id": 7})
        wire.write_all(write_fd, wire.frame({"op": "run", "id": 8}, b"job"))
        wire.send(write_fd, {"op": "abort", "id": 6})  # late, for a job already done
        assert server._aborted(7)
        assert list(server.control.ready) == [{"op": "run", "id": 8, "attached": b"job"}, {"op": "abort", "id": 6}]
        wire.write_all(write_fd, wire.frame({"op": "run", "id": 9}, b"next"))
        assert not server._aborted(8)
        assert server.control.ready[-1]["id"] == 9
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_candidates_keep_their_asserts_under_an_optimising_verifier():
    import subprocess
    import sys

    probe = ("import marshal; from greenloop.verify.extract import compile_candidate as c; "
             "code = c('assert False, \"kept\"\\n', 100)[2]; "
             "exec(marshal.loads(code)) if code else print('no code')")
    run = subprocess.run([sys.executable, "-O", "-c", probe], capture_output=True, text=True)
    assert "AssertionError: kept" in run.stderr, (run.stdout, run.stderr)
