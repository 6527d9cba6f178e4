"""Turning a task's tests into a plan the judge can use, in a trusted process.

For a task with a check program and a reference, the check runs once against the
reference with a recorder in place of the entry point: the recorder notes each call's
arguments and the reference's answer. Candidates are then given only those arguments.
Recording happens in a forked child of the verifier (reference code is trusted, but its
side effects should not touch the verifier); it never shares a process with a candidate.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import marshal
import os
import random
import warnings
from dataclasses import dataclass, field
from typing import Any

from greenloop.io import cache_root
from greenloop.sandbox import codec
from greenloop.verify.deadline import time_guard
from greenloop.types import Task

RECORD_TIMEOUT_S = 20


@dataclass
class TaskPlan:
    """How a task is judged. mode: "expected" (compare with known values), "replay"
    (replay the check program against the candidate's outputs), "child" (the check
    program runs beside the candidate, for tests that pass non-plain data: the only mode
    a candidate could fool), "broken" (the task cannot be judged, e.g. its reference fails
    its own tests: verdicts are INFRA_ERROR, never a pass)."""

    task: Task
    mode: str
    calls: list[tuple[tuple, dict]] = field(default_factory=list)
    expected: list[Any] = field(default_factory=list)  # reference answers, as outcome frames
    check: str | None = None
    note: str = ""
    n_direct: int = 0  # calls before this index are judged by value
    n_checked: int = 0  # then this many calls recorded from the check program; extra inputs follow
    mutates: bool = False  # the reference changes its arguments: the child returns them too
    reference_cpu_s: float | None = None  # measured in the sandbox, for the perf stage

    @property
    def check_end(self) -> int:
        return self.n_direct + self.n_checked

    @property
    def marshalled_calls(self) -> bytes:
        """The calls as the child runs them, marshalled once: each argument passed through
        the codec (plain builtin data, fresh objects for every call), and version 2, which
        writes no shared references, so no two calls share a mutable argument."""
        if getattr(self, "_marshalled", (None, -1))[1] != len(self.calls):
            plain = [[codec.decode(codec.encode(list(a))), codec.decode(codec.encode(dict(k)))] for a, k in self.calls]
            self._marshalled = (marshal.dumps(plain, 2), len(self.calls))
        return self._marshalled[0]

    def answer_key(self, index: int):
        """codec.exact_key of the reference's value for call `index`, computed once: the
        verifier compares every candidate's output with it."""
        keys = self.__dict__.setdefault("_answer_keys", {})
        if index not in keys:
            keys[index] = codec.exact_key(codec.decode(self.expected[index]["v"]))
        return keys[index]

    def add_extra_call(self, args: tuple, kwargs: dict, answer: dict) -> None:
        self.calls.append((args, kwargs))
        self.expected.append(answer)

    @property
    def tests_total(self) -> int:
        return {"child": 1, "broken": 0}.get(self.mode, len(self.calls))


class Recorder:
    """Stands in for the entry point while the check runs against the reference. Notes
    each call's arguments, the answer, and whether the call changed its arguments (a
    task that sorts a list in place is judged on the list, not the return value)."""

    def __init__(self, func):
        self.func = func
        self.calls: list[list] = []
        self.answers: list[dict] = []
        self.mutates = False

    def __call__(self, *args, **kwargs):
        wire_args = [codec.encode(list(args)), codec.encode(dict(kwargs))]
        answer: dict = {}
        try:
            value = self.func(*args, **kwargs)
            answer["v"] = codec.encode(value)
            return value
        except Exception as exc:
            answer["raise"] = type(exc).__name__
            raise
        finally:
            self.calls.append(wire_args)
            self.answers.append(answer)
            after = [codec.encode(list(args)), codec.encode(dict(kwargs))]
            if after != wire_args:
                self.mutates = True
                answer["after"] = after


def reference_code(task: Task):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # benchmark code has old escape sequences and such
        return compile(task.reference or task.context, f"<reference {task.task_id}>", "exec")


def trusted_namespace(task: Task, code=None) -> dict:
    """The reference's globals: what the check program sees besides the entry point.
    Built fresh each time it is asked for: nothing one replay changes reaches the next."""
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code or reference_code(task), namespace)
    return namespace


def _record_one(task: Task) -> dict:
    """Runs in the recording child. Returns the plan's data, or why it can't be replayed."""
    calls_tests = [t for t in task.tests if t.check is None]
    checks = [t.check for t in task.tests if t.check is not None]
    namespace = trusted_namespace(task)
    func = namespace.get(task.entry_point)
    if not callable(func):
        return {"error": f"the reference does not define {task.entry_point!r}"}
    recorder = Recorder(func)
    for test in calls_tests:
        try:
            recorder(*copy.deepcopy(test.args), **copy.deepcopy(dict(test.kwargs)))
        except Exception:  # an expected error: the answer says which
            pass
    for check in checks:
        scope = dict(namespace)
        scope[task.entry_point] = recorder
        random.seed(0)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(check, f"<check {task.task_id}>", "exec"), scope)
    return {"calls": recorder.calls, "answers": recorder.answers, "mutates": recorder.mutates}


NOT_PLAIN = "the tests pass or return values that are not plain data"


def _record_safely(task: Task) -> dict:
    try:
        return _record_one(task)
    except codec.Refused as exc:
        return {"error": f"{NOT_PLAIN} ({exc})", "not_plain": True}
    except BaseException as exc:  # the reference fails its own tests, or hangs
        return {"error": f"the reference fails its own tests: {type(exc).__name__}: {str(exc)[:200]}"}


def run_trusted(work, items: list, timeout_s: float = RECORD_TIMEOUT_S) -> list[dict]:
    """Run `work(item) -> dict` for each item in one forked child of the verifier, each
    bounded by an alarm (the code is trusted; the alarm only stops a slow reference)."""
    if not items:
        return []
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _serve_trusted(work, items, write_fd, timeout_s)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        lines = fh.read().splitlines()
    os.waitpid(pid, 0)
    results = [json.loads(line) for line in lines]
    if len(results) < len(items):  # it died on the next item: note that, go on without it
        results.append({"error": "the trusted process died running it"})
        results += run_trusted(work, items[len(results):], timeout_s)
    return results


def _serve_trusted(work, items: list, write_fd: int, timeout_s: float) -> None:
    with os.fdopen(write_fd, "w") as out:
        for item in items:
            try:
                with time_guard(timeout_s, "the reference"):
                    result = work(item)
            except BaseException as exc:
                result = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            out.write(json.dumps(result) + "\n")


def build_plans(tasks: list[Task]) -> dict[str, TaskPlan]:
    """A plan for every task. Tasks whose tests all carry expected values need no
    recording; the rest are recorded in one forked child."""
    plans: dict[str, TaskPlan] = {}
    to_record: list[Task] = []
    for task in tasks:
        if all(t.check is None and t.has_expected for t in task.tests):
            plans[task.task_id] = TaskPlan(
                task, "expected", [(tuple(t.args), dict(t.kwargs)) for t in task.tests],
                [{"v": codec.encode(t.expected)} for t in task.tests], n_direct=len(task.tests))
        elif task.reference is None:
            check = "\n".join(t.check for t in task.tests if t.check)
            plans[task.task_id] = TaskPlan(task, "child", check=check, note="no reference: the check runs beside the candidate")
        else:
            to_record.append(task)
    cached = {task.task_id: _cache_get(task) for task in to_record}
    missing = [task for task in to_record if cached[task.task_id] is None]
    for task, result in zip(missing, run_trusted(_record_safely, missing)):
        cached[task.task_id] = result
        if "error" not in result:
            _cache_put(task, result)
    for task in to_record:
        plans[task.task_id] = _plan_from_recording(task, cached[task.task_id])
    return plans


RECORD_FORMAT = 2


def cache_dir() -> str:
    """Where recordings are kept between runs. They hold expected values, so the
    verifier hides this directory from candidates like any task data."""
    return os.path.join(cache_root(), "records")


def _cache_path(task: Task) -> str:
    tests = [(t.args, sorted(t.kwargs.items()), repr(t.expected), t.check) for t in task.tests]
    key = json.dumps([RECORD_FORMAT, task.task_id, task.entry_point, task.reference, task.context, repr(tests)])
    return os.path.join(cache_dir(), hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def _cache_get(task: Task) -> dict | None:
    try:
        with open(_cache_path(task)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _cache_put(task: Task, result: dict) -> None:
    path = _cache_path(task)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump(result, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def _plan_from_recording(task: Task, result: dict) -> TaskPlan:
    checks = [t.check for t in task.tests if t.check is not None]
    if "error" in result or not result["calls"]:
        why = result.get("error") or "the check never calls the entry point"
        if result.get("not_plain") and checks:  # the one case where the check must run beside the candidate
            return TaskPlan(task, "child", check="\n".join(checks), note=why)
        return TaskPlan(task, "broken", note=why)
    calls = [(tuple(codec.decode(a)), codec.decode(k)) for a, k in result["calls"]]
    answers = list(result["answers"])
    direct = [t for t in task.tests if t.check is None]
    for i, test in enumerate(direct):  # a stated expected value wins over the reference's
        if test.has_expected:
            answers[i] = {"v": codec.encode(test.expected)}
    mode = "replay" if checks else "expected"
    n_direct = len(calls) if mode == "expected" else len(direct)
    return TaskPlan(task, mode, calls, answers, check="\n".join(checks) if checks else None,
                    n_direct=n_direct, n_checked=len(calls) - n_direct, mutates=bool(result.get("mutates")))
