"""The timing mode in the sandbox child: warm up, then time trials of one model.

- `run_timing`: build the candidate's `ModelNew` (or the reference's `Model` when the
  job has no candidate), warm up, then time trials (at least `trials`, and more until
  the timed calls add up to `min_time_s`, at most `max_trials` or `budget_s` of wall
  time), each on fresh inputs from `get_inputs()` under a seed drawn from os.urandom
  after the previous trial (so no output can be computed ahead). Inputs are made outside
  the timed region; the clock and the random source are bound before any candidate code
  runs. A random subset of the timed outputs (each with probability `keep_fraction`, up
  to `max_kept`) is kept with its seed, for the parent to check against the reference.
- Paired (`kernel_paired`, on a CPU): each timed call follows an untimed call of the
  same model on the previous trial's inputs, so it starts with its own code and weights in cache
  whatever ran before it, and after each trial the process stops itself so that the
  reference's process can take its turn on the core.
"""

from __future__ import annotations

import os
import signal

import torch

from greenloop.verify.kernel_child import (
    _CLOCK,
    _CUDA_EVENT,
    _DEVICE_SYNC,
    _EVENT_ELAPSED,
    _EVENT_RECORD,
    _URANDOM,
    OUT_OF_MEMORY,
    _forget_harness,
    _sync,
    _tampered,
    _to,
    build_model,
    decode,
    describe,
    encode,
    load_source,
    make_inputs,
)

_KILL, _GETPID = os.kill, os.getpid  # bound before any candidate code exists


def stop_self() -> None:
    """The paired pause: stop this process until the reference's process continues it."""
    _KILL(_GETPID(), signal.SIGSTOP)


def thread_count() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def run_timing(job: dict, write, pause=None) -> None:
    device = job.get("device", "cpu")
    spec = job["spec"]
    threads_start = thread_count()
    try:
        problem = load_source(job["problem"], "kernel_problem")
        if job.get("candidate"):
            _forget_harness()
        cls = load_source(job["candidate"], "kernel_candidate")["ModelNew"] if job.get("candidate") else problem["Model"]
        model = build_model(cls, decode(spec["init"]), spec, device)
        trials = time_trials(job, problem, model, device, spec, pause)
    except OUT_OF_MEMORY:
        write({"phase": "timing", "memory": True})
        return
    except BaseException as exc:
        write({"phase": "timing", **describe(exc)})
        return
    write({"phase": "timing", **trials, "threads_start": threads_start, "patched": trials["patched"] + _tampered(),
           "settings": settings_changed(job)})


def settings_changed(job: dict) -> list[str]:
    """Thread count and core pinning as the harness set them, or what changed."""
    changed = []
    if torch.get_num_threads() != int(job.get("threads", 1)):
        changed.append(f"torch threads {torch.get_num_threads()}")
    if job.get("cpu") is not None and hasattr(os, "sched_getaffinity") and os.sched_getaffinity(0) != {int(job["cpu"])}:
        changed.append("CPU affinity")
    return changed


def time_trials(job: dict, problem: dict, model, device: str, spec: dict, pause=None) -> dict:
    keep_per_256 = int(job.get("keep_fraction", 0.25) * 256)
    min_total, max_kept, max_trials = job.get("min_time_s", 0.0), job.get("max_kept", 16), job.get("max_trials", 300)
    flush = _l2_flusher(device)
    with torch.no_grad():
        last = warm_up(job, problem, model, device, spec)
        # The kept copies' buffers, made now: keeping a copy then allocates nothing between
        # timed calls (fresh allocations there slowed the calls after them).
        buffers = [torch.empty_like(last) for _ in range(max_kept)] if keep_per_256 and type(last) is torch.Tensor else []
        del last
        threads_after_warmup, patched = thread_count(), _tampered()
        times, reservoir, threads_max, wrong_type = [], [], threads_after_warmup, None
        stop_at = _CLOCK() + 1e9 * job.get("budget_s", 3.0)  # inputs are made between trials: bound that too
        inputs = fresh_inputs(problem, spec, device)[1]
        while len(times) < job["trials"] or (sum(times) < min_total and len(times) < max_trials and _CLOCK() < stop_at):
            if pause is not None:  # paired: warm this process's caches after the other's turn,
                model(*inputs)  # on inputs already seen (the last trial's), not the next ones
                patched = sorted({*patched, *_tampered()})  # before the harness makes inputs again
            pad = random_pad()
            seed, inputs = fresh_inputs(problem, spec, device)
            flush()
            out, seconds = timed_call(model, inputs, device)
            times.append(seconds)
            patched = sorted({*patched, *_tampered()})  # a replacement made during this trial
            threads_max = max(threads_max, thread_count())
            if type(out) is not torch.Tensor:
                wrong_type = type(out).__name__
                break
            _keep(reservoir, len(times), max_kept, keep_per_256, seed, out, buffers)
            del pad
            if pause is not None:
                pause()
    kept = [{"seed": seed, "out": encode(out)} for seed, out in reservoir]
    return {"times": times, "kept": kept, "threads_warm": threads_after_warmup, "threads_max": threads_max,
            "wrong_type": wrong_type, "patched": patched}


def fresh_inputs(problem: dict, spec: dict, device: str) -> tuple[int, list]:
    """(seed, inputs) for one call, the seed drawn from os.urandom now."""
    seed = int.from_bytes(_URANDOM(4), "little")
    inputs, _ = make_inputs(problem, {**spec, "seed": seed})
    return seed, _to(inputs, device)


def random_pad():
    """Up to 4 MB allocated before a call's tensors: it moves where they land, so an
    alignment that happens to suit (or hurt) a kernel is averaged over, not fixed per
    process."""
    return torch.empty(64 * int.from_bytes(_URANDOM(2), "little") % (1 << 16), dtype=torch.uint8)


def warm_up(job: dict, problem: dict, model, device: str, spec: dict):
    """`warmup` untimed calls, each on fresh inputs behind a random pad, as the trials
    are. Returns the last output."""
    out = None
    for _ in range(job["warmup"]):
        pad = random_pad()
        out = model(*fresh_inputs(problem, spec, device)[1])
        del pad
    _sync(device)
    return out


def _keep(reservoir: list, trial: int, size: int, keep_per_256: int, seed: int, out, buffers: list) -> None:
    """Reservoir sampling over every trial (each equally likely to be checked, the last as
    much as the first), after a coin with `keep_fraction`: a copy is kept, so the
    candidate cannot change it afterwards; into a buffer made before timing when the
    output fits one."""
    if not keep_per_256 or _URANDOM(1)[0] >= keep_per_256:
        return
    if len(reservoir) < size:
        reservoir.append((seed, _copy(out, buffers.pop() if buffers else None)))
        return
    slot = int.from_bytes(_URANDOM(4), "little") % trial
    if slot < size:
        reservoir[slot] = (seed, _copy(out, reservoir[slot][1]))


def _copy(out, buffer):
    """`out` copied into `buffer` when it has the same shape, dtype, strides and device,
    else into a new tensor."""
    out = out.detach()
    if buffer is not None and (buffer.shape, buffer.dtype, buffer.stride(), buffer.device) == \
            (out.shape, out.dtype, out.stride(), out.device):
        return buffer.copy_(out)
    return out.clone()


def timed_call(model, inputs: list, device: str):
    """One trial: wall clock on a CPU, CUDA events on a GPU (the end recorded after a
    device-wide synchronize, so no work queued on another stream escapes the measurement)."""
    if device.startswith("cuda"):
        start, end = _CUDA_EVENT(enable_timing=True), _CUDA_EVENT(enable_timing=True)
        _DEVICE_SYNC()  # CUDA is up: the warm-up ran on the device
        _EVENT_RECORD(start)
        out = model(*inputs)
        _DEVICE_SYNC()  # device-wide: work the candidate queued on another stream counts
        _EVENT_RECORD(end)
        _DEVICE_SYNC()
        return out, _EVENT_ELAPSED(start, end) / 1e3
    started = _CLOCK()
    out = model(*inputs)
    return out, (_CLOCK() - started) / 1e9


def _l2_flusher(device: str):
    """On a GPU, overwrite a buffer larger than L2 before each trial so no trial starts
    with its operands cached; on a CPU trials run back to back (documented)."""
    if not device.startswith("cuda"):
        return lambda: None
    buffer = torch.empty(64 << 20, dtype=torch.int32, device=device)  # 256 MB
    return buffer.zero_
