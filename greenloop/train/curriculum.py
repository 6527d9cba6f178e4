"""Curriculum stages over the data factory's difficulty buckets.

Stage k trains on buckets 0..k (cumulative, so the easy cases are replayed while harder
ones arrive and are not forgotten); the last stage trains on every bucket. A stage ends
when its validation exact-match (on the validation rows of its buckets) reaches
`advance_at`, or when it has used its step budget. The next stage starts from the
weights the previous one ended with (a warm start), with a fresh warmup and cosine
schedule whose peak is `lr * stage_lr_decay**k`.

Token-stream data has no buckets: one stage, judged by validation loss only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    index: int
    buckets: tuple[int, ...] | None     # None: every row
    steps: int
    peak_lr: float


def plan_stages(buckets_present: list[int] | None, stages: int, steps: int, lr: float, decay: float) -> list[Stage]:
    """Cut the sorted buckets into `stages` cumulative stages (fewer when there are fewer
    buckets)."""
    if not buckets_present:
        return [Stage(0, None, steps, lr)]
    ordered = sorted(set(buckets_present))
    count = max(1, min(stages, len(ordered)))
    plan = []
    for k in range(count):
        last = ordered[math.ceil((k + 1) * len(ordered) / count) - 1]
        plan.append(Stage(k, tuple(b for b in ordered if b <= last), steps, lr * decay ** k))
    return plan


def learning_rate(step_in_stage: int, stage: Stage, warmup: int, min_ratio: float) -> float:
    """Linear warmup to the stage's peak, then cosine decay to `min_ratio` of it."""
    if warmup and step_in_stage < warmup:
        return stage.peak_lr * (step_in_stage + 1) / warmup
    span = max(1, stage.steps - warmup)
    progress = min(1.0, (step_in_stage - warmup) / span)
    floor = stage.peak_lr * min_ratio
    return floor + (stage.peak_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
