"""The batch both sides of verify_throughput.py verify, and the floor under it.

- `build_samples`: the 164 HumanEval canonical solutions, COPIES copies each, and one
  wrong-but-plausible variant per task (WRONG_TAIL nudges the entry point's answer).
- `own_code_cpu`: the CPU seconds those candidates' own code takes in this process, with
  no sandbox and no judging: a lower bound on any verifier's cost per candidate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

COPIES = 5

# Appended after the canonical body (the completion continues the prompt, so the prompt's
# function is complete by then). It rebinds the entry point's global name without a
# top-level `def <entry>` or `<entry> =`, so the completion still reads as a continuation.
WRONG_TAIL = '''

def _nudged(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value + value[-1:] if value else [0]
    if isinstance(value, tuple):
        return value + value[-1:] if value else (0,)
    if isinstance(value, dict):
        return {**value, "extra": 0}
    return 0 if value is None else None


def _wrong(entry):
    def call(*args, **kwargs):
        return _nudged(entry(*args, **kwargs))
    return call


globals()[{entry!r}] = _wrong({entry})
'''

@dataclass
class Sample:
    task_id: str
    completion: str
    correct: bool  # what the candidate is meant to be
    copy: int


def build_samples(problems: dict) -> list[Sample]:
    samples = []
    for task_id, problem in problems.items():
        for copy in range(COPIES):
            samples.append(Sample(task_id, problem["canonical_solution"], True, copy))
        wrong = problem["canonical_solution"] + WRONG_TAIL.replace("{entry!r}", repr(problem["entry_point"])).replace(
            "{entry}", problem["entry_point"])
        samples.append(Sample(task_id, wrong, False, COPIES))
    return samples



def own_code_cpu(samples: list[Sample], problems: dict, plans: dict) -> float:
    """CPU seconds the candidates' own code takes with no sandbox and no judging: each
    program (prompt + completion, compiled beforehand) runs in a fresh namespace in this
    process, then its entry point on the calls greenloop's plan sends the child (all of
    them for a correct candidate, the first for a wrong variant, which fails there). An
    approximate lower bound on any verifier's CPU per candidate: it leaves out checks that
    run beside the candidate (none in HumanEval) and a fresh process's cold caches."""
    import marshal

    jobs = []
    for s in samples:
        plan = plans[s.task_id]
        calls = marshal.loads(plan.marshalled_calls)
        code = compile(problems[s.task_id]["prompt"] + s.completion, s.task_id, "exec")
        jobs.append((code, problems[s.task_id]["entry_point"], calls if s.correct else calls[:1]))
    started = time.process_time()
    for code, entry, calls in jobs:
        namespace = {"__name__": "__candidate__"}
        try:
            exec(code, namespace)
            function = namespace[entry]
        except Exception:
            continue
        for args, kwargs in calls:
            try:
                function(*args, **kwargs)
            except Exception:
                pass
    return time.process_time() - started
