"""The warm fork server: one per worker, started fresh (never forked from the verifier),
so it holds no task data, expected values or reference solutions.

It enters the namespaces it can, imports the modules candidates commonly use, then for
each job forks one child, watches it from outside (wall-clock deadline, output cap, an
abort from the verifier), and when the child ends kills every process the candidate
left behind before it answers. Run as `python -m greenloop.sandbox.server CONFIG_JSON`.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time

from greenloop.sandbox import wire
from greenloop.sandbox.cgroups import WorkerCgroups
from greenloop.sandbox.child import enter_job, prepare_spare, receive_job, run_job
from greenloop.sandbox.isolation import (PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, IsolationReport,
                                         child_identity, enter_namespaces, prctl, prepare_mounts)

# What HumanEval- and MBPP-style solutions import most. Each module here makes every fork
# a little dearer (more pages to copy and fault); each one missing costs its import in
# every child that uses it.
WARM_MODULES = "math cmath re string itertools functools collections heapq bisect typing random hashlib copy operator".split()
CONTROL_IN, CONTROL_OUT = 0, 1


class _Spare:
    """A pre-forked child waiting for its job, and what the server holds for it."""

    def __init__(self, pid: int, workdir: str, log_path: str, log_fd: int, result_r: int, job_w: int):
        self.pid, self.workdir, self.log_path = pid, workdir, log_path
        self.log_fd, self.result_r, self.job_w = log_fd, result_r, job_w


class ForkServer:
    def __init__(self, report: IsolationReport, scratch: str, max_processes_base: int, cgroups: WorkerCgroups):
        self.report = report
        self.cgroups = cgroups
        self.scratch = scratch
        self.identity = child_identity(report)
        self.nproc_base = max_processes_base
        self.control = wire.Reader(CONTROL_IN)
        self.pending: list[dict] = []
        self.spares = 0

    def serve(self) -> None:
        wire.send(CONTROL_OUT, {"op": "ready", "isolation": self.report.to_dict(), "pid": os.getpid()})
        spare = self._fork_spare()
        while True:
            message = self.pending.pop(0) if self.pending else self.control.read_one()
            if message is None:
                return
            if message.get("op") == "run":
                wire.send(CONTROL_OUT, self.run(message, spare))
                # The next child is forked while the verifier judges this one.
                spare = self._fork_spare()

    def _fork_spare(self) -> _Spare:
        """Fork the child for the next job ahead of time; it waits for the job on a pipe.
        Forked only after the previous candidate's processes are all gone."""
        self.spares += 1
        workdir = os.path.join(self.scratch, f"w{self.spares}")
        os.mkdir(workdir, 0o700)
        if self.identity:
            os.chown(workdir, *self.identity)
        log_path = os.path.join(self.scratch, f"log{self.spares}")
        log_fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        result_r, result_w = os.pipe()
        job_r, job_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(result_r)
                os.close(job_w)
                prepare_spare(result_w, log_fd, job_r)
                job = receive_job()
                if job is not None:
                    nproc = job["limits"]["max_processes"] + (0 if self.identity else self.nproc_base)
                    enter_job(job, workdir, self.identity, nproc)
                    run_job(job)
            finally:
                os._exit(70)
        os.close(result_w)
        os.close(job_r)
        return _Spare(pid, workdir, log_path, log_fd, result_r, job_w)

    def run(self, job: dict, spare: _Spare) -> dict:
        started = time.perf_counter()
        oom_before = self.cgroups.oom_kills()
        try:
            wire.write_all(spare.job_w, json.dumps(job, separators=(",", ":")).encode())
        except OSError:
            pass  # the spare is gone; watching it reports how it ended
        os.close(spare.job_w)
        try:
            lines, status = self._watch(job, spare.pid, spare.result_r, started)
        finally:
            os.close(spare.result_r)
            exit_status = self._kill_tree(spare.pid)
        seconds = time.perf_counter() - started
        os.lseek(spare.log_fd, 0, os.SEEK_SET)
        log = os.read(spare.log_fd, job["limits"]["log_cap_bytes"]).decode("utf-8", "replace")
        os.close(spare.log_fd)
        os.unlink(spare.log_path)
        _remove_tree(spare.workdir)
        code = os.waitstatus_to_exitcode(exit_status) if exit_status is not None else None
        return {"op": "done", "id": job["id"], "lines": lines, "status": status, "exit": code,
                "seconds": seconds, "log": log, "oom": self.cgroups.oom_kills() > oom_before}

    def _watch(self, job: dict, pid: int, read_fd: int, started: float) -> tuple[list[str], str]:
        """Collect the child's frames until it exits, times out, overflows or is aborted."""
        limits = job["limits"]
        deadline = started + limits["timeout_s"]
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        for fd in (read_fd, pidfd, CONTROL_IN):
            poller.register(fd, select.POLLIN)
        frames = _FrameBuffer(limits["output_cap_bytes"])
        partial_due = bool(job.get("smoke"))
        try:
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return frames.lines, "timeout"
                events = dict(poller.poll(max(1, int(remaining * 1000))))
                if CONTROL_IN in events and self._aborted(job["id"]):
                    return frames.lines, "aborted"
                if read_fd in events:
                    chunk = os.read(read_fd, 1 << 16)
                    if not chunk:  # every holder of the write end is gone
                        return frames.lines, "exited"
                    if not frames.add(chunk):
                        return frames.lines, "output_cap"
                    if partial_due and len(frames.lines) >= 2:
                        wire.send(CONTROL_OUT, {"op": "partial", "id": job["id"], "lines": frames.lines[:2]})
                        partial_due = False
                elif pidfd in events:  # exited; a descendant may still hold the pipe open
                    os.set_blocking(read_fd, False)
                    try:
                        while (chunk := os.read(read_fd, 1 << 16)) and frames.add(chunk):
                            pass
                    except BlockingIOError:
                        pass
                    return frames.lines, "exited"
        finally:
            os.close(pidfd)

    def _aborted(self, job_id: int) -> bool:
        self.control.fill()
        if self.control.eof:  # the verifier is gone: stop now
            return True
        for message in self.control.messages():
            if message.get("op") == "abort" and message.get("id") == job_id:
                return True
            self.pending.append(message)
        return False

    def _kill_tree(self, pid: int) -> int | None:
        """Kill the candidate and everything it started; return the child's wait status."""
        status = None
        for attempt in range(1000):
            if self.report.pid_namespace:
                try:
                    os.kill(-1, signal.SIGKILL)  # as PID 1: every process in the namespace
                except ProcessLookupError:
                    pass
            else:  # orphans are looked for only when some child outlived the group
                _kill_group_and_orphans(pid, look_for_orphans=attempt > 0)
            while True:
                try:
                    reaped, wstatus = os.waitpid(-1, os.WNOHANG if status is not None else 0)
                except ChildProcessError:
                    return status
                if reaped == 0:
                    break
                if reaped == pid:
                    status = wstatus
        return status


class _FrameBuffer:
    """Splits the child's output into lines, up to a byte cap."""

    def __init__(self, cap: int):
        self.cap, self.total = cap, 0
        self.lines: list[str] = []
        self.rest = b""

    def add(self, chunk: bytes) -> bool:
        self.total += len(chunk)
        if self.total > self.cap:
            return False
        *complete, self.rest = (self.rest + chunk).split(b"\n")
        self.lines.extend(c.decode("utf-8", "replace") for c in complete)
        return True


def _kill_group_and_orphans(pid: int, look_for_orphans: bool) -> None:
    """Without a PID namespace: the candidate's process group, then every process that was
    re-parented to this server (a child subreaper) after its parent died."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if not look_for_orphans:
        return
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def _remove_tree(path: str) -> None:
    """Delete a work dir without following links (a candidate may plant them)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        entries = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                _remove_tree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _protect_from_oom_killer() -> None:
    """Make the server the OOM killer's last choice (root only; children raise their own)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("-1000")
    except OSError:
        pass


def _count_own_processes() -> int:
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    report = IsolationReport()
    cgroups = WorkerCgroups.from_config(config.get("cgroups"))
    try:
        cgroups.join()  # before any fork: every candidate process is born inside
        report.cgroup = cgroups.kind
    except OSError as exc:
        cgroups = WorkerCgroups()
        report.notes.append(f"could not join the worker's cgroup ({exc})")
    _protect_from_oom_killer()
    if config.get("isolation", "auto") != "none" and enter_namespaces(report):
        child = os.fork()
        if child:  # outside the PID namespace: wait, then pass the exit status on
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _, status = os.waitpid(child, 0)
            return os.waitstatus_to_exitcode(status)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        prepare_mounts(report, config["scratch"], config.get("hidden", []))
    else:
        if config.get("isolation") == "none":
            report.notes.append("isolation disabled by configuration")
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the verifier decides when a worker stops
    for name in WARM_MODULES:
        __import__(name)
    gc.collect()
    gc.freeze()  # fewer pages copied on each fork
    ForkServer(report, config["scratch"], _count_own_processes(), cgroups).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
