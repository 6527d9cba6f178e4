"""`greenloop tasks ls|export`."""

from __future__ import annotations

import ast

from greenloop.cli.verify import TASKS_HELP
from greenloop.io import write_jsonl
from greenloop.tasks import load_tasks, task_families
from greenloop.types import Task


def add_commands(commands) -> None:
    p = commands.add_parser("tasks", help="list task families and tasks, or export them",
                            description="List the registered task families (no --tasks) or the tasks of a spec; export tasks.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", help="list families, or the tasks a spec names")
    ls.add_argument("--tasks", help=TASKS_HELP)
    ls.set_defaults(run=run_ls)
    ex = sub.add_parser("export", help="write tasks as greenloop JSONL, or their reference solutions as samples",
                        description="--format tasks: greenloop's own task schema (see `greenloop.tasks.jsonl_tasks`). "
                                    "--format samples: each task's reference as a sample (task_id, completion), "
                                    "ready for `greenloop eval`.")
    ex.add_argument("--tasks", required=True)
    ex.add_argument("--out", required=True)
    ex.add_argument("--format", choices=["tasks", "samples"], default="tasks")
    ex.set_defaults(run=run_export)


def run_ls(args) -> int:
    if not args.tasks:
        for name in task_families.names():
            print(name)
        return 0
    for task in load_tasks(args.tasks).tasks.values():
        tests = sum(1 for t in task.tests if t.check is None)
        checks = sum(1 for t in task.tests if t.check is not None)
        kind = f"{tests} calls" if tests else ""
        kind += (", " if kind and checks else "") + (f"{checks} check program" if checks else "")
        split = task.meta.get("split", "")
        print(f"{task.task_id}\t{task.entry_point}\t{kind}\t{split}".rstrip())
    return 0


def reference_completion(task: Task) -> str:
    reference = task.reference or ""
    if task.prompt_is_code and reference.startswith(task.prompt):
        return reference[len(task.prompt):]
    return reference


def task_row(task: Task) -> dict:
    tests, check = [], None
    for t in task.tests:
        if t.check is not None:
            check = t.check if check is None else check + "\n" + t.check
            continue
        row = {"input": repr(tuple(t.args))}
        if t.kwargs:
            row["kwargs"] = dict(t.kwargs)
        if t.has_expected:
            try:  # repr round-trips tuples and sets; NaN and infinities go as JSON instead
                ast.literal_eval(repr(t.expected))
                row["output"] = repr(t.expected)
            except (ValueError, SyntaxError):
                row["expected"] = t.expected
        tests.append(row)
    return {"task_id": task.task_id, "prompt": task.prompt, "entry_point": task.entry_point, "tests": tests,
            "check": check, "reference": task.reference, "context": task.context,
            "prompt_is_code": task.prompt_is_code, "meta": {**task.meta, "family": task.family}}


def run_export(args) -> int:
    tasks = [t for t in load_tasks(args.tasks).tasks.values()]
    if args.format == "samples":
        missing = [t.task_id for t in tasks if not t.reference]
        rows = [{"task_id": t.task_id, "completion": reference_completion(t)} for t in tasks if t.reference]
        if missing:
            print(f"note: {len(missing)} tasks have no reference and were left out")
    else:
        rows = [task_row(t) for t in tasks]
    count = write_jsonl(args.out, rows)
    print(f"wrote {count} {'samples' if args.format == 'samples' else 'tasks'} to {args.out}")
    return 0
