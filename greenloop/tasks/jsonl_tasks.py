"""greenloop's own task file: one JSON object a line, so users bring their own problems.

    {"task_id": "demo/add", "prompt": "def add(a, b):\\n", "entry_point": "add",
     "reference": "def add(a, b):\\n    return a + b\\n",
     "tests": [{"args": [1, 2], "expected": 3}, {"input": "(1.5, (2,))"}],
     "check": null, "prompt_is_code": true, "float_tol": 1e-9, "meta": {}}

- `task_id`, `prompt`, `entry_point`: required strings.
- `tests`: calls of the entry point. `args` is a JSON list and `kwargs` a JSON object; or
  `input`, a Python literal tuple of arguments (for tuples, sets, bytes). `expected` (JSON)
  or `output` (a Python literal) is the expected value; left out, it comes from `reference`.
- `check`: a program that calls the entry point by name and raises on a wrong answer,
  for tasks that have no call list. With a `reference` the verifier replays it in a
  trusted process; without one it runs next to the candidate (and the verdict says so).
- `reference`: a correct program. `prompt_is_code`: the program is prompt + completion
  (default true), else the completion alone. `float_tol`: float comparison tolerance.
"""

from __future__ import annotations

import ast
import os

from greenloop.io import DataError, Record, read_jsonl, require
from greenloop.types import NO_EXPECTED, Task, TestCase


def _literal(record: Record, field: str, text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise DataError(record.path, record.line, f"not a Python literal: {exc}", field=field) from None


def parse_test_case(record: Record, index: int, raw) -> TestCase:
    where = f"tests[{index}]"
    if not isinstance(raw, dict):
        raise DataError(record.path, record.line, "expected an object", field=where)
    if "input" in raw:
        args = _literal(record, f"{where}.input", raw["input"])
        args = args if isinstance(args, tuple) else (args,)
    else:
        args = raw.get("args", [])
        if not isinstance(args, list):
            raise DataError(record.path, record.line, "expected a list", field=f"{where}.args")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise DataError(record.path, record.line, "expected an object", field=f"{where}.kwargs")
    expected = NO_EXPECTED
    if "output" in raw:
        expected = _literal(record, f"{where}.output", raw["output"])
    elif "expected" in raw:
        expected = raw["expected"]
    return TestCase(args=tuple(args), kwargs=kwargs, expected=expected)


def task_from_record(record: Record) -> Task:
    raw_tests = require(record, "tests", list, optional=True) or []
    tests = [parse_test_case(record, i, t) for i, t in enumerate(raw_tests)]
    check = require(record, "check", str, optional=True)
    if check:
        tests.append(TestCase(check=check))
    if not tests:
        raise DataError(record.path, record.line, "a task needs 'tests' or a 'check' program", field="tests")
    reference = require(record, "reference", str, optional=True)
    if reference is None and any(t.check is None and not t.has_expected for t in tests):
        raise DataError(record.path, record.line, "a test without an expected value needs a 'reference'", field="tests")
    meta = require(record, "meta", dict, optional=True) or {}
    tol = require(record, "float_tol", (int, float), optional=True)
    if tol is not None:
        meta = {**meta, "float_tol": float(tol)}
    prompt_is_code = require(record, "prompt_is_code", bool, optional=True)
    return Task(
        task_id=require(record, "task_id"),
        family="jsonl",
        prompt=require(record, "prompt"),
        entry_point=require(record, "entry_point"),
        tests=tuple(tests),
        reference=reference,
        context=require(record, "context", str, optional=True) or "",
        prompt_is_code=True if prompt_is_code is None else prompt_is_code,
        meta=meta,
    )


class JsonlTasks:
    name = "jsonl"

    def load(self, arg: str | None, split: str | None) -> list[Task]:
        if not arg:
            raise ValueError("the jsonl task family needs a path: --tasks jsonl:PATH")
        tasks = [task_from_record(r) for r in read_jsonl(arg)]
        return [t for t in tasks if split is None or t.meta.get("split") == split]

    def data_paths(self, arg: str | None) -> list[str]:
        return [os.path.abspath(arg)] if arg else []
