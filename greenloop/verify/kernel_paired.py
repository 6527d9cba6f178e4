"""Paired timing on a CPU: the reference and the measured model take turns on one core,
trial by trial, so both see the same machine.

On a shared machine the speed of a core drifts by 10-20% within a second (other tenants,
clock changes). Timed in separate processes seconds apart, a kernel and the reference
it is compared with see different machines; timed in turns, each pair of trials sees the
same one, and the drift cancels in their ratio.

The sandbox child that gets the job (the pairing process) builds the reference's
`Model`, warms it up, and forks the timed process, which runs `kernel_trials.run_timing`
on the candidate (or on the reference, for the noise floor). After each timed call the
timed process stops itself; the pairing process then times one reference call (after an
untimed call of its own, as the timed process does) and continues it. So:
- the candidate never runs while the reference is timed: it is stopped, it cannot start
  a thread or a process (RLIMIT_NPROC 0 in the timed process), and its process can
  neither read nor write the pairing process's memory or descriptors (that process is
  not dumpable);
- the candidate cannot reach the verifier: its frames go to the pairing process, which
  sends on only the timing frame, with the reference's trial times added;
- a trial count that does not match the stops the pairing process saw, or a timed process
  moved to another core, is reported to the verifier, which refuses the timing.
GPU timing is not paired (CUDA cannot be used across a fork); `kernel_trials` times it.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal

import torch

from greenloop.sandbox.child import RESULT_FD
from greenloop.sandbox.isolation import prctl
from greenloop.verify.kernel_child import build_model, decode, describe, load_source
from greenloop.verify.kernel_trials import fresh_inputs, random_pad, run_timing, stop_self, timed_call, warm_up

PR_SET_DUMPABLE = 4
READ_BYTES = 1 << 16


def run_paired(job: dict, write) -> None:
    spec = job["spec"]
    try:
        problem = load_source(job["problem"], "kernel_problem")
        model = build_model(problem["Model"], decode(spec["init"]), spec, "cpu")
        with torch.no_grad():  # now: nothing the candidate leaves behind is loaded later
            warm_up(job, problem, model, "cpu", spec)
        prctl(PR_SET_DUMPABLE, 0)
    except BaseException as exc:
        write({"phase": "timing", **describe(exc)})
        return
    frames_r, frames_w = os.pipe()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a stop or an exit of the timed process
    signal.set_wakeup_fd(wake_w)  # wakes the select below
    pid = os.fork()
    if pid == 0:
        _timed_process(job, write, frames_w, (frames_r, wake_r, wake_w))
    os.close(frames_w)
    try:
        turns = _take_turns(pid, frames_r, wake_r, problem, model, spec, os.sched_getaffinity(0))
    except BaseException as exc:  # the reference failed while timed: nothing to compare with
        os.kill(pid, signal.SIGKILL)
        write({"phase": "timing", "raise": "ReferenceFailed", "msg": f"the reference, timed: {describe(exc)}"})
        return
    finally:
        signal.set_wakeup_fd(-1)
    write(_timing_frame(*turns))


def _timed_process(job: dict, write, frames_w: int, close: tuple[int, ...]) -> None:
    """In the forked process: frames to the pairing process (`write` writes to
    RESULT_FD, now the pipe to it), no new threads or processes, then the timing mode
    with a stop after every trial. Never returns."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in close:
            os.close(fd)
        os.dup2(frames_w, RESULT_FD)  # the verifier's pipe is no longer reachable from here
        os.close(frames_w)
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        run_timing(job, write, pause=stop_self)
    finally:
        os._exit(0)


def _take_turns(pid: int, frames_r: int, wake_r: int, problem: dict, model, spec: dict, cpu: set):
    """Time one reference call each time the timed process stops, until it exits.
    Returns (its output, its wait status, the reference's times, whether it left this core)."""
    times, chunks, moved, open_r = [], [], False, True
    inputs = fresh_inputs(problem, spec, "cpu")[1]
    while True:
        done, status = os.waitpid(pid, os.WUNTRACED | os.WNOHANG)
        if done and os.WIFSTOPPED(status):
            moved = moved or os.sched_getaffinity(pid) != cpu
            with torch.no_grad():
                model(*inputs)  # untimed: this process's caches warm again
                pad = random_pad()
                inputs = fresh_inputs(problem, spec, "cpu")[1]
                times.append(timed_call(model, inputs, "cpu")[1])
                del pad
            os.kill(pid, signal.SIGCONT)
            continue
        if done:
            break
        ready, _, _ = select.select([wake_r, frames_r] if open_r else [wake_r], [], [], 1.0)
        if frames_r in ready:
            chunk = os.read(frames_r, READ_BYTES)
            chunks.append(chunk)
            open_r = bool(chunk)
        if wake_r in ready:
            while _drain(wake_r):
                pass
    while open_r and (chunk := os.read(frames_r, READ_BYTES)):
        chunks.append(chunk)
    os.close(frames_r)
    return b"".join(chunks), status, times, moved


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _timing_frame(output: bytes, status: int, reference: list[float], moved: bool) -> dict:
    """The timed process's timing frame (its last), with the reference's trial times
    and what the pairing process saw added; or an error naming how the process ended."""
    frame = None
    for line in output.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get("phase") == "timing":
            frame = parsed
    if frame is None:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.WEXITSTATUS(status)}"
        return {"phase": "timing", "raise": "TimedProcessEnded",
                "msg": f"the timed process ended ({how}) without a timing report (it may start no thread or process)"}
    settings = frame.get("settings") if isinstance(frame.get("settings"), list) else []
    return {**frame, "reference_times": reference, "settings": settings + (["CPU affinity (seen outside)"] if moved else [])}
