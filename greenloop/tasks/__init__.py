"""Task families: where tasks come from and how a `--tasks` spec names them.

A spec is `family`, `family:ARG` or either with `@split`, e.g. `humaneval`,
`mbpp:data/mbpp.jsonl@test`, `jsonl:my_tasks.jsonl`. Several specs join with commas.
Each family is a small class registered in `task_families`; `data_paths` tells the
sandbox which files hold its tests, so candidates cannot read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from greenloop.registry import Registry
from greenloop.types import Task


class TaskFamily(Protocol):
    name: str

    def load(self, arg: str | None, split: str | None) -> list[Task]: ...

    def data_paths(self, arg: str | None) -> list[str]: ...


task_families: Registry[type] = Registry("task_family")
task_families.register_lazy("humaneval", "greenloop.tasks.humaneval:HumanEval")
task_families.register_lazy("mbpp", "greenloop.tasks.mbpp:MBPP")
task_families.register_lazy("jsonl", "greenloop.tasks.jsonl_tasks:JsonlTasks")
task_families.register_lazy("koans", "greenloop.tasks.koans:Koans")
task_families.register_lazy("rust_koans", "greenloop.tasks.rust_koans:RustKoans")
task_families.register_lazy("repair", "greenloop.tasks.repair_tasks:RepairTasks")
task_families.register_lazy("kernels", "greenloop.tasks.kernels:KernelTasks")


@dataclass(frozen=True)
class TaskSpec:
    family: str
    arg: str | None = None
    split: str | None = None

    @classmethod
    def parse(cls, text: str) -> "TaskSpec":
        text = text.strip()
        if not text:
            raise ValueError("empty task spec")
        family, _, arg = text.partition(":")
        split = None
        if "@" in (arg or family):
            if arg:
                arg, _, split = arg.rpartition("@")
            else:
                family, _, split = family.partition("@")
        return cls(family, arg or None, split or None)


@dataclass
class TaskSet:
    tasks: dict[str, Task]
    data_paths: list[str]

    def __len__(self) -> int:
        return len(self.tasks)


def load_tasks(specs: str) -> TaskSet:
    """Load every task named by a comma-separated list of specs."""
    tasks: dict[str, Task] = {}
    paths: list[str] = []
    for text in specs.split(","):
        spec = TaskSpec.parse(text)
        family = task_families.get(spec.family)()
        for task in family.load(spec.arg, spec.split):
            if task.task_id in tasks:
                raise ValueError(f"task {task.task_id!r} appears twice in --tasks {specs!r}")
            tasks[task.task_id] = task
        paths.extend(family.data_paths(spec.arg))
    return TaskSet(tasks, paths)
