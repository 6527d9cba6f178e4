"""Throughput of grid tokenization (`greenloop text tokenize --format grid`) on this machine.

A sample is one pair: its `buggy` side encoded as the source grid and its `fixed` side as
the target grid (64x48 by default), both written to memory-mapped shards with the pair's
row. Measured through the same library call the command makes (`run_tokenize`), from a
cold start (`--force`), wall time including planning and the tokenizer's loading: once
with 1 worker and once with every core.

Input: a `greenloop data split` folder (argument), or one built here from the standard
library (`mutate --limit-files 200 -> validate -> split`). Tokenizer: `--tokenizer DIR`,
or one trained here on the split's train side (32,768 tokens).

Anchor: the seed plans' expectation of 65 samples/s; the ratio printed is measured /
anchor.

    .venv/bin/python benchmarks/tokenize_throughput.py [SPLIT_FOLDER] [--tokenizer DIR]
        [--out runs/bench-text] [--workers N] [--lines 64 --width 48] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ANCHOR_SAMPLES_PER_S = 65.0


def build_split(out: Path, limit_files: int, workers: int) -> Path:
    from greenloop.data.mutate import MutateConfig, run_mutate
    from greenloop.data.split import SplitConfig, run_split
    from greenloop.data.validate import ValidateConfig, run_validate

    run_mutate(MutateConfig(source="stdlib", limit_files=limit_files), str(out / "D"), workers, force=True)
    run_validate(str(out / "D"), str(out / "V"), ValidateConfig(), workers, force=True)
    run_split(str(out / "V"), str(out / "S"), SplitConfig(), force=True)
    return out / "S"


def train(split: Path, out: Path) -> tuple[Path, float]:
    from greenloop.text.tokenizer import corpus_texts, save_tokenizer, train_tokenizer

    started = time.perf_counter()
    tok = train_tokenizer(corpus_texts(str(split)), vocab_size=32768)
    seconds = time.perf_counter() - started
    return save_tokenizer(tok, out, corpus=f"train split of {split}"), seconds


def measure(tokenizer: Path, split: Path, out: Path, workers: int, lines: int, width: int) -> dict:
    from greenloop.text.tokenize_data import TokenizeConfig, run_tokenize

    config = TokenizeConfig(tokenizer=str(tokenizer), input=str(split), format="grid", lines=lines, width=width)
    meta = run_tokenize(config, str(out), workers=workers, force=True)
    splits = meta["splits"].values()
    return {"workers": workers, "pairs": meta["samples"], "grid_pairs": sum(s["rows"] for s in splits),
            "skipped": {k: sum(s["skipped"][k] for s in splits) for k in ("too_many_lines", "line_too_long")},
            "shards": sum(len(s["shards"]) for s in splits), "seconds": meta["seconds"],
            "samples_per_s": meta["samples_per_s"], "vs_anchor": round(meta["samples_per_s"] / ANCHOR_SAMPLES_PER_S, 1)}


def report(results: dict) -> None:
    print(f"machine: {os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"input: {results['split']}; tokenizer: {results['tokenizer']} ({results['vocab_size']} tokens"
          + (f", trained in {results['train_s']:.1f}s" if results.get("train_s") else "") + ")")
    for m in results["runs"]:
        print(f"  {m['workers']:>2} worker(s): {m['pairs']:>7,} pairs ({m['grid_pairs']:,} fit, skipped "
              f"{m['skipped']['too_many_lines']} too many lines, {m['skipped']['line_too_long']} line too long) "
              f"in {m['seconds']:>6.2f}s over {m['shards']} shards = {m['samples_per_s']:>8,.0f} samples/s "
              f"({m['vs_anchor']}x the anchor of {ANCHOR_SAMPLES_PER_S:.0f} samples/s)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", nargs="?", help="a `greenloop data split` folder (default: build one from stdlib)")
    parser.add_argument("--tokenizer", help="a tokenizer folder (default: train one on the split)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-text"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit-files", type=int, default=200, help="stdlib files for the built split")
    parser.add_argument("--lines", type=int, default=64)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--keep", action="store_true", help="keep the output folders")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    split = Path(args.split) if args.split else build_split(out, args.limit_files, args.workers)
    results: dict = {"split": str(split)}
    if args.tokenizer:
        tokenizer = Path(args.tokenizer)
    else:
        tokenizer, results["train_s"] = train(split, out / "tokenizer")
    from greenloop.text.tokenizer import load_tokenizer

    results.update(tokenizer=str(tokenizer), vocab_size=load_tokenizer(tokenizer).get_vocab_size())
    results["runs"] = [measure(tokenizer, split, out / f"grid-{n}", n, args.lines, args.width)
                       for n in sorted({1, args.workers})]
    print(json.dumps(results, indent=1)) if args.json else report(results)
    if not args.keep:  # only what this script made
        made = [f"grid-{n}" for n in (1, args.workers)] + ([] if args.split else ["D", "V", "S"])
        for sub in made + ([] if args.tokenizer else ["tokenizer"]):
            shutil.rmtree(out / sub, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
