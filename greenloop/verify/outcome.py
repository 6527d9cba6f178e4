"""From what the sandbox returned to a Verdict: how the child ended, what it wrote, and
what the judge made of it. Anything a candidate can cause (a crash, a killed worker,
forged or malformed frames, an early exit) is the candidate's failure, never INFRA_ERROR.
"""

from __future__ import annotations

import json
import signal

from greenloop.types import Outcome, StageResult, Verdict
from greenloop.verify.judge import Replayer, judge

STATUS_DETAIL = {
    "worker_died": "the sandbox worker died while running the candidate",
    "worker_unresponsive": "the sandbox worker stopped answering while running the candidate",
    "output_cap": "the candidate wrote more output than the cap allows",
}


def parse_frames(lines: list[str]) -> list[dict] | None:
    """The child's lines as JSON objects, or None if any is not one."""
    out = []
    for line in lines:
        try:
            frame = json.loads(line)
        except (ValueError, RecursionError, MemoryError):  # a hostile child's bytes
            return None
        if not isinstance(frame, dict):
            return None
        out.append(frame)
    return out


def _stage_reached(frames: list[dict] | None) -> str:
    """Where a run that ended abnormally had got to, by the frames it wrote."""
    if not frames or not frames[0].get("ok"):
        return "compile"
    return "tests" if sum("i" in f for f in frames) > 1 else "smoke"


def _exit_detail(code: int | None) -> tuple[Outcome, str]:
    if code is not None and code < 0:
        sig = -code
        if sig == signal.SIGXCPU:
            return Outcome.TIMEOUT, "CPU time limit"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return Outcome.FAILED, f"killed by {name}"
    return Outcome.FAILED, f"exited (status {code}) before returning all outputs"


class _Builder:
    """Collects stage results and closes them into one Verdict."""

    def __init__(self, stages: list[StageResult], total: int, meta: dict, seconds: float):
        self.stages, self.total, self.meta, self.seconds = stages, total, meta, seconds

    def add(self, stage: str, outcome: Outcome, seconds: float, detail: str = "") -> None:
        self.stages.append(StageResult(stage, outcome, seconds, detail))

    def finish(self, outcome: Outcome, stage: str, detail: str, passed: int = 0, signature: str = "") -> Verdict:
        self.add(stage, outcome, self.seconds, detail)
        if outcome is not Outcome.PASSED and not signature:
            signature = f"{stage}:{outcome.value}"
        return Verdict(outcome, tuple(self.stages), passed, self.total, signature, self.meta)


def verdict_from_result(pending, result: dict, replayer: Replayer, all_tests: bool, isolation: dict) -> Verdict:
    plan = pending.plan
    meta = {"isolation": isolation.get("level", "?"), "judge": "child" if plan.mode == "child" else "parent"}
    if plan.mode == "child":
        meta["judge_note"] = plan.note
    out = _Builder(list(pending.stages), plan.tests_total, meta, float(result.get("seconds", 0.0)))
    status = result["status"]
    if result.get("oom"):
        return out.finish(Outcome.MEMORY, "tests", "the candidate's processes ran out of memory (cgroup limit)", signature="memory")
    frames = parse_frames(result["lines"])
    if status in STATUS_DETAIL:
        return out.finish(Outcome.FAILED, _stage_reached(frames), STATUS_DETAIL[status], signature=status)
    if frames is None:
        return out.finish(Outcome.FAILED, "compile", "malformed output from the candidate process", signature="malformed")
    if not frames or "phase" not in frames[0]:
        if status == "timeout":
            return out.finish(Outcome.TIMEOUT, "compile", "time limit while loading the program", signature="timeout")
        outcome, detail = _exit_detail(result.get("exit"))
        return out.finish(outcome, "compile", detail, signature=detail.split(" (")[0])
    head, body = frames[0], frames[1:]
    if head.get("memory"):
        return out.finish(Outcome.MEMORY, "compile", "memory limit while loading the program")
    if "raise" in head:
        detail = f"{head['raise']}: {head.get('msg', '')}"[:300]
        return out.finish(Outcome.FAILED, "compile", detail, signature=f"compile:{head['raise']}")
    out.add("compile", Outcome.PASSED, float(head.get("s", 0.0)) if type(head.get("s")) in (int, float) else 0.0)
    if plan.mode == "child":
        return _child_verdict(out, body, status, result, plan.note)
    return _call_verdict(out, pending, body, status, result, replayer, all_tests)


def _child_verdict(out: _Builder, body: list[dict], status: str, result: dict, note: str) -> Verdict:
    if status == "timeout":
        return out.finish(Outcome.TIMEOUT, "tests", "time limit", signature="timeout")
    if len(body) != 1 or "check" not in body[0]:
        outcome, detail = _exit_detail(result.get("exit")) if body == [] else (Outcome.FAILED, "malformed output")
        return out.finish(outcome, "tests", detail)
    frame = body[0]
    if frame["check"] == "passed":
        return out.finish(Outcome.PASSED, "tests", f"judged in the child: {note}", 1)
    if frame.get("memory"):
        return out.finish(Outcome.MEMORY, "tests", "memory limit")
    return out.finish(Outcome.FAILED, "tests", f"{frame.get('raise')}: {frame.get('msg', '')}"[:300], 0, f"tests:{frame.get('raise')}")


def _call_verdict(out: _Builder, pending, body, status, result, replayer, all_tests) -> Verdict:
    plan = pending.plan
    calls = [f for f in body if "i" in f]
    ended = bool(body) and body[-1].get("end") is True
    if any(f.get("i") != k for k, f in enumerate(calls)) or len(calls) + ended != len(body) or len(calls) > len(plan.calls):
        return out.finish(Outcome.FAILED, "tests", "malformed output from the candidate process", signature="malformed")
    memory = next((k for k, f in enumerate(calls) if f.get("memory")), None)
    if memory is not None:
        return out.finish(Outcome.MEMORY, "smoke" if memory == 0 else "tests", f"memory limit in test {memory}", memory)
    smoke = pending.smoke or (judge(plan, calls[:1], replayer, partial=True) if calls else None)
    if smoke is not None:
        if not (smoke.passed or smoke.pending):
            return out.finish(Outcome.FAILED, "smoke", smoke.detail, 0, f"smoke:{smoke.signature}")
        out.add("smoke", Outcome.PASSED, pending.smoke_seconds)
    if status == "timeout":
        partial = judge(plan, calls, replayer, partial=True) if calls else None
        return out.finish(Outcome.TIMEOUT, "tests" if calls else "smoke",
                          f"time limit after {len(calls)} of {len(plan.calls)} tests",
                          partial.tests_passed if partial else 0, "timeout")
    if not ended or len(calls) != len(plan.calls):
        outcome, detail = _exit_detail(result.get("exit"))
        return out.finish(outcome, "tests" if calls else "smoke", detail, 0, detail.split(" (")[0])
    verdict = judge(plan, calls, replayer, all_tests=all_tests)
    if verdict.passed:
        return out.finish(Outcome.PASSED, "tests", "", len(plan.calls))
    return out.finish(Outcome.FAILED, "tests", verdict.detail, verdict.tests_passed, f"tests:{verdict.signature}")
