"""Repair tasks: a broken program to fix, judged by the tests of the task it came from.

`--tasks repair:SOURCE[@split]`, where SOURCE is
- a task spec with tests (`humaneval`, `mbpp:PATH`, `jsonl:PATH`): its reference solutions
  are mutated and every mutant verified (`greenloop data mutate`), once; the result is kept
  under the greenloop cache (`$GREENLOOP_CACHE/repair/`) and reused;
- or `dir:PATH`, the output folder of `greenloop data mutate --source SPEC` run on a task
  source.

Each pair becomes a task `repair/<pair_id>`: the prompt is the buggy program, the
completion must be the whole fixed program (`prompt_is_code` false), and the tests and
reference are the original task's, so a fix counts only when it passes them. The split
is by the original task (a third of them, chosen by a stable hash, are `eval`), so no
function of the frozen evaluation set is ever seen in training. `meta` carries `broken`,
`bug_type`, `bug_family` (logic or syntax), `source_task` and `split`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

from greenloop.types import Task

EVAL_SHARE = 3  # one source task in three is frozen for evaluation


def split_of(source_task: str) -> str:
    from greenloop.data.pairs import stable_bucket

    return "eval" if stable_bucket(source_task, EVAL_SHARE) == 0 else "train"


def _mutate_dir(source: str) -> Path:
    from greenloop.io import cache_root

    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    return Path(cache_root()) / "repair" / key


def _ensure_mutants(source: str) -> Path:
    """The mutate output folder for a task spec, made (or resumed) on first use."""
    from greenloop.data.mutate import MutateConfig, run_mutate

    folder = _mutate_dir(source)
    if not (folder / "manifest.json").exists():
        print(f"repair tasks: mutating and verifying {source} once into {folder}", flush=True)
        run_mutate(MutateConfig(source=source), str(folder), workers=os.cpu_count() or 1)
    return folder


def _source_spec(folder: Path) -> str:
    config = json.loads((folder / "run.json").read_text()).get("config", {})
    source = config.get("source", "")
    from greenloop.data.mutate import TASK_FAMILIES

    if source.split(":", 1)[0].split("@", 1)[0] not in TASK_FAMILIES:
        raise ValueError(f"{folder}: made from {source!r}, not a task source with tests "
                         f"({', '.join(TASK_FAMILIES)}); repair tasks need the original tests")
    return source


def repair_tasks(folder: Path, split: str | None) -> list[Task]:
    from greenloop.data.shards import input_shards, read_pairs
    from greenloop.tasks import load_tasks

    originals = load_tasks(_source_spec(folder)).tasks
    tasks, seen = [], set()
    for pair in read_pairs(input_shards(folder)):
        source_task = pair.get("task_id")
        original = originals.get(source_task)
        if original is None or (source_task, pair["buggy"]) in seen:  # two operators can make one mutant
            continue
        seen.add((source_task, pair["buggy"]))
        task_split = split_of(source_task)
        if split is not None and task_split != split:
            continue
        meta = {"language": "python", "broken": pair["buggy"], "bug_type": pair["bug_type"],
                "bug_family": pair["family"], "source_task": source_task, "split": task_split,
                "difficulty": pair.get("difficulty")}
        tasks.append(replace(original, task_id=f"repair/{pair['pair_id']}", family="repair", prompt=pair["buggy"],
                             prompt_is_code=False, meta=meta))
    return sorted(tasks, key=lambda t: t.task_id)


class RepairTasks:
    name = "repair"

    def _folder(self, arg: str | None) -> Path:
        if not arg:
            raise ValueError("the repair task family needs a source: --tasks repair:humaneval or repair:dir:PATH")
        if arg.startswith("dir:"):
            return Path(arg[4:])
        return _ensure_mutants(arg)

    def load(self, arg: str | None, split: str | None) -> list[Task]:
        if split not in (None, "train", "eval"):
            raise ValueError(f"repair tasks have the splits train and eval, not {split!r}")
        return repair_tasks(self._folder(arg), split)

    def data_paths(self, arg: str | None) -> list[str]:
        from greenloop.tasks import TaskSpec, task_families

        if not arg:
            return []
        if arg.startswith("dir:"):
            return [os.path.abspath(arg[4:])]
        source = TaskSpec.parse(arg)
        return [str(_mutate_dir(arg)), *task_families.get(source.family)().data_paths(source.arg)]
