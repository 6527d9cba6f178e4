"""Pools asked for devices: directory entries of /dev are bound as directories, /sys is
there read-only, and a device check (`root_probe`) run inside the minimal root decides
whether candidates get that root or, when the check fails, the host tree read-only."""

import marshal
import os

import pytest

from greenloop.sandbox import WorkerPool
from greenloop.sandbox.limits import Limits

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="Linux only")

PROBES = "tests.sandbox.root_probes"
LOOK = """
import os

def look():
    return [os.path.isdir("/dev/shm"), os.path.isdir("/sys/devices"), os.path.exists("/dev/kvm"),
            os.access("/sys/devices", os.W_OK), os.path.exists(os.path.join(SCRATCH, "probe"))]
"""


def _look(pool: WorkerPool) -> str:
    if pool.isolation["level"] != "namespaces":
        pytest.skip("no mount namespace here: candidates never get a minimal root")
    limits = {**Limits().to_dict(), "cpu_s": 10, "timeout_s": 20.0}
    job = {"code": f"SCRATCH = {pool.scratch!r}\n" + LOOK, "entry": "look", "calls": marshal.dumps([[[], {}]], 2), "limits": limits}
    ((_, result),) = list(pool.run([job]))
    assert result["status"] == "exited", result
    (line,) = [line for line in result["lines"] if line.startswith('{"i":0')]
    return line


def test_a_passing_device_check_keeps_the_minimal_root_with_devices_bound():
    with WorkerPool(workers=1, devices=["shm"], warm_modules=[PROBES],
                    root_probe=f"{PROBES}:sees_the_minimal_root") as pool:
        seen = _look(pool)
        isolation = pool.isolation
    assert isolation["filesystem"].startswith("minimal root"), isolation
    assert not any("device check" in note for note in isolation["notes"]), isolation["notes"]
    assert seen == '{"i":0,"v":[true,true,false,false,false]}', seen  # shm and /sys, read-only; no kvm; no trace of the probe


def test_a_failing_device_check_falls_back_to_the_host_tree_and_says_why():
    with WorkerPool(workers=1, devices=["shm"], warm_modules=[PROBES], root_probe=f"{PROBES}:fails") as pool:
        seen = _look(pool)  # candidates still run
        isolation = pool.isolation
    assert isolation["filesystem"] == "read-only", isolation
    kvm = "true" if os.path.exists("/dev/kvm") else "false"  # the host's own /dev, read-only
    assert seen == f'{{"i":0,"v":[true,true,{kvm},false,false]}}', seen
    assert any("device check failed" in note and "no device answers here" in note
               for note in isolation["notes"]), isolation["notes"]


def test_without_devices_there_is_no_sys():
    with WorkerPool(workers=1) as pool:
        seen = _look(pool)
        assert pool.isolation["filesystem"].startswith("minimal root")
    assert seen == '{"i":0,"v":[false,false,false,false,false]}', seen


def test_a_device_check_that_kills_its_process_counts_as_failed():
    with WorkerPool(workers=1, warm_modules=[PROBES], root_probe=f"{PROBES}:vanishes") as pool:
        _look(pool)
        isolation = pool.isolation
    assert isolation["filesystem"] == "read-only", isolation
    assert any("ended without an answer" in note for note in isolation["notes"]), isolation["notes"]


def test_replacement_servers_take_the_pools_verdict_without_checking_again():
    with WorkerPool(workers=1, devices=["shm"], warm_modules=[PROBES], root_probe=f"{PROBES}:fails") as pool:
        assert pool.config["root_probe"] is None and pool.config["root"] == "host"
        pool._replace(pool.workers[0])
        _look(pool)
        notes = pool.workers[0].isolation["notes"]
        assert pool.workers[0].isolation["filesystem"] == "read-only"
    assert any("the pool's device check failed" in note for note in notes), notes
