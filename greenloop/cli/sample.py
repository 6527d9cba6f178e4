"""`greenloop sample`: completions from a trained causal model for task prompts."""

from __future__ import annotations

import argparse
import sys


def add_commands(commands) -> None:
    from greenloop.evaluate import sampling

    p = commands.add_parser("sample", help="sample completions for task prompts from a trained gpt/hrm model",
                            description=sampling.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model folder (a training run's best/ or final/)")
    p.add_argument("--tasks", required=True, help="task specs, e.g. mbpp:PATH@test or humaneval")
    p.add_argument("--out", required=True, help="samples JSONL (appended to; a rerun skips tasks already there)")
    p.add_argument("-n", type=int, default=10, help="samples per task (default 10)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 for greedy (default 0.8)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_sample)


def run_sample(args) -> int:
    from greenloop.evaluate.sampling import SampleConfig, sample_tasks

    config = SampleConfig(model=args.model, tasks=args.tasks, out=args.out, n=args.n, temperature=args.temperature,
                          top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed)
    summary = sample_tasks(config, progress=sys.stderr.isatty())
    print(f"{summary['samples_written']} samples for {summary['tasks']} tasks -> {summary['out']}"
          + (f" ({summary['resumed_tasks']} tasks were already done)" if summary["resumed_tasks"] else ""))
    print(f"score with: greenloop eval --tasks {args.tasks} --samples {args.out} -k 1,10")
    return 0
