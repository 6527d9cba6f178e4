"""Extra test inputs by type-aware mutation of a task's own inputs (`--extra-inputs N`).

Each recorded call's arguments are mutated by type: integers step, double, flip sign or
go to zero; floats scale and flip; strings gain, lose, swap or re-case a character; lists,
tuples, sets and dicts lose, repeat, reorder or mutate an element. The expected value of
each new input comes from running the reference on it in a trusted process; an input on
which the reference raises, takes over 50 ms or returns non-plain data is dropped. Mutation is
seeded by the task id, so a task gets the same extra inputs on every run.

Extra inputs are judged by value against the reference, so they suit tasks with one right
answer per input; a task can opt out with `meta["extra_inputs"] = False`.
"""

from __future__ import annotations

import copy
import hashlib
import random
import time
from typing import Any

from greenloop.sandbox import codec
from greenloop.verify.record import TaskPlan, run_trusted, trusted_namespace

EXTRA_TIMEOUT_S = 0.1
MAX_REFERENCE_S = 0.05  # slower inputs are dropped: extra tests should stay cheap


def mutate_value(value: Any, rng: random.Random, depth: int = 0) -> Any:
    kind = type(value)
    if kind is bool:
        return not value
    if kind is int:
        return rng.choice([value + 1, value - 1, value * 2, -value, 0, value + rng.randint(-10, 10)])
    if kind is float:
        return rng.choice([value * 1.5, -value, 0.0, value + rng.uniform(-1, 1), value / 3])
    if kind is str:
        return _mutate_str(value, rng)
    if kind in (list, tuple):
        items = _mutate_items(list(value), rng, depth)
        return items if kind is list else tuple(items)
    if kind is set or kind is frozenset:
        items = _mutate_items(list(value), rng, depth)
        try:
            return kind(items)
        except TypeError:
            return value
    if kind is dict and value:
        key = rng.choice(list(value))
        out = dict(value)
        out[key] = mutate_value(value[key], rng, depth + 1)
        return out
    return value


def _mutate_str(text: str, rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ABC"
    if not text:
        return rng.choice(alphabet)
    i = rng.randrange(len(text))
    choice = rng.randrange(4)
    if choice == 0:
        return text[:i] + rng.choice(alphabet) + text[i:]
    if choice == 1:
        return text[:i] + text[i + 1:]
    if choice == 2 and len(text) > 1:
        j = rng.randrange(len(text))
        chars = list(text)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    return text.swapcase()


def _mutate_items(items: list, rng: random.Random, depth: int) -> list:
    if not items:
        return items
    choice = rng.randrange(4)
    if choice == 0:
        del items[rng.randrange(len(items))]
    elif choice == 1:
        items.insert(rng.randrange(len(items) + 1), copy.deepcopy(rng.choice(items)))
    elif choice == 2:
        rng.shuffle(items)
    elif depth < 3:
        i = rng.randrange(len(items))
        items[i] = mutate_value(items[i], rng, depth + 1)
    return items


def propose_inputs(plan: TaskPlan, count: int) -> list[tuple[tuple, dict]]:
    """Up to `count` new argument tuples, each differing from every known one."""
    rng = random.Random(int(hashlib.sha256(plan.task.task_id.encode()).hexdigest()[:16], 16))
    seen = {codec.dumps((list(a), k)) for a, k in plan.calls}
    out: list[tuple[tuple, dict]] = []
    for _ in range(count * 20):
        if len(out) >= count or not plan.calls:
            break
        args, kwargs = rng.choice(plan.calls)
        if not args:
            continue
        new = list(copy.deepcopy(args))
        i = rng.randrange(len(new))
        new[i] = mutate_value(new[i], rng)
        key = codec.dumps((new, kwargs))
        if key not in seen:
            seen.add(key)
            out.append((tuple(new), dict(kwargs)))
    return out


_namespaces: dict[str, dict] = {}  # per task, inside the trusted child


def _reference_answer(item) -> dict:
    task, args, kwargs = item
    if task.task_id not in _namespaces:
        _namespaces[task.task_id] = trusted_namespace(task)
    func = _namespaces[task.task_id][task.entry_point]
    started = time.perf_counter()
    value = func(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    if time.perf_counter() - started > MAX_REFERENCE_S:
        return {"error": "too slow"}
    return {"v": codec.encode(value)}


def add_extra_inputs(plans: list[TaskPlan], count: int) -> int:
    """Append up to `count` extra inputs to each plan that has a reference. Returns how
    many were added in all."""
    items, owners = [], []
    for plan in plans:
        if plan.mode in ("child", "broken") or not plan.task.reference or plan.task.meta.get("extra_inputs") is False:
            continue
        for args, kwargs in propose_inputs(plan, count):
            items.append((plan.task, args, kwargs))
            owners.append(plan)
    added = 0
    for (_task, args, kwargs), plan, answer in zip(items, owners, run_trusted(_reference_answer, items, EXTRA_TIMEOUT_S)):
        if "v" in answer:
            plan.add_extra_call(args, kwargs, answer)
            added += 1
    return added
