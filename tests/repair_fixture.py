"""A few small tasks with references and tests, and their verified mutants: the data the
repair-task, agent and loop tests share (made in seconds, no network)."""

from __future__ import annotations

import json
from pathlib import Path

PROGRAMS = {
    "clamp": ("def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n"
              "    return x\n", [[5, 0, 10], [-3, 0, 10], [12, 0, 10], [0, 0, 0], [10, 0, 10]]),
    "count_evens": ("def count_evens(items):\n    count = 0\n    for item in items:\n        if item % 2 == 0:\n"
                    "            count += 1\n    return count\n", [[[1, 2, 3, 4]], [[]], [[2, 2]], [[1, 3, 5]]]),
    "last_index": ("def last_index(items, target):\n    for i in range(len(items) - 1, -1, -1):\n"
                   "        if items[i] == target:\n            return i\n    return -1\n",
                   [[[1, 2, 1], 1], [[4], 4], [[], 3], [[5, 6, 7], 7], [[5, 6, 7], 9]]),
    "total_price": ("def total_price(prices, discount):\n    total = sum(prices)\n    if discount > 0:\n"
                    "        total = total - total * discount / 100\n    return round(total, 2)\n",
                    [[[10, 20], 10], [[5], 0], [[], 50], [[99.5, 0.5], 25]]),
    "join_words": ("def join_words(words, sep):\n    out = ''\n    for index, word in enumerate(words):\n"
                   "        if index > 0:\n            out += sep\n        out += word\n    return out\n",
                   [[["a", "b"], "-"], [[], ","], [["x"], "+"], [["p", "q", "r"], ""]]),
    "max_gap": ("def max_gap(values):\n    if len(values) < 2:\n        return 0\n    best = 0\n"
                "    for a, b in zip(values, values[1:]):\n        best = max(best, abs(b - a))\n    return best\n",
                [[[1, 5, 2]], [[3]], [[]], [[-1, -9, 0]], [[2, 2, 2]]]),
}


def write_tasks(path: Path) -> Path:
    rows = []
    for name, (reference, calls) in PROGRAMS.items():
        signature = reference.splitlines()[0] + "\n"
        rows.append({"task_id": f"fx/{name}", "prompt": signature, "entry_point": name, "reference": reference,
                     "tests": [{"args": args} for args in calls]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def mutate_folder(tmp: Path) -> Path:
    """A `greenloop data mutate` folder of verified mutants of the tasks above."""
    from greenloop.data.mutate import MutateConfig, run_mutate

    tasks = write_tasks(tmp / "fx_tasks.jsonl")
    out = tmp / "fx_mutants"
    run_mutate(MutateConfig(source=f"jsonl:{tasks}"), str(out), workers=1)
    return out
