"""The verifier's side of the sandbox: a pool of warm fork servers.

Jobs go to idle workers over pipes; results come back as they finish. A worker that dies
(a candidate crashed or killed it) costs only the job it was running: that job is
reported as `worker_died` and a fresh worker takes its place. A worker that stops
answering past its job's deadline plus a grace period is killed and replaced the same way.
"""

from __future__ import annotations

import json
import marshal
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from greenloop.sandbox import wire
from greenloop.sandbox.cgroups import WorkerCgroups
from greenloop.sandbox.cleanup import remove_tree
from greenloop.sandbox.limits import Limits

# How long a stopping fork server gets to end its zygote (server.ZYGOTE_EXIT_WAIT_S) before
# it is killed; a healthy one takes milliseconds.
STOP_WAIT_S = 15.0

GRACE_S = 5.0
QUEUE_DEPTH = 2  # jobs sent to a worker at a time (see WorkerPool._with_room)
QUEUE_ROOM = 4 << 10  # pipe bytes left free after a queued job, for an abort
START_GRACE_S = 5.0  # for a worker to start its next job (it clears the last one's work dir first)
ENV_ALLOWED = {"PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED"}


class SandboxError(RuntimeError):
    """The sandbox itself could not work (a worker failed to start)."""


@dataclass(slots=True)
class _Queued:
    """A job sent to a worker: its deadline is set once it is first in line (None while it
    waits behind another), and `started` once the server says it began it."""
    job_id: int
    index: int  # in the caller's jobs
    job: dict
    payload: bytes  # the job marshalled, as sent
    deadline: float | None
    started: bool = False


class _Worker:
    def __init__(self, config: dict, index: int, log_dir: str):
        self.index = index
        limits = config["limits"]
        self.cgroups = WorkerCgroups.create(f"greenloop-{os.getpid()}-{index}-{time.monotonic_ns()}",
                                            limits["memory_mb"], limits["max_processes"])
        config = {**config, "cgroups": self.cgroups.to_config()}
        self.log_path = os.path.join(log_dir, f"server{index}-{time.monotonic_ns()}.log")
        package_root = str(Path(__file__).resolve().parents[2])
        # A short allowlist: the server's environment is visible in its /proc entry, and
        # the verifier's may hold API keys.
        env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWED or k.startswith("OPENBLAS_")}
        env.update(config.get("env", {}))
        env["PYTHONPATH"] = package_root + os.pathsep + os.environ.get("PYTHONPATH", "")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "greenloop.sandbox.server", json.dumps(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, close_fds=True)
        self.reader = wire.Reader(self.process.stdout.fileno())
        # jobs sent, in order; the first is the one running (or about to)
        self.queue: deque[_Queued] = deque()
        self.broken = False  # a write to it failed: it takes no more jobs
        self.isolation: dict = {}

    def wait_ready(self) -> None:
        ready = self.reader.read_one()
        if not ready or ready.get("op") != "ready":
            raise SandboxError(f"sandbox worker failed to start: {self.log_tail()}")
        self.isolation = ready["isolation"]

    @property
    def stdin(self) -> int:
        return self.process.stdin.fileno()

    def send(self, message: dict) -> None:
        wire.send(self.stdin, message)

    def log_tail(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, kill: bool = False) -> None:
        try:
            if kill:
                self.process.kill()
            self.process.stdin.close()
            self.process.wait(timeout=STOP_WAIT_S)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.cgroups.remove()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


def _root_rank(isolation: dict) -> int:
    """1 where candidates got the minimal root, 0 where they got less."""
    return int(isolation.get("filesystem", "").startswith("minimal root"))


class WorkerPool:
    """`with WorkerPool(workers=2) as pool: for index, result in pool.run(jobs): ...`"""

    def __init__(self, workers: int | None = None, isolation: str = "auto", hidden_paths: Iterable[str] = (),
                 limits: Limits = Limits(), warm_modules: Iterable[str] = (), devices: Iterable[str] = (),
                 env: dict[str, str] | None = None, root_probe: str | None = None):
        """`warm_modules` are imported by each fork server before its zygote forks, so
        candidates start with them loaded (`torch` for kernel jobs), and a module named
        by a job's `runner` must be among them. `devices` are extra /dev entries (names
        or globs, e.g. `nvidia*`) bound into the candidate's root, for GPU work. `env` adds
        variables to the fork servers' environment at start (e.g. GLIBC_TUNABLES); the
        candidate's own environment is scrubbed regardless. `root_probe` ("module:function",
        the module among `warm_modules`) is run once per fork server inside a copy of the
        candidates' minimal root, as a candidate's uid; if it raises, that server's
        candidates get the host tree read-only instead, and the isolation notes say why."""
        if isolation not in ("auto", "none"):
            raise ValueError(f"isolation must be 'auto' or 'none', got {isolation!r}")
        self.size = workers or os.cpu_count() or 1
        self.scratch = tempfile.mkdtemp(prefix="greenloop-sandbox-")
        os.chmod(self.scratch, 0o711)
        self.log_dir = tempfile.mkdtemp(prefix="greenloop-logs-")
        hidden = sorted({str(Path(p).resolve()) for p in hidden_paths})
        self.config = {"isolation": isolation, "scratch": self.scratch, "hidden": hidden, "limits": limits.to_dict(),
                       "warm": list(warm_modules), "devices": list(devices), "env": dict(env or {}),
                       "root_probe": root_probe}
        self.selector = selectors.DefaultSelector()
        self.workers: list[_Worker] = []
        self.next_id = 0
        self.replaced = 0
        try:
            for i in range(self.size):  # start them all, then wait: they boot in parallel
                self._add_worker(i, wait=False)
            for worker in self.workers:
                worker.wait_ready()
        except BaseException:
            self.close()
            raise
        self.isolation = min((w.isolation for w in self.workers), key=_root_rank)  # the weakest in force
        if root_probe:  # replacement servers take this verdict instead of checking again
            self.config = {**self.config, "root_probe": None,
                           "root": "minimal" if _root_rank(self.isolation) else "host"}

    def _add_worker(self, index: int, wait: bool = True) -> _Worker:
        worker = _Worker(self.config, index, self.log_dir)
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        self.selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
        return worker

    def _replace(self, worker: _Worker) -> None:
        self.selector.unregister(worker.process.stdout)
        self.workers.remove(worker)
        worker.stop(kill=True)
        self.replaced += 1
        self._add_worker(worker.index)

    def run(self, jobs: Iterable[dict], on_partial: Callable[[int, list[str]], bool] | None = None) -> Iterator[tuple[int, dict]]:
        """Run jobs (dicts: code, or compiled (a marshalled code object); entry; calls (marshalled
        [[args, kwargs], ...]) or check; limits). Yields (index, result)
        in completion order. `jobs` is pulled one job at a time, when a worker has room (up
        to QUEUE_DEPTH each), so a generator can make them while earlier ones run.
        `on_partial(index, lines)` sees the first frames early and returns False to stop
        that job (the smoke stage)."""
        # each job marshalled once, when it is pulled: the server passes it to the child unread
        source = ((index, job, marshal.dumps(job)) for index, job in enumerate(jobs))
        retry: deque = deque()  # jobs no worker has started (gone, or no room yet): run first
        running: dict[int, int] = {}  # job id -> job index
        exhausted = False
        try:
            while retry or running or not exhausted:
                for worker in self._with_room():
                    item = retry.popleft() if retry else None if exhausted else next(source, None)
                    if item is None:  # nothing left to start
                        exhausted = True
                        break
                    sent = self._send(worker, item, running, on_partial is not None)
                    if not sent:
                        retry.appendleft(item)  # no room now, or the worker is gone: another runs it
                    if sent is False and not worker.queue:
                        yield from self._lost(worker, running, retry, "worker_died")
                        break
                yield from self._collect(running, retry, on_partial)
        finally:  # a caller that stops early leaves jobs in flight: their workers start afresh
            for worker in [w for w in self.workers if w.queue]:
                worker.queue.clear()
                self._replace(worker)

    def _with_room(self) -> list[_Worker]:
        """Workers that can take a job now, idle ones first. Each holds up to QUEUE_DEPTH:
        the next job waits in its pipe, so it starts the moment the last one ends rather
        than after the verifier has judged it and sent another. A busy worker takes one
        only while its pipe has room for it and QUEUE_ROOM more (`_send`): a server
        writing a large result is not reading, and this process must never block
        writing to it then (the abort of a running job must always fit too)."""
        return [w for depth in range(QUEUE_DEPTH) for w in self.workers if len(w.queue) == depth and not w.broken]

    def _send(self, worker: _Worker, item: tuple[int, dict, bytes], running: dict, smoke: bool) -> bool | None:
        """True: sent. None: a busy worker's pipe has no room for it now. False: the worker is dead."""
        index, job, payload = item
        try:
            # QUEUE_ROOM also covers the header, which is small (the id, the limits)
            if worker.queue and wire.pipe_room(worker.stdin) < len(payload) + QUEUE_ROOM:
                return None  # not now: it waits for this worker to be idle, or another
            job_id = self.next_id
            self.next_id += 1
            header = {"op": "run", "id": job_id, "smoke": smoke, "limits": job["limits"]}
            wire.write_all(worker.stdin, wire.frame(header, payload))
        except OSError:  # gone: what it has sent is still read (_collect) before it is replaced
            worker.broken = True
            return False
        deadline = time.monotonic() + START_GRACE_S + job["limits"]["timeout_s"] + GRACE_S if not worker.queue else None
        worker.queue.append(_Queued(job_id, index, job, payload, deadline))
        running[job_id] = index
        return True

    def _collect(self, running: dict, retry: deque, on_partial) -> Iterator[tuple[int, dict]]:
        if not running:
            return
        deadline = min(w.queue[0].deadline for w in self.workers if w.queue)
        events = self.selector.select(timeout=max(0.0, deadline - time.monotonic()))
        # Deadlines are judged as of the select: the caller may spend long on a result
        # yielded below, while a worker's next answer waits unread in its pipe.
        checked_at, answered = time.monotonic(), {key.data for key, _ in events}
        for key, _ in events:
            worker: _Worker = key.data
            try:
                worker.reader.fill()
                messages = worker.reader.messages()
            except (OSError, ValueError):
                messages, worker.reader.eof = [], True
            for message in messages:
                job_id = message.get("id")
                if job_id not in running:
                    continue
                if message["op"] == "partial" and on_partial is not None:
                    if not on_partial(running[job_id], message["lines"]):
                        try:
                            worker.send({"op": "abort", "id": job_id})
                        except OSError:
                            worker.reader.eof = True
                elif message["op"] == "started":
                    self._started(worker, job_id)
                elif message["op"] == "done":
                    self._finished(worker, job_id)
                    yield running.pop(job_id), message
            if worker.reader.eof:
                yield from self._lost(worker, running, retry, "worker_died")
        for worker in list(self.workers):
            if worker.queue and worker not in answered and checked_at > worker.queue[0].deadline:
                yield from self._lost(worker, running, retry, "worker_unresponsive")

    @staticmethod
    def _started(worker: _Worker, job_id: int) -> None:
        """The server began this job: its own clock starts now."""
        for entry in worker.queue:
            if entry.job_id == job_id:
                entry.deadline, entry.started = time.monotonic() + entry.job["limits"]["timeout_s"] + GRACE_S, True

    @staticmethod
    def _finished(worker: _Worker, job_id: int) -> None:
        """A worker runs its jobs in order: the next must start within START_GRACE_S (the
        server first clears the last one's work dir), then has its own deadline."""
        for entry in list(worker.queue):
            if entry.job_id == job_id:
                worker.queue.remove(entry)
                break
        if worker.queue and worker.queue[0].deadline is None:
            worker.queue[0].deadline = time.monotonic() + START_GRACE_S

    def _lost(self, worker: _Worker, running: dict, retry: deque, status: str) -> Iterator[tuple[int, dict]]:
        """Replace a dead or stuck worker. A job it had started costs that job its result;
        jobs it had not started go to a fresh worker."""
        queue = list(worker.queue)
        worker.queue.clear()
        self._replace(worker)
        for entry in queue:
            if entry.job_id not in running:
                continue
            del running[entry.job_id]
            if entry.started:
                yield entry.index, {"op": "done", "id": entry.job_id, "lines": [], "status": status,
                                    "exit": None, "seconds": 0.0, "log": ""}
            else:
                retry.append((entry.index, entry.job, entry.payload))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
        self.selector.close()
        remove_tree(self.scratch)
        remove_tree(self.log_dir)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
