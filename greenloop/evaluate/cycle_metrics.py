"""The frozen-set figures a self-improvement cycle reports.

- pass rate: the share of frozen tasks solved;
- median steps-to-green: over solved tasks, the steps the agent took until the tests
  passed (1 for a single sampled answer that passed);
- repeat-error rate: among tasks failing in both this run and the one it is compared
  with, the share failing with the same normalised error signature (a model that learns
  from its mistakes stops repeating them);
- per-family pass rates.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    family: str
    passed: bool
    steps_to_green: int | None = None
    error_signature: str = ""


def repeat_error_rate(current: dict[str, TaskResult], previous: dict[str, TaskResult]) -> float | None:
    """None when no task failed in both runs (nothing to compare)."""
    both = [t for t in current if t in previous and not current[t].passed and not previous[t].passed]
    if not both:
        return None
    return sum(current[t].error_signature == previous[t].error_signature for t in both) / len(both)


def summarise(results: dict[str, TaskResult], previous: dict[str, TaskResult] | None = None) -> dict:
    if not results:
        raise ValueError("no frozen-set results to summarise")
    solved = [r.steps_to_green for r in results.values() if r.passed and r.steps_to_green is not None]
    families: dict[str, list[bool]] = {}
    for r in results.values():
        families.setdefault(r.family, []).append(r.passed)
    return {
        "tasks": len(results),
        "passed": sum(r.passed for r in results.values()),
        "pass_rate": sum(r.passed for r in results.values()) / len(results),
        "median_steps_to_green": statistics.median(solved) if solved else None,
        "repeat_error_rate": repeat_error_rate(results, previous) if previous else None,
        "family_pass_rates": {f: sum(v) / len(v) for f, v in sorted(families.items())},
    }
