"""Attacks found after the first hostile suite: each once got through, each is one case."""

import time

from greenloop.tasks import TaskSet
from greenloop.types import Candidate, Outcome, Task, TestCase
from greenloop.verify.funnel import JUDGE_TIMEOUT_S, VerifyConfig, verify_candidates

ADD = Task("t/add", "jsonl", "def add(a, b):\n", "add", tests=(TestCase(args=(1, 2), expected=3),))
TASKS = TaskSet({ADD.task_id: ADD}, [])
RIGHT = Candidate("t/add", "    return a + b\n")


def run(*completions, **config):
    config = {"workers": 1, "timeout_s": 5, **config}
    return verify_candidates(TASKS, [Candidate("t/add", c) for c in completions] + [RIGHT], VerifyConfig(**config))


def test_a_forged_frame_that_overflows_costs_only_that_candidate():
    forged = ("def add(a, b):\n    return 0\n\n\nimport os\nos.write(3, b'{\"phase\":\"compile\",\"ok\":true}\\n{\"i\":0,\"v\":{\"c\":[' + b'9' * 400 + b',0]}}\\n"
              "{\"end\":true}\\n')\nos._exit(0)\n")
    hostile, right = run(forged)
    assert hostile.outcome is Outcome.FAILED, hostile.detail
    assert right.passed


def test_colliding_hashes_in_outputs_cost_a_bounded_time():
    # A forged frame holding a set of 60k ints with one hash: decoding it is quadratic in
    # the verifier, which gives up on that candidate after its judging time limit.
    forged = ("def add(a, b):\n    return 0\n\n\nimport os\nmembers = ','.join(str(k * (2 ** 61 - 1)) for k in range(1, 60001))\n"
              "os.write(3, ('{\"phase\":\"compile\",\"ok\":true}\\n{\"i\":0,\"v\":{\"s\":[' + members + ']}}\\n'"
              " + '{\"end\":true}\\n').encode())\nos._exit(0)\n")
    started = time.monotonic()
    hostile, right = run(forged)
    assert hostile.outcome is Outcome.FAILED and "could not be judged" in hostile.detail, hostile.detail
    assert right.passed
    assert time.monotonic() - started < JUDGE_TIMEOUT_S + 15


NAMESPACE_BY_CLONE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)

def add(a, b):
    # clone(CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD): a raw clone asking for namespaces
    pid = libc.syscall(56 if os.uname().machine == "x86_64" else 220, 0x10000000 | 0x00020000 | 17, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
        return a + b
    return -1
"""


def test_clone_cannot_make_namespaces():
    hostile, right = run(NAMESPACE_BY_CLONE)
    assert hostile.outcome is Outcome.FAILED and right.passed


DEVICES_AND_VSOCK = """
import os, socket

def add(a, b):
    devices = set(os.listdir("/dev"))
    try:
        socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
        vsock = True
    except OSError:
        vsock = False
    return a + b if (devices - {"null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr"} or vsock) else -1
"""


def test_dev_holds_only_harmless_devices_and_vsock_is_refused():
    hostile, right = run(DEVICES_AND_VSOCK)
    assert hostile.outcome is Outcome.FAILED and right.passed


def test_a_candidate_cannot_poison_the_check_for_the_next():
    task = Task("t/sort", "jsonl", "", "sort_it", prompt_is_code=False,
                tests=(TestCase(check="sort_it(DATA)\nassert DATA == [1, 2, 3]\n"),),
                reference="DATA = [3, 1, 2]\n\ndef sort_it(xs):\n    xs.sort()\n")
    tasks = TaskSet({task.task_id: task}, [])
    poison, right, again = verify_candidates(tasks, [
        Candidate("t/sort", "def sort_it(xs):\n    xs[:] = ['poison']\n"),
        Candidate("t/sort", "def sort_it(xs):\n    xs.sort()\n"),
        Candidate("t/sort", "def sort_it(xs):\n    xs[:] = sorted(xs)\n")], VerifyConfig(workers=1, timeout_s=5, smoke=False))
    assert poison.outcome is Outcome.FAILED
    assert right.passed and again.passed, (right.detail, again.detail)


def test_a_fifo_at_the_next_log_path_does_not_stop_the_worker():
    plant = ("import os\n\ndef add(a, b):\n    here = os.getcwd()\n    n = int(os.path.basename(here)[1:])\n"
             "    for k in range(n + 1, n + 5):\n        try:\n            os.mkfifo(os.path.join(os.path.dirname(here), f'w{k}.log'))\n"
             "        except OSError:\n            pass\n    return a + b\n")
    planted, right = run(plant, isolation="none")
    assert planted.passed, planted.detail  # its own answer is right, planted FIFOs or not
    assert right.passed, right.detail  # and the worker after it still works
