"""MBPP (Austin et al. 2021): 974 basic Python problems, each with three assert tests.

Read from `mbpp.jsonl` in the original format (`mbpp:PATH`), or from the Hugging Face hub
with the `datasets` package when online (`mbpp` alone). Splits are the standard ones:
prompt 1-10, test 11-510, validation 511-600, train 601-974 (`mbpp:PATH@test`). The
completion is the whole program, since the prompt is prose.
"""

from __future__ import annotations

import ast
import os
import warnings

from greenloop.io import DataError, Record, read_jsonl, require
from greenloop.types import Task, TestCase

SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
HUB_DATASET = "google-research-datasets/mbpp"


def split_of(number: int) -> str:
    for name, (low, high) in SPLITS.items():
        if low <= number <= high:
            return name
    return "extra"


def entry_point_of(tests: list[str], reference: str) -> str:
    """The function the asserts call that the reference defines (MBPP names none)."""
    with warnings.catch_warnings():  # MBPP's code has old-style escape sequences
        warnings.simplefilter("ignore")
        tree = ast.parse(reference)
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for test in tests:
        for node in ast.walk(ast.parse(test)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
                return node.func.id
    raise ValueError("no test calls a function the reference defines")


def prompt_for(text: str, tests: list[str]) -> str:
    return f"{text}\nYour code should pass these tests:\n\n" + "\n".join(tests) + "\n"


def task_from_row(row: dict, where: Record) -> Task:
    number = require(where, "task_id", int)
    tests = require(where, "test_list", list)
    reference = require(where, "code").replace("\r\n", "\n")
    setup = (row.get("test_setup_code") or "").replace("\r\n", "\n")
    try:
        entry = entry_point_of(tests, reference)
    except (SyntaxError, ValueError) as exc:
        raise DataError(where.path, where.line, f"cannot find the entry point: {exc}", field="test_list") from None
    check = setup + "\n" + "\n".join(tests) + "\n"
    return Task(
        task_id=f"Mbpp/{number}",
        family="mbpp",
        prompt=prompt_for(require(where, "text"), tests),
        entry_point=entry,
        tests=(TestCase(check=check),),
        reference=reference,
        prompt_is_code=False,
        meta={"split": split_of(number), "text": row["text"]},
    )


class MBPP:
    name = "mbpp"

    def load(self, arg: str | None, split: str | None) -> list[Task]:
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown MBPP split {split!r}; choose from {', '.join(SPLITS)}")
        rows = read_jsonl(arg) if arg else _hub_rows()
        tasks = [task_from_row(r.data, r) for r in rows]
        return [t for t in tasks if split is None or t.meta["split"] == split]

    def data_paths(self, arg: str | None) -> list[str]:
        return [os.path.abspath(arg)] if arg else []


def _hub_rows():
    try:
        import datasets
    except ImportError:
        raise ValueError("--tasks mbpp without a path loads from the Hugging Face hub and needs the "
                         "'datasets' package; offline, pass the file: --tasks mbpp:PATH/mbpp.jsonl") from None
    data = datasets.load_dataset(HUB_DATASET, "full")
    for split in data.values():
        for i, row in enumerate(split):
            yield Record(f"hf:{HUB_DATASET}", i + 1, dict(row))
