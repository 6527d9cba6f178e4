"""Harness for the hostile-program tests: verifiers to attack, host checks, and listeners
that must never hear from a candidate.

A `Box` is one Verifier at one isolation level. `attack()` runs a hostile candidate with
correct ones beside and after it, then checks the host: no process of any candidate
outlives its verdict, a replaced fork server is gone, the host directory and its sentinel
are untouched, and nothing carrying this session's marker exists anywhere.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import signal
import socket
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass

import pytest

from greenloop.tasks import TaskSet
from greenloop.types import Candidate, Outcome, Verdict
from greenloop.verify.funnel import Verifier, VerifyConfig

TIMEOUT_S = 2.0
MEMORY_MB = 512
# Digits only, so it can ride in a `sleep` argument; nothing on the host contains it
# unless a candidate put it there.
MARK = "7" + "".join(str(secrets.randbelow(10)) for _ in range(11))
COMM = "hx" + MARK[-12:]  # a process name (15 bytes at most) that candidates give themselves
SENTINEL_TEXT = "the host's own file\n"


def program(text: str, **values) -> str:
    """Fill @NAME@ placeholders; refuse to leave one unfilled."""
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, f"unfilled placeholders {left}"
    return text


def shared_dir(prefix: str, mode: int) -> str:
    """A directory under /tmp that the sandbox's unprivileged uid could use if nothing
    stopped it (pytest's tmp_path sits below a 0700 directory, so it proves less)."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, mode)
    return path


# -- processes -------------------------------------------------------------------------

def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) for every process on the host."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                rest = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry)] = (int(rest[1]), rest[0])
    return table


def descendants(pid: int, table: dict[int, tuple[int, str]]) -> set[int]:
    children = defaultdict(list)
    for child, (parent, _) in table.items():
        children[parent].append(child)
    found, stack = set(), list(children[pid])
    while stack:
        p = stack.pop()
        found.add(p)
        stack.extend(children[p])
    return found


def marked_processes() -> list[int]:
    """Processes anywhere on the host that carry this session's marker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{entry}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        if MARK.encode() in cmdline or comm == COMM:
            found.append(int(entry))
    return found


def kill_marked() -> None:
    """Clean up after a failed test: only processes our own candidates started."""
    for pid in marked_processes():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def remove_leaked_cgroups() -> bool:
    """Remove the cgroup dirs of this process's former workers that nobody is in any
    more; True when none is left over (a live worker's group is busy, so it is safe)."""
    clean = True
    for path in glob.glob(f"/sys/fs/cgroup/**/greenloop-{os.getpid()}-*", recursive=True):
        try:
            os.rmdir(path)
        except OSError:
            try:
                with open(os.path.join(path, "cgroup.procs")) as fh:
                    clean = clean and bool(fh.read().strip())
            except OSError:
                pass
    return clean


def wait_until(predicate, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


# -- the verifier under attack ---------------------------------------------------------

@dataclass
class Attack:
    verdict: Verdict
    seconds: float  # wall time of the batch that held the hostile candidate


class Box:
    """One Verifier at one isolation level ("namespaces" or "none"), reused across tests."""

    def __init__(self, tasks: TaskSet, correct: dict[str, str], mode: str, workers: int = 2,
                 timeout_s: float = TIMEOUT_S, hidden_paths=(), host_dir: str | None = None):
        self.mode, self.workers, self.correct, self.host_dir = mode, workers, correct, host_dir
        config = VerifyConfig(timeout_s=timeout_s, workers=workers, memory_mb=MEMORY_MB,
                              isolation="none" if mode == "none" else "auto")
        self.verifier = Verifier(tasks, config, hidden_paths=hidden_paths)
        self.isolation = iso = self.verifier.isolation
        if mode == "namespaces" and not (iso["level"] == "namespaces" and iso["pid_namespace"]
                                         and iso["network"] == "none" and "read-only" in iso["filesystem"]):
            self.verifier.close()
            pytest.skip(f"full namespace isolation is not available here: {iso}")
        if mode == "none":
            assert iso["level"] == "rlimits", iso

    def close(self) -> None:
        scratch, logs = self.pool.scratch, self.pool.log_dir
        self.verifier.close()
        assert not os.path.exists(scratch) and not os.path.exists(logs), "the pool left its directories behind"

    @property
    def pool(self):
        return self.verifier.pool

    def servers(self) -> set[int]:
        """The fork servers' pids: the worker processes and the zygote each of them forked
        (PID 1 of the namespace, or a subreaper without namespaces)."""
        outer = {w.process.pid for w in self.pool.workers}
        table = process_table()
        return outer | {pid for pid, (ppid, _) in table.items() if ppid in outer}

    def candidate_processes(self) -> set[int]:
        """Anything below the fork servers, candidates and whatever they started, except
        each server's pre-forked spare child (waiting for the next job)."""
        table = process_table()
        servers = self.servers()
        below = set()
        for pid in servers:
            below |= descendants(pid, table)
        below -= servers
        return {pid for pid in below if not _is_spare(pid, table, servers)}

    def verify(self, candidates: list[Candidate]) -> list[Verdict]:
        out: list[Verdict | None] = [None] * len(candidates)
        for index, verdict in self.verifier.verify(candidates):
            out[index] = verdict
        assert all(v is not None for v in out)
        return out  # type: ignore[return-value]

    def assert_correct_still_pass(self, task_id: str) -> None:
        """One correct candidate per worker: every fork server still judges right."""
        again = self.verify([Candidate(task_id, self.correct[task_id])] * self.workers)
        assert all(v.passed for v in again), [v.detail for v in again]

    def assert_host_unharmed(self, servers_before: set[int], scratch_before: set[str] = frozenset()) -> None:
        assert wait_until(lambda: not self.candidate_processes()), \
            f"candidate processes outlived the verdict: {sorted(self.candidate_processes())}"
        assert wait_until(lambda: not marked_processes()), f"marked processes survive: {marked_processes()}"
        assert len(self.pool.workers) == self.workers
        retired = servers_before - self.servers()
        assert wait_until(lambda: not retired & set(process_table())), \
            f"replaced fork servers still exist: {sorted(retired & set(process_table()))}"
        self.assert_scratch_clean(scratch_before, retired=bool(retired))
        if self.host_dir:
            assert sorted(os.listdir(self.host_dir)) == ["sentinel"], os.listdir(self.host_dir)
            with open(os.path.join(self.host_dir, "sentinel")) as fh:
                assert fh.read() == SENTINEL_TEXT
            assert oct(os.stat(os.path.join(self.host_dir, "sentinel")).st_mode & 0o777) == oct(0o666)
        for path in (f"/tmp/greenloop-hostile-{MARK}", f"/etc/greenloop-hostile-{MARK}",
                     f"/dev/shm/greenloop-hostile-{MARK}", f"/var/tmp/greenloop-hostile-{MARK}"):
            assert not os.path.lexists(path), f"{path} appeared on the host"


    def assert_scratch_clean(self, before: set[str], retired: bool) -> None:
        """In namespaces the host's side of the scratch dir stays empty (the work dirs are
        on a tmpfs inside). Without, it holds only the spares' empty work dirs and logs; a
        killed server cannot clean up after its candidate, but the pool removes the whole
        scratch dir when it closes (checked by Box.close)."""
        left = set(os.listdir(self.pool.scratch))
        if self.mode == "namespaces":
            assert not left, f"the host's side of the scratch dir holds {sorted(left)}"
            return
        if retired:
            return
        # One folder per fork server (s<pid>), holding only its spare's empty work dir and log.
        unexpected = {n for n in left if not re.fullmatch(r"s\d+", n)} - set(before)
        assert not unexpected, f"the scratch dir holds {sorted(unexpected)}"
        for server_dir in (n for n in left if n.startswith("s")):
            inside = set(os.listdir(os.path.join(self.pool.scratch, server_dir)))
            stray = {n for n in inside if not re.fullmatch(r"w\d+(\.log)?", n)}
            assert not stray, f"{server_dir} holds {sorted(stray)}"
            workdirs = [n for n in inside if not n.endswith(".log")]
            assert len(workdirs) <= 1, f"work dirs of finished candidates remain: {sorted(workdirs)}"
            for name in workdirs:
                assert os.listdir(os.path.join(self.pool.scratch, server_dir, name)) == [], f"{name} is not empty"


def _is_spare(pid: int, table: dict[int, tuple[int, str]], servers: set[int]) -> bool:
    """A pre-forked child (forked by a zygote): a childless direct child of a zygote that
    still shares a pipe with its fork server (after a verdict the server holds no pipe of
    any candidate's)."""
    parent = table.get(pid, (0, ""))[0]
    if parent not in servers or any(ppid == pid for ppid, _ in table.values()):
        return False
    server_pipes = set().union(*(_pipes(s) for s in servers if s != parent))
    return bool(_pipes(pid) & server_pipes)


def _pipes(pid: int) -> set[str]:
    found = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            found.add(target)
    return found


def attack(box: Box, task_id: str, hostile: str, followers: int = 2) -> Attack:
    """Run `hostile` with correct candidates beside and after it (same batch), then one
    correct candidate per worker, and check the host. Returns the hostile verdict."""
    servers_before, scratch_before = box.servers(), set(os.listdir(box.pool.scratch))
    correct = Candidate(task_id, box.correct[task_id])
    started = time.monotonic()
    verdict, *others = box.verify([Candidate(task_id, hostile)] + [correct] * followers)
    seconds = time.monotonic() - started
    assert verdict.outcome is not Outcome.INFRA_ERROR, "a candidate caused INFRA_ERROR (reward None)"
    assert all(v.passed for v in others), f"a correct candidate in the same batch failed: {[v.detail for v in others]}"
    box.assert_correct_still_pass(task_id)
    box.assert_host_unharmed(servers_before, scratch_before)
    return Attack(verdict, seconds)


# -- listeners a candidate must never reach ---------------------------------------------

class Listeners:
    """A TCP and a UDP socket on 127.0.0.1 and an abstract unix socket, all non-blocking:
    `heard()` says whether anything connected or arrived."""

    def __init__(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.abstract_name = f"\0greenloop-hostile-{MARK}"
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind(self.abstract_name)
        self.abstract.listen(16)
        for s in (self.tcp, self.udp, self.abstract):
            s.setblocking(False)
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]

    def heard(self) -> list[str]:
        heard = []
        for name, sock in (("tcp", self.tcp), ("abstract", self.abstract)):
            try:
                conn, _ = sock.accept()
                conn.close()
                heard.append(name)
            except BlockingIOError:
                pass
        try:
            self.udp.recvfrom(4096)
            heard.append("udp")
        except BlockingIOError:
            pass
        return heard

    def close(self) -> None:
        for s in (self.tcp, self.udp, self.abstract):
            s.close()
