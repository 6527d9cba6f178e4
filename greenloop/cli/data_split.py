"""`greenloop data split`: train/validation/test Parquet with curriculum buckets."""

from __future__ import annotations

import argparse

from greenloop.cli.data import add_common_options


def _ratios(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.replace(",", "/").split("/")]
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected TRAIN/VALIDATION/TEST, got {text!r}")
    total = sum(parts)
    return tuple(p / total for p in parts)  # type: ignore[return-value]


def add_command(sub) -> None:
    from greenloop.data import split

    p = sub.add_parser("split", help="grouped, stratified train/validation/test Parquet with curriculum buckets",
                       description=split.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="a folder written by `greenloop data validate` (or any pairs folder)")
    add_common_options(p, workers=False)
    p.add_argument("--ratios", type=_ratios, default=(0.90, 0.05, 0.05), help="train/validation/test (default 90/5/5)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args) -> int:
    from greenloop.data.split import SplitConfig, run_split

    manifest = run_split(args.input, args.out, SplitConfig(ratios=args.ratios, seed=args.seed), force=args.force)
    print(f"{manifest['pairs']} pairs -> {args.out}")
    print(f"{'split':11} {'groups':>7} {'pairs':>9}  by bucket (0 easiest .. 4 hardest)")
    for name, entry in manifest["splits"].items():
        buckets = " ".join(f"{entry['by_bucket'].get(str(b), 0)}" for b in range(5))
        print(f"{name:11} {entry['groups']:>7} {entry['pairs']:>9}  {buckets}")
    print(f"load with: datasets.load_dataset('parquet', data_dir='{args.out}')")
    return 0
