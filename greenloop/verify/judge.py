"""The parent judges: candidate outputs (plain data from the child) against a plan.

Calls with known answers are compared type-strictly (floats within the task's tolerance,
NaN equal to NaN). Check programs are replayed here, in the trusted process: the entry
point is replaced by a stub that hands back the candidate's recorded outputs in order,
and the program's own asserts decide, so benchmark quirks (any root of a polynomial is
accepted) keep their meaning. `random` is seeded as it was when the calls were recorded.
"""

from __future__ import annotations

import builtins
import random
from dataclasses import dataclass
from typing import Any

from greenloop.sandbox import codec
from greenloop.verify.deadline import time_guard
from greenloop.verify.record import TaskPlan, reference_code, trusted_namespace

REPLAY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Judgement:
    passed: bool
    tests_passed: int
    detail: str = ""
    signature: str = ""
    pending: bool = False  # the outputs so far are right, more are needed


class _Pending(Exception):
    pass


class _Diverged(Exception):
    pass


class CandidateRaised(Exception):
    """Raised inside a replayed check where the candidate's call raised."""


def _exception_for(frame: dict) -> BaseException:
    name = frame.get("raise", "Exception")
    kind = getattr(builtins, name, None)
    message = f"candidate raised {name}: {frame.get('msg', '')}"
    if isinstance(kind, type) and issubclass(kind, Exception) and kind not in (AssertionError,):
        try:
            return kind(message)
        except Exception:
            pass
    return CandidateRaised(message)


def _value(frame: dict) -> Any:
    """A fresh copy of the candidate's output from its frame, or the reason it has none."""
    if "v" in frame:
        return codec.decode(frame["v"])
    if "refused" in frame:
        raise TypeError(f"candidate returned a non-plain value: {frame['refused']}")
    raise _exception_for(frame)


def compare_by_value(plan: TaskPlan, frames: list[dict], indices: list[int], all_tests: bool) -> tuple[int, str]:
    """Judge the given calls by value. Returns (how many passed, first failure or "")."""
    tol = float(plan.task.meta.get("float_tol", 1e-9))
    passed, first_failure = 0, ""
    for i in indices:
        expected, frame = plan.expected[i], frames[i]
        if "v" in frame and "v" in expected:
            ok = _same_wire(expected["v"], frame["v"], tol)
            if ok and "after" in expected:
                ok = "after" in frame and _same_wire(expected["after"], frame["after"], tol)
            why = "wrong output" if ok or "after" not in expected else "wrong change to its arguments"
        elif "raise" in expected and "raise" in frame:
            ok, why = expected["raise"] == frame["raise"], "raised the wrong exception"
        else:
            ok = False
            why = f"raised {frame['raise']}" if "raise" in frame else (
                f"returned non-plain data ({frame['refused']})" if "refused" in frame else "returned instead of raising")
        if ok:
            passed += 1
        elif not first_failure:
            kind = "extra input" if i >= plan.check_end else "test"
            first_failure = f"{kind} {i}: {why} for input {repr(plan.calls[i][0])[:120]}"
            if not all_tests:
                break
    return passed, first_failure


def _same_wire(expected, actual, tol: float) -> bool:
    try:
        return codec.same_value(codec.decode(expected), codec.decode(actual), tol, tol)
    except (codec.CodecError, KeyError, TypeError):  # odd keys (NaN) or unhashable members
        return False


def _same_as_reference(plan: TaskPlan, frames: list[dict]) -> bool:
    """Every checked output so far equals the reference's, exactly: type for type, and
    in the same order where order can be seen (dict items, set iteration)."""
    if plan.mutates:  # the check looks at the arguments, which the outputs do not show
        return False
    for i in range(plan.n_direct, min(len(frames), plan.check_end)):
        expected, frame = plan.expected[i], frames[i]
        if "v" not in frame or "v" not in expected:
            return False
        try:
            if plan.answer_key(i) != codec.exact_key(codec.decode(frame["v"])):
                return False
        except (codec.CodecError, TypeError):  # unhashable keys, say: judge by replay
            return False
    return True


class _Stub:
    def __init__(self, plan: TaskPlan, frames: list[dict], substitute: int | None = None):
        self.plan, self.frames, self.substitute = plan, frames, substitute
        self.index = plan.n_direct

    def __call__(self, *args, **kwargs):
        i = self.index
        self.index += 1
        if i >= self.plan.check_end:
            raise _Diverged("the check made more calls than when recorded")
        recorded_args, recorded_kwargs = self.plan.calls[i]
        if not (codec.same_value(recorded_args, tuple(args), 0.0, 0.0) and codec.same_value(recorded_kwargs, dict(kwargs), 0.0, 0.0)):
            raise _Diverged(f"the check called with other arguments at call {i}")
        if self.substitute is not None:  # all other calls get the reference's answer
            frame = self.frames[i] if i == self.substitute else self.plan.expected[i]
        elif i < len(self.frames):
            frame = self.frames[i]
        else:
            raise _Pending()
        if self.plan.mutates:
            _apply_changes(args, kwargs, frame.get("after"))
        return _value(frame)


def _apply_changes(args: tuple, kwargs: dict, after) -> None:
    """Carry what the candidate's call did to its (mutable) arguments over to the check's
    own objects, as if the call had run here."""
    if after is None:
        return
    try:
        new_args, new_kwargs = codec.decode(after[0]), codec.decode(after[1])
    except (codec.CodecError, TypeError, IndexError, KeyError):
        raise TypeError("the candidate's changed arguments are not plain data") from None
    pairs = list(zip(args, new_args)) + [(kwargs[k], new_kwargs[k]) for k in kwargs if k in new_kwargs]
    for old, new in pairs:
        if type(old) is not type(new):
            continue
        if isinstance(old, (list, bytearray)):
            old[:] = new
        elif isinstance(old, (dict, set)):
            old.clear()
            old.update(new)


class Replayer:
    """Replays a task's check program, each time in a fresh namespace built from the
    reference (compiled once): one candidate's outputs never change what the next one
    is judged against."""

    def __init__(self):
        self._reference: dict[str, object] = {}
        self._code: dict[str, object] = {}

    def namespace(self, plan: TaskPlan) -> dict:
        key = plan.task.task_id
        if key not in self._reference:
            self._reference[key] = reference_code(plan.task)
        return trusted_namespace(plan.task, self._reference[key])

    def replay(self, plan: TaskPlan, frames: list[dict], substitute: int | None = None) -> Judgement:
        stub = _Stub(plan, frames, substitute)
        scope = self.namespace(plan)
        scope[plan.task.entry_point] = stub
        done = lambda: max(0, stub.index - 1 - plan.n_direct)  # noqa: E731 calls before the failing one
        code = self._code.get(plan.task.task_id)
        if code is None:
            code = self._code[plan.task.task_id] = compile(plan.check, f"<check {plan.task.task_id}>", "exec")
        caller_random = random.getstate()
        random.seed(0)  # as when the calls were recorded
        try:
            with time_guard(REPLAY_TIMEOUT_S, "the check program"):
                exec(code, scope)
        except _Pending:
            return Judgement(False, stub.index - 1 - plan.n_direct, pending=True)
        except AssertionError as exc:
            return Judgement(False, done(), f"test {done()}: assertion failed {str(exc)[:100]}".rstrip(), "AssertionError")
        except _Diverged as exc:
            return Judgement(False, done(), f"check diverged: {exc}", "Diverged")
        except Exception as exc:  # the candidate's raise, or its output broke the check
            return Judgement(False, done(), f"test {done()}: {type(exc).__name__}: {str(exc)[:150]}", type(exc).__name__)
        finally:
            random.setstate(caller_random)  # the caller's random numbers go on as before
        used = stub.index - plan.n_direct
        expected_calls = plan.check_end - plan.n_direct
        if used != expected_calls:
            return Judgement(False, used, f"check diverged: {used} calls instead of {expected_calls}", "Diverged")
        return Judgement(True, used)


def judge(plan: TaskPlan, frames: list[dict], replayer: Replayer, all_tests: bool = False, partial: bool = False) -> Judgement:
    """Judge a candidate's frames (one per call, in order) against the plan. With
    `partial`, frames may be a prefix: a pending judgement means "right so far".

    Calls fall in three ranges: [0, n_direct) judged by value, then the calls recorded
    from the check program (judged by replaying it), then extra inputs (by value)."""
    total, seen = len(plan.calls), len(frames)
    by_value = [i for i in range(seen) if i < plan.n_direct or i >= plan.check_end]
    passed, failure = compare_by_value(plan, frames, by_value, all_tests)
    if failure and not all_tests:
        return Judgement(False, passed, failure, failure.split(": ", 1)[-1].split(" for ")[0])
    replayed: Judgement | None = None
    if plan.mode == "replay" and seen > plan.n_direct and not all_tests and _same_as_reference(plan, frames):
        # Outputs identical to the reference's make the check behave as it did when
        # recorded (it passed then): no need to replay it.
        passed += min(seen, plan.check_end) - plan.n_direct
    elif plan.mode == "replay" and seen > plan.n_direct:
        if all_tests and seen == total:
            singles = [replayer.replay(plan, frames, substitute=i) for i in range(plan.n_direct, plan.check_end)]
            replayed = replayer.replay(plan, frames)
            replayed = Judgement(replayed.passed, sum(r.passed for r in singles), replayed.detail, replayed.signature)
        else:
            replayed = replayer.replay(plan, frames)
        passed += replayed.tests_passed
        if not (replayed.passed or replayed.pending):
            return Judgement(False, passed, failure or replayed.detail, replayed.signature)
    if seen < total:
        return Judgement(False, passed, failure, pending=partial and not failure)
    if failure:
        return Judgement(False, passed, failure, "wrong output")
    return Judgement(True, passed)
