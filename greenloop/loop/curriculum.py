"""The adaptive curriculum: which training tasks a loop should work on next, from how
often the policy has recently solved each one.

`AdaptiveCurriculum` keeps, per task id, the outcomes of its most recent `window`
attempts (True solved, False not). A verdict the verifier could not reach (INFRA_ERROR)
is not an attempt: pass `None` and it is ignored, so a sandbox failure never moves a task.

The update rule. With s successes in the n recent attempts of a task t:

    p̂(t)      = (s + 1) / (n + 2)                    Laplace's estimate; 1/2 for a new task
    in band    ⇔ band[0] ≤ p̂(t) ≤ band[1]
    weight(t) = 1                        if n < min_attempts   (still unknown)
              = 1 + 4 · p̂(t) · (1 − p̂(t))   if t is in band       (1.64 at the edges of
                                                               (0.2, 0.8), 2 at p̂ = 1/2)
              = explore                  otherwise             (solved or hopeless)

Tasks the policy sometimes solves are where it can still learn, so they are drawn most,
and those nearest an even chance most of all. A solved or hopeless task keeps a small
weight, `explore`, so it is re-probed now and then: a forgotten task fails again, its p̂
falls back into the band and it is worked on again.

`sample(task_ids, k)` draws k distinct tasks (all of them when there are fewer) with
probability proportional to weight, without replacement: each task gets the key
ln(u) / weight(t) with u uniform on (0, 1], and the k largest keys are drawn (Efraimidis
and Spirakis' one-pass method, the same distribution as drawing one task at a time from
what is left). A task of weight 0 (when `explore` is 0) is drawn only when there are not
k others. The curriculum owns its `random.Random`, seeded by `seed`; the ids are sorted
first, so a draw depends only on the seed and the history, not on the order ids come in.

`save(path)` writes the whole state (settings, histories, the random generator's state and
a `meta` dict the caller keeps alongside) as JSON, atomically; `load(path)` reads it back,
so a resumed loop draws exactly what an uninterrupted one would have. A bad file raises
`greenloop.io.DataError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from greenloop.data.shards import write_json
from greenloop.io import DataError

FORMAT_VERSION = 1


class AdaptiveCurriculum:
    """Per-task recent outcomes, and weighted draws of tasks from them (rule above)."""

    def __init__(self, band: tuple[float, float] = (0.2, 0.8), window: int = 16, explore: float = 0.1,
                 min_attempts: int = 2, seed: int = 0):
        low, high = band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"curriculum band: need 0 <= low <= high <= 1, got {tuple(band)}")
        if window < 1:
            raise ValueError(f"curriculum window: must be >= 1, got {window}")
        if not 0.0 <= explore:
            raise ValueError(f"curriculum explore: must be >= 0, got {explore}")
        if not 0 <= min_attempts <= window:
            raise ValueError(f"curriculum min_attempts: must be between 0 and window ({window}), got {min_attempts}")
        self.band = (float(low), float(high))
        self.window = int(window)
        self.explore = float(explore)
        self.min_attempts = int(min_attempts)
        self.seed = seed
        self.meta: dict[str, Any] = {}  # the caller's bookkeeping, saved with the state
        self._history: dict[str, deque[bool]] = {}
        self._rng = random.Random(seed)

    # outcomes ----------------------------------------------------------------------
    def update(self, task_id: str, success: bool | None) -> None:
        """Record one attempt; `None` (the verifier could not judge) is not an attempt."""
        if success is None:
            return
        if not isinstance(success, bool):
            raise TypeError(f"curriculum update of {task_id!r}: success must be True, False or None, "
                            f"got {success!r}")
        self._history.setdefault(task_id, deque(maxlen=self.window)).append(success)

    def update_many(self, results: Mapping[str, Iterable[bool | None]]) -> None:
        """Record each task's attempts in order; tasks in sorted order."""
        for task_id in sorted(results):
            for success in results[task_id]:
                self.update(task_id, success)

    def attempts(self, task_id: str) -> list[bool]:
        """The task's recent outcomes, oldest first (at most `window`)."""
        return list(self._history.get(task_id, ()))

    # the rule ----------------------------------------------------------------------
    def rate(self, task_id: str) -> float:
        """p̂ = (s + 1) / (n + 2) over the task's recent attempts."""
        recent = self._history.get(task_id, ())
        return (sum(recent) + 1) / (len(recent) + 2)

    def standing(self, task_id: str) -> str:
        """`unknown` (fewer than min_attempts), `below`, `in_band` or `above`."""
        if len(self._history.get(task_id, ())) < self.min_attempts:
            return "unknown"
        p = self.rate(task_id)
        return "below" if p < self.band[0] else "above" if p > self.band[1] else "in_band"

    def weight(self, task_id: str) -> float:
        standing = self.standing(task_id)
        if standing == "unknown":
            return 1.0
        if standing == "in_band":
            p = self.rate(task_id)
            return 1.0 + 4.0 * p * (1.0 - p)
        return self.explore

    def status(self, task_ids: Iterable[str] | None = None) -> dict[str, int]:
        """How many tasks are in band, below, above and unknown: of `task_ids` (a task
        never attempted is unknown), or of every task with a history."""
        counts = {"in_band": 0, "below": 0, "above": 0, "unknown": 0}
        for task_id in (self._history if task_ids is None else set(task_ids)):
            counts[self.standing(task_id)] += 1
        return counts

    # drawing -----------------------------------------------------------------------
    def sample(self, task_ids: Iterable[str], k: int) -> list[str]:
        """k distinct tasks (all, when fewer), drawn by weight without replacement; most
        favoured first."""
        if k < 0:
            raise ValueError(f"curriculum sample: k must be >= 0, got {k}")
        keyed = []
        for task_id in sorted(set(task_ids)):
            weight, u = self.weight(task_id), 1.0 - self._rng.random()  # u in (0, 1]
            keyed.append(((1, math.log(u) / weight) if weight > 0 else (0, u), task_id))
        keyed.sort(key=lambda pair: pair[0], reverse=True)
        return [task_id for _, task_id in keyed[:k]]

    # state -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        version, internal, gauss = self._rng.getstate()
        return {"version": FORMAT_VERSION, "band": list(self.band), "window": self.window,
                "explore": self.explore, "min_attempts": self.min_attempts, "seed": self.seed,
                "history": {t: list(h) for t, h in sorted(self._history.items())},
                "rng": [version, list(internal), gauss], "meta": self.meta}

    @classmethod
    def from_dict(cls, data: Any, source: str = "<curriculum>") -> AdaptiveCurriculum:
        """The curriculum `to_dict` described; a bad field raises DataError(source, field)."""
        if not isinstance(data, dict):
            raise DataError(source, None, f"expected a JSON object, got {type(data).__name__}")
        fetch = _Fields(data, source)
        if fetch("version", int) != FORMAT_VERSION:
            raise DataError(source, None, f"unsupported version {data['version']} (this greenloop reads "
                                          f"{FORMAT_VERSION})", field="version")
        band = fetch("band", list)
        if len(band) != 2 or not all(_is_number(x) for x in band):
            raise DataError(source, None, "expected [low, high]", field="band")
        settings = {"band": tuple(band), "window": fetch("window", int), "explore": fetch("explore", (int, float)),
                    "min_attempts": fetch("min_attempts", int), "seed": fetch("seed", int)}
        try:
            curriculum = cls(**settings)
        except ValueError as exc:
            field = str(exc).split(":")[0].removeprefix("curriculum ")
            raise DataError(source, None, str(exc), field=field) from None
        curriculum._history = _read_history(fetch("history", dict), curriculum.window, source)
        curriculum._rng.setstate(_read_rng(fetch("rng", list), source))
        curriculum.meta = fetch("meta", dict, optional=True) or {}
        return curriculum

    def save(self, path: str | os.PathLike) -> None:
        """Write the state as JSON, atomically (a temporary file renamed)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> AdaptiveCurriculum:
        path = str(path)
        if not os.path.exists(path):
            raise DataError(path, None, "file not found")
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DataError(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        return cls.from_dict(data, source=path)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Fields:
    """Typed access to a saved state's fields, each failure naming the source and field."""

    def __init__(self, data: dict, source: str):
        self.data, self.source = data, source

    def __call__(self, name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
        if name not in self.data:
            if optional:
                return None
            raise DataError(self.source, None, "missing", field=name)
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            raise DataError(self.source, None, f"expected {' or '.join(k.__name__ for k in kinds)}, "
                                               f"got {type(value).__name__}", field=name)
        return value


def _read_history(history: dict, window: int, source: str) -> dict[str, deque[bool]]:
    out = {}
    for task_id, outcomes in history.items():
        field = f"history.{task_id}"
        if not isinstance(outcomes, list) or not all(isinstance(x, bool) for x in outcomes):
            raise DataError(source, None, "expected a list of true/false outcomes", field=field)
        if len(outcomes) > window:
            raise DataError(source, None, f"{len(outcomes)} outcomes, more than the window ({window})", field=field)
        out[task_id] = deque(outcomes, maxlen=window)
    return out


def _read_rng(state: list, source: str) -> tuple:
    """The random generator's state as `random.getstate()` gives it."""
    try:
        version, internal, gauss = state
        if not (isinstance(internal, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in internal)):
            raise ValueError("internal state is not a list of integers")
        restored = (version, tuple(internal), gauss)
        random.Random().setstate(restored)  # refuses a state it cannot use
    except (ValueError, TypeError) as exc:
        raise DataError(source, None, f"not a random generator state ({exc})", field="rng") from None
    return restored
