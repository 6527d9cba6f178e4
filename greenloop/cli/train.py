"""`greenloop train pretrain`: models from scratch on a tokenized folder."""

from __future__ import annotations

import argparse


def add_commands(commands) -> None:
    p = commands.add_parser("train", help="train models: pretrain (from scratch)",
                            description="Train models. `pretrain` trains greenloop's own small models "
                                        "(tiny GPT, TRM, HRM) from scratch.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_pretrain(sub)
    _add_sft(sub)


def _add_sft(sub) -> None:
    from greenloop.train import finetune

    p = sub.add_parser("sft", help="supervised fine-tuning on prompt → completion pairs (or from scratch)",
                       description=finetune.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model folder to fine-tune, or gpt / hrm to start from "
                   "random weights (needs --tokenizer)")
    p.add_argument("--tokenizer", help="with --model gpt|hrm: a `greenloop text train-tokenizer` folder")
    p.add_argument("--model-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="with --model gpt|hrm: a model config field (repeatable), e.g. hidden_size=256")
    p.add_argument("--data", required=True, help="a data folder of buggy→fixed pairs (`greenloop data mutate`), "
                   "tasks:SPEC (broken program → reference, e.g. tasks:repair:humaneval@train), or a JSONL file "
                   "of prompt/completion (or buggy/fixed) records")
    p.add_argument("--out", required=True, help="where the trained model folder is written")
    p.add_argument("--format", choices=("raw", "edit"), default="raw",
                   help="buggy→fixed pairs as raw (whole fixed program) or edit (numbered lines → the edit; what "
                        "`greenloop cycle` asks greenloop models for)")
    p.add_argument("--limit", type=int, help="use a seeded sample of this many examples")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--max-len", type=int, default=768, help="longer examples are skipped (and counted), not cut")
    p.add_argument("--prompt-weight", type=float, default=0.0, metavar="W",
                   help="also predict the prompt's tokens, their loss weighted W beside the completion's "
                        "(default 0: completion only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_sft)


def run_sft(args) -> int:
    from pathlib import Path

    from greenloop.train.config import parse_model_settings
    from greenloop.train.finetune import FinetuneConfig, finetune, init_model_folder, read_examples

    model = args.model
    if model in ("gpt", "hrm"):
        if not args.tokenizer:
            raise ValueError(f"--model {model} starts from random weights and needs --tokenizer")
        model = str(init_model_folder(model, args.tokenizer, Path(args.out + ".init"), args.seed,
                                      **parse_model_settings(args.model_set)))
    examples = read_examples(args.data, args.format)
    if args.limit and args.limit < len(examples):
        import random

        examples = random.Random(args.seed).sample(examples, args.limit)
    config = FinetuneConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, max_len=args.max_len,
                            seed=args.seed, prompt_weight=args.prompt_weight)
    summary = finetune(model, examples, args.out, config, progress=not args.quiet)
    print(f"{summary['examples']} examples ({summary['skipped_too_long']} longer than {args.max_len} tokens "
          f"skipped), {summary['steps']} steps in {summary['seconds']:.0f} s, {summary['tokens_per_s']:,.0f} "
          f"tokens/s; loss {summary['loss_first']:.2f} -> {summary['loss_last']:.2f} -> {args.out}")
    return 0


def _add_pretrain(sub) -> None:
    from greenloop.train import pretrain

    p = sub.add_parser("pretrain", help="train gpt, trm or hrm from scratch (curriculum, checkpoints, resume)",
                       description=pretrain.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("gpt", "trm", "hrm"), help="gpt: causal baseline; trm: grid repair; "
                   "hrm: hierarchical recurrent language model (default trm)")
    p.add_argument("--data", help="a `greenloop text tokenize` folder (--format grid for trm, lm for gpt/hrm)")
    p.add_argument("--out", help="run folder; running the same command again resumes it")
    p.add_argument("--force", action="store_true", help="delete --out first and start over")
    p.add_argument("--config", help="a YAML file of PretrainConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any PretrainConfig field (repeatable), e.g. --set warmup_steps=50")
    p.add_argument("--model-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a model config field (repeatable), e.g. --model-set hidden_size=128")
    p.add_argument("--steps", type=int, help="steps per curriculum stage, at most (default 2000)")
    p.add_argument("--stages", type=int, help="curriculum stages over the difficulty buckets (default 5; 1: none)")
    p.add_argument("--batch-size", type=int, help="rows per step (default 32)")
    p.add_argument("--batch-cells", type=int, help="grid data: cap rows x cropped cells per step (big programs "
                   "come in smaller batches)")
    p.add_argument("--clean-fraction", type=float, metavar="F",
                   help="grid data: about this share of steps train on clean programs (input = fixed program, "
                   "target: no change), so the model learns to leave correct code alone (default 0)")
    p.add_argument("--seq-len", type=int, help="tokens per row for token-stream data (default 256)")
    p.add_argument("--lr", type=float, help="peak learning rate of the first stage (default 1e-3)")
    p.add_argument("--max-minutes", type=float, help="stop cleanly after this much training time (resumable)")
    p.add_argument("--eval-every", type=int, help="steps between validations (default 200)")
    p.add_argument("--save-every", type=int, help="steps between checkpoints (default 200)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 on a GPU that supports it, fp32 on CPU (measured faster here)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_pretrain)


def run_pretrain(args) -> int:
    from greenloop.config import load_config
    from greenloop.train.config import PretrainConfig, parse_model_settings
    from greenloop.train.pretrain import Pretrainer

    model_config = parse_model_settings(args.model_set) if args.model_set else None
    config = load_config(PretrainConfig, args.config, args.set, model=args.model, data=args.data, out=args.out,
                         model_config=model_config, steps=args.steps, stages=args.stages,
                         batch_size=args.batch_size, batch_cells=args.batch_cells,
                         clean_fraction=args.clean_fraction, seq_len=args.seq_len, lr=args.lr,
                         max_minutes=args.max_minutes, eval_every=args.eval_every, save_every=args.save_every,
                         precision=args.precision, device=args.device, seed=args.seed)
    summary = Pretrainer(config, force=args.force, progress=False if args.quiet else None).train()
    best = summary["best"] or {}
    print(f"{config.model}: {summary['parameters']:,} parameters, {summary['steps']} steps "
          f"({summary['updates']} updates) in {summary['train_seconds']} s, "
          f"{summary['tokens_per_s']:,.0f} tokens/s; stopped: {summary['stopped']}")
    if "train_loss_first5" in summary:
        first, last = summary["train_loss_first5"], summary["train_loss_last20"]
        print(f"  training loss {first:.2f} (mean of the first 5 steps) -> {last:.2f} (last 20): "
              f"{100 * (last - first) / first:+.0f}%")
    for stage in summary["stages_done"]:
        v = stage["validation"]
        figure = f"exact {v['exact']:.3f}" if "exact" in v else f"loss {v['loss']:.4f}"
        print(f"  stage {stage['stage']}: {stage['steps']} steps, validation {figure}"
              f"{' (criterion met)' if stage['passed'] else ''}")
    if best:
        print(f"best validation {best['value']:.4f} at step {best['step']} -> {summary['out']}/best")
    return 0
