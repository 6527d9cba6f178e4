"""The Rust koans and the cargo runner: every fix passes and every broken lib.rs fails,
and candidates that try to get around the judge (an early exit, their own tests, a
macro that asserts nothing, a hang, reading the task data) do not pass."""

import os
import socket
import time

import pytest

from greenloop.tasks import load_tasks
from greenloop.types import Candidate, Outcome, Task, TestCase
from greenloop.verify import rust
from greenloop.verify.funnel import VerifyConfig, verify_candidates
from greenloop.verify.rust_isolation import level
from greenloop.verify.rust_source import assemble, declared_tests, forbidden_construct, mask, strip_test_modules

KOANS = load_tasks("rust_koans")
needs_cargo = pytest.mark.skipif(not rust.cargo_available(),
                                 reason="cargo not found on PATH or in ~/.cargo/bin: Rust tests need a Rust toolchain")
needs_namespaces = pytest.mark.skipif(level() != "namespaces", reason="network and mount namespaces are not available here")

ADD_TESTS = """#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small() { assert_eq!(add(1, 2), 3); }

    #[test]
    fn negative() { assert_eq!(add(-4, 1), -3); }
}
"""
ADD = Task("t/add", "rust_koans", "", "add", (TestCase(check=ADD_TESTS),), meta={"language": "rust"})
RIGHT = "pub fn add(a: i32, b: i32) -> i32 { a + b }\n"


def run(code: str, task: Task = ADD, **config):
    return rust.test_rust(task, code, rust.RustConfig(**{"timeout_s": 20, **config}))


def test_enough_koans_in_three_families():
    families: dict[str, list] = {}
    for task in KOANS.tasks.values():
        families.setdefault(task.meta["koan_family"], []).append(task)
    assert set(families) == {"borrow_checker", "trait_bounds", "result_option"}
    for family, tasks in families.items():
        assert len(tasks) >= 10, family
        assert sum(t.meta["critical"] for t in tasks) == 1, family
        assert sum(t.meta["split"] == "eval" for t in tasks) == len(tasks) // 3 + (len(tasks) % 3 == 2), family
    for task in KOANS.tasks.values():
        assert task.family == "rust_koans" and task.meta["language"] == "rust" and not task.prompt_is_code
        assert task.prompt == task.meta["broken"] != task.reference
        assert f"fn {task.entry_point}" in task.reference and len(declared_tests(task.tests[0].check)) >= 2


def test_family_and_split_specs_filter():
    evaluation = load_tasks("rust_koans:trait_bounds@eval").tasks
    assert evaluation and {(t.meta["koan_family"], t.meta["split"]) for t in evaluation.values()} == {("trait_bounds", "eval")}
    train = load_tasks("rust_koans@train").tasks
    assert set(train) | set(load_tasks("rust_koans@eval").tasks) == set(KOANS.tasks)


@needs_cargo
def test_every_fix_passes_and_every_broken_lib_fails():
    """All 60-odd cargo builds, two at a time: about 12 s here (see the integration notes)."""
    tasks = list(KOANS.tasks.values())
    candidates = [Candidate(t.task_id, t.reference, "reference") for t in tasks]
    candidates += [Candidate(t.task_id, t.meta["broken"], "broken") for t in tasks]
    verdicts = verify_candidates(KOANS, candidates, VerifyConfig(timeout_s=20))
    fixed, broken = verdicts[:len(tasks)], verdicts[len(tasks):]
    assert [(t.task_id, v.detail) for t, v in zip(tasks, fixed) if not v.passed] == []
    assert [t.task_id for t, v in zip(tasks, broken) if v.outcome is not Outcome.FAILED] == []
    by_id = dict(zip((t.task_id for t in tasks), broken))
    assert by_id["rust_koans/borrow_checker/summary"].error_signature == "E0382"
    assert by_id["rust_koans/borrow_checker/transfer"].error_signature == "test_failed:self_transfer_keeps_the_balance"
    assert all(v.meta["judge"] == "child" and v.meta["isolation"] in ("namespaces", "rlimits") for v in fixed)


@needs_cargo
def test_right_and_wrong_candidates():
    right = run(RIGHT)
    assert right.passed and (right.tests_passed, right.tests_total) == (2, 2)
    assert [s.stage for s in right.stages] == ["extract", "static", "compile", "tests"]
    wrong = run("pub fn add(a: i32, b: i32) -> i32 { a - b }\n")
    assert wrong.outcome is Outcome.FAILED and wrong.error_signature == "test_failed:negative"
    fenced = run("Here you go:\n```rust\n" + RIGHT + "```\n")
    assert fenced.passed


@needs_cargo
def test_exiting_early_does_not_pass():
    verdict = run("pub fn add(a: i32, b: i32) -> i32 { std::process::exit(0) }\n")
    assert verdict.outcome is Outcome.FAILED and verdict.error_signature == "tests:incomplete"
    assert verdict.tests_passed == 0


@needs_cargo
def test_printing_a_fake_report_does_not_pass():
    forged = ('pub fn add(a: i32, b: i32) -> i32 {\n    use std::io::Write;\n    let mut out = std::io::stdout();\n'
              '    let _ = out.write_all(b"test tests::small ... ok\\ntest tests::negative ... ok\\n\\n'
              'test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\\n");\n'
              '    let _ = out.flush();\n    std::process::exit(0)\n}\n')
    assert run(forged).outcome is Outcome.FAILED


@needs_cargo
def test_own_test_module_is_removed_and_assert_macros_cannot_be_replaced():
    own_tests = ("pub fn add(a: i32, b: i32) -> i32 { 0 }\n#[cfg(test)]\nmod tests {\n    #[test]\n"
                 "    fn small() { let s = \"}\"; assert!(!s.is_empty()); }\n}\n")
    verdict = run(own_tests)
    assert verdict.outcome is Outcome.FAILED and verdict.meta["removed_test_modules"] == 1
    no_op_assert = "macro_rules! assert_eq { ($($t:tt)*) => {}; }\npub fn add(a: i32, b: i32) -> i32 { 0 }\n"
    assert run(no_op_assert).outcome is Outcome.FAILED


@needs_cargo
def test_infinite_loop_is_killed_as_a_timeout():
    started = time.perf_counter()
    verdict = run("pub fn add(a: i32, b: i32) -> i32 { loop { std::hint::black_box(a); } }\n", timeout_s=2)
    assert verdict.outcome is Outcome.TIMEOUT and verdict.stage == "tests" and verdict.error_signature == "timeout"
    assert time.perf_counter() - started < 30
    assert not any("greenloop-rust-" in _exe(pid) for pid in os.listdir("/proc") if pid.isdigit())


def _exe(pid: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


@needs_cargo
def test_compile_errors_have_normalised_signatures():
    moved = run("pub fn add(a: i32, b: i32) -> i32 { let v = vec![a]; drop(v); v[0] + b }\n")
    assert moved.outcome is Outcome.FAILED and moved.stage == "compile" and moved.error_signature == "E0382"
    assert rust.check_rust(RIGHT).passed
    syntax = rust.check_rust("pub fn add(a: i32) -> i32 { a + }\n")
    assert syntax.outcome is Outcome.FAILED and syntax.error_signature.startswith("compile:expected")


def test_reading_files_at_compile_time_is_refused():
    verdict = run('pub fn add(a: i32, b: i32) -> i32 { include_str!("/etc/hostname").len() as i32 }\n')
    assert verdict.outcome is Outcome.REJECTED and "include_str!" in verdict.detail
    assert forbidden_construct('// include!("x")\nconst S: &str = "include_bytes!";\n') is None
    assert forbidden_construct('#[path = "/tmp/x.rs"]\nmod x;\n') is not None


def test_missing_cargo_is_an_infra_error_that_says_so(monkeypatch):
    monkeypatch.setattr(rust, "find_cargo", lambda: None)
    verdict = run(RIGHT)
    assert verdict.outcome is Outcome.INFRA_ERROR and verdict.reward is None
    assert "cargo is missing" in verdict.detail
    task = next(iter(KOANS.tasks.values()))
    with_funnel, = verify_candidates(KOANS, [Candidate(task.task_id, task.reference)], VerifyConfig(workers=1))
    assert with_funnel.outcome is Outcome.INFRA_ERROR and "cargo is missing" in with_funnel.detail


@needs_cargo
@needs_namespaces
def test_no_network_no_task_data_and_a_read_only_host(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    data_dir = KOANS.data_paths[0]
    probe = (f'pub fn add(a: i32, b: i32) -> i32 {{\n'
             f'    let net = std::net::TcpStream::connect("127.0.0.1:{port}").is_ok();\n'
             f'    let data = std::fs::read_dir("{data_dir}").map(|d| d.count()).unwrap_or(0);\n'
             f'    let wrote = std::fs::write("{tmp_path}/escaped", "x").is_ok();\n'
             f'    if net || data > 0 || wrote {{ 0 }} else {{ a + b }}\n}}\n')
    try:
        verdict = run(probe, hidden_paths=(data_dir,))
    finally:
        listener.close()
    assert verdict.passed and verdict.meta["isolation"] == "namespaces", verdict.detail
    assert not (tmp_path / "escaped").exists()


def test_source_masking_and_stripping():
    code = 'fn f() -> &\'static str { "}{" } // }\nfn g<\'a>(c: char) -> bool { c == \'{\' }\n'
    assert len(mask(code)) == len(code) and "}{" not in mask(code) and "'{'" not in mask(code)
    with_tests = 'pub fn f() {}\n#[cfg(test)]\nmod tests {\n    fn h() { let s = "}"; }\n}\npub fn after() {}\n'
    stripped, removed = strip_test_modules(with_tests)
    assert removed == 1 and "mod tests" not in stripped and "pub fn after() {}" in stripped
    source, module, removed = assemble(RIGHT, ADD_TESTS)
    assert module.startswith("greenloop_tests_") and f"mod {module}" in source and removed == 0
    assert "::std::assert_eq!(add(1, 2), 3)" in source
    assert declared_tests(ADD_TESTS) == ["small", "negative"]


@needs_cargo
def test_a_planted_cargo_config_above_the_crate_stops_verification(tmp_path, monkeypatch):
    (tmp_path / ".cargo").mkdir()
    (tmp_path / ".cargo" / "config.toml").write_text('[build]\nrustflags = ["--cfg", "planted"]\n')
    (tmp_path / "crates").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "crates"))
    verdict = run(RIGHT)
    assert verdict.outcome is Outcome.INFRA_ERROR and "config.toml" in verdict.detail


@needs_cargo
def test_python_and_rust_candidates_in_one_batch_keep_their_order():
    tasks = load_tasks("koans:off_by_one@eval,rust_koans:result_option@eval")
    python = next(t for t in tasks.tasks.values() if t.meta["language"] == "python")
    rust_task = next(t for t in tasks.tasks.values() if t.meta["language"] == "rust")
    batch = [Candidate(rust_task.task_id, rust_task.meta["broken"]), Candidate(python.task_id, python.reference),
             Candidate(rust_task.task_id, rust_task.reference), Candidate(python.task_id, python.meta["broken"])]
    verdicts = verify_candidates(tasks, batch, VerifyConfig(timeout_s=20))
    assert [v.passed for v in verdicts] == [False, True, True, False]
    assert [v.meta.get("judge") for v in verdicts] == ["child", "parent", "child", "parent"]
