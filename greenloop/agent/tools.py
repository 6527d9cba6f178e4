"""The agent's tools on one task's file: `apply_patch`, `run_check`, `run_tests`.

A `Workspace` holds the file being repaired (it starts as the task's broken program). The
tools act on it for real: patches change it, the check parses or compiles it (Python's
parser here; `cargo check` for Rust), and the tests go through the verifier's sandbox.
Each tool returns an `Observation`: what the model is shown next, the outcome, and a
normalised error signature (the exception type or the compiler's error code, without the
line numbers and names that make two runs of the same mistake look different).
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

from greenloop.agent.patch import PatchError, apply_patch
from greenloop.data.pairs import unified_diff
from greenloop.types import Candidate, Outcome, Task

MAX_SHOWN = 1500  # characters of an error shown back to the model


@dataclass(frozen=True)
class Observation:
    text: str                 # what the model reads next
    outcome: str              # "ok", "error", "passed", "failed", or an Outcome value
    error_signature: str = ""
    diff: str = ""            # the change a patch made


def normalise_signature(text: str) -> str:
    """`SyntaxError: expected ':' (line 3)` -> `SyntaxError: expected _`: the first line,
    without line references, quoted names and numbers (`evaluate.repair.normalise_message`),
    so the same mistake reads the same each time."""
    from greenloop.evaluate.repair import normalise_message

    first = text.strip().splitlines()[0] if text.strip() else ""
    return normalise_message(re.sub(r"\(.*?line \d+\)", "", first))


class Workspace:
    """One task's file under repair, and the verifier that judges it."""

    def __init__(self, task: Task, verifier, text: str | None = None):
        self.task = task
        self.verifier = verifier
        self.language = task.meta.get("language", "python")
        self.text = task.meta.get("broken", task.prompt) if text is None else text
        self.tests_run = 0

    @property
    def file_name(self) -> str:
        return "lib.rs" if self.language == "rust" else "main.py"

    def apply_patch(self, diff: str) -> Observation:
        try:
            after = apply_patch(self.text, diff)
        except PatchError as exc:
            return Observation(f"patch refused: {exc}", "error", "patch:" + normalise_signature(str(exc).split(": ", 1)[-1]))
        change = unified_diff(self.text, after, context=3)  # what the store records per step
        self.text = after
        if not change:
            return Observation("the patch changed nothing", "ok")
        return Observation("patch applied", "ok", diff=change)

    def run_check(self) -> Observation:
        if self.language == "rust":
            from greenloop.verify.rust import check_rust

            verdict = check_rust(self.text)
            ok = verdict.outcome is Outcome.PASSED
            return Observation("check passed" if ok else verdict.detail[:MAX_SHOWN], "ok" if ok else "error",
                               "" if ok else verdict.error_signature)
        return python_check(self.text)

    def run_tests(self) -> Observation:
        self.tests_run += 1
        candidate = Candidate(self.task.task_id, self.text, "agent", self.tests_run)
        [(_, verdict)] = list(self.verifier.verify([candidate]))
        if verdict.passed:
            return Observation(f"all {verdict.tests_total} tests passed", "passed")
        shown = f"{verdict.outcome.value} at stage {verdict.stage}: {verdict.detail}"[:MAX_SHOWN]
        shown += f" ({verdict.tests_passed}/{verdict.tests_total} tests passed)"
        return Observation(shown, verdict.outcome.value, verdict.error_signature or verdict.outcome.value)


def python_check(text: str) -> Observation:
    """Parse and compile without running anything (compiling runs no user code)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(ast.parse(text), "main.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        message = f"{type(exc).__name__}: {getattr(exc, 'msg', str(exc))}{where}"
        return Observation(message, "error", normalise_signature(f"{type(exc).__name__}: {getattr(exc, 'msg', '')}"))
    return Observation("check passed", "ok")
