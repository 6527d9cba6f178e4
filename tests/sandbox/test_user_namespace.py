"""The path taken where greenloop does not run as root: a user namespace. Simulated here
by running the verifier as root of a fresh user namespace (`unshare --user
--map-root-user`), where candidates keep uid 0 inside and must still be powerless."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import json
    from greenloop.tasks import TaskSet
    from greenloop.types import Candidate, Task, TestCase
    from greenloop.verify.funnel import Verifier, VerifyConfig

    UNDO_MOUNTS = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def add(a, b):
        undone = libc.umount2(b"/usr", 2) == 0 or libc.mount(None, b"/usr", None, 32 | 4096, None) == 0
        try:
            open("/usr/greenloop-userns-probe", "w")
            wrote = True
        except OSError:
            wrote = False
        return a + b if (undone or wrote) else -1
    """
    task = Task("t/add", "jsonl", "def add(a, b):\\n", "add", tests=(TestCase(args=(1, 2), expected=3),))
    with Verifier(TaskSet({task.task_id: task}, []), VerifyConfig(workers=1, timeout_s=5)) as verifier:
        verdicts = dict(verifier.verify([Candidate("t/add", "    return a + b\\n"), Candidate("t/add", UNDO_MOUNTS)]))
        print(json.dumps({"isolation": verifier.isolation, "correct": verdicts[0].passed,
                          "attack": verdicts[1].outcome.value}))
''')


def user_namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not user_namespaces_work(), reason="unprivileged user namespaces are not available here")
def test_candidates_in_a_user_namespace_cannot_undo_the_sandbox():
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    run = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", SCRIPT],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["isolation"]["level"] == "namespaces" and result["isolation"]["network"] == "none"
    assert "read-only" in result["isolation"]["filesystem"], result["isolation"]
    assert result["correct"] is True
    assert result["attack"] == "failed"
    assert not os.path.exists("/usr/greenloop-userns-probe")
