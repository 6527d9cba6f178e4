"""Device checks for tests/sandbox/test_root_probe.py, imported by the fork servers (a
pool's `root_probe` must name a module the servers have loaded)."""

import os
import sys

from greenloop.sandbox.child import SAFE_ENV


def sees_the_minimal_root() -> None:
    """Passes only inside the candidates' minimal root with a device directory bound,
    set up as a candidate is."""
    assert not os.path.exists(__file__), "the host tree is visible, not the minimal root"
    assert os.path.isdir("/dev/shm"), "a device directory was not bound as a directory"
    assert os.path.isdir("/sys/devices"), "no sysfs though devices were asked for"
    assert not os.path.exists("/sys/fs/cgroup/cgroup.procs"), "the host's cgroup tree came with /sys"
    assert set(os.environ) == {*SAFE_ENV, "HOME", "TMPDIR"}, sorted(os.environ)
    assert os.getgroups() == [] or os.getuid() == 0, os.getgroups()
    with open("/proc/self/status") as fh:
        assert "NoNewPrivs:\t1" in fh.read(), "no_new_privs is not set"
    print("chatter on stdout " * 1000)  # must not reach the fork server's control pipe
    sys.stdout.flush()
    with open("written", "w") as fh:  # its work dir is its own
        fh.write("ok")


def fails() -> None:
    raise RuntimeError("no device answers here")


def vanishes() -> None:
    os._exit(3)  # as a driver crashing the process would
