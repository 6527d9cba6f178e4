"""A fork server holds two jobs at a time; the verifier must never block writing the
next one to a server that is busy writing a large result back."""

import marshal
import os
import time
import threading

import pytest

from greenloop.sandbox import WorkerPool
from greenloop.sandbox.limits import Limits
from greenloop.sandbox.pool import _Queued

PADDING = "#" + "x" * (100 << 10) + "\n"  # a job larger than a pipe's buffer (64 KiB)
NO_ARGUMENTS = marshal.dumps([[[], {}]], 2)  # one call, f()
BIG_OUTPUT = "import os\nos.write(3, b'{\"phase\":\"compile\",\"ok\":true,\"pad\":\"' + b'y' * (3 << 20) + b'\"}\\n')\n"


@pytest.mark.timeout(120)
def test_large_jobs_beside_large_results_do_not_deadlock():
    limits = {**Limits().to_dict(), "cpu_s": 20, "timeout_s": 30.0}
    jobs = [{"code": PADDING + BIG_OUTPUT + f"\n\ndef f():\n    return {i}\n", "entry": "f",
             "calls": NO_ARGUMENTS, "limits": limits} for i in range(12)]
    results: dict = {}

    def run():
        with WorkerPool(workers=2) as pool:
            results.update(pool.run(jobs))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(90)
    assert not worker.is_alive(), "the pool and a fork server blocked writing to each other"
    assert sorted(results) == list(range(12))
    for index, result in results.items():
        assert result["status"] == "exited", result["status"]
        lines = result["lines"]
        assert len(lines[0]) > 3 << 20 and f'{{"i":0,"v":{index}}}' in lines and lines[-1].startswith('{"end":true')


def _small_jobs(n: int) -> list[dict]:
    limits = {**Limits().to_dict(), "cpu_s": 10, "timeout_s": 20.0}
    return [{"code": f"def f():\n    return {i}\n", "entry": "f", "calls": NO_ARGUMENTS, "limits": limits}
            for i in range(n)]


@pytest.mark.timeout(120)
def test_a_run_stopped_early_leaves_the_pool_usable():
    with WorkerPool(workers=1) as pool:
        first = pool.run(_small_jobs(6))
        next(first), next(first)  # by now the worker holds the next job too
        first.close()  # the caller stops with jobs still in flight
        assert all(not w.queue for w in pool.workers)
        results = dict(pool.run(_small_jobs(3)))
    assert sorted(results) == [0, 1, 2]
    assert all(f'{{"i":0,"v":{i}}}' in r["lines"] for i, r in results.items())


def test_a_lost_worker_blames_only_a_job_it_had_started():
    """A worker that dies or stalls costs the job it had started; a job still waiting
    behind it (or one it never got to start) goes to a fresh worker instead."""
    from collections import deque
    from types import SimpleNamespace

    pool = object.__new__(WorkerPool)
    pool._replace = lambda worker: None
    job_a, job_b = {"name": "a"}, {"name": "b"}
    for started, blamed in ((True, [10]), (False, [])):
        worker = SimpleNamespace(queue=deque([_Queued(1, 10, job_a, b"a", 99.0, started), _Queued(2, 11, job_b, b"b", None)]))
        running, retry = {1: 10, 2: 11}, deque()
        results = list(pool._lost(worker, running, retry, "worker_died"))
        assert [index for index, _ in results] == blamed
        assert all(r["status"] == "worker_died" for _, r in results)
        assert list(retry) == ([(11, job_b, b"b")] if started else [(10, job_a, b"a"), (11, job_b, b"b")])
        assert not running and not worker.queue


ACCOUNTING_PROBE = r"""
import marshal, resource
from greenloop.sandbox import WorkerPool
from greenloop.sandbox.limits import Limits
limits = {**Limits().to_dict(), "cpu_s": 20, "timeout_s": 30.0}
burn = "def f():\n    n = 0\n    for i in range(15_000_000):\n        n += i\n    return n\n"
jobs = [{"code": burn, "entry": "f", "calls": marshal.dumps([[[], {}]], 2), "limits": limits} for _ in range(2)]
with WorkerPool(workers=1) as pool:
    cpu = sum(r["cpu_s"] for _, r in pool.run(jobs))
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(cpu, usage.ru_utime + usage.ru_stime)
"""


def test_a_closed_pool_accounts_every_candidates_cpu_time_to_its_caller():
    """Benchmarks read CPU from getrusage(RUSAGE_CHILDREN): once the pool is closed, the
    candidates' CPU time must be in it, so each fork server reaps its zygote (which reaps
    the candidates) before it exits."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", ACCOUNTING_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    candidates_cpu, children_cpu = map(float, done.stdout.split())
    assert candidates_cpu > 0.5  # well above a fork server's own start-up CPU
    assert children_cpu >= candidates_cpu


def test_shutdown_waits_nest_so_no_stage_is_killed_while_the_one_below_still_works():
    from greenloop.sandbox import pool, server, zygote
    assert zygote.KILL_WAIT_S < server.ZYGOTE_EXIT_WAIT_S < pool.STOP_WAIT_S


def _descendants(pid: int) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        p = stack.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    kids = [int(c) for c in fh.read().split()]
                found.update(kids)
                stack.extend(kids)
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_closing_the_pool_leaves_no_zygote_or_spare_child(isolation):
    with WorkerPool(workers=1, isolation=isolation) as pool:
        assert [r["status"] for _, r in pool.run(_small_jobs(2))] == ["exited", "exited"]
        deadline = time.monotonic() + 5  # the verdict goes out before the next spare is forked
        while len(below := _descendants(pool.workers[0].process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(below) >= 2  # the zygote and its spare child, at least
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in below) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not [p for p in below if _alive(p)]
