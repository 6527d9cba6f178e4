"""`greenloop eval repair`: measure a repair model on held-out pairs."""

from __future__ import annotations

import argparse
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    from greenloop.evaluate import repair_run

    p = argparse.ArgumentParser(prog="greenloop eval repair", description=repair_run.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model folder (`best/` or `final/` of a training run)")
    p.add_argument("--data", required=True, help="a `greenloop data split` folder or a `text tokenize --format grid` folder")
    p.add_argument("--split", default="test", help="which split to evaluate (default test)")
    p.add_argument("--tasks", help="task specs (e.g. humaneval,mbpp:PATH) to run task-derived pairs against their tests")
    p.add_argument("--limit", type=int, default=2000, help="pairs drawn at random, seeded (default 2000; 0: all)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--latency-samples", type=int, default=200, help="single repairs timed for p50/p99 (default 200)")
    p.add_argument("--max-steps", type=int, help="supervision steps at most (default: the model's)")
    p.add_argument("--no-detection", dest="detection", action="store_false",
                   help="do not repair the clean programs (no detection precision)")
    p.add_argument("--parse-check", type=int, default=1, metavar="K",
                   help="single_change models: try the model's K likeliest changes in order and keep the first "
                   "whose program parses (default 1: the model's own answer)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for report.json, report.md and predictions.jsonl")
    p.add_argument("--json", action="store_true", help="print the JSON report as the last line of stdout")
    return p


def main(argv: list[str]) -> int:
    from greenloop.evaluate.repair import markdown_table
    from greenloop.evaluate.repair_run import RepairEvalConfig, evaluate_repair, write_report

    args = build_parser().parse_args(argv)
    config = RepairEvalConfig(model=args.model, data=args.data, split=args.split, tasks=args.tasks,
                              limit=args.limit or None, batch_size=args.batch_size,
                              latency_samples=args.latency_samples, max_steps=args.max_steps,
                              detection=args.detection, parse_check=args.parse_check, seed=args.seed, threads=args.threads)
    report, outcomes = evaluate_repair(config)
    if args.out:
        write_report(report, outcomes, args.out)
    stream = sys.stderr if args.json else sys.stdout
    stream.write(markdown_table(report))
    if args.out:
        print(f"report: {args.out}/report.json, {args.out}/report.md, {args.out}/predictions.jsonl", file=stream)
    if args.json:
        print(json.dumps(report, default=str))
    return 0
