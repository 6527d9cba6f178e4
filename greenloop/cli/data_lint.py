"""`greenloop data lint-pairs`: ruff's autofixes as repair pairs, bandit's findings as
labelled security examples (`greenloop.data.lint`)."""

from __future__ import annotations

import sys
import time

from greenloop.cli.data import add_common_options
from greenloop.data.lint import DEFAULT_SELECT

TOP = 8  # rules, tests and skipped files the summary names; manifest.json has them all


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "lint-pairs", help="ruff autofixes as buggy→fixed pairs, bandit findings as security examples",
        description="Run ruff over every Python file of a source and turn each fix it offers into a pair: "
                    "the enclosing function before and after just that fix (bug_type ruff:CODE, family lint), "
                    "kept only when the fixed file still parses. bandit's findings in functions become labelled "
                    "security examples. Writes OUT/shards/pairs-NNNNN.jsonl.gz and findings-NNNNN.jsonl.gz, "
                    "a report per shard (counts, skipped files and why) and OUT/manifest.json. A killed run "
                    "resumes where it stopped when run again with the same arguments.")
    p.add_argument("--source", required=True, help="stdlib (this Python's standard library) or dir:PATH")
    add_common_options(p)
    p.add_argument("--select", default=DEFAULT_SELECT,
                   help=f"ruff rules whose fixes make pairs, as ruff's --select spells them (default: {DEFAULT_SELECT})")
    p.add_argument("--unsafe-fixes", action="store_true",
                   help="also apply the fixes ruff marks unsafe (they may change behaviour); on the standard "
                        "library they about triple the pairs")
    p.add_argument("--no-bandit", dest="bandit", action="store_false", help="pairs only, no bandit findings")
    p.add_argument("--files-per-shard", type=int, default=50, metavar="N",
                   help="files per shard, the unit of resumption (default: 50)")
    p.add_argument("--limit-files", type=int, metavar="N", help="only the first N files, in sorted order (quick runs)")
    p.add_argument("--target-version", metavar="pyXY",
                   help="the Python version ruff reads the code as (default: the running one)")
    p.set_defaults(run=run_lint_pairs_command)


def run_lint_pairs_command(args) -> int:
    from greenloop.data.lint import LintPairsConfig, run_lint_pairs

    options = {"select": args.select, "unsafe_fixes": args.unsafe_fixes, "bandit": args.bandit,
               "files_per_shard": args.files_per_shard, "limit_files": args.limit_files}
    if args.target_version:
        options["target_version"] = args.target_version
    started = time.perf_counter()
    manifest = run_lint_pairs(args.source, args.out, LintPairsConfig(**options), workers=args.workers,
                              force=args.force, progress=lambda line: print(line, file=sys.stderr))
    print_summary(manifest, args.out, time.perf_counter() - started)
    return 0


def _top(counts: dict[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{name} {count}" for name, count in ranked[:TOP])
    return shown + (f", ... ({len(ranked) - TOP} more)" if len(ranked) > TOP else "") if ranked else "none"


def print_summary(manifest: dict, out: str, seconds: float) -> None:
    skipped = manifest["skipped_files"]
    print(f"lint-pairs: {manifest['files']} files ({len(skipped)} skipped), {manifest['pairs']} pairs, "
          f"{manifest['findings']} findings in {manifest['shards']} shards, {seconds:.1f} s -> {out}")
    print(f"  pairs by rule: {_top(manifest['rules'])}")
    print(f"  fixes not made into pairs: {_top(manifest['fixes_skipped'])}")
    print(f"  findings by test: {_top(manifest['tests'])}")
    for entry in skipped[:TOP]:
        print(f"  skipped {entry['path']}: {entry['reason']}")
    for entry in manifest["tool_errors"][:TOP]:
        print(f"  tool error {entry['path']}: {entry['reason']}")
    if len(skipped) > TOP or len(manifest["tool_errors"]) > TOP:
        print(f"  (all skipped files and tool errors: {out}/manifest.json)")
