"""The `greenloop` command: `main(argv) -> int`, one small function per command."""

from __future__ import annotations

import argparse
import os
import sys

from greenloop.config import ConfigError
from greenloop.io import DataError
from greenloop.registry import RegistryError


def build_parser() -> argparse.ArgumentParser:
    from greenloop.cli import data, demo, tasks, verify

    parser = argparse.ArgumentParser(
        prog="greenloop",
        description="Train code models on execution-verified feedback. Verify samples in a "
                    "sandbox, score them (pass@k), and list or export task families.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    verify.add_commands(commands)
    tasks.add_commands(commands)
    data.add_commands(commands)
    demo.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except BrokenPipeError:  # `greenloop ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (DataError, ConfigError, RegistryError, ValueError, OSError, EOFError) as exc:
        print(f"greenloop {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # the sandbox could not start, say
        print(f"greenloop {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"greenloop {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
