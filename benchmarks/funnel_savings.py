"""Time the funnel's smoke stage saves on a batch where half the candidates fail their first test.

The task: `f(n)`, the sum of the primes below n, by trial division, with 20 tests
(n = 3000, 3200, ..., 6800), each a few ms of real computation in the candidate, so the
tests, not process start-up, dominate a correct candidate's time. Expected values are
computed here from the reference and given to the task, so no recording is involved.

The batch (default 100 candidates) is half correct solutions and half a plausible bug,
"forgets that 2 is prime" (the loop starts at 3): as costly per call as the correct one,
and wrong on the first test and on every other.

Two configurations verify the same batch, each in its own warm `Verifier` (pool started,
one untimed pass), timed runs alternating between them:

- funnel:  VerifyConfig(smoke=True), the default: the first output is judged as soon as
           it arrives and a wrong candidate is stopped there, after 1 of 20 tests;
- run-all: VerifyConfig(smoke=False): every candidate runs all 20 tests, then is judged.

It prints both wall times (median of the repeats), candidates/s, the ratio run-all/funnel
in wall time, the per-stage counts (verdict.stage, verdict.outcome) of each run, and the
mean sandbox seconds per candidate, correct and wrong apart (the time the funnel cuts).

    .venv/bin/python benchmarks/funnel_savings.py [--candidates 100] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time

CORRECT = '''\
def f(n):
    """Sum of the primes below n."""
    total = 0
    for k in range(2, n):
        d = 2
        while d * d <= k:
            if k % d == 0:
                break
            d += 1
        else:
            total += k
    return total
'''

WRONG = CORRECT.replace("range(2, n)", "range(3, n)")  # forgets 2: wrong on every test
TEST_NS = tuple(range(3000, 7000, 200))  # 20 tests


def make_task_set():
    from greenloop.tasks import TaskSet
    from greenloop.types import Task, TestCase

    namespace: dict = {}
    exec(CORRECT, namespace)
    tests = tuple(TestCase(args=(n,), expected=namespace["f"](n)) for n in TEST_NS)
    task = Task(task_id="bench/primes", family="jsonl", prompt="", entry_point="f", tests=tests,
                reference=CORRECT, prompt_is_code=False)
    return TaskSet({task.task_id: task}, [])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=100, help="batch size, half correct, half wrong (default 100)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (default 5)")
    parser.add_argument("--json", action="store_true", help="print a JSON object as the last line")
    args = parser.parse_args(argv)
    if args.candidates < 2 or args.repeats < 1:
        parser.error("--candidates must be >= 2 and --repeats >= 1")

    from greenloop.types import Candidate
    from greenloop.verify.funnel import VerifyConfig, Verifier

    tasks = make_task_set()
    kinds = ["correct" if i % 2 == 0 else "wrong" for i in range(args.candidates)]
    candidates = [Candidate("bench/primes", CORRECT if k == "correct" else WRONG, source="bench", sample_idx=i)
                  for i, k in enumerate(kinds)]
    # What one correct candidate's tests cost, run here: the scale of the saving.
    namespace: dict = {}
    exec(CORRECT, namespace)
    started = time.perf_counter()
    for n in TEST_NS:
        namespace["f"](n)
    tests_ms = (time.perf_counter() - started) * 1000
    print(f"funnel_savings: {args.candidates} candidates ({kinds.count('correct')} correct, {kinds.count('wrong')} "
          f"wrong from test 1), {len(TEST_NS)} tests each, all tests of one candidate ~{tests_ms:.0f} ms in-process; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

    configs = {"funnel": VerifyConfig(smoke=True), "run-all": VerifyConfig(smoke=False)}
    verifiers = {name: Verifier(tasks, config) for name, config in configs.items()}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    stage_counts: dict[str, collections.Counter] = {}
    sandbox_s: dict[str, dict[str, float]] = {}
    wrong_verdicts: list[str] = []
    try:
        for verifier in verifiers.values():
            list(verifier.verify(candidates))  # untimed warm-up
        for r in range(args.repeats):
            for name, verifier in (verifiers.items() if r % 2 == 0 else reversed(verifiers.items())):
                started = time.perf_counter()
                results = list(verifier.verify(candidates))
                elapsed = time.perf_counter() - started
                seconds[name].append(elapsed)
                verdicts = [None] * len(candidates)
                for index, verdict in results:
                    verdicts[index] = verdict
                counts = collections.Counter(f"{v.stage}/{v.outcome.value}" for v in verdicts)
                if name in stage_counts and counts != stage_counts[name]:
                    print(f"  note: {name} run {r + 1} stage counts changed: {dict(counts)}")
                stage_counts[name] = counts
                per_kind: dict[str, list[float]] = {"correct": [], "wrong": []}
                for kind, v in zip(kinds, verdicts):
                    per_kind[kind].append(v.stages[-1].seconds if v.stages else 0.0)
                    if v.passed != (kind == "correct"):
                        wrong_verdicts.append(f"{name} run {r + 1}: a {kind} candidate got {v.outcome.value} at {v.stage}: {v.detail}")
                sandbox_s[name] = {k: statistics.mean(xs) for k, xs in per_kind.items() if xs}
                print(f"  {name:<8} run {r + 1}: {elapsed:.2f} s")
    finally:
        for verifier in verifiers.values():
            verifier.close()

    isolation = verifiers["funnel"].isolation.get("level")
    workers = verifiers["funnel"].pool.size
    n = len(candidates)
    rows = {}
    for name in configs:
        median = statistics.median(seconds[name])
        rows[name] = {"seconds_median": round(median, 3), "seconds_min": round(min(seconds[name]), 3),
                      "seconds_all": [round(s, 3) for s in seconds[name]], "candidates_per_s": round(n / median, 1),
                      "stages": dict(sorted(stage_counts[name].items())),
                      "mean_sandbox_s": {k: round(v, 4) for k, v in sandbox_s[name].items()}}
    ratio = rows["run-all"]["seconds_median"] / rows["funnel"]["seconds_median"]
    saved = 1 - 1 / ratio
    print()
    print(f"results (median of {args.repeats}; {workers} workers, isolation {isolation}; "
          f"load average now {os.getloadavg()[0]:.2f}):")
    for name, row in rows.items():
        ms = row["mean_sandbox_s"]
        print(f"  {name:<8} {n} cand  {row['seconds_median']:6.2f} s (min {row['seconds_min']:.2f})  "
              f"{row['candidates_per_s']:7.1f} cand/s   sandbox s/candidate: correct {ms.get('correct', 0) * 1000:.0f} ms, "
              f"wrong {ms.get('wrong', 0) * 1000:.0f} ms")
        print(f"           stage/outcome: {row['stages']}")
    print(f"ratio run-all/funnel wall time: {ratio:.2f}x (the funnel saves {saved:.0%} of the wall time on this batch)")
    if wrong_verdicts:
        print(f"UNEXPECTED VERDICTS: {len(wrong_verdicts)}")
        for line in wrong_verdicts[:20]:
            print(f"  {line}")
    if args.json:
        print(json.dumps({"benchmark": "funnel_savings", "candidates": n, "tests_per_candidate": len(TEST_NS),
                          "correct": kinds.count("correct"), "wrong": kinds.count("wrong"),
                          "tests_in_process_ms": round(tests_ms, 1), "cores": os.cpu_count(), "workers": workers,
                          "isolation": isolation, "funnel": rows["funnel"], "run_all": rows["run-all"],
                          "ratio_run_all_over_funnel": round(ratio, 3), "saved_fraction": round(saved, 3),
                          "unexpected_verdicts": wrong_verdicts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
