"""The zygote: the only process candidates are forked from.

It is forked from the fork server at start-up, before any job exists, and never sees a
job, a candidate's code or an output afterwards: it receives only requests to spawn
the next spare child (with its file descriptors), each of which may first ask it to
kill the last candidate. So a candidate that scans its own memory finds no
trace of earlier candidates. In the "namespaces" level it is PID 1 of the PID namespace:
when a candidate ends it kills every process left in the namespace. Otherwise it is a
child subreaper and kills the candidate's process group and every orphan it inherited.
"""

from __future__ import annotations

import itertools
import marshal
import os
import signal
import socket
import time

from greenloop.sandbox.child import (
    enter_job,
    prepare_spare,
    ready_spare,
    receive_job,
    restore_fds,
    run_job,
)
from greenloop.sandbox.isolation import IsolationReport, remove_ipc_objects

MAX_MESSAGE = 1 << 13  # a spawn spec, a kill, or the zygote's isolation report
KILL_WAIT_S = 10.0


# Server and zygote talk in marshal: both are trusted, and marshal is a single C call
# each way, where json's Python layers would copy dozens of the zygote's pages a cycle.
def send(sock: socket.socket, message: dict, fds: list[int] = ()) -> None:
    socket.send_fds(sock, [marshal.dumps(message)], list(fds))


def receive(sock: socket.socket) -> tuple[dict | None, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
    return (marshal.loads(data) if data else None), fds


class Zygote:
    def __init__(self, sock: socket.socket, report: IsolationReport):
        self.sock = sock
        self.report = report
        self.child: int | None = None
        self.child_uid: int | None = None
        self.child_cpu: float | None = None

    def serve(self) -> None:
        try:
            self._loop()
        except OSError:  # the server went away while we answered
            pass
        finally:
            self.kill_tree()  # the server is done: no candidate or spare outlives it

    def _loop(self) -> None:
        send(self.sock, {"ready": self.report.to_dict()})
        while True:
            try:
                message, fds = receive(self.sock)
            except (OSError, ValueError):
                return
            if message is None:
                return
            # every message spawns the next spare; most first end the last candidate, and
            # that is answered at once, so the verdict need not wait for the next fork
            if message.get("kill"):
                killed = self.kill_tree()
                if not self.report.seccomp:  # with the filter, no candidate can make one
                    remove_ipc_objects(self.child_uid, everything=self.report.level == "namespaces")
                send(self.sock, {"killed": killed, "cpu_s": self.child_cpu})
            pidfd = self.spawn(message["spawn"], fds)
            send(self.sock, {"spawned": self.child}, [pidfd])
            os.close(pidfd)

    def spawn(self, spec: dict, fds: list[int]) -> int:
        """Fork the spare child for `spec`; returns a pidfd for it."""
        ready_spare(*fds, spec["workdir"])
        pid = os.fork()
        if pid == 0:
            try:
                prepare_spare()
                job = receive_job()
                if job is not None:
                    identity = (spec["uid"], spec["gid"]) if spec.get("uid") is not None else None
                    nproc = job["limits"]["max_processes"] + spec["nproc_base"]
                    enter_job(job, identity, nproc)
                    run_job(job)
            finally:
                os._exit(70)
        restore_fds()
        for fd in fds:
            os.close(fd)
        self.child, self.child_uid = pid, spec.get("uid")
        return os.pidfd_open(pid)

    def kill_tree(self) -> int | None:
        """Kill the candidate and everything it started; return the child's exit code.
        Returns only when none of them is left (or after KILL_WAIT_S, for a process stuck
        in the kernel), however fast they fork and however slowly they die."""
        pid, status = self.child, None
        self.child, self.child_cpu = None, None
        deadline = time.monotonic() + KILL_WAIT_S
        for attempt in itertools.count():
            if self.report.pid_namespace:
                try:
                    os.kill(-1, signal.SIGKILL)  # as PID 1: every process in the namespace
                except ProcessLookupError:
                    pass
            elif pid is not None:  # orphans are looked for only when some child outlived the group
                _kill_group_and_orphans(pid, look_for_orphans=attempt > 0)
            reaped_any = False
            while True:
                try:
                    reaped, wstatus, usage = os.wait4(-1, os.WNOHANG)
                except ChildProcessError:
                    return status
                if reaped == 0:
                    break
                reaped_any = True
                if reaped == pid:  # its CPU time, as the kernel counted it (and its reaped children's)
                    status = os.waitstatus_to_exitcode(wstatus)
                    self.child_cpu = usage.ru_utime + usage.ru_stime
            if time.monotonic() > deadline:
                return status
            if not reaped_any:
                time.sleep(0.0005)  # killed, still dying
        return status


def _kill_group_and_orphans(pid: int, look_for_orphans: bool) -> None:
    """Without a PID namespace: the candidate's process group, then every process that was
    re-parented to the zygote (a child subreaper) after its parent died."""
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
