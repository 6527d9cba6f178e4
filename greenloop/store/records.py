"""The rows of the episode store as typed records: runs, episodes with their steps, and
evaluation results, with their validation and their plain-dict (JSON) form.

Outcomes, episode modes and run statuses are enums; the database and the exports carry
their string values. Records are frozen; the store fills in what it assigns
(`episode_id`, `created_at`) when it reads them back.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

from greenloop.types import Outcome


class EpisodeMode(str, enum.Enum):
    """What an episode is: one sampled candidate, or a whole agent trajectory."""

    SAMPLE = "sample"
    AGENT = "agent"


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped on purpose (Ctrl-C, a budget ran out); resumable


def as_enum(kind: type[enum.Enum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in kind)
        raise ValueError(f"{name}: {value!r} is not one of {choices}") from None


def _count(value: Any, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}: expected a whole number >= 0, got {value!r}")


def _seconds(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name}: expected seconds >= 0, got {value!r}")


@dataclass(frozen=True)
class StepRecord:
    """One step of an agent trajectory. Its index is its position in the episode's
    `steps`. `outcome` is None for a step that ran no check (reading a file, say)."""

    command: str
    model_text: str = ""  # what the model wrote to produce this step
    diff: str = ""  # the patch the step applied, if any
    observation: str = ""  # what the tool answered, as the model saw it
    outcome: Outcome | None = None
    error_signature: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.outcome is not None:
            object.__setattr__(self, "outcome", as_enum(Outcome, self.outcome, "step outcome"))
        _count(self.tokens_in, "step tokens_in")
        _count(self.tokens_out, "step tokens_out")
        _seconds(self.seconds, "step seconds")

    def to_dict(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["outcome"] = self.outcome.value if self.outcome is not None else None
        return row


@dataclass(frozen=True)
class EpisodeRecord:
    """One attempt of a model at a task: a sampled candidate (`mode=SAMPLE`, `steps`
    empty) or an agent trajectory (`mode=AGENT`, one StepRecord per step).

    Its key within a run is (cycle, phase, task_id, sample_idx). `passed` follows from
    `outcome` (PASSED); giving a contradicting value raises. `steps_to_green` is the
    number of steps an agent took to reach passing tests, None if it never did.
    `first_error_signature` is the first error the trajectory met, `error_signature`
    the last, so repeated errors can be counted.
    """

    run_id: str
    cycle: int
    phase: str  # the loop's phase: "day", "sleep", "eval", ...
    task_id: str
    outcome: Outcome
    policy: str = ""  # which model or policy wrote it
    mode: EpisodeMode = EpisodeMode.SAMPLE
    sample_idx: int = 0
    task_family: str = ""  # default: task_id's prefix before "/" (task ids are family-qualified)
    passed: bool | None = None
    steps_to_green: int | None = None
    error_signature: str = ""
    first_error_signature: str = ""
    completion: str = ""  # the final completion, or the final state of an agent's edit
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    meta: Mapping[str, Any] = field(default_factory=dict)
    steps: tuple[StepRecord, ...] = ()
    episode_id: int | None = None  # assigned by the store
    created_at: str | None = None  # assigned by the store (ISO 8601, UTC)

    def __post_init__(self) -> None:
        for name in ("run_id", "phase", "task_id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"episode {name}: expected a non-empty string, got {getattr(self, name)!r}")
        _count(self.cycle, "episode cycle")
        _count(self.sample_idx, "episode sample_idx")
        outcome = as_enum(Outcome, self.outcome, "episode outcome")
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "mode", as_enum(EpisodeMode, self.mode, "episode mode"))
        if self.passed is not None and bool(self.passed) != (outcome is Outcome.PASSED):
            raise ValueError(f"episode {self.task_id}: passed={self.passed} contradicts outcome {outcome.value!r}")
        object.__setattr__(self, "passed", outcome is Outcome.PASSED)
        if not self.task_family:
            object.__setattr__(self, "task_family", family_of(self.task_id))
        if self.steps_to_green is not None:
            _count(self.steps_to_green, "episode steps_to_green")
        _count(self.tokens_in, "episode tokens_in")
        _count(self.tokens_out, "episode tokens_out")
        _seconds(self.seconds, "episode seconds")
        try:  # meta that cannot be stored fails here, not halfway through a transaction
            json.dumps(dict(self.meta))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"episode {self.task_id}: meta is not JSON-serialisable: {exc}") from None
        self._check_steps(self.steps)

    def _check_steps(self, steps: Sequence[Any]) -> None:
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
            raise ValueError(f"episode {self.task_id}: steps must be a list of StepRecord")
        for index, step in enumerate(steps):
            if not isinstance(step, StepRecord):
                raise ValueError(f"episode {self.task_id}: step {index} is a {type(step).__name__}, not a StepRecord")
        object.__setattr__(self, "steps", tuple(steps))

    @property
    def key(self) -> tuple[str, int, str, str, int]:
        """What makes an episode unique: (run_id, cycle, phase, task_id, sample_idx)."""
        return (self.run_id, self.cycle, self.phase, self.task_id, self.sample_idx)

    def stored(self, episode_id: int, created_at: str) -> EpisodeRecord:
        return replace(self, episode_id=episode_id, created_at=created_at)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: enum values as strings, steps nested in order."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "steps"}
        row.update(outcome=self.outcome.value, mode=self.mode.value, meta=dict(self.meta))
        row["steps"] = [step.to_dict() for step in self.steps]
        return row


def family_of(task_id: str) -> str:
    """`humaneval/12` -> `humaneval`; a task id without a family prefix gives ""."""
    return task_id.split("/", 1)[0] if "/" in task_id else ""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    kind: str  # "loop", "eval", "bootstrap", ...
    config: Mapping[str, Any]
    status: RunStatus
    created_at: str
    finished_at: str | None = None


@dataclass(frozen=True)
class EvalResult:
    """One metric of one checkpoint at one cycle; `family` None means all task families."""

    run_id: str
    cycle: int
    checkpoint: str
    metric: str
    value: float
    family: str | None = None
    created_at: str | None = None


@dataclass(frozen=True)
class PhaseCounts:
    """How many episodes one phase of one cycle holds and how many passed. Episodes the
    verifier failed on (INFRA_ERROR) do not count against the policy, so `pass_rate`
    leaves them out of the denominator."""

    run_id: str
    cycle: int
    phase: str
    episodes: int
    passed: int
    infra_errors: int

    @property
    def pass_rate(self) -> float | None:
        judged = self.episodes - self.infra_errors
        return self.passed / judged if judged else None
