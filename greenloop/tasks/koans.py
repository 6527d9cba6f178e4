"""Koans: small broken programs, each with its fix and its tests, for a loop in which a
model learns to repair code. The prompt is the broken program; the completion is the
whole fixed program (`prompt_is_code=False`).

Data: `koan_data/<language>/<family>.yaml`, one file per koan family, a list of koans:

    - name: page_count            # unique within the family
      entry_point: page_count     # the function the tests call
      hint: Return how many pages are needed to show `total` items.
      critical: true              # optional: a koan a model must never regress on
      broken: |                   # the program as given, with one realistic bug
        def page_count(total, per_page): ...
      fixed: |                    # the same program, repaired
        def page_count(total, per_page): ...
      tests:                      # Python: calls with expected values, as in `jsonl_tasks`
        - {args: [25, 10], expected: 3}
        - {args: ["a=b"], output: "('a', 'b')"}   # a Python literal where JSON has no type

Split: the 2nd, 5th, 8th, ... koan of each file (every third, by position) is "eval", a
frozen evaluation set; the rest are "train". New koans are appended at the end of a file,
so no koan ever changes split. Specs: `koans`, `koans@eval`, `koans:off_by_one@train`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any

import yaml

from greenloop.io import DataError, Record
from greenloop.tasks.jsonl_tasks import parse_test_case
from greenloop.types import Task

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "koan_data")
SPLITS = ("train", "eval")
EVAL_EVERY = 3  # one koan in three, by position in its file, is held out for evaluation
MIN_PYTHON_TESTS = 4


@dataclass(frozen=True)
class Koan:
    family: str
    name: str
    entry_point: str
    hint: str
    broken: str
    fixed: str
    tests: Any  # as written in the file: a list of calls (Python) or a test module (Rust)
    critical: bool
    split: str
    path: str
    line: int


def split_of(position: int) -> str:
    """The split of the koan at `position` (0-based) in its family's file."""
    return "eval" if position % EVAL_EVERY == 1 else "train"


def _item_lines(text: str) -> list[int]:
    """The line each top-level list item starts on, for error messages."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    return [item.start_mark.line + 1 for item in root.value] if isinstance(root, yaml.SequenceNode) else []


def _koan(record: Record, family: str, position: int, tests_kind: type) -> Koan:
    data = record.data

    def field(name: str, kind: type = str, optional: bool = False):
        if name not in data:
            if optional:
                return None
            raise DataError(record.path, record.line, "missing", field=name)
        if not isinstance(data[name], kind):
            got = type(data[name]).__name__
            raise DataError(record.path, record.line, f"expected {kind.__name__}, got {got}", field=name)
        return data[name]

    unknown = set(data) - {"name", "entry_point", "hint", "critical", "broken", "fixed", "tests"}
    if unknown:
        raise DataError(record.path, record.line, f"unknown fields {sorted(unknown)}")
    return Koan(family, field("name"), field("entry_point"), field("hint"), field("broken"), field("fixed"),
                field("tests", tests_kind), bool(field("critical", bool, optional=True)), split_of(position),
                record.path, record.line)


def read_family(path: str, tests_kind: type) -> list[Koan]:
    """Every koan in one family file, in file order."""
    family = os.path.splitext(os.path.basename(path))[0]
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        items = yaml.safe_load(text)
        lines = _item_lines(text)
    except yaml.YAMLError as exc:
        raise DataError(path, None, f"not valid YAML: {exc}") from None
    if not isinstance(items, list):
        raise DataError(path, None, "expected a list of koans")
    koans, names = [], set()
    for position, (item, line) in enumerate(zip(items, lines)):
        if not isinstance(item, dict):
            raise DataError(path, line, "expected a mapping")
        koan = _koan(Record(path, line, item), family, position, tests_kind)
        if koan.name in names:
            raise DataError(path, line, f"koan {koan.name!r} appears twice", field="name")
        names.add(koan.name)
        koans.append(koan)
    return koans


def family_paths(language: str) -> dict[str, str]:
    folder = os.path.join(DATA_DIR, language)
    return {os.path.splitext(f)[0]: os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".yaml")}


def select_koans(language: str, tests_kind: type, family: str | None, split: str | None) -> list[Koan]:
    """The koans of one language, optionally of one family and one split."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown koan split {split!r}: expected one of {', '.join(SPLITS)}")
    paths = family_paths(language)
    if family is not None and family not in paths:
        close = difflib.get_close_matches(family, list(paths), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(paths)}"
        raise ValueError(f"unknown {language} koan family {family!r}{hint}")
    chosen = [paths[family]] if family else list(paths.values())
    koans = [k for path in chosen for k in read_family(path, tests_kind)]
    return [k for k in koans if split is None or k.split == split]


def koan_meta(koan: Koan, language: str) -> dict:
    return {"language": language, "koan_family": koan.family, "broken": koan.broken, "split": koan.split,
            "critical": koan.critical, "hint": koan.hint, "source": f"{os.path.basename(koan.path)}:{koan.line}"}


def python_task(koan: Koan, family_name: str = "koans") -> Task:
    record = Record(koan.path, koan.line, {})
    tests = tuple(parse_test_case(record, i, raw) for i, raw in enumerate(koan.tests))
    if len(tests) < MIN_PYTHON_TESTS or any(not t.has_expected for t in tests):
        why = f"a koan needs at least {MIN_PYTHON_TESTS} tests, each with an expected value"
        raise DataError(koan.path, koan.line, why, field="tests")
    return Task(task_id=f"{family_name}/{koan.family}/{koan.name}", family=family_name, prompt=koan.broken,
                entry_point=koan.entry_point, tests=tests, reference=koan.fixed, prompt_is_code=False,
                meta=koan_meta(koan, "python"))


class Koans:
    """`--tasks koans[:FAMILY][@train|@eval]`: the built-in Python koans."""

    name = "koans"

    def load(self, arg: str | None, split: str | None) -> list[Task]:
        return [python_task(k, self.name) for k in select_koans("python", list, arg, split)]

    def data_paths(self, arg: str | None) -> list[str]:
        return [os.path.join(DATA_DIR, "python")]
