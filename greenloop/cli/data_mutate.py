"""`greenloop data mutate`: plant bugs with the mutation operators."""

from __future__ import annotations

import argparse
import time

from greenloop.cli.data import add_common_options


def add_command(sub) -> None:
    from greenloop.data import mutate

    p = sub.add_parser("mutate", help="buggy→fixed pairs from mutation operators (verified by tests for task sources)",
                       description=mutate.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True,
                   help="stdlib | dir:PATH | humaneval | mbpp:PATH[@split] | jsonl:PATH (task sources are verified)")
    add_common_options(p)
    p.add_argument("--operators", default="",
                   help="comma-separated operator names (default: all; `greenloop data operators` lists them)")
    p.add_argument("--per-operator", type=int, default=2, help="mutants per operator per function (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--files-per-shard", type=int, default=50)
    p.add_argument("--limit-files", type=int, help="use only the first N files (or tasks)")
    p.add_argument("--timeout", type=float, default=3.0,
                   help="seconds a verified candidate may take (task sources; default 3, or twice its reference's "
                        "time if more); each mutant's limit is 20x its reference's CPU time, at least 0.1 s")
    p.set_defaults(run=run)

    ops = sub.add_parser("operators", help="list the mutation operators with their families and examples")
    ops.set_defaults(run=run_operators)


def run(args) -> int:
    from greenloop.data.mutate import MutateConfig, run_mutate

    operators = tuple(o.strip() for o in args.operators.split(",") if o.strip())
    config = MutateConfig(source=args.source, operators=operators, per_operator=args.per_operator, seed=args.seed,
                          files_per_shard=args.files_per_shard, limit_files=args.limit_files, timeout_s=args.timeout)
    started = time.perf_counter()
    summary = run_mutate(config, args.out, args.workers, force=args.force)
    seconds = time.perf_counter() - started
    print(f"{summary['pairs']} pairs from {summary['units']} functions in {seconds:.1f}s "
          f"({summary['pairs'] / max(seconds, 1e-9) * 60:,.0f} pairs/min) -> {args.out}")
    print("by family: " + ", ".join(f"{k} {v}" for k, v in summary["by_family"].items()))
    if "verified" in summary:
        v = summary["verified"]
        print(f"verified: {v['mutants']} mutants of {v['tasks']} tasks run in the sandbox, {v['test_verified']} fail a "
              f"test the reference passes; {v['parser_checked']} syntax mutants checked by the parser; rejected "
              + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in v["rejected"].items()))
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} files (paths and reasons in {args.out}/manifest.json), e.g. "
              f"{summary['skipped'][0]['path']}: {summary['skipped'][0]['reason']}")
    return 0


def run_operators(args) -> int:
    from greenloop.data import mutation_operators

    for name in mutation_operators.names():
        op = mutation_operators.get(name)
        summary = " ".join((op.__doc__ or "").strip().split("\n\n")[0].split())
        print(f"{name:20} {op.family:9} {summary}")
    return 0
