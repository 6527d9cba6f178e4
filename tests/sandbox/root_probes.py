"""Device checks for tests/sandbox/test_root_probe.py, imported by the fork servers (a
pool's `root_probe` must name a module the servers have loaded)."""

import os


def sees_the_minimal_root() -> None:
    """Passes only inside the candidates' minimal root with a device directory bound."""
    assert not os.path.exists(__file__), "the host tree is visible, not the minimal root"
    assert os.path.isdir("/dev/shm"), "a device directory was not bound as a directory"
    assert os.path.isdir("/sys/devices"), "/sys is missing though devices were asked for"
    with open("written", "w") as fh:  # its work dir is its own
        fh.write("ok")


def fails() -> None:
    raise RuntimeError("no device answers here")


def vanishes() -> None:
    os._exit(3)  # as a driver crashing the process would
