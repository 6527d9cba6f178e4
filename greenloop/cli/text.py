"""`greenloop text ...`: train the code tokenizer and tokenize data for models trained from
scratch (`greenloop.text`). Heavy modules load inside the commands, not when the parser
is built."""

from __future__ import annotations

import argparse
import os
import sys
import time

TRAIN_DESCRIPTION = """\
Train a byte-level BPE tokenizer on code. decode(encode(s)) == s for any string; every
Python keyword (and soft keyword) is one token, bare and after a space; special tokens
have fixed ids: <|pad|>=0 <|bos|>=1 <|eos|>=2 <|sep|>=3 <|eol|>=4 <|unk|>=5.

--corpus: stdlib | dir:PATH | a `greenloop data split` folder (only its train split's
buggy and fixed code is read, never validation or test).

Writes OUT/tokenizer.json, tokenizer_config.json and special_tokens_map.json (so
transformers.AutoTokenizer.from_pretrained(OUT) loads it) and greenloop_tokenizer.json
(vocabulary size, corpus, sha256 of tokenizer.json)."""

TOKENIZE_DESCRIPTION = """\
Tokenize data into memory-mappable .npy shards that `greenloop.text.datasets` reads.

--format grid: --input is a `greenloop data split` folder; each pair becomes a source
  grid (buggy) and a target grid (fixed) of --lines x --width token ids, one source line
  per row ended by <|eol|>; pairs where a side has too many lines or a line too long are
  skipped and counted. Writes OUT/{split}/shard-NNNNN.{source,target}.npy and .rows.parquet
  (pair_id, bug_type, family, difficulty, bucket, task_id, verified).
--format lm: a flat stream, each document <|bos|> ... <|eos|>; --input is a split folder
  (documents: the fixed code, duplicates kept once per split), tasks:SPEC (e.g.
  tasks:mbpp:PATH@train; documents: prompt <|sep|> reference), stdlib or dir:PATH
  (documents: functions; files go to train, or --holdout-fraction of them to validation).
  Writes OUT/{split}/shard-NNNNN.tokens.npy and .docs.npy (document start offsets).

OUT/meta.json describes the result. One input shard makes one output shard; shards run
in parallel and are written atomically; the same command again resumes, and different
arguments on the same OUT are refused unless --force."""


def add_commands(commands) -> None:
    p = commands.add_parser("text", help="train the code tokenizer; tokenize pairs into grids or an LM stream",
                            description="Tokenizer and tokenized data for models trained from scratch. Typical: "
                                        "`greenloop text train-tokenizer --corpus S --out T && "
                                        "greenloop text tokenize --tokenizer T --input S --format grid --out G`, "
                                        "where S is a `greenloop data split` folder.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = sub.add_parser("train-tokenizer", help="train a byte-level BPE tokenizer on code",
                           description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--corpus", required=True, help="stdlib | dir:PATH | a split folder (its train split)")
    train.add_argument("--vocab-size", type=int, default=32768, help="at most this many tokens (default 32768)")
    train.add_argument("--min-frequency", type=int, default=2, help="a pair is merged only if seen this often (default 2)")
    train.add_argument("--out", required=True, help="folder to write the tokenizer to")
    train.add_argument("--force", action="store_true", help="replace a tokenizer already in --out")
    train.set_defaults(run=run_train)

    tok = sub.add_parser("tokenize", help="tokenize a split folder into grids, or code/tasks into an LM stream",
                         description=TOKENIZE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    tok.add_argument("--tokenizer", required=True, help="a folder written by `greenloop text train-tokenizer`")
    tok.add_argument("--input", required=True, help="a split folder; for --format lm also tasks:SPEC, stdlib, dir:PATH")
    tok.add_argument("--format", choices=("grid", "lm"), default="grid", help="grid pairs or an LM stream (default grid)")
    tok.add_argument("--out", required=True, help="output folder (resumed when it holds the same run)")
    tok.add_argument("--lines", type=int, default=64, help="grid rows: source lines per program (default 64)")
    tok.add_argument("--width", type=int, default=48, help="grid columns: tokens per line with its <|eol|> (default 48)")
    tok.add_argument("--holdout-fraction", type=float, default=0.0,
                     help="lm from stdlib/dir:PATH: share of files to put in validation (default 0: all train)")
    tok.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    tok.add_argument("--force", action="store_true", help="clear --out first instead of resuming")
    tok.set_defaults(run=run_tokenize)


def run_train(args) -> int:
    from greenloop.text.tokenizer import TOKENIZER_FILE, corpus_texts, save_tokenizer, train_tokenizer

    if os.path.exists(os.path.join(args.out, TOKENIZER_FILE)) and not args.force:
        raise ValueError(f"{args.out} already holds a tokenizer; use another --out, or --force to replace it")
    started = time.perf_counter()
    stats: dict[str, int] = {}
    tok = train_tokenizer(corpus_texts(args.corpus, stats), args.vocab_size, args.min_frequency,
                          show_progress=sys.stderr.isatty())
    seconds = time.perf_counter() - started
    corpus = f"{_describe(args.corpus)}: {stats['texts']} texts, {stats['bytes']:,} bytes"
    if stats["skipped"]:
        corpus += f", {stats['skipped']} files skipped (not UTF-8 or too large)"
    save_tokenizer(tok, args.out, corpus=corpus, training={
        "vocab_size": args.vocab_size, "min_frequency": args.min_frequency, "seconds": round(seconds, 1)})
    print(f"{tok.get_vocab_size()} tokens (asked for at most {args.vocab_size}) trained on {corpus} "
          f"in {seconds:.1f}s -> {args.out}")
    return 0


def _describe(spec: str) -> str:
    if spec == "stdlib":
        return f"stdlib (Python {sys.version.split()[0]})"
    if spec.startswith("dir:"):
        return "dir:" + os.path.abspath(os.path.expanduser(spec[4:]))
    return f"train split of {os.path.abspath(spec)} (buggy and fixed)"


def run_tokenize(args) -> int:
    from greenloop.text.tokenize_data import TokenizeConfig, run_tokenize as tokenize

    config = TokenizeConfig(tokenizer=args.tokenizer, input=args.input, format=args.format, lines=args.lines,
                            width=args.width, holdout_fraction=args.holdout_fraction)
    meta = tokenize(config, args.out, workers=args.workers, force=args.force)
    resumed = f", {meta['shards_resumed']} shards already done" if meta["shards_resumed"] else ""
    unit = "pairs" if args.format == "grid" else "documents"
    print(f"{meta['samples']:,} {unit} tokenized in {meta['seconds']:.1f}s = {meta['samples_per_s']:,.0f} "
          f"samples/s on {args.workers} workers{resumed} -> {args.out}")
    for split, entry in meta["splits"].items():
        if args.format == "grid":
            skipped = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in entry["skipped"].items())
            print(f"  {split:11} {entry['rows']:>9,} grid pairs of {entry['pairs']:,}; skipped: {skipped}")
        else:
            print(f"  {split:11} {entry['documents']:>9,} documents {entry['tokens']:>12,} tokens"
                  + (f"; {entry['duplicates']:,} duplicates dropped" if entry["duplicates"] else ""))
    print(f"read with: greenloop.text.datasets.{'GridData' if args.format == 'grid' else 'TokenStream'}"
          f"('{args.out}', 'train')")
    return 0
