"""Whether a new checkpoint may replace the current one: paired statistics on a frozen set.

Both checkpoints answer the same frozen tasks, so the comparison is paired: only the tasks
where they disagree carry information. Of those, `gains` pass only with the new checkpoint
and `losses` only with the current one. Under "no difference" each disagreement is a fair
coin, so the exact (binomial) McNemar test gives

    p_better = P(X >= gains),  p_worse = P(X >= losses),  X ~ Binomial(gains + losses, 1/2)

The gate promotes the new checkpoint only when all of these hold, and otherwise says which
failed:
- not worse: gains − losses >= `min_gain` (0: the paired count does not drop). Waiting for
  a significant drop before rolling back would keep every checkpoint that is worse by a
  little, and a loop of such steps drifts down: the rule is on the counts, and p_better
  and p_worse are reported beside it;
- no task family's pass rate drops by more than `family_margin`;
- no critical task that passed before fails now.

Choosing checkpoints on a set makes that set's figures optimistic, so the loop gates on one
half of the frozen set and reports the gain over the baseline, with its p-value, on the
other half, which no decision ever looks at (`greenloop.loop.cycle`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2); 1.0 when k <= 0."""
    if k <= 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


@dataclass(frozen=True)
class PairedTest:
    gains: int
    losses: int
    both: int
    neither: int

    @property
    def p_better(self) -> float:
        return binomial_tail(self.gains, self.gains + self.losses)

    @property
    def p_worse(self) -> float:
        return binomial_tail(self.losses, self.gains + self.losses)

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2 * min(self.p_better, self.p_worse))


def paired_test(before: dict[str, bool], after: dict[str, bool]) -> PairedTest:
    """McNemar counts over the tasks both runs answered; a task missing from one is an error."""
    if set(before) != set(after):
        missing = sorted(set(before) ^ set(after))
        raise ValueError(f"paired test needs the same tasks in both runs; {len(missing)} differ, e.g. {missing[:3]}")
    gains = sum(after[t] and not before[t] for t in before)
    losses = sum(before[t] and not after[t] for t in before)
    both = sum(before[t] and after[t] for t in before)
    return PairedTest(gains, losses, both, len(before) - gains - losses - both)


@dataclass(frozen=True)
class GateConfig:
    min_gain: int = 0                  # promote when gains - losses >= this (0: not worse)
    family_margin: float = 0.10        # largest allowed drop of one family's pass rate
    critical: tuple[str, ...] = ()     # task ids that must not regress (besides tasks marked critical)


@dataclass
class GateDecision:
    promote: bool
    test: PairedTest
    reasons: list[str] = field(default_factory=list)
    family_drops: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        head = "promoted" if self.promote else "rolled back"
        stats = (f"gains {self.test.gains}, losses {self.test.losses}, p_better {self.test.p_better:.3g}, "
                 f"p_worse {self.test.p_worse:.3g}")
        return f"{head} ({stats})" + ("" if self.promote else ": " + "; ".join(self.reasons))


def family_rates(results: dict[str, bool], families: dict[str, str]) -> dict[str, float]:
    totals: dict[str, list[int]] = {}
    for task_id, passed in results.items():
        count = totals.setdefault(families.get(task_id, "?"), [0, 0])
        count[0] += passed
        count[1] += 1
    return {family: passed / total for family, (passed, total) in sorted(totals.items())}


def gate(before: dict[str, bool], after: dict[str, bool], families: dict[str, str],
         critical: set[str] = frozenset(), config: GateConfig = GateConfig()) -> GateDecision:
    """Decide whether `after` (new checkpoint) replaces `before` (current)."""
    test = paired_test(before, after)
    decision = GateDecision(True, test)
    if test.gains - test.losses < config.min_gain:
        decision.reasons.append(f"{test.losses} tasks lost, {test.gains} gained"
                                + (f" (needs a net gain of {config.min_gain})" if config.min_gain else ""))
    rates_before, rates_after = family_rates(before, families), family_rates(after, families)
    for family, rate in rates_before.items():
        drop = rate - rates_after.get(family, 0.0)
        decision.family_drops[family] = drop
        if drop > config.family_margin + 1e-12:
            decision.reasons.append(f"family {family} dropped {drop:.0%} (> {config.family_margin:.0%})")
    regressed = sorted(t for t in set(critical) | set(config.critical) if before.get(t) and not after.get(t))
    if regressed:
        decision.reasons.append(f"critical tasks regressed: {', '.join(regressed)}")
    decision.promote = not decision.reasons
    return decision
