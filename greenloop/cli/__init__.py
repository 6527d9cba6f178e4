"""The `greenloop` command: `main(argv) -> int`, one small function per command."""

from __future__ import annotations

import argparse
import os
import sys

from greenloop.config import ConfigError
from greenloop.io import DataError
from greenloop.registry import RegistryError


def build_parser() -> argparse.ArgumentParser:
    from greenloop.cli import data, demo, export, kernels, loop, sample, serve_model, store, tasks, text, train, verify

    parser = argparse.ArgumentParser(
        prog="greenloop",
        description="Train code models on execution-verified feedback. Verify samples in a "
                    "sandbox, score them (pass@k), and list or export task families.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    verify.add_commands(commands)
    tasks.add_commands(commands)
    data.add_commands(commands)
    text.add_commands(commands)
    train.add_commands(commands)
    export.add_commands(commands)
    sample.add_commands(commands)
    store.add_commands(commands)
    serve_model.add_commands(commands)
    loop.add_commands(commands)
    kernels.add_commands(commands)
    demo.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["eval", "repair"]:  # `eval` scores samples; `eval repair` measures a repair model
        return _guarded("eval repair", lambda: _eval_repair(argv[2:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return _guarded(args.command, lambda: args.run(args))


def _guarded(command: str, run) -> int:
    """Run a command; expected failures become one clear line and an exit code."""
    try:
        return run()
    except BrokenPipeError:  # `greenloop ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (DataError, ConfigError, RegistryError, ValueError, OSError, EOFError) as exc:
        print(f"greenloop {command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # the sandbox could not start, say
        print(f"greenloop {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"greenloop {command}: interrupted", file=sys.stderr)
        return 130


def _eval_repair(argv: list[str]) -> int:
    from greenloop.cli.eval_repair import main as eval_repair_main

    return eval_repair_main(argv)


def entry() -> None:
    sys.exit(main())
