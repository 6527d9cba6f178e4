"""A fork server holds two jobs at a time; the verifier must never block writing the
next one to a server that is busy writing a large result back."""

import threading

import pytest

from greenloop.sandbox import WorkerPool
from greenloop.sandbox.limits import Limits

PADDING = "#" + "x" * (100 << 10) + "\n"  # a job larger than a pipe's buffer (64 KiB)
BIG_OUTPUT = "import os\nos.write(3, b'{\"phase\":\"compile\",\"ok\":true,\"pad\":\"' + b'y' * (3 << 20) + b'\"}\\n')\n"


@pytest.mark.timeout(120)
def test_large_jobs_beside_large_results_do_not_deadlock():
    limits = {**Limits().to_dict(), "cpu_s": 20, "timeout_s": 30.0}
    jobs = [{"code": PADDING + BIG_OUTPUT + f"\n\ndef f():\n    return {i}\n", "entry": "f",
             "calls": [[[], {"d": []}]], "limits": limits} for i in range(12)]
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
