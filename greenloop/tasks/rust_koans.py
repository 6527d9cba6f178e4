"""Rust koans: broken `lib.rs` files (they do not compile, or compile and fail their
tests), each with its fix and a `#[cfg(test)] mod tests { ... }` module. Verified with
cargo by `greenloop.verify.rust`; without cargo their verdicts are INFRA_ERROR.

Data: `koan_data/rust/<family>.yaml`, the same schema as the Python koans (see `koans`)
except that `tests` is the test module's source. Split and specs work the same way:
`rust_koans`, `rust_koans@eval`, `rust_koans:borrow_checker@train`.
"""

from __future__ import annotations

import os

from greenloop.io import DataError
from greenloop.tasks.koans import DATA_DIR, Koan, koan_meta, select_koans
from greenloop.types import Task, TestCase
from greenloop.verify.rust_source import SourceError, declared_tests

MIN_RUST_TESTS = 2


def rust_task(koan: Koan, family_name: str = "rust_koans") -> Task:
    try:
        names = declared_tests(koan.tests)
    except SourceError as exc:
        raise DataError(koan.path, koan.line, f"the test module does not lex: {exc}", field="tests") from None
    if len(names) < MIN_RUST_TESTS or "#[cfg(test)]" not in koan.tests:
        why = f"tests must be a #[cfg(test)] module with at least {MIN_RUST_TESTS} #[test] functions"
        raise DataError(koan.path, koan.line, why, field="tests")
    return Task(task_id=f"{family_name}/{koan.family}/{koan.name}", family=family_name, prompt=koan.broken,
                entry_point=koan.entry_point, tests=(TestCase(check=koan.tests),), reference=koan.fixed,
                prompt_is_code=False, meta=koan_meta(koan, "rust"))


class RustKoans:
    """`--tasks rust_koans[:FAMILY][@train|@eval]`: the built-in Rust koans."""

    name = "rust_koans"

    def load(self, arg: str | None, split: str | None) -> list[Task]:
        return [rust_task(k, self.name) for k in select_koans("rust", str, arg, split)]

    def data_paths(self, arg: str | None) -> list[str]:
        return [os.path.join(DATA_DIR, "rust")]
