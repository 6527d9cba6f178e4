"""The kernel pool's runner: what a sandbox child does with a kernel job.

Loaded, with the modules it names, by the kernel pool's fork servers before their
zygote forks, and handed jobs by `greenloop.sandbox.child.run_job`. Modes:
`reference` and `candidate` (`kernel_child`), `timing` (`kernel_trials`; with `paired`,
on a CPU, `kernel_paired`).
"""

from __future__ import annotations

import os

import torch

from greenloop.verify.kernel_child import run_candidate, run_reference
from greenloop.verify.kernel_paired import run_paired
from greenloop.verify.kernel_trials import run_timing


def run_job(job: dict, write, finish) -> None:
    torch.set_num_threads(int(job.get("threads", 1)))
    note = _pin(job.get("cpu"))
    mode = job["mode"]
    write({"phase": "start", "mode": mode, "pinned": note}, flush=False)
    if mode == "reference":
        run_reference(job, write)
    elif mode == "candidate":
        run_candidate(job, write)
    elif mode == "timing" and job.get("paired"):
        run_paired(job, write)
    elif mode == "timing":
        run_timing(job, write)
    write({"end": True})
    finish()


def _pin(cpu: int | None) -> str:
    if cpu is None:
        return "no"
    try:
        os.sched_setaffinity(0, {int(cpu)})
        return f"cpu {cpu}"
    except (OSError, ValueError) as exc:
        return f"could not pin ({exc})"
