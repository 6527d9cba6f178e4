"""`greenloop demo`: the main job on built-in data.

1. Verify and evaluate HumanEval: three samples per task from data the package ships
   (the canonical solution, a mutant with one operator flipped, and a stub that returns
   None), verified in the sandbox; prints pass@k with the funnel's per-stage counts.
2. Make repair data from it: `greenloop data mutate --source humaneval` (every mutation
   operator on every reference, each pair kept only when the sandbox shows the mutant
   fails a test the reference passes), then `data validate` and `data split`, written as
   Parquet under OUT_DIR/data/split.
3. A short self-improvement cycle (`--skip-loop` leaves it out): a code tokenizer and a
   small GPT pre-trained for a few minutes on stdlib repair pairs, then shown part of the
   training split's repairs, then `greenloop cycle --cycles 1` on the built-in koans and
   HumanEval repair tasks (baseline on a frozen set, day, sleep, eval, gate); prints where
   its report and plots are. Too short to improve the model: it shows the machinery.
   Each step is skipped or resumed when its output is already there.
"""

from __future__ import annotations

import argparse
import os
import re

from greenloop.cli.tasks import reference_completion
from greenloop.io import write_jsonl
from greenloop.tasks import load_tasks

FLIPS = [(" < ", " >= "), (" > ", " <= "), (" == ", " != "), (" + 1", " - 1"), (" + ", " - "), ("True", "False")]


def flip_one_operator(code: str) -> str:
    """The first operator from FLIPS found in the code, flipped: a plausible wrong answer
    (sometimes an equivalent one, which the verifier then rightly passes)."""
    for old, new in FLIPS:
        if old in code:
            return code.replace(old, new, 1)
    return re.sub(r"return (.+)", r"return not (\1)", code, count=1)


def add_commands(commands) -> None:
    p = commands.add_parser("demo", help="verify and evaluate HumanEval on built-in samples",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default="runs/demo", help="where samples and results go (default runs/demo)")
    p.add_argument("--workers", type=int, help="sandbox workers (default: one per core)")
    p.add_argument("--skip-data", action="store_true", help="only verify and evaluate; make no repair data")
    p.add_argument("--skip-loop", action="store_true", help="no self-improvement cycle")
    p.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from greenloop.cli.verify import run_eval

    tasks = load_tasks("humaneval").tasks.values()
    rows = []
    for task in tasks:
        good = reference_completion(task)
        rows += [{"task_id": task.task_id, "completion": good, "kind": "canonical"},
                 {"task_id": task.task_id, "completion": flip_one_operator(good), "kind": "mutant"},
                 {"task_id": task.task_id, "completion": "    return None\n", "kind": "stub"}]
    os.makedirs(args.out_dir, exist_ok=True)
    samples = os.path.join(args.out_dir, "samples.jsonl")
    write_jsonl(samples, rows)
    print(f"wrote {len(rows)} samples ({len(rows) // 3} tasks x canonical, mutant, stub) to {samples}")
    eval_args = argparse.Namespace(
        tasks="humaneval", samples=samples, out=os.path.join(args.out_dir, "results.jsonl"), k="1,2,3",
        workers=args.workers, timeout_s=None, memory_mb=None, all_tests=None, extra_inputs=None, perf=None, perf_max_ratio=None, smoke=None, isolation=None,
        config=None, set=[], strict=False, resume=False, json=False, quiet=False)
    status = run_eval(eval_args)
    print(f"results: {eval_args.out}")
    if status == 0 and not args.skip_data:
        status = run_data_demo(os.path.join(args.out_dir, "data"), args.workers)
    if status == 0 and not args.skip_loop:
        status = run_loop_demo(os.path.join(args.out_dir, "loop"), args.workers)
    return status


def run_data_demo(folder: str, workers: int | None) -> int:
    """The three data commands, through the same parser a user's command line goes through."""
    from greenloop.cli import main

    common = ["--force", "--workers", str(workers or os.cpu_count() or 1)]
    for argv in (["mutate", "--source", "humaneval", "--out", f"{folder}/pairs", *common],
                 ["validate", f"{folder}/pairs", "--out", f"{folder}/valid", *common],
                 ["split", f"{folder}/valid", "--out", f"{folder}/split", "--force"]):
        print("\n$ greenloop data " + " ".join(argv))
        status = main(["data", *argv])
        if status:
            return status
    return 0


def run_loop_demo(folder: str, workers: int | None) -> int:
    """Tokenizer, a few minutes of pre-training, one cycle: each a greenloop command."""
    from greenloop.cli import main

    workers_args = ["--workers", str(workers or os.cpu_count() or 1)]
    steps = []
    if not os.path.exists(f"{folder}/tokenizer/tokenizer.json"):
        steps.append(["text", "train-tokenizer", "--corpus", "stdlib", "--vocab-size", "4096",
                      "--out", f"{folder}/tokenizer"])
    steps.append(["data", "mutate", "--source", "stdlib", "--limit-files", "300", "--per-operator", "1",
                  "--out", f"{folder}/pretrain-pairs", *workers_args])
    if not os.path.exists(f"{folder}/stdlib-model/config.json"):
        steps.append(["train", "sft", "--model", "gpt", "--tokenizer", f"{folder}/tokenizer", "--model-set",
                      "hidden_size=192", "--format", "edit", "--data", f"{folder}/pretrain-pairs", "--limit", "6000",
                      "--steps", "150", "--batch-size", "16", "--lr", "2e-3", "--max-len", "384",
                      "--out", f"{folder}/stdlib-model"])
    if not os.path.exists(f"{folder}/start/config.json"):  # a first look at the training split's repairs
        steps.append(["train", "sft", "--model", f"{folder}/stdlib-model", "--format", "edit", "--data",
                      "tasks:koans@train,repair:humaneval@train", "--limit", "600", "--steps", "150",
                      "--batch-size", "16", "--lr", "2e-3", "--max-len", "512", "--out", f"{folder}/start"])
    steps.append(["cycle", "--model", f"{folder}/start", "--out", f"{folder}/run", "--cycles", "1",
                  "--train-per-day", "60", "-k", "8", "--eval-limit", "100", "--max-tokens", "64",
                  "--sleep-steps", "20", *workers_args])
    for argv in steps:
        print("\n$ greenloop " + " ".join(argv), flush=True)
        status = main(argv)
        if status:
            return status
    print(f"\nself-improvement demo: report {folder}/run/report.md, plots {folder}/run/plots/, "
          f"episodes {folder}/run/store.db")
    return 0
