"""Limits that bound a candidate's whole process tree, not just one process."""

import os
import time

import pytest

from greenloop.sandbox.cgroups import WorkerCgroups
from greenloop.tasks import TaskSet
from greenloop.types import Candidate, Outcome, Task, TestCase
from greenloop.verify.funnel import VerifyConfig, verify_candidates

ADD = Task("t/add", "jsonl", "def add(a, b):\n", "add", tests=(TestCase(args=(1, 2), expected=3),))
TASKS = TaskSet({ADD.task_id: ADD}, [])

MANY_PROCESSES_OF_MEMORY = """    import os, time
    for _ in range(6):
        if os.fork() == 0:
            block = b"x" * (700 * 2**20)
            time.sleep(5)
            os._exit(0)
    block = b"y" * (700 * 2**20)
    time.sleep(3)
    return a + b
"""


def cgroups_available() -> bool:
    groups = WorkerCgroups.create(f"greenloop-probe-{os.getpid()}", 256, 8)
    try:
        return bool(groups.oom_files)
    finally:
        groups.remove()


@pytest.mark.skipif(not cgroups_available(), reason="no writable memory cgroup on this machine")
def test_memory_of_many_processes_is_capped_as_a_whole():
    # Each process stays under the 1 GB address-space limit; together they hold 4.9 GB.
    started = time.monotonic()
    bomb, after = verify_candidates(TASKS, [Candidate("t/add", MANY_PROCESSES_OF_MEMORY),
                                            Candidate("t/add", "    return a + b\n")],
                                    VerifyConfig(timeout_s=8, memory_mb=1024, workers=1))
    assert bomb.outcome is Outcome.MEMORY
    assert after.passed
    assert time.monotonic() - started < 30


def test_cgroup_directories_are_removed_with_the_pool():
    from greenloop.sandbox import WorkerPool

    with WorkerPool(workers=1) as pool:
        dirs = list(pool.workers[0].cgroups.dirs)
        assert all(os.path.isdir(d) for d in dirs)
    assert not any(os.path.exists(d) for d in dirs)


SYSCALL_PROBE = '''
import ctypes, os, platform, threading
libc = ctypes.CDLL(None, use_errno=True)
X86 = platform.machine() == "x86_64"

def refused(number, *args):
    return libc.syscall(number, *args) == -1 and ctypes.get_errno() == 1

def add(a, b):
    keyring = refused(248 if X86 else 217, b"user", b"greenloop", b"secret", 6, -4)
    mqueue = refused(240 if X86 else 180, b"/greenloop", 0o100 | 2, 0o600, None)
    trace = refused(101 if X86 else 117, 16, os.getppid(), 0, 0)
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()
    return a + b if keyring and mqueue and trace else -1
'''


def test_keyrings_message_queues_and_tracing_are_refused_but_threads_work():
    verdict, = verify_candidates(TASKS, [Candidate("t/add", SYSCALL_PROBE)], VerifyConfig(timeout_s=5, workers=1))
    assert verdict.passed, verdict.detail


def test_filter_is_built_for_the_known_architectures():
    from greenloop.sandbox.seccomp import BLOCKED, build_filter

    for machine in ("x86_64", "aarch64"):
        program = build_filter(machine)
        assert len(program) % 8 == 0 and len(program) // 8 > 2 * len(BLOCKED)
    assert build_filter("sparc") is None


def test_address_space_cap_is_left_off_only_when_asked():
    """CUDA jobs run without their own RLIMIT_AS (the driver reserves far more than it
    uses): it stays at the hard limit the process had, finite or not, while the cap for
    other jobs and the other limits still apply."""
    import subprocess
    import sys

    probe = ("import resource, sys; from greenloop.sandbox.isolation import set_rlimits as s; "
             "A = resource.RLIMIT_AS; hard = int(sys.argv[1]); "
             "hard >= 0 and resource.setrlimit(A, (hard, hard)); "
             "s(60, None, 64, 16, 64); off = resource.getrlimit(A); "
             "files = resource.getrlimit(resource.RLIMIT_NOFILE); "
             "s(60, 256, 64, 16, 64); print(off, files, resource.getrlimit(A))")
    for hard in (-1, 16 << 30):  # unlimited, then a finite hard limit (a container, a batch job)
        out = subprocess.run([sys.executable, "-c", probe, str(hard)], capture_output=True, text=True,
                             check=True).stdout
        assert out.split() == [f"({hard},", f"{hard})", "(64,", "64)", f"({256 << 20},", f"{256 << 20})"], out


IPC_CLEANUP_PROBE = '''
import ctypes, sys
from greenloop.sandbox.isolation import remove_ipc_objects, unshare
unshare(0x08000000)  # CLONE_NEWIPC: this process's own System V objects, not the host's
libc = ctypes.CDLL(None, use_errno=True)
made = [libc.shmget(0, 4096, 0o1600), libc.semget(0, 1, 0o1600), libc.msgget(0, 0o1600)]
assert all(ident >= 0 for ident in made), made
removed = remove_ipc_objects(None, everything=True)
left = [open(f"/proc/sysvipc/{kind}").read().count(chr(10)) - 1 for kind in ("shm", "sem", "msg")]
print(removed, left)
'''


def test_system_v_objects_are_removed_where_no_filter_refuses_them():
    """The zygote's fallback where seccomp is not available: after a candidate, every
    System V object in the server's IPC namespace is removed."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", IPC_CLEANUP_PROBE], capture_output=True, text=True)
    if "unshare" in run.stderr and "Operation not permitted" in run.stderr:
        pytest.skip("no IPC namespace can be made here")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["3", "[0,", "0,", "0]"]
