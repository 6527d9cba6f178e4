"""Verifying kernel candidates: the staged funnel, its verdicts and the reward.

Stages, in order, each recorded with its outcome and time:
extract (a ```python block defining `ModelNew`) -> static (`kernel_static`: tampering
is refused; calling the op to replace, wrapping the reference or falling back on errors
is flagged) -> compile (the candidate imports and `ModelNew` exists, in the sandbox) ->
smoke (input set 0) -> inputs (every input set) -> timing.

What is judged where. Candidates only ever run in sandbox children. The reference runs in
a child of its own; its inputs and init inputs come back as arrays and go to the
candidate's child; its outputs stay here. Here, outputs are compared by dtype tolerance
(`kernel_compare`) and the inputs as the candidate left them are compared with those it
was given. Timing happens in the child (its clock bound before candidate code ran); a
random subset of the timed outputs, each on inputs drawn after the previous call, is
checked here against the reference on the same seeds, so a candidate cannot be fast by
being wrong when timed. A child's own report (trial times, a patched clock, new threads)
can in principle be forged by native code in the candidate; correctness cannot.

Reward (`reward`): 0 for any failure; for a correct candidate
0.5 + 0.5 * clip(log2(s) / log2(4), 0, 1), where s is the credited speedup: the lower end
of the speedup's 95% interval, and 1 when the candidate is flagged by the static stage,
when its interval reaches inside the noise floor, or when a speedup over 10x was not
confirmed by a re-measurement. So correct-but-not-faster earns 0.5 and a confirmed 4x
(or more) earns 1.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

from greenloop.sandbox import Limits, WorkerPool
from greenloop.tasks.kernels import KernelProblem, kernel_task
from greenloop.types import Outcome, StageResult, Verdict
from greenloop.verify import kernel_static
from greenloop.verify.extract import extract_program, static_check

RUNNER = "greenloop.verify.kernel_jobs"
DEVICE_CHECK = "greenloop.verify.kernel_device"  # run once per fork server inside the root
# Freed memory goes back to the heap and is reused, instead of each large tensor being
# fresh pages from mmap that fault in on first touch (what glibc does by default above
# a threshold it moves at run time): a trial then measures the kernel, not page faults,
# much as PyTorch's caching allocator does on a GPU. It cut the median of a 1 MB RMS norm
# from ~490 us to ~125 us and its spread between processes several-fold.
SERVER_ENV = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824"}
GPU_ENV = ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "TRITON_LIBCUDA_PATH", "TRITON_PTXAS_PATH")
MAX_REWARD_SPEEDUP = 4.0
STAGES = ("extract", "static", "compile", "smoke", "inputs", "timing")


@dataclass(frozen=True)
class KernelConfig:
    input_sets: int = 5
    seed: int = 0
    timing: bool = True
    warmup: int = 10
    trials: int = 30  # at least this many timed calls per measurement
    min_time_s: float = 0.5  # and more, until the timed calls add up to this (at most 300 calls or 3 s)
    threads: int = 1  # torch threads in the child; timing is pinned to one core on a CPU
    device: str = "cpu"
    workers: int = 2
    timeout_s: float = 120.0
    memory_mb: int = 8192
    keep_fraction: float = 0.25  # share of timed outputs checked against the reference
    recheck_above: float = 10.0
    paired: bool = True  # on a CPU, time candidate and reference in turns (`kernel_paired`)
    max_bytes: int = 200_000
    strict_static: bool = False  # flags refuse the candidate instead of only costing credit
    isolation: str = "auto"

    def __post_init__(self):
        if self.input_sets < 2:
            raise ValueError(f"KernelConfig.input_sets must be >= 2 (a cached answer passes one), got {self.input_sets}")
        if self.trials < 3 or self.warmup < 0 or self.min_time_s < 0:
            raise ValueError(f"KernelConfig.trials must be >= 3, warmup and min_time_s >= 0, got "
                             f"{self.trials}, {self.warmup}, {self.min_time_s}")
        if not 0 < self.keep_fraction <= 1:
            raise ValueError(f"KernelConfig.keep_fraction must be in (0, 1], got {self.keep_fraction}")


def input_set_specs(problem: KernelProblem, count: int, seed: int) -> list[dict]:
    """The input sets a problem is checked on: two plain seeds, then its shape variants,
    extra dtypes and edge values in turn, then more seeds. Documented per problem."""
    base = {"globals": {}, "dtype": problem.dtypes[0], "edge": None, "weight_seed": seed}
    ordered = _interleave([{"globals": dict(g)} for g in problem.shape_variants],
                          [{"dtype": d} for d in problem.dtypes[1:]],
                          [{"edge": e} for e in problem.edge_cases])
    specs = [{**base, "seed": seed + 1000 * i} for i in range(2)]
    specs += [{**base, **v, "seed": seed + 1000 * (2 + i)} for i, v in enumerate(ordered)]
    while len(specs) < count:
        specs.append({**base, "seed": seed + 1000 * len(specs)})
    return specs[:count]


def _interleave(*groups: list) -> list:
    out, longest = [], max((len(g) for g in groups), default=0)
    for i in range(longest):
        out += [g[i] for g in groups if i < len(g)]
    return out


@dataclass
class KernelResult:
    verdict: Verdict
    flags: list[str] = field(default_factory=list)
    timing: dict = field(default_factory=dict)

    @property
    def reward(self) -> float | None:
        return reward(self.verdict)


def reward(verdict: Verdict) -> float | None:
    if verdict.outcome is Outcome.INFRA_ERROR:
        return None
    if not verdict.passed:
        return 0.0
    credited = float(verdict.meta.get("credited_speedup", 1.0))
    return 0.5 + 0.5 * min(1.0, max(0.0, math.log2(credited) / math.log2(MAX_REWARD_SPEEDUP)))


class KernelVerifier:
    """`with KernelVerifier(config) as v: results = v.verify(problem, completions)`"""

    def __init__(self, config: KernelConfig = KernelConfig()):
        self.config = config
        gpu = config.device.startswith("cuda")
        self.limits = Limits(timeout_s=config.timeout_s, memory_mb=config.memory_mb, max_processes=64,
                             max_file_mb=64, max_open_files=256, output_cap_bytes=256 << 20,
                             cap_address_space=not gpu)
        # On a GPU: its device nodes, and where the driver's libraries are found.
        env = {**SERVER_ENV, **{k: os.environ[k] for k in GPU_ENV if gpu and k in os.environ}}
        self.pool = WorkerPool(config.workers, config.isolation, limits=self.limits,
                               devices=["nvidia*"] if gpu else [], env=env,
                               warm_modules=["numpy", "torch", RUNNER, *([DEVICE_CHECK] if gpu else [])],
                               root_probe=f"{DEVICE_CHECK}:device_ready" if gpu else None)
        self.references: dict[str, dict] = {}
        self.reference_timings: dict[str, list[dict]] = {}  # timing frames per problem

    def __enter__(self) -> "KernelVerifier":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.close()

    @property
    def isolation(self) -> dict:
        return self.pool.isolation

    # -- running jobs -----------------------------------------------------------------

    def job(self, mode: str, **fields) -> dict:
        limits = {**self.limits.to_dict(), "cpu_s": self.limits.cpu_seconds}
        return {"runner": RUNNER, "mode": mode, "limits": limits, "threads": self.config.threads,
                "device": self.config.device, **fields}

    def run_jobs(self, jobs: list[dict]) -> list[dict]:
        results: list[dict | None] = [None] * len(jobs)
        for index, result in self.pool.run(jobs):
            results[index] = result
        return results

    def reference(self, problem: KernelProblem) -> dict:
        """The reference's inputs and outputs on every input set (computed once)."""
        if problem.name not in self.references:
            specs = input_set_specs(problem, self.config.input_sets, self.config.seed)
            self.references[problem.name] = self.reference_on(problem, specs)
        return self.references[problem.name]

    def reference_on(self, problem: KernelProblem, specs: list[dict]) -> dict:
        from greenloop.verify.kernel_frames import parse_reference

        (result,) = self.run_jobs([self.job("reference", problem=problem.source, sets=specs)])
        return parse_reference(problem, specs, result)

    # -- the funnel ---------------------------------------------------------------------

    def verify(self, problem: KernelProblem, completions: list[str]) -> list[KernelResult]:
        from greenloop.verify.kernel_run import run_funnel

        return run_funnel(self, problem, completions)

    def prepare(self, problem: KernelProblem, completion: str) -> tuple[str | None, list[StageResult], list[str]]:
        """Extract and static stages: (program or None when stopped, stages, flags)."""
        stages: list[StageResult] = []
        started = time.perf_counter()
        extracted = extract_program(kernel_task(problem), completion)
        if extracted.program is None:
            stages.append(StageResult("extract", Outcome.REJECTED, time.perf_counter() - started, extracted.how))
            return None, stages, []
        outcome, detail = static_check(extracted.program, self.config.max_bytes)
        stages.append(StageResult("extract", outcome, time.perf_counter() - started, detail or extracted.how))
        if outcome is not Outcome.PASSED:
            return None, stages, []
        started = time.perf_counter()
        report = kernel_static.check_candidate(extracted.program, problem.source)
        refused = report.refusals or (self.config.strict_static and report.flags)
        outcome = Outcome.REJECTED if refused else Outcome.PASSED
        stages.append(StageResult("static", outcome, time.perf_counter() - started, report.detail))
        return (None if refused else extracted.program), stages, report.flags
