"""Timing statistics for kernels, computed in the verifier's process from the trial times
the sandbox child reported.

- A measurement is one timing job: `warmup` untimed calls, then `trials` timed calls,
  each on fresh inputs (see `kernel_trials`). Its summary is the median and the spread
  (interquartile range, and the coefficient of variation = standard deviation / mean).
- Speedup = median(reference) / median(candidate). Its 95% confidence interval is a
  percentile bootstrap: both samples resampled with replacement `BOOTSTRAP` times with a
  fixed seed, the ratio of medians taken each time.
- Paired (on a CPU, `kernel_paired`): each candidate trial has a reference trial timed
  right after it on the same core, so the interval resamples pairs, and the noise floor
  is how far the reference paired with itself (three jobs) strays from 1: the largest
  ratio of medians either way, minus one.
- Unpaired (on a GPU): the noise floor is the widest ratio among the reference's own
  measurements (three jobs, each a fresh process), minus one.
- Either way never less than `kernel_run.min_floor` (5%; for kernels under 1 ms a call,
  100% on a CPU and 150% on a GPU, whose between-process spread three measurements do
  not capture); a speedup whose interval reaches inside [1 / (1 + floor), 1 + floor] is
  "within noise".
- A speedup above `IMPLAUSIBLE` (10x) is re-measured in fresh processes before it counts
  (see `kernel_run._recheck`).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import asdict, dataclass

BOOTSTRAP = 1000
IMPLAUSIBLE = 10.0


@dataclass(frozen=True)
class TimingSummary:
    median_s: float
    iqr_s: float
    cv: float
    trials: int

    def to_dict(self) -> dict:
        return asdict(self)


def summarise(times: list[float]) -> TimingSummary:
    if not times:
        raise ValueError("no trial times to summarise")
    ordered = sorted(times)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    mean = statistics.fmean(ordered)
    cv = statistics.pstdev(ordered) / mean if mean > 0 else 0.0
    return TimingSummary(statistics.median(ordered), quartiles[2] - quartiles[0], cv, len(ordered))


def speedup_interval(reference: list[float], candidate: list[float], seed: int = 0,
                     rounds: int = BOOTSTRAP) -> tuple[float, float, float]:
    """(speedup, low, high): the ratio of medians and its 95% bootstrap interval."""
    point = statistics.median(reference) / max(statistics.median(candidate), 1e-12)
    rng = random.Random(seed)
    ratios = []
    for _ in range(rounds):
        ref = statistics.median(rng.choices(reference, k=len(reference)))
        cand = statistics.median(rng.choices(candidate, k=len(candidate)))
        ratios.append(ref / max(cand, 1e-12))
    ratios.sort()
    return point, ratios[int(0.025 * rounds)], ratios[min(rounds - 1, int(0.975 * rounds))]


def paired_interval(reference: list[float], candidate: list[float], seed: int = 0,
                    rounds: int = BOOTSTRAP) -> tuple[float, float, float]:
    """As `speedup_interval`, for trials timed in turns (`kernel_paired`): the pairs are
    resampled together, so drift that slowed both trials of a pair stays in both."""
    if len(reference) != len(candidate) or not reference:
        raise ValueError(f"paired trials need equal, non-zero counts, got {len(reference)} and {len(candidate)}")
    point = statistics.median(reference) / max(statistics.median(candidate), 1e-12)
    rng, count = random.Random(seed), len(reference)
    ratios = []
    for _ in range(rounds):
        picks = rng.choices(range(count), k=count)
        ratios.append(statistics.median([reference[i] for i in picks]) /
                      max(statistics.median([candidate[i] for i in picks]), 1e-12))
    ratios.sort()
    return point, ratios[int(0.025 * rounds)], ratios[min(rounds - 1, int(0.975 * rounds))]


def paired_floor(pairs: list[tuple[list[float], list[float]]]) -> float:
    """How far the reference timed in turns against itself strays from 1: the largest
    of median(a) / median(b) and its inverse over the measurements, minus one."""
    ratios = [statistics.median(a) / max(statistics.median(b), 1e-12) for a, b in pairs]
    return max(max(r, 1 / max(r, 1e-12)) for r in ratios) - 1


def noise_floor(measurements: list[list[float]]) -> float:
    """How far measurements of the same reference disagree: the largest ratio of their
    medians, minus one."""
    medians = [statistics.median(m) for m in measurements]
    return max(medians) / max(min(medians), 1e-12) - 1


def within_noise(low: float, high: float, floor: float) -> bool:
    return low <= 1 + floor and high >= 1 / (1 + floor)
