"""Run one cycle with a slow scripted policy (for the kill test): python -m tests.loop.slow_cycle OUT MODEL TRAIN."""

import sys

from greenloop.loop.cycle import run_cycles
from greenloop.tasks import load_tasks
from tests.loop.oracle import factory
from tests.loop.test_cycle import FROZEN, schedule


def main(out: str, model: str, train: str) -> None:
    from greenloop.evaluate.gates import GateConfig
    from greenloop.loop.config import CycleConfig
    from greenloop.train.finetune import FinetuneConfig

    frozen = sorted(load_tasks(FROZEN).tasks)
    plan = schedule(frozen, sorted(load_tasks(train).tasks))
    config = CycleConfig(model=model, out=out, train_tasks=train, eval_tasks=FROZEN, train_per_day=None, k=2,
                         workers=1, sleep=FinetuneConfig(steps=2, batch_size=2, max_len=512),
                         gate=GateConfig(family_margin=0.5))
    run_cycles(config, 1, show_progress=False, policy_factory=factory(plan, f"{train},{FROZEN}", delay_s=0.05))


if __name__ == "__main__":
    main(*sys.argv[1:4])
