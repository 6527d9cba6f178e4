"""Reading what a kernel job's child sent back: its frames, and how the job ended.

`parse_reference` turns a reference job into the arrays the verifier keeps (inputs,
init inputs, outputs per input set) and raises `ReferenceError` when the problem itself
is broken, so the verdict is an INFRA_ERROR naming the problem rather than a failure of
the candidate. `job_failure` maps a job that did not end normally (timeout, memory,
crash) to an outcome.
"""

from __future__ import annotations

import json

import torch

from greenloop.types import Outcome
from greenloop.verify.kernel_child import decode


class ReferenceError(RuntimeError):
    """The problem's reference could not be run."""


def frames_of(result: dict) -> tuple[dict, dict[int, dict], list[dict]]:
    """(phase frames by phase name, set frames by index, every frame)."""
    phases, sets, every = {}, {}, []
    for line in result.get("lines", []):
        try:
            frame = json.loads(line)
        except ValueError:
            continue
        if not isinstance(frame, dict):
            continue
        every.append(frame)
        if isinstance(frame.get("phase"), str):
            phases[frame["phase"]] = frame
        elif isinstance(frame.get("i"), int):
            sets[frame["i"]] = frame
    return phases, sets, every


def job_failure(result: dict) -> tuple[Outcome, str] | None:
    """How a job that did not finish normally ended, or None when it finished."""
    status = result.get("status")
    if result.get("oom"):
        return Outcome.MEMORY, "out of memory (the worker's memory limit)"
    if status == "timeout":
        return Outcome.TIMEOUT, f"over the time limit ({result.get('seconds', 0):.1f} s)"
    if status == "output_cap":
        return Outcome.FAILED, "sent more output than the limit allows"
    if status in ("worker_died", "worker_unresponsive"):
        return Outcome.FAILED, f"the candidate's process ended its worker ({status})"
    if not any('"end"' in line for line in result.get("lines", [])[-1:]):
        return Outcome.FAILED, f"the child exited early (exit code {result.get('exit')}): {result.get('log', '')[-300:]}"
    return None


def label(spec: dict) -> str:
    parts = [spec.get("dtype", "float32")]
    if spec.get("globals"):
        parts.append(",".join(f"{k}={v}" for k, v in spec["globals"].items()))
    if spec.get("edge"):
        parts.append(spec["edge"])
    return ", ".join(parts)


def parse_reference(problem, specs: list[dict], result: dict) -> dict:
    """{"sets": [{"spec", "label", "inputs", "init", "init_wire", "inputs_wire", "out"}]}"""
    ended = job_failure(result)
    _, sets, _ = frames_of(result)
    out = []
    for index, spec in enumerate(specs):
        frame = sets.get(index)
        if frame is None or "raise" in frame:
            why = f"{frame['raise']}: {frame.get('msg', '')}" if frame else (ended[1] if ended else "no result")
            raise ReferenceError(f"{problem.path}: the reference failed on input set {index} ({label(spec)}): {why}")
        output = decode(frame["out"])
        if not isinstance(output, torch.Tensor):
            raise ReferenceError(f"{problem.path}: the reference's forward must return one tensor")
        if output.is_floating_point() and not bool(torch.isfinite(output).all()):
            raise ReferenceError(f"{problem.path}: the reference's output on input set {index} ({label(spec)}) "
                                 "is not finite; drop that variant or edge case from the problem")
        out.append({"spec": spec, "label": label(spec), "inputs": decode(frame["inputs"]), "init": frame["init"],
                    "inputs_wire": frame["inputs"], "out": output})
    return {"sets": out}
