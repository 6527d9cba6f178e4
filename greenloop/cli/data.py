"""`greenloop data ...`: the repair data factory's commands, one module each."""

from __future__ import annotations

import importlib

# each module defines add_command(subparsers)
DATA_COMMANDS = ("data_mutate", "data_validate", "data_split", "data_lint", "data_git", "data_stackoverflow")


def add_commands(commands) -> None:
    p = commands.add_parser(
        "data", help="make verified buggy→fixed repair pairs: mutate, lint-pairs, mine-git, stackoverflow, validate, split",
        description="The repair data factory. Typical pipeline: "
                    "`greenloop data mutate --source stdlib --out D && greenloop data validate D --out V && "
                    "greenloop data split V --out S`. Every command writes shards atomically and resumes "
                    "after a kill when run again with the same arguments.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name in DATA_COMMANDS:
        importlib.import_module(f"greenloop.cli.{name}").add_command(sub)


def add_common_options(parser, workers: bool = True) -> None:
    """--out/--force (and --workers) as every data command spells them."""
    parser.add_argument("--out", required=True, help="output folder (resumed when it holds the same run)")
    parser.add_argument("--force", action="store_true", help="clear --out first instead of resuming")
    if workers:
        import os
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                            help="processes (default: one per core)")
