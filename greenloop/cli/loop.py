"""`greenloop cycle | day | sleep | evaluate-cycle`: the self-improvement loop.

`cycle --cycles N` runs everything; the other three run one phase of one cycle of the
same run folder (for a person stepping through a run, or a scheduler running phases as
separate jobs). All four take the same settings; a run folder remembers them and refuses
different ones on resume.
"""

from __future__ import annotations

import argparse
import json


def _add_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the starting model folder (greenloop gpt/hrm, or transformers)")
    p.add_argument("--out", required=True, help="the run folder; the same command again resumes it")
    p.add_argument("--train-tasks", default="koans@train,repair:humaneval@train",
                   help="task specs worked on by day (default: %(default)s)")
    p.add_argument("--eval-tasks", default="koans@eval,repair:humaneval@eval",
                   help="the frozen evaluation set, never trained on (default: %(default)s)")
    p.add_argument("--train-per-day", type=int, default=200, help="training tasks drawn per day (0: all)")
    p.add_argument("--curriculum", action="store_true",
                   help="draw each day's tasks by recent success, favouring those solved about half the time "
                        "(greenloop.loop.curriculum); its state is kept in the run folder's curriculum.json")
    p.add_argument("--eval-limit", type=int, default=0, help="a fixed subset of the frozen set (0: all)")
    p.add_argument("--mode", choices=("sample", "agent"), default="sample",
                   help="sample: k answers per task; agent: tool-using episodes (apply_patch/run_check/run_tests)")
    p.add_argument("-k", type=int, default=8, help="answers per training task and day (sample mode)")
    p.add_argument("--temperature", type=float, default=0.8, help="day sampling temperature (eval is greedy)")
    p.add_argument("--max-tokens", type=int, default=384, help="longest answer (the edit format needs ~64)")
    p.add_argument("--prompt-style", choices=("auto", "edit", "raw", "instruct"), default="auto",
                   help="edit: numbered lines → the edit (greenloop models, the auto choice); raw: the whole fixed "
                        "program; instruct: a fenced block from a chat LLM (auto for transformers models)")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per generation call")
    p.add_argument("--max-steps", type=int, default=6, help="agent mode: steps per episode")
    p.add_argument("--replay-ratio", type=float, default=1.0,
                   help="earlier cycles' examples mixed into each sleep, per new example (against forgetting)")
    p.add_argument("--sleep-steps", type=int, default=200, help="fine-tuning steps per sleep")
    p.add_argument("--sleep-lr", type=float, default=3e-4)
    p.add_argument("--sleep-batch", type=int, default=16)
    p.add_argument("--sleep-prompt-weight", type=float, default=0.0, metavar="W",
                   help="sleep also predicts the prompts' tokens, weighted W beside the answers' (default 0)")
    p.add_argument("--min-gain", type=int, default=0,
                   help="gate: promote when gains - losses on the gate half is at least this (default 0: not worse)")
    p.add_argument("--family-margin", type=float, default=0.10, help="gate: largest allowed drop of one family")
    p.add_argument("--critical", default="", help="gate: comma-separated task ids that must not regress")
    p.add_argument("--workers", type=int, help="verifier workers (default: one per core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_commands(commands) -> None:
    from greenloop.loop import cycle as cycle_module

    p = commands.add_parser("cycle", help="self-improvement: day → sleep → eval → gate, N cycles (resumable)",
                            description=cycle_module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_settings(p)
    p.add_argument("--cycles", type=int, default=3, help="cycles after the baseline (default 3)")
    p.set_defaults(run=run_cycle)
    for name, helptext in (("day", "one day: the promoted checkpoint works the training tasks"),
                           ("sleep", "one sleep: curate the day's verified answers and fine-tune a candidate"),
                           ("evaluate-cycle", "one eval: the cycle's candidate on the frozen set, then the gate")):
        q = commands.add_parser(name, help=helptext, description=helptext)
        _add_settings(q)
        q.add_argument("--cycle", type=int, required=True, help="which cycle (1, 2, ...)")
        q.set_defaults(run=run_phase, phase=name)


def config_from_args(args):
    from greenloop.evaluate.gates import GateConfig
    from greenloop.loop.config import CycleConfig
    from greenloop.train.finetune import FinetuneConfig

    critical = tuple(t.strip() for t in args.critical.split(",") if t.strip())
    return CycleConfig(
        model=args.model, out=args.out, train_tasks=args.train_tasks, eval_tasks=args.eval_tasks,
        train_per_day=args.train_per_day or None, curriculum=args.curriculum, eval_limit=args.eval_limit or None,
        mode=args.mode, k=args.k, temperature=args.temperature, max_tokens=args.max_tokens, max_steps=args.max_steps,
        replay_ratio=args.replay_ratio, workers=args.workers, seed=args.seed, prompt_style=args.prompt_style,
        batch_size=args.batch_size,
        sleep=FinetuneConfig(steps=args.sleep_steps, lr=args.sleep_lr, batch_size=args.sleep_batch, seed=args.seed,
                             prompt_weight=args.sleep_prompt_weight),
        gate=GateConfig(min_gain=args.min_gain, family_margin=args.family_margin, critical=critical))


def print_row(row: dict) -> None:
    if row.get("checkpoint") is None:
        print(f"cycle {row['cycle']}: {row['gate']}", flush=True)
        return
    line = f"cycle {row['cycle']}: {row['checkpoint']} frozen pass {row['passed']}/{row['tasks']} ({row['pass_rate']:.1%})"
    confirm = row["confirm_half"]
    if row["cycle"] > 0:
        line += (f"; confirm half {confirm['pass_rate']:.1%} vs baseline {confirm['baseline_pass_rate']:.1%} "
                 f"(+{confirm['gains']} -{confirm['losses']}, p={confirm['p_better']:.3g}); {row['gate']}; "
                 f"day solved {row['day']['tasks_solved']}/{row['day']['tasks']}, "
                 f"sleep {row['sleep']['new_examples']} new + {row['sleep']['replay_examples']} replay examples")
    print(line, flush=True)


def run_cycle(args) -> int:
    from greenloop.loop.cycle import run_cycles

    config = config_from_args(args)
    rows = run_cycles(config, args.cycles, show_progress=not args.quiet, on_row=print_row)
    current = rows[-1]["current"] if rows else "base"
    seconds = sum(r.get(k, 0) for r in rows for k in ("day_seconds", "sleep_seconds", "eval_seconds"))
    print(f"phase time over the baseline and {len(rows) - 1} cycles: {seconds:,.0f} s ({seconds / 60:.0f} min)")
    print(f"report: {args.out}/report.md; metrics: {args.out}/metrics.jsonl; plots: {args.out}/plots/; "
          f"episodes: {args.out}/store.db")
    print(f"promoted checkpoint: {current}")
    return 0


def run_phase(args) -> int:
    from greenloop.loop.cycle import run_phase as run_one

    result = run_one(config_from_args(args), args.phase, args.cycle, show_progress=not args.quiet)
    print(json.dumps(result, indent=2, default=str))
    return 0
