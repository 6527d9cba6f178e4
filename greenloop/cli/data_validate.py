"""`greenloop data validate`: the validation funnel."""

from __future__ import annotations

import argparse
import time

from greenloop.cli.data import add_common_options


def add_command(sub) -> None:
    from greenloop.data import validate

    p = sub.add_parser("validate", help="syntax, meaningful diff, exact and near-duplicate removal, tests",
                       description=validate.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="a folder written by mutate, lint-pairs or mine-git")
    add_common_options(p)
    p.add_argument("--max-changed-tokens", type=int, default=50, help="largest change kept (default 50 tokens)")
    p.add_argument("--near-threshold", type=float, default=0.85, help="Jaccard similarity of near-copies (default 0.85)")
    p.add_argument("--tasks", help="task spec to verify unverified pairs that carry a task_id (humaneval, mbpp:PATH, ...)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per verified candidate")
    p.set_defaults(run=run)


def run(args) -> int:
    from greenloop.data.validate import ValidateConfig, run_validate

    config = ValidateConfig(max_changed_tokens=args.max_changed_tokens, near_threshold=args.near_threshold,
                            tasks=args.tasks, timeout_s=args.timeout)
    started = time.perf_counter()
    summary = run_validate(args.input, args.out, config, args.workers, force=args.force)
    seconds = time.perf_counter() - started
    print(f"{'stage':10} {'entered':>10} {'removed':>10}")
    for row in summary["funnel"]:
        print(f"{row['stage']:10} {row['entered']:>10} {row['removed']:>10}")
    print(f"{summary['pairs_out']} of {summary['pairs_in']} pairs kept in {seconds:.1f}s "
          f"({summary['pairs_in'] / max(seconds, 1e-9) * 60:,.0f} pairs/min checked) -> {args.out}")
    for error in summary["schema_errors"][:5]:
        print(f"dropped: {error}")
    return 0
