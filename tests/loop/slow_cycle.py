"""Run one cycle with a slow scripted policy (for the kill test): python -m tests.loop.slow_cycle OUT MODEL TRAIN."""

import sys
from pathlib import Path

from greenloop.loop.cycle import run_cycles
from greenloop.tasks import load_tasks
from tests.loop.oracle import factory
from tests.loop.test_cycle import FROZEN, config, schedule


def main(out: str, model: str, train: str) -> None:
    frozen = sorted(load_tasks(FROZEN).tasks)
    plan = schedule(frozen, sorted(load_tasks(train).tasks))
    folder = Path(out)  # the same settings as the in-process tests
    config_ = config((folder.parent, model, train, frozen), folder.name)
    run_cycles(config_, 1, show_progress=False, policy_factory=factory(plan, f"{train},{FROZEN}", delay_s=0.05))


if __name__ == "__main__":
    main(*sys.argv[1:4])
