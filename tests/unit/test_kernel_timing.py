"""Timing statistics for kernels: summaries, the speedup interval, the noise floor."""

from __future__ import annotations

import random

from greenloop.verify.kernel_run import min_floor
from greenloop.verify.kernel_timing import noise_floor, speedup_interval, summarise, within_noise


def test_summary_of_trials():
    summary = summarise([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary.median_s == 3.0 and summary.trials == 5
    assert summary.cv > 1.0  # one slow trial moves the spread, not the median


def test_speedup_interval_brackets_the_true_ratio():
    rng = random.Random(1)
    reference = [0.002 * (1 + 0.05 * rng.random()) for _ in range(40)]
    candidate = [0.001 * (1 + 0.05 * rng.random()) for _ in range(40)]
    point, low, high = speedup_interval(reference, candidate, seed=0)
    assert low < point < high and 1.9 < low and high < 2.1
    assert speedup_interval(reference, candidate, seed=0) == (point, low, high)  # seeded


def test_noise_floor_and_what_counts_as_noise():
    assert noise_floor([[1.0, 1.0], [1.1, 1.1], [1.05]]) == 1.1 / 1.0 - 1
    assert within_noise(0.95, 1.2, floor=0.1)
    assert not within_noise(1.3, 1.5, floor=0.1)
    assert min_floor(5e-4) == 1.0 and min_floor(2e-3) == 0.05
    assert min_floor(5e-4, "cuda") == 1.5 and min_floor(5e-4, "cuda:1") == 1.5 and min_floor(2e-3, "cuda") == 0.05
