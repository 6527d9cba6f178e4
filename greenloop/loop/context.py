"""What every phase of a run shares: the config, the run folder, the store, the task sets,
one verifier (its sandbox pool started once), the policy of the checkpoint in use, and how
tasks are put to the policy.

Three prompt styles:
- `edit`, for greenloop's own small models: the broken program with numbered lines, and
  the answer is the edit (`greenloop.text.edit_format`), a dozen tokens instead of the
  whole program;
- `raw`: the broken program itself, and the answer is the whole fixed program;
- `instruct`, for chat-trained LLMs: asks for the fixed program in a fenced block.
`auto` picks edit for greenloop model folders and instruct otherwise. A greenloop model
is pre-trained in the style it will be asked in (`greenloop train sft --format`).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from typing_extensions import Self

from greenloop.loop.config import CycleConfig
from greenloop.tasks import TaskSet, load_tasks
from greenloop.text.edit_format import EditError, apply_edit, edit_of, edit_prompt
from greenloop.types import Task

INSTRUCT = ("Fix the bug in this {language} program. {hint}Reply with the whole fixed program in one "
            "```{language} block.\n\n```{language}\n{broken}```\n")


def _frozen_list(frozen: TaskSet, config: CycleConfig) -> list[Task]:
    """The frozen tasks every eval answers, by id: all, or a seeded `eval_limit` of them."""
    tasks = sorted(frozen.tasks.values(), key=lambda t: t.task_id)
    if config.eval_limit is None or config.eval_limit >= len(tasks):
        return tasks
    return sorted(random.Random(f"{config.seed}:frozen").sample(tasks, config.eval_limit), key=lambda t: t.task_id)


def check_no_leak(train: TaskSet, frozen: TaskSet) -> None:
    """The frozen set must never be trained on: no task, and no function a task was made
    from (a repair task's `source_task`), may be on both sides."""
    def origins(tasks: TaskSet) -> set[str]:
        return {t.task_id for t in tasks.tasks.values()} | {t.meta["source_task"] for t in tasks.tasks.values()
                                                           if t.meta.get("source_task")}
    overlap = origins(train) & origins(frozen)
    if overlap:
        raise ValueError(f"the frozen set shares {len(overlap)} tasks or source functions with the training tasks "
                         f"(e.g. {min(overlap)}); it must never be trained on")


class LoopContext:
    def __init__(self, config: CycleConfig, show_progress: bool = True, policy_factory=None):
        from greenloop.store import EpisodeStore
        from greenloop.train.finetune import is_greenloop_model
        from greenloop.verify.funnel import Verifier, VerifyConfig

        self.config = config
        self.folder = Path(config.out)
        self.run_id = self.folder.resolve().name
        self.show_progress = show_progress
        self.train = load_tasks(config.train_tasks)
        self.frozen = load_tasks(config.eval_tasks)
        check_no_leak(self.train, self.frozen)
        unknown = sorted(set(config.gate.critical) - set(self.frozen.tasks))
        if unknown:
            raise ValueError(f"--critical names tasks that are not in the frozen set ({config.eval_tasks}): "
                             f"{', '.join(unknown[:3])}")
        self.frozen_list = _frozen_list(self.frozen, config)
        style = config.prompt_style
        self.style = style if style != "auto" else ("edit" if is_greenloop_model(config.model) else "instruct")
        self.store = EpisodeStore(self.folder / "store.db")
        self.store.start_run(self.run_id, "cycle", config.to_dict())
        both = TaskSet({**self.train.tasks, **self.frozen.tasks}, [*self.train.data_paths, *self.frozen.data_paths])
        self.verifier = Verifier(both, VerifyConfig(workers=config.workers, timeout_s=5.0))
        self._policy: tuple[str, object] | None = None
        self._policy_factory = policy_factory  # (checkpoint name, model path) -> policy; default: local
        self._bars: dict[str, object] = {}

    def close(self) -> None:
        self.verifier.close()
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # checkpoints -------------------------------------------------------------------
    def checkpoint_dir(self, cycle: int) -> Path:
        return self.folder / "checkpoints" / f"cycle-{cycle}"

    def model_path(self, checkpoint: str) -> str:
        return self.config.model if checkpoint == "base" else str(self.folder / "checkpoints" / checkpoint)

    def policy(self, checkpoint: str):
        """The policy of one checkpoint; only one is held in memory at a time."""
        from greenloop.policy import load_policy

        if self._policy is None or self._policy[0] != checkpoint:
            self._policy = None
            path = self.model_path(checkpoint)
            policy = (self._policy_factory(checkpoint, path) if self._policy_factory else
                      load_policy("local:" + path, seed=self.config.seed, chat=self.style == "instruct",
                                  batch_size=self.config.batch_size))
            self._policy = (checkpoint, policy)
        return self._policy[1]

    # prompts -----------------------------------------------------------------------
    def prompt(self, task: Task) -> str:
        broken = task.meta.get("broken", task.prompt)
        if self.style == "raw":
            return broken
        if self.style == "edit":
            return edit_prompt(broken)
        hint = task.meta.get("hint", "")
        return INSTRUCT.format(language=task.meta.get("language", "python"), hint=f"{hint} " if hint else "",
                               broken=broken if broken.endswith("\n") else broken + "\n")

    def training_completion(self, task: Task, program: str) -> str:
        if self.style == "raw":
            return program
        if self.style == "edit":
            return edit_of(task.meta.get("broken", task.prompt), program)
        language = task.meta.get("language", "python")
        return f"```{language}\n{program if program.endswith(chr(10)) else program + chr(10)}```"

    def program_of(self, task: Task, completion: str) -> str:
        """The program an answer stands for: the broken program with the edit applied
        (empty when the edit cannot be applied: the verifier rejects it), the answer
        itself, or its fenced block."""
        if self.style == "raw":
            return completion
        if self.style == "edit":
            try:
                return apply_edit(task.meta.get("broken", task.prompt), completion)
            except EditError:
                return ""
        from greenloop.verify.extract import extract_program

        return extract_program(task, completion).program or completion

    # progress ----------------------------------------------------------------------
    def progress(self, label: str, done: int, total: int) -> None:
        if not self.show_progress:
            return
        from tqdm import tqdm

        bar = self._bars.get(label)
        if bar is None:
            bar = self._bars[label] = tqdm(total=total, desc=label, unit="task", file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            self._bars.pop(label, None)
