"""Rust candidates: `cargo check` and `cargo test` of one lib.rs in a throwaway crate.

Each candidate gets a fresh temporary crate: a Cargo.toml written here (no dependencies,
its own workspace root, no doctests), `src/lib.rs` holding the candidate with the task's
test module appended by the parent (see `rust_source`), and its own CARGO_TARGET_DIR,
HOME and TMPDIR inside the temp dir, which is deleted afterwards. Two cargo runs make
the stages: `compile` (`cargo test --no-run`, a generous fixed time limit: building is
not the candidate's run time) and `tests` (`cargo test`, the verifier's time limit).
A candidate passes only when every test of the task's module is reported `ok`, cargo
exits 0 and libtest's summary line reports no failure; a candidate that ends the process
early (`process::exit(0)`) leaves tests unreported and fails.

Isolation, and what it protects
===============================
- Time: a wall-clock limit enforced by the parent, which kills the whole process group
  (cargo, rustc, the test binary), then any process still running from, or in, the temp
  crate. RLIMIT_CPU on every process as a backstop.
- Memory: RLIMIT_AS while the tests run (the verifier's `memory_mb`); none while
  compiling, since rustc reserves far more address space than it uses.
- Files: RLIMIT_FSIZE, no core dumps, output read back only up to a cap. Cargo runs
  offline with a private CARGO_HOME, so a build never touches the host's cargo caches
  or picks up its configuration; a `.cargo/config.toml` in a directory above the temp
  crate (which cargo would read, and which an earlier candidate could have planted)
  stops verification with INFRA_ERROR. `include!`, `include_str!`, `include_bytes!`
  and `#[path]` are refused before compiling: they read files at compile time.
- Environment: scrubbed to PATH (the toolchain and the system linker), RUSTUP_HOME
  (and the user's RUSTUP_TOOLCHAIN choice), HOME and TMPDIR inside the temp crate, and
  cargo's own settings.
- The judge: the task's test module gets a random name and calls std's assertion macros
  by full path, and a candidate's own `#[cfg(test)]` modules are removed (see
  `rust_source`), so hard-coded "test tests::x ... ok" lines, an early exit and a
  `macro_rules! assert_eq` that asserts nothing all fail.
- With the "namespaces" level (root, or unprivileged user namespaces): a new network
  namespace with no interface up, so no network, not even loopback; and a new mount
  namespace in which the task data, the recording cache and the samples/results files
  are covered by empty mounts and the host's file system is read-only but for the temp
  crate. Verdicts record the level in `meta["isolation"]`; "rlimits" means none of this.
Not protected: the tests run inside the candidate's own process, so a determined
candidate can still forge libtest's report (find the random test names in its own
binary, print "ok" lines, exit 0) or implement `PartialEq` on its own types to agree with
anything; these verdicts are marked `judge: child`, like Python tasks that only have a
check program. Also not protected: reading files other than the hidden ones; a process
that leaves its process group, changes directory and execs something else (there is no
PID namespace: cargo must start several children); CPU and memory pressure on the
machine within the limits; kernel exploits. For hostile code, run the verifier in a VM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Iterable, Iterator

from greenloop.types import Candidate, Outcome, StageResult, Task, Verdict
from greenloop.verify import rust_isolation
from greenloop.verify.rust_source import SourceError, assemble, declared_tests, extract_rust, forbidden_construct

CARGO_TOML = """[package]
name = "koan"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
path = "src/lib.rs"
doctest = false

[profile.dev]
debug = 0
incremental = false

[workspace]
"""
OUTPUT_CAP = 4 << 20  # bytes of cargo output read back; past that the run fails
DETAIL_CHARS = 400
# RLIMIT_CPU counts every thread of a process: rustc and libtest run several, so the CPU
# limit is a backstop this many times the wall clock, which stays the limit that counts.
CPU_PER_WALL_SECOND = max(2, os.cpu_count() or 1)
CARGO_MISSING = ("cargo is missing: Rust tasks cannot be verified without a Rust toolchain "
                 "(install one from https://rustup.rs, or put cargo on PATH)")
TEST_LINE = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", re.MULTILINE)
RESULT_LINE = re.compile(r"^test result: (ok|FAILED)\. (\d+) passed; (\d+) failed", re.MULTILINE)


@dataclass(frozen=True)
class RustConfig:
    timeout_s: float = 10.0  # wall clock for `cargo test` running the tests
    compile_timeout_s: float = 120.0  # wall clock for building: rustc, not the candidate, takes it
    memory_mb: int | None = None  # address-space limit while the tests run; None: no limit
    fsize_mb: int = 512  # largest file any process may write (the build's own artifacts included)
    isolation: str = "auto"  # "auto": namespaces where the kernel allows; "none": rlimits only
    hidden_paths: tuple[str, ...] = ()  # covered in the mount namespace: task data, caches
    max_code_bytes: int = 100_000

    def __post_init__(self):
        if self.timeout_s <= 0 or self.compile_timeout_s <= 0 or self.fsize_mb <= 0:
            raise ValueError("RustConfig time limits and fsize_mb must be > 0")
        if self.isolation not in ("auto", "none"):
            raise ValueError(f"RustConfig.isolation must be 'auto' or 'none', got {self.isolation!r}")


def find_cargo() -> str | None:
    """cargo on PATH, else in CARGO_HOME/bin (rustup's default place)."""
    found = shutil.which("cargo")
    if found:
        return found
    home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    path = os.path.join(home, "bin", "cargo")
    return path if os.access(path, os.X_OK) else None


def cargo_available() -> bool:
    return find_cargo() is not None


def is_rust_task(task: Task | None) -> bool:
    return task is not None and task.meta.get("language") == "rust"


@dataclass(frozen=True)
class CargoRun:
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


class Crate:
    """A temporary crate holding one candidate; removed on exit."""

    def __init__(self, cargo: str, source: str, config: RustConfig):
        self.cargo, self.config = cargo, config
        self.root = tempfile.mkdtemp(prefix="greenloop-rust-")
        for sub in ("src", "tmp", "home", "cargo-home"):
            os.mkdir(os.path.join(self.root, sub))
        with open(os.path.join(self.root, "Cargo.toml"), "w") as fh:
            fh.write(CARGO_TOML)
        with open(os.path.join(self.root, "src", "lib.rs"), "w") as fh:
            fh.write(source)
        self.level = rust_isolation.level(config.isolation)

    def foreign_config(self) -> str | None:
        """A cargo config in a directory above the crate, which cargo would read (and a
        candidate at the "rlimits" level could have planted to change later builds)."""
        folder = os.path.dirname(self.root)
        while True:
            for name in ("config.toml", "config"):
                if os.path.exists(os.path.join(folder, ".cargo", name)):
                    return os.path.join(folder, ".cargo", name)
            if folder == os.path.dirname(folder):
                return None
            folder = os.path.dirname(folder)

    def __enter__(self) -> "Crate":
        return self

    def __exit__(self, *exc) -> None:
        rust_isolation.kill_leftovers(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self) -> dict[str, str]:
        home = os.path.expanduser("~")
        env = {"PATH": os.pathsep.join([os.path.dirname(self.cargo), "/usr/local/bin", "/usr/bin", "/bin"]),
               "HOME": os.path.join(self.root, "home"), "TMPDIR": os.path.join(self.root, "tmp"),
               "RUSTUP_HOME": os.environ.get("RUSTUP_HOME") or os.path.join(home, ".rustup"),
               "CARGO_HOME": os.path.join(self.root, "cargo-home"),
               "CARGO_TARGET_DIR": os.path.join(self.root, "target"), "CARGO_INCREMENTAL": "0",
               "CARGO_TERM_COLOR": "never", "RUST_BACKTRACE": "0", "LANG": "C.UTF-8"}
        for name in ("RUSTUP_TOOLCHAIN", "RUSTUP_AUTO_INSTALL"):  # which toolchain the user chose
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def run(self, args: list[str], timeout_s: float, memory_mb: int | None = None) -> CargoRun:
        """cargo ARGS in a child with limits; the parent enforces the wall clock."""
        out_path, err_path = (os.path.join(self.root, "tmp", name) for name in ("out.txt", "err.txt"))
        cpu_s = int(timeout_s * CPU_PER_WALL_SECOND) + 1
        setup = rust_isolation.child_setup(self.level, self.config.hidden_paths, self.root, cpu_s,
                                           self.config.fsize_mb, memory_mb)
        started = time.perf_counter()
        # preexec_fn with threads about (verify_rust runs several crates at once) is safe
        # here: `setup` only makes system calls, imports nothing and takes no lock.
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([self.cargo, *args, "--offline"], cwd=self.root, env=self.env(),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, preexec_fn=setup)
            try:
                proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                rust_isolation.kill_group(proc.pid)
                proc.wait()
        seconds = time.perf_counter() - started
        return CargoRun(proc.returncode, _read_capped(out_path), _read_capped(err_path), seconds, timed_out)


def _read_capped(path: str) -> str:
    with open(path, "rb") as fh:
        data = fh.read(OUTPUT_CAP + 1)
    text = data[:OUTPUT_CAP].decode("utf-8", "replace")
    return text + ("\n[output over the cap]" if len(data) > OUTPUT_CAP else "")


def _normalise(message: str) -> str:
    """A rustc message without its specifics (names in backticks, numbers)."""
    return re.sub(r"\d+", "N", re.sub(r"`[^`]*`", "_", message)).strip()[:80]


def compile_failure(run: CargoRun) -> tuple[Outcome, str, str]:
    """Why a build failed: (outcome, signature, detail). The first rustc error decides the
    signature: its code (E0502) or its normalised message. A build that failed without a
    compiler error is cargo's or the toolchain's problem: INFRA_ERROR, unless a limit
    killed rustc."""
    for line in run.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") != "compiler-message" or message["message"].get("level") != "error":
            continue
        body = message["message"]
        code = (body.get("code") or {}).get("code")
        rendered = body.get("rendered") or body.get("message", "")
        return Outcome.FAILED, code or f"compile:{_normalise(body.get('message', ''))}", rendered[:DETAIL_CHARS]
    tail = run.stderr.strip()[-DETAIL_CHARS:]
    if "SIGXCPU" in run.stderr or "signal: 24" in run.stderr:
        return Outcome.TIMEOUT, "timeout", "CPU time limit while compiling"
    if "signal: 9" in run.stderr or "SIGKILL" in run.stderr:
        return Outcome.FAILED, "compile:killed", f"the compiler was killed: {tail}"
    return Outcome.INFRA_ERROR, "cargo failed", f"cargo failed without a compiler error: {tail}"


def _failure_detail(stdout: str, name: str) -> str:
    """The panic message libtest printed for a failed test."""
    found = re.search(rf"^---- {re.escape(name)} stdout ----\n(.*?)(?:\n\n|\Z)", stdout, re.MULTILINE | re.DOTALL)
    return (found.group(1).strip() if found else "")[:DETAIL_CHARS]


def judge_test_run(run: CargoRun, module: str, names: list[str]) -> tuple[Outcome, int, str, str]:
    """(outcome, tests passed, signature, detail) from a `cargo test` run."""
    reported = dict(TEST_LINE.findall(run.stdout))
    expected = [f"{module}::{name}" for name in names]
    ok = [name for name in expected if reported.get(name) == "ok"]
    summaries = RESULT_LINE.findall(run.stdout)
    if run.timed_out:
        return Outcome.TIMEOUT, len(ok), "timeout", f"time limit after {len(ok)} of {len(names)} tests passed"
    if "SIGXCPU" in run.stderr or "signal: 24" in run.stderr:
        return Outcome.TIMEOUT, len(ok), "timeout", "CPU time limit"
    if "memory allocation of" in run.stderr + run.stdout:
        return Outcome.MEMORY, len(ok), "memory", "memory limit"
    if "signal: 9," in run.stderr:
        return Outcome.FAILED, len(ok), "tests:killed", "the test process was killed (SIGKILL)"
    clean = bool(summaries) and all(s[0] == "ok" and s[2] == "0" for s in summaries)
    if len(ok) == len(expected) and run.returncode == 0 and clean:
        return Outcome.PASSED, len(ok), "", f"{len(ok)} tests passed"
    failed = sorted(name for name in expected if reported.get(name) == "FAILED")
    if failed:
        short = failed[0].split("::", 1)[1]
        return Outcome.FAILED, len(ok), f"test_failed:{short}", f"{short}: {_failure_detail(run.stdout, failed[0])}"
    if len(ok) == len(expected) and not clean:
        return Outcome.FAILED, len(ok), "tests:other_failed", "the task's tests passed, but other tests failed"
    return (Outcome.FAILED, len(ok), "tests:incomplete",
            f"the test process ended (status {run.returncode}) after reporting {len(ok)} of {len(names)} tests")


def _infra_error(stages: list[StageResult], total: int, detail: str, signature: str = "infra") -> Verdict:
    stage = StageResult("compile", Outcome.INFRA_ERROR, 0.0, detail)
    return Verdict(Outcome.INFRA_ERROR, (*stages, stage), 0, total, signature, {"judge": "child"})


def _static(code: str, config: RustConfig) -> StageResult:
    started = time.perf_counter()
    size = len(code.encode("utf-8", "replace"))
    if size > config.max_code_bytes:
        detail = f"program is {size} bytes, over the {config.max_code_bytes}-byte limit"
        return StageResult("static", Outcome.REJECTED, 0.0, detail)
    try:
        construct = forbidden_construct(code)
    except SourceError as exc:
        return StageResult("static", Outcome.FAILED, time.perf_counter() - started, f"does not lex: {exc}")
    if construct:
        return StageResult("static", Outcome.REJECTED, time.perf_counter() - started,
                           f"uses {construct}, which reads files at compile time")
    return StageResult("static", Outcome.PASSED, time.perf_counter() - started)


def _meta(level: str) -> dict:
    return {"isolation": level, "judge": "child", "network": "none" if level == "namespaces" else "host"}


def check_rust(code: str, config: RustConfig = RustConfig()) -> Verdict:
    """`cargo check` of `code` as a lib.rs: does it compile? Stages: static, compile."""
    static = _static(code, config)
    if static.outcome is not Outcome.PASSED:
        return Verdict(static.outcome, (static,), error_signature=f"static:{static.outcome.value}")
    cargo = find_cargo()
    if cargo is None:
        return _infra_error([static], 0, CARGO_MISSING, "cargo missing")
    with Crate(cargo, code, config) as crate:
        if crate.foreign_config():
            return _infra_error([static], 0, f"refusing to build under {crate.foreign_config()}")
        run = crate.run(["check", "--lib", "--message-format=json"], config.compile_timeout_s)
        meta = _meta(crate.level)
    if run.timed_out:
        compile_stage = StageResult("compile", Outcome.TIMEOUT, run.seconds, "time limit while compiling")
        return Verdict(Outcome.TIMEOUT, (static, compile_stage), error_signature="timeout", meta=meta)
    if run.returncode == 0:
        return Verdict(Outcome.PASSED, (static, StageResult("compile", Outcome.PASSED, run.seconds)), meta=meta)
    outcome, signature, detail = compile_failure(run)
    stage = StageResult("compile", outcome, run.seconds, detail)
    return Verdict(outcome, (static, stage), error_signature=signature, meta=meta)


def test_rust(task: Task, code: str, config: RustConfig = RustConfig()) -> Verdict:
    """Build `code` (a completion or a lib.rs) with the task's test module and run the
    tests. Stages: extract, static, compile, tests."""
    module_source = "\n".join(t.check for t in task.tests if t.check)
    names = declared_tests(module_source)
    total = len(names)
    started = time.perf_counter()
    program = extract_rust(code, task.entry_point)
    extract = StageResult("extract", Outcome.PASSED if program else Outcome.REJECTED, time.perf_counter() - started)
    if program is None:
        return Verdict(Outcome.REJECTED, (extract,), 0, total, "no code")
    static = _static(program, config)
    stages = [extract, static]
    if static.outcome is not Outcome.PASSED:
        return Verdict(static.outcome, tuple(stages), 0, total, f"static:{static.outcome.value}")
    try:
        source, module, removed = assemble(program, module_source)
    except SourceError as exc:
        stage = StageResult("compile", Outcome.FAILED, 0.0, f"could not prepare the source: {exc}")
        return Verdict(Outcome.FAILED, (*stages, stage), 0, total, "compile:source")
    cargo = find_cargo()
    if cargo is None:
        return _infra_error(stages, total, CARGO_MISSING, "cargo missing")
    with Crate(cargo, source, config) as crate:
        if crate.foreign_config():
            return _infra_error(stages, total, f"refusing to build under {crate.foreign_config()}")
        meta = {**_meta(crate.level), "removed_test_modules": removed}
        return _build_and_test(crate, stages, module, names, meta)


def _build_and_test(crate: Crate, stages: list[StageResult], module: str, names: list[str], meta: dict) -> Verdict:
    config, total = crate.config, len(names)
    build = crate.run(["test", "--lib", "--no-run", "--message-format=json"], config.compile_timeout_s)
    if build.timed_out:
        stage = StageResult("compile", Outcome.TIMEOUT, build.seconds, "time limit while compiling")
        return Verdict(Outcome.TIMEOUT, (*stages, stage), 0, total, "timeout", meta)
    if build.returncode != 0:
        outcome, signature, detail = compile_failure(build)
        return Verdict(outcome, (*stages, StageResult("compile", outcome, build.seconds, detail)), 0, total, signature, meta)
    stages.append(StageResult("compile", Outcome.PASSED, build.seconds))
    tests = crate.run(["test", "--lib"], config.timeout_s, config.memory_mb)
    outcome, passed, signature, detail = judge_test_run(tests, module, names)
    stages.append(StageResult("tests", outcome, tests.seconds, detail))
    return Verdict(outcome, tuple(stages), passed, total, signature, meta)


def verify_rust(tasks: dict[str, Task], jobs: Iterable[tuple[int, Candidate]], config: RustConfig,
                workers: int | None = None) -> Iterator[tuple[int, Verdict]]:
    """Yield (index, verdict) for each (index, candidate), in completion order; cargo runs
    `workers` at a time (default: one per core)."""
    jobs = list(jobs)
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = {pool.submit(test_rust, tasks[c.task_id], c.completion, config): i for i, c in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()
