"""The staged funnel: extract → static → compile → smoke → tests, one verdict per candidate.

Cheap stages run in the verifier (the static stage compiles the program; the verifier
never runs it); compile (loading the program), smoke and tests run in the sandbox, in one
child per candidate. The child streams one output per call; the first is judged as soon
as it arrives (the smoke stage), and a wrong one stops the child at once. Each stage's
outcome and seconds go into the verdict, so a run can report what pruning saved.
Tasks whose meta says `language: rust` are built and tested by cargo instead (`verify.rust`).
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from greenloop.sandbox import WorkerPool
from greenloop.sandbox.limits import Limits
from greenloop.tasks import TaskSet
from greenloop.types import Candidate, Outcome, StageResult, Verdict
from greenloop.verify.extract import compile_candidate, extract_program
from greenloop.verify.inputs import add_extra_inputs
from greenloop.verify.deadline import time_guard
from greenloop.verify.judge import Judgement, Replayer, judge
from greenloop.verify.outcome import parse_frames, verdict_from_result
from greenloop.verify.record import TaskPlan, build_plans, cache_dir
from greenloop.verify.rust import CARGO_MISSING, RustConfig, cargo_available, is_rust_task, verify_rust
from greenloop.verify.rust_isolation import level as rust_level

STAGES = ("extract", "static", "compile", "smoke", "tests", "perf")
PERF_REPEATS = 3  # reference runs per task; the median is the anchor
JUDGE_TIMEOUT_S = 10.0  # the verifier's own time to judge one candidate's outputs


@dataclass(frozen=True)
class VerifyConfig:
    workers: int | None = None  # fork servers; default one per core
    timeout_s: float = 10.0  # wall clock per candidate
    memory_mb: int = 2048
    all_tests: bool = False  # run every test for partial credit instead of stopping at the first failure
    smoke: bool = True  # judge the first output early and stop wrong candidates there
    isolation: str = "auto"  # "auto": the strongest the kernel allows; "none": rlimits only
    max_code_bytes: int = 100_000
    extra_inputs: int = 0  # extra test inputs per task by type-aware mutation, judged against the reference
    perf: bool = False  # a perf stage: a passing candidate's CPU time against the reference's
    perf_max_ratio: float | None = None  # with perf: fail candidates slower than this many times the reference
    # a candidate's time limit from its task's reference: this many times the reference's
    # CPU time in the sandbox, at least min_timeout_s, at most timeout_s or twice the
    # reference's time, whichever is more (None: timeout_s for all)
    timeout_factor: float | None = None
    min_timeout_s: float = 0.5

    def __post_init__(self):
        if self.perf_max_ratio is not None and (self.perf_max_ratio <= 0 or not self.perf):
            raise ValueError("VerifyConfig.perf_max_ratio needs perf=True and a value > 0")
        if self.extra_inputs < 0:
            raise ValueError(f"VerifyConfig.extra_inputs must be >= 0, got {self.extra_inputs}")
        if self.timeout_factor is not None and (self.timeout_factor <= 0 or self.min_timeout_s <= 0):
            raise ValueError("VerifyConfig.timeout_factor and min_timeout_s must be > 0")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"VerifyConfig.workers must be >= 1, got {self.workers}")
        if self.isolation not in ("auto", "none"):
            raise ValueError(f"VerifyConfig.isolation must be 'auto' or 'none', got {self.isolation!r}")
        Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb)  # validates both

    @property
    def limits(self) -> Limits:
        return Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb)


@dataclass
class _InFlight:
    """A candidate handed to the sandbox, with what is known of it so far."""

    plan: TaskPlan
    stages: list[StageResult]
    smoke: Judgement | None = None
    smoke_seconds: float = 0.0


class Verifier:
    """Holds the sandbox pool and task plans across batches.

    with Verifier(task_set, VerifyConfig()) as verifier:
        for index, verdict in verifier.verify(candidates): ...
    """

    def __init__(self, tasks: TaskSet, config: VerifyConfig = VerifyConfig(), hidden_paths: Iterable[str] = ()):
        self.tasks = tasks
        self.config = config
        self.plans: dict[str, TaskPlan] = {}
        self.replayer = Replayer()
        os.makedirs(cache_dir(), exist_ok=True)  # must exist now to be hidden from candidates
        hidden = [*tasks.data_paths, cache_dir(), *hidden_paths]
        self.hidden = tuple(hidden)
        self.pool = WorkerPool(config.workers, config.isolation, hidden, config.limits)
        self.isolation = self.pool.isolation
        # Wall-clock limits are fair in CPU terms: with more workers than cores each one gets
        # about cores/workers of a core, so the cap stretches by workers/cores (RLIMIT_CPU
        # does not). A reference that needs most of the cap then still passes on a busy pool.
        self.stretch = max(1.0, self.pool.size / (os.cpu_count() or 1))
        # Built once: dataclasses.asdict deep-copies, which cost tens of microseconds a job.
        self.limits = {**config.limits.to_dict(), "cpu_s": config.limits.cpu_seconds,
                       "timeout_s": config.timeout_s * self.stretch}

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "Verifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def plan_for(self, candidates: list[Candidate]) -> None:
        needed = {c.task_id for c in candidates if c.task_id in self.tasks.tasks
                  and not is_rust_task(self.tasks.tasks[c.task_id])} - set(self.plans)
        new = build_plans([self.tasks.tasks[t] for t in sorted(needed)])
        if self.config.extra_inputs:
            add_extra_inputs(list(new.values()), self.config.extra_inputs)
        if self.config.perf or self.config.timeout_factor:
            self._measure_references(list(new.values()))
        self.plans.update(new)

    def _measure_references(self, plans: list[TaskPlan]) -> None:
        """Each reference's CPU time on the task's calls, in the sandbox like a candidate
        (the same start-up cost on both sides of the ratio); median of PERF_REPEATS."""
        timed = [p for p in plans if p.mode in ("expected", "replay") and p.task.reference]
        repeats = PERF_REPEATS if self.config.perf else 1  # one run is enough to scale a time limit
        # compiled here like a candidate, so neither side's time includes compiling
        compiled = [compile_candidate(p.task.reference, len(p.task.reference.encode()) + 1)[2] for p in timed]
        jobs = [self._job(p, None if code else p.task.reference, code) for p, code in zip(timed, compiled)
                for _ in range(repeats)]
        seconds: dict[int, list[float]] = {}
        for index, result in self.pool.run(jobs):
            if result.get("cpu_s") is not None and result["status"] == "exited":
                seconds.setdefault(index // repeats, []).append(result["cpu_s"])
        for i, plan in enumerate(timed):
            if seconds.get(i):
                plan.reference_cpu_s = statistics.median(seconds[i])

    def verify(self, candidates: list[Candidate]) -> Iterator[tuple[int, Verdict]]:
        """Yield (index, verdict) for every candidate, in completion order."""
        rust = [i for i, c in enumerate(candidates) if is_rust_task(self.tasks.tasks.get(c.task_id))]
        if rust:
            yield from self._verify_with_rust(candidates, rust)
            return
        self.plan_for(candidates)
        yield from self.verify_stream(candidates)

    def verify_stream(self, candidates: Iterable[Candidate]) -> Iterator[tuple[int, Verdict]]:
        """`verify` for candidates made while earlier ones run: each is taken from
        `candidates` only when a worker has room (see WorkerPool.run), so a generator that writes them (the next
        task's mutants, say) keeps the sandbox busy with no gap between batches. Yields
        (index, verdict) in completion order. Python tasks only; plan the tasks first with
        `plan_for` when the config times references (perf, timeout_factor)."""
        pending: dict[int, tuple[int, _InFlight]] = {}  # job position -> (candidate index, its state)
        positions = itertools.count()  # the pool numbers jobs in the order they are made
        early: deque[tuple[int, Verdict]] = deque()  # verdicts the cheap stages reached

        def jobs() -> Iterator[dict]:
            for index, candidate in enumerate(candidates):
                self._plan_in_stream(candidate)
                verdict, compiled, stages = self._prepare(candidate)
                if verdict is not None:
                    early.append((index, verdict))
                    continue
                plan = self.plans[candidate.task_id]
                pending[next(positions)] = (index, _InFlight(plan, stages))
                yield self._job(plan, compiled=compiled)

        on_partial = (lambda i, lines: self._smoke(pending[i][1], lines)) if self.config.smoke else None
        for i, result in self.pool.run(jobs(), on_partial):
            while early:
                yield early.popleft()
            index, inflight = pending.pop(i)
            yield index, self._verdict(inflight, result)
        while early:
            yield early.popleft()

    def _plan_in_stream(self, candidate: Candidate) -> None:
        """Plan a task met in a stream, where the pool is busy and cannot time references."""
        task = self.tasks.tasks.get(candidate.task_id)
        if task is None or task.task_id in self.plans:
            return  # unknown tasks are rejected by _prepare
        if is_rust_task(task) or self.config.perf or self.config.timeout_factor:
            raise ValueError(f"task {task.task_id}: call plan_for() with its candidates before verify_stream() "
                             "(references are timed before a stream starts; Rust tasks go through verify())")
        self.plan_for([candidate])

    def _verify_with_rust(self, candidates: list[Candidate], rust: list[int]) -> Iterator[tuple[int, Verdict]]:
        """Rust candidates go to cargo (`verify.rust`), the rest through the Python funnel."""
        chosen = set(rust)
        python = [i for i in range(len(candidates)) if i not in chosen]
        if python:
            for j, verdict in self.verify([candidates[i] for i in python]):
                yield python[j], verdict
        config = RustConfig(timeout_s=self.config.timeout_s, memory_mb=self.config.memory_mb,
                            isolation=self.config.isolation, hidden_paths=self.hidden,
                            max_code_bytes=self.config.max_code_bytes)
        notes = self.isolation.setdefault("notes", [])
        note = (f"Rust candidates: cargo under {rust_level(config.isolation)} isolation"
                if cargo_available() else CARGO_MISSING)
        if note not in notes:
            notes.append(note)  # printed in every summary; each Rust verdict says it too
        jobs = [(i, candidates[i]) for i in rust]
        yield from verify_rust(self.tasks.tasks, jobs, config, self.config.workers)

    def _prepare(self, candidate: Candidate) -> tuple[Verdict | None, bytes | None, list[StageResult]]:
        """The cheap stages. Returns a verdict if they end it, else the program to run,
        compiled and marshalled."""
        task = self.tasks.tasks.get(candidate.task_id)
        if task is None:
            stage = StageResult("extract", Outcome.REJECTED, 0.0, f"unknown task_id {candidate.task_id!r}")
            return Verdict(Outcome.REJECTED, (stage,), error_signature="unknown task"), None, []
        plan = self.plans[task.task_id]
        if plan.mode == "broken":
            stage = StageResult("tests", Outcome.INFRA_ERROR, 0.0, f"the task cannot be judged: {plan.note}")
            return Verdict(Outcome.INFRA_ERROR, (stage,), error_signature="task cannot be judged"), None, []
        started = time.perf_counter()
        extracted = extract_program(task, candidate.completion)
        extract = StageResult("extract", Outcome.PASSED if extracted.program else Outcome.REJECTED,
                              time.perf_counter() - started, extracted.how)
        if extracted.program is None:
            return Verdict(Outcome.REJECTED, (extract,), 0, plan.tests_total, "no code"), None, []
        started = time.perf_counter()
        outcome, detail, compiled = compile_candidate(extracted.program, self.config.max_code_bytes)
        static = StageResult("static", outcome, time.perf_counter() - started, detail)
        if outcome is not Outcome.PASSED:
            return Verdict(outcome, (extract, static), 0, plan.tests_total, f"static:{detail.split(':')[0]}"), None, []
        return None, compiled, [extract, static]

    def _job(self, plan: TaskPlan, program: str | None = None, compiled: bytes | None = None) -> dict:
        """What the sandbox runs: the program (as source, or compiled by `compile_candidate`)
        and the calls (never an expected value)."""
        limits = dict(self.limits)
        if self.config.timeout_factor and plan.reference_cpu_s is not None:
            # the cap never keeps a task's own reference from passing: at least twice its time
            cap = max(self.config.timeout_s, 2 * plan.reference_cpu_s)
            scaled = max(self.config.min_timeout_s, self.config.timeout_factor * plan.reference_cpu_s)
            limits.update(timeout_s=min(cap * self.stretch, scaled), cpu_s=int(min(cap, scaled)) + 1)
        child_judges = plan.mode == "child"
        return {"code": program, "compiled": compiled, "entry": plan.task.entry_point, "limits": limits,
                "calls": None if child_judges else plan.marshalled_calls,
                "return_args": plan.mutates, "check": plan.check if child_judges else None}

    def _smoke(self, pending: _InFlight, lines: list[str]) -> bool:
        started = time.perf_counter()
        frames = parse_frames(lines)
        if frames is None or pending.plan.mode == "child" or not frames[1:]:
            return True
        try:
            with time_guard(JUDGE_TIMEOUT_S):
                pending.smoke = judge(pending.plan, frames[1:2], self.replayer, partial=True)
        except Exception:  # the final verdict judges (and names) the problem
            return True
        pending.smoke_seconds = time.perf_counter() - started
        return pending.smoke.passed or pending.smoke.pending

    def _verdict(self, pending: _InFlight, result: dict) -> Verdict:
        """Judged under a time limit; whatever the candidate's outputs make the judging
        do (take too long, raise), it costs that candidate its verdict, not the batch."""
        try:
            with time_guard(JUDGE_TIMEOUT_S):
                verdict = verdict_from_result(pending, result, self.replayer, self.config.all_tests, self.isolation)
            return self._perf(verdict, pending.plan, result.get("cpu_s")) if self.config.perf else verdict
        except Exception as exc:
            detail = f"its outputs could not be judged: {type(exc).__name__}: {str(exc)[:150]}"
            stage = StageResult("tests", Outcome.FAILED, float(result.get("seconds", 0.0)), detail)
            return Verdict(Outcome.FAILED, (*pending.stages, stage), 0, pending.plan.tests_total,
                           "tests:unjudgeable", {"isolation": self.isolation.get("level", "?"), "judge": "parent"})


    def _perf(self, verdict: Verdict, plan: TaskPlan, cpu_s: float | None) -> Verdict:
        """The optional last stage: CPU seconds of the candidate's process against the
        reference's (both include the same start-up, so small differences are noise)."""
        if not verdict.passed or cpu_s is None or not plan.reference_cpu_s:
            return verdict
        ratio = cpu_s / plan.reference_cpu_s
        slow = self.config.perf_max_ratio is not None and ratio > self.config.perf_max_ratio
        detail = f"{ratio:.2f}x the reference's CPU time ({cpu_s * 1000:.1f} ms vs {plan.reference_cpu_s * 1000:.1f} ms)"
        stage = StageResult("perf", Outcome.FAILED if slow else Outcome.PASSED, cpu_s, detail)
        if slow:
            return replace(verdict, outcome=Outcome.FAILED, stages=(*verdict.stages, stage), error_signature="perf:slow")
        return replace(verdict, stages=(*verdict.stages, stage))


def verify_candidates(tasks: TaskSet, candidates: list[Candidate], config: VerifyConfig = VerifyConfig()) -> list[Verdict]:
    """Verify a batch and return verdicts in input order."""
    verdicts: list[Verdict | None] = [None] * len(candidates)
    with Verifier(tasks, config) as verifier:
        for index, verdict in verifier.verify(candidates):
            verdicts[index] = verdict
    return verdicts  # type: ignore[return-value]
