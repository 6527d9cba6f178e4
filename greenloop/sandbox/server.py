"""The fork server: one per worker, started fresh (never forked from the verifier).

It talks to the verifier, hands each job to a pre-forked child, watches that child from
outside (wall-clock deadline, output cap, an abort from the verifier) and, when it ends,
has every process the candidate left behind killed before it answers. The children are
forked by the zygote (`greenloop.sandbox.zygote`), which is forked from this server at
start-up and never sees job data, so no child inherits a trace of an earlier candidate.
Run as `python -m greenloop.sandbox.server CONFIG_JSON`.
"""

from __future__ import annotations

import fcntl
import gc
import json
import math
import os
import select
import signal
import socket
import sys
import time

from greenloop.sandbox import wire
from greenloop.sandbox.cgroups import WorkerCgroups
from greenloop.sandbox.child import prepare_zygote
from greenloop.sandbox.cleanup import reap_within, remove_tree
from greenloop.sandbox.isolation import (PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, IsolationReport,
                                         enter_namespaces, in_user_namespace, limit_future_privileges, prctl,
                                         read_hard_limits, readonly_host_tree)
from greenloop.sandbox.rootfs import build_root, probe_root
from greenloop.sandbox.seccomp import install_filter, seccomp_supported
from greenloop.sandbox.zygote import KILL_WAIT_S, Zygote, receive, send

# What HumanEval- and MBPP-style solutions import most. Each module here makes every fork
# a little dearer (more pages to copy and fault); each one missing costs its import in
# every child that uses it. Not `random`: it reseeds in every forked child (about 40
# copied pages and 0.1 ms each), and no HumanEval or MBPP solution imports it.
WARM_MODULES = "math cmath re string itertools functools collections heapq bisect typing hashlib copy operator".split()
CONTROL_IN, CONTROL_OUT = 0, 1
SMOKE_GRACE_S = 0.005
# For the zygote to end its candidate or spare and exit once the server is done: longer
# than the zygote's own wait for a dying process tree, shorter than the pool's for us.
ZYGOTE_EXIT_WAIT_S = KILL_WAIT_S + 1.0


class _Spare:
    """A pre-forked child waiting for its job, and what the server holds for it."""

    def __init__(self, pidfd: int, workdir: str, log_path: str, log_fd: int, result_r: int, job_w: int):
        self.pidfd, self.workdir, self.log_path = pidfd, workdir, log_path
        self.log_fd, self.result_r, self.job_w = log_fd, result_r, job_w


class ForkServer:
    def __init__(self, report: IsolationReport, work_root: str, zygote: socket.socket, cgroups: WorkerCgroups,
                 drop_uid: bool, nproc_base: int):
        self.report = report
        self.work_root = work_root
        self.zygote = zygote
        self.cgroups = cgroups
        self.drop_uid = drop_uid
        self.nproc_base = nproc_base
        self.control = wire.Reader(CONTROL_IN)
        self.spares = 0

    def serve(self) -> None:
        wire.send(CONTROL_OUT, {"op": "ready", "isolation": self.report.to_dict(), "pid": os.getpid()})
        spare = self._spare_ready(self._request_spare(kill=False))
        while True:
            if spare is None:
                raise RuntimeError("the zygote did not fork a child")
            message = self.control.read_one()
            if message is None:
                return
            if message.get("op") == "run":
                result, request = self.run(message, spare)
                # The verdict goes out as soon as the candidate is gone; the zygote forks the
                # next spare meanwhile, and the used work dir goes after.
                wire.send(CONTROL_OUT, result)
                try:  # a candidate sharing this server's uid may have taken its log away
                    os.unlink(spare.log_path)
                except OSError:
                    pass
                remove_tree(spare.workdir)
                spare = self._spare_ready(request)

    def _identity(self) -> tuple[int, int] | None:
        """A fresh uid per candidate (as root): per-user limits and kernel keyrings are
        then the candidate's own. Unique across servers: built from this server's pid."""
        if not self.drop_uid:
            return None
        uid = 1_000_000 + os.getpid() * 1000 + self.spares % 1000
        return uid, uid

    def _request_spare(self, kill: bool) -> _Spare | None:
        """Ask the zygote to fork the child for the next job ahead of time; it waits for
        the job on a pipe. With `kill`, the same message first has the zygote end the last
        candidate and everything it started (one message, not two: each costs the zygote
        pages copied); it answers that first (`_ended`), then that the spare is forked
        (`_spare_ready`). Returns the spare to be, None if the zygote is gone."""
        self.spares += 1
        while True:  # names a candidate that could write here may have taken are skipped
            workdir = os.path.join(self.work_root, f"w{self.spares}")
            try:
                os.mkdir(workdir, 0o700)
            except FileExistsError:
                self.spares += 1
                continue
            try:
                log_fd = os.open(workdir + ".log", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                break
            except FileExistsError:
                os.rmdir(workdir)
                self.spares += 1
        identity = self._identity()
        if identity:
            os.chown(workdir, *identity)
        result_r, result_w = os.pipe()
        job_r, job_w = os.pipe()
        # With its own uid a candidate's process count starts at zero; sharing the user's
        # uid, it starts at what the user already runs.
        spec = {"workdir": workdir, "uid": identity and identity[0], "gid": identity and identity[1],
                "nproc_base": 0 if identity else self.nproc_base}
        try:
            send(self.zygote, {"kill": kill, "spawn": spec}, [result_w, log_fd, job_r])
            sent = True
        except OSError:
            sent = False
        os.close(result_w)
        os.close(job_r)
        if not sent:
            for fd in (log_fd, result_r, job_w):
                os.close(fd)
            return None
        return _Spare(-1, workdir, workdir + ".log", log_fd, result_r, job_w)

    def _ended(self, request: _Spare | None) -> dict:
        """The zygote's first answer to a request with `kill`: how the candidate ended."""
        if request is None:
            return {}
        try:
            reply, _ = receive(self.zygote)
        except OSError:
            reply = None
        return reply or {}

    def _spare_ready(self, request: _Spare | None) -> _Spare | None:
        """The zygote's answer that the spare is forked, with its pidfd; None if it is gone."""
        if request is None:
            return None
        try:
            reply, fds = receive(self.zygote)
        except OSError:
            reply, fds = None, []
        if not reply or not fds:
            for fd in (request.log_fd, request.result_r, request.job_w, *fds):
                os.close(fd)
            return None
        request.pidfd = fds[0]
        return request

    def run(self, job: dict, spare: _Spare) -> tuple[dict, _Spare | None]:
        """Run one job in `spare`; return its result (sent only once the candidate and
        everything it started are gone) and the request for the next spare."""
        # The verifier starts this job's clock now, and blames the job for a worker that
        # dies or stalls only once it has started (the last one's clean-up comes before).
        wire.send(CONTROL_OUT, {"op": "started", "id": job["id"]})
        started = time.perf_counter()
        oom_before = self.cgroups.oom_kills()
        try:
            wire.write_all(spare.job_w, job["attached"])  # the job, marshalled by the verifier
        except OSError:
            pass  # the spare is gone; watching it reports how it ended
        os.close(spare.job_w)
        try:
            lines, status = self._watch(job, spare.pidfd, spare.result_r, started)
        finally:
            os.close(spare.result_r)
            os.close(spare.pidfd)
            request = self._request_spare(kill=True)
            ended = self._ended(request)
        seconds = time.perf_counter() - started
        os.lseek(spare.log_fd, 0, os.SEEK_SET)
        log = os.read(spare.log_fd, job["limits"]["log_cap_bytes"]).decode("utf-8", "replace")
        os.close(spare.log_fd)
        return {"op": "done", "id": job["id"], "lines": lines, "status": status, "exit": ended.get("killed"),
                "cpu_s": ended.get("cpu_s"),
                "seconds": seconds, "log": log, "oom": self.cgroups.oom_kills() > oom_before}, request

    def _watch(self, job: dict, pidfd: int, read_fd: int, started: float) -> tuple[list[str], str]:
        """Collect the child's frames until it exits, times out, overflows or is aborted."""
        limits = job["limits"]
        deadline = started + limits["timeout_s"]
        poller = select.poll()
        for fd in (read_fd, pidfd, CONTROL_IN):
            poller.register(fd, select.POLLIN)
        frames = _FrameBuffer(limits["output_cap_bytes"])
        partial_due = bool(job.get("smoke"))
        partial_at = float("inf")  # when the first output goes to the verifier to be judged
        try:
            while True:
                now = time.perf_counter()
                if now >= deadline:
                    return frames.lines, "timeout"
                if now >= partial_at:
                    wire.send(CONTROL_OUT, {"op": "partial", "id": job["id"], "lines": frames.lines[:2]})
                    partial_due, partial_at = False, float("inf")
                wait = min(deadline, partial_at) - now
                events = dict(poller.poll(max(0, math.ceil(wait * 1000))))
                if CONTROL_IN in events and self._aborted(job["id"]):
                    return frames.lines, "aborted"
                if read_fd in events:
                    chunk = os.read(read_fd, 1 << 16)
                    if not chunk:  # every holder of the write end is gone
                        return frames.lines, "exited"
                    if not frames.add(chunk):
                        return frames.lines, "output_cap"
                    if partial_due and len(frames.lines) >= 2 and partial_at == float("inf"):
                        # A candidate that finishes within the grace is judged whole;
                        # only a slower one has its first output judged early.
                        partial_at = time.perf_counter() + SMOKE_GRACE_S
                elif pidfd in events:  # exited; a descendant may still hold the pipe open
                    os.set_blocking(read_fd, False)
                    try:
                        while (chunk := os.read(read_fd, 1 << 16)) and frames.add(chunk):
                            pass
                    except BlockingIOError:
                        pass
                    return frames.lines, "exited"
        finally:
            poller.unregister(pidfd)

    def _aborted(self, job_id: int) -> bool:
        """Whether the verifier stopped this job; every other message it sent (the next
        job, which may come right behind the abort) stays queued in the reader."""
        self.control.fill()
        if self.control.eof:  # the verifier is gone: stop now
            return True
        return self.control.take(lambda m: m.get("op") == "abort" and m.get("id") == job_id) is not None


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


# Compiled and run once before the zygote forks. CPython builds some state lazily on first
# use; built here, it is shared by every child instead of rebuilt in each. The first
# compile() alone creates the ~120 classes of the AST (a third of a millisecond and more
# than a hundred copied pages, in every child that has to do it itself).
WARM_UP = """
def warm(xs: list, n: int = 2) -> dict:
    total = sum(x * n for x in xs if x % 2 == 0)
    return {"total": total, "text": f"{total:>4}", "pairs": sorted(zip(xs, xs[1:]))}
warm([1, 2, 3, 4])
"""


def _warm_up() -> None:
    exec(compile(WARM_UP, "<warm-up>", "exec"), {"__name__": "warm_up"})  # noqa: S102 (our own fixed source)


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
        cgroups.open_counters()
        report.cgroup = cgroups.kind
    except OSError as exc:
        cgroups = WorkerCgroups()
        report.notes.append(f"could not join the worker's cgroup ({exc})")
    _protect_from_oom_killer()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the verifier decides when a worker stops
    report.seccomp = seccomp_supported()
    if config.get("isolation", "auto") == "none":
        report.notes.append("isolation disabled by configuration")
    else:
        enter_namespaces(report)
    for name in (*WARM_MODULES, *config.get("warm", ())):
        __import__(name)
    _warm_up()
    # Decided before the zygote builds the new root: this process sees it too, without /proc.
    drop_uid = os.getuid() == 0 and not in_user_namespace()
    nproc_base = 0 if drop_uid else _count_own_processes()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote = os.fork()
    if zygote == 0:  # the zygote: PID 1 of the new PID namespace, if there is one
        try:  # never returns into the server's code, whatever happens
            ours.close()
            _zygote_main(theirs, report, config, drop_uid)
        finally:
            os._exit(0)
    theirs.close()
    ready, _ = receive(ours)
    if not ready:
        return 1
    report.__dict__.update(ready["ready"])
    work_root = os.path.join(config["scratch"], f"s{os.getpid()}")
    os.mkdir(work_root, 0o711)
    try:
        ForkServer(report, work_root, ours, cgroups, drop_uid, nproc_base).serve()
    finally:
        try:
            _end_zygote(zygote, ours)
        finally:
            remove_tree(work_root)
    return 0


def _end_zygote(pid: int, sock: socket.socket) -> None:
    """Closing the socket ends the zygote's loop: it kills and reaps its spare child, then
    exits. Waiting for it puts its CPU time, and every candidate's, into this server's
    children's usage, which the pool collects when it reaps the server."""
    sock.close()
    if not reap_within(pid, ZYGOTE_EXIT_WAIT_S):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _choose_root(report: IsolationReport, config: dict, drop_uid: bool) -> None:
    """The minimal root, unless the kernel refuses a step or the pool's device check
    (`root_probe`) fails inside it: then the host's tree, read-only."""
    failed = probe_root(config, drop_uid) if config.get("root_probe") else None
    if failed:
        report.notes.append(f"the device check failed in a minimal root ({failed}); using the host tree read-only")
    elif config.get("root") == "host":
        report.notes.append("the pool's device check failed in a minimal root; using the host tree read-only")
    else:
        try:
            build_root(report, config["scratch"], config.get("hidden", []), config.get("devices", []))
            return
        except OSError as exc:
            report.notes.append(f"could not build a minimal root ({exc}); using the host tree read-only")
    readonly_host_tree(report, config["scratch"], config.get("hidden", []))


def _zygote_main(sock: socket.socket, report: IsolationReport, config: dict, drop_uid: bool) -> None:
    # Above the low descriptors, which prepare_zygote fills and ready_spare reuses per child.
    sock = socket.socket(fileno=fcntl.fcntl(sock.detach(), fcntl.F_DUPFD_CLOEXEC, 10))
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the server gone: this namespace goes too
    if report.level == "namespaces":
        _choose_root(report, config, drop_uid)
    else:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    # Once, here, rather than in every child: inherited by all of them.
    prepare_zygote(drop_groups=drop_uid)
    read_hard_limits()
    limit_future_privileges()
    prctl(PR_SET_NO_NEW_PRIVS, 1)  # execve grants nothing; the zygote itself still sets uids
    if report.seccomp:
        report.seccomp = install_filter()
    gc.collect()
    gc.freeze()  # fewer pages copied on each fork
    Zygote(sock, report).serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
