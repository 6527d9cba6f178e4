"""`greenloop data stackoverflow`: question/answer pairs from a Stack Overflow Posts.xml dump
(`greenloop.data.stackoverflow` holds the rules and the output schema)."""

from __future__ import annotations

from greenloop.cli.data import add_common_options
from greenloop.data.stackoverflow import StackOverflowConfig, run_stackoverflow


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "stackoverflow", help="question/answer pairs with code from a Stack Overflow Posts.xml dump",
        description="Stream a Posts.xml dump (constant memory on a multi-GB file) and keep each answer with "
                    "code and a score of at least --min-score whose question has a --tag and code, as one "
                    "record with both sides' text and code blocks. Writes OUT/shards/qa-NNNNN.jsonl.gz and "
                    "OUT/manifest.json (counts by rule); run it again to resume after a kill.")
    p.add_argument("--posts", required=True, metavar="PATH",
                   help="Posts.xml, Posts.xml.bz2, Posts.xml.gz, or a .7z holding Posts.xml (read through the "
                        "7z command, which must be installed)")
    p.add_argument("--tag", action="append", metavar="TAG",
                   help="keep questions with tag TAG or TAG-anything (python matches python-3.x, not ipython); "
                        "repeat for more (default: python)")
    p.add_argument("--min-score", type=int, default=5, help="lowest answer score kept (default: 5)")
    p.add_argument("--records-per-shard", type=int, default=10_000, help="records per output shard (default: 10000)")
    add_common_options(p, workers=False)
    p.set_defaults(run=run_command)


def run_command(args) -> int:
    config = StackOverflowConfig(posts=args.posts, tags=tuple(args.tag or ("python",)), min_score=args.min_score,
                                 records_per_shard=args.records_per_shard)
    manifest = run_stackoverflow(config, args.out, force=args.force)
    questions, answers = manifest["questions"], manifest["answers"]
    print(f"read {manifest['rows_read']} rows: kept {questions['kept']} of {questions['seen']} questions and "
          f"{answers['kept']} of {answers['seen']} answers; wrote {manifest['records']} records in "
          f"{len(manifest['shards'])} shards to {args.out}")
    return 0
