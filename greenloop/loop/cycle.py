"""`greenloop cycle`: day → sleep → eval → gate, N times, resumable at any point.

Cycle 0 evaluates the starting model on the frozen set: the baseline. Each cycle N then
works the training tasks with the promoted checkpoint (day), trains a candidate from what
it verified (sleep), evaluates the candidate on the frozen set (eval) and gates it
against the promoted checkpoint: promoted, it becomes the checkpoint of the next day;
rolled back, the next day starts from the same checkpoint again, and `metrics.jsonl` says
why. A day that verifies no new answer makes no candidate (the row says so).

The frozen set is cut in two halves by a stable hash of each task's source function: the
gate decides on the `gate` half only, and the gain over the baseline is measured on the
`confirm` half, which no decision looks at, so the reported p-value is not inflated by
having chosen the checkpoint on the same tasks. Tasks whose answer the verifier could not
judge (INFRA_ERROR) are left out of both comparisons and counted.

`state.json` records the promoted checkpoint, the cycle its frozen-set answers were stored
under, and the finished phases; with the store's per-episode commits, the atomic
checkpoints and metrics file, a run killed anywhere resumes where it stopped when started
again with the same arguments.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from greenloop.data.pairs import stable_bucket
from greenloop.data.shards import write_json
from greenloop.evaluate.cycle_metrics import TaskResult, summarise
from greenloop.evaluate.gates import gate, paired_test
from greenloop.io import write_jsonl
from greenloop.loop.config import CycleConfig, load_or_write
from greenloop.loop.context import LoopContext
from greenloop.loop.phases import eval_results, run_day, run_eval, run_sleep
from greenloop.loop.plots import read_metrics


class RunState:
    """`state.json`: promoted checkpoint, where its eval lives, and finished phases."""

    def __init__(self, folder: Path):
        self.path = folder / "state.json"
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.current: str = data.get("current", "base")
        self.current_eval_cycle: int = data.get("current_eval_cycle", 0)
        self.done: list[str] = data.get("done", [])

    def finished(self, phase: str, cycle: int) -> bool:
        return f"{phase}:{cycle}" in self.done

    def mark(self, phase: str, cycle: int) -> None:
        if not self.finished(phase, cycle):
            self.done.append(f"{phase}:{cycle}")
        write_json(self.path, {"current": self.current, "current_eval_cycle": self.current_eval_cycle,
                               "done": self.done})


def half_of(task) -> str:
    """`gate` or `confirm`: tasks made from one source function stay in one half."""
    key = str(task.meta.get("source_task") or task.task_id)
    return "gate" if stable_bucket(key, 2) == 0 else "confirm"


def _append_metrics(ctx: LoopContext, row: dict) -> None:
    rows = [r for r in read_metrics(ctx.folder) if r["cycle"] != row["cycle"]]
    write_jsonl(ctx.folder / "metrics.jsonl", sorted([*rows, row], key=lambda r: r["cycle"]))


def _stored_row(ctx: LoopContext, cycle: int) -> dict | None:
    return next((r for r in read_metrics(ctx.folder) if r["cycle"] == cycle), None)


def _record(ctx: LoopContext, cycle: int, checkpoint: str, results: dict[str, TaskResult],
            previous: dict[str, TaskResult] | None) -> dict:
    summary = summarise(results, previous)
    metrics = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and v is not None}
    ctx.store.add_eval_results(ctx.run_id, cycle, checkpoint, metrics)
    for family, rate in summary["family_pass_rates"].items():
        ctx.store.add_eval_results(ctx.run_id, cycle, checkpoint, {"pass_rate": rate}, family=family)
    return summary


def _passes(results: dict[str, TaskResult], ids: set[str]) -> dict[str, bool]:
    return {t: results[t].passed for t in sorted(ids)}


def baseline(ctx: LoopContext, state: RunState) -> dict:
    stored = _stored_row(ctx, 0)
    if stored and state.finished("eval", 0):
        return stored
    started = time.perf_counter()
    results = run_eval(ctx, 0, "base")
    summary = _record(ctx, 0, "base", results, None)
    halves = {t.task_id: half_of(t) for t in ctx.frozen_list}
    confirm = [r.passed for t, r in results.items() if halves[t] == "confirm"]
    row = {"cycle": 0, "checkpoint": "base", "promoted": True, "current": "base", **summary,
           "confirm_half": {"tasks": len(confirm), "pass_rate": sum(confirm) / max(1, len(confirm))},
           "infra_errors": len(halves) - len(results), "eval_seconds": time.perf_counter() - started}
    _append_metrics(ctx, row)
    state.mark("eval", 0)
    return row


def _comparisons(ctx: LoopContext, state: RunState, after: dict[str, TaskResult]) -> tuple:
    """The gate's decision (gate half, against the promoted checkpoint) and the paired
    test against the baseline (confirm half)."""
    halves = {t.task_id: half_of(t) for t in ctx.frozen_list}
    before, base = eval_results(ctx, state.current_eval_cycle), eval_results(ctx, 0)
    gate_ids = {t for t in after if halves[t] == "gate"} & set(before)
    confirm_ids = {t for t in after if halves[t] == "confirm"} & set(base)
    critical = {t.task_id for t in ctx.frozen_list if t.meta.get("critical")}
    decision = gate(_passes(before, gate_ids), _passes(after, gate_ids), {t: after[t].family for t in gate_ids},
                    critical & gate_ids, ctx.config.gate)
    confirm = paired_test(_passes(base, confirm_ids), _passes(after, confirm_ids))
    n = max(1, len(confirm_ids))
    confirm_row = {"tasks": len(confirm_ids), "pass_rate": sum(after[t].passed for t in confirm_ids) / n,
                   "baseline_pass_rate": sum(base[t].passed for t in confirm_ids) / n,
                   "gains": confirm.gains, "losses": confirm.losses, "p_better": confirm.p_better}
    gate_row = {"tasks": len(gate_ids), "gains": decision.test.gains, "losses": decision.test.losses,
                "p_better": decision.test.p_better, "p_worse": decision.test.p_worse}
    return decision, gate_row, confirm_row, before


def one_cycle(ctx: LoopContext, state: RunState, cycle: int) -> dict:
    if state.finished("gate", cycle):
        return _stored_row(ctx, cycle)
    times = {}
    started = time.perf_counter()
    day = run_day(ctx, cycle, state.current)
    state.mark("day", cycle)
    times["day_seconds"], started = time.perf_counter() - started, time.perf_counter()
    sleep = run_sleep(ctx, cycle, state.current)
    times["sleep_seconds"], started = time.perf_counter() - started, time.perf_counter()
    row = {"cycle": cycle, "previous": state.current, "day": day, "sleep": sleep}
    if sleep.get("skipped"):
        row.update(checkpoint=None, promoted=False, gate=f"no candidate: {sleep['skipped']}", gate_reasons=[])
    else:
        candidate = f"cycle-{cycle}"
        after = run_eval(ctx, cycle, candidate)
        times["eval_seconds"] = time.perf_counter() - started
        decision, gate_row, confirm_row, before = _comparisons(ctx, state, after)
        row.update(checkpoint=candidate, promoted=decision.promote, **_record(ctx, cycle, candidate, after, before),
                   gate=decision.summary(), gate_reasons=decision.reasons, gate_half=gate_row,
                   confirm_half=confirm_row, infra_errors=len(ctx.frozen_list) - len(after))
        if decision.promote:
            state.current, state.current_eval_cycle = candidate, cycle
    row["current"] = state.current
    _append_metrics(ctx, {**row, **times})
    state.mark("gate", cycle)
    return row


def run_cycles(config: CycleConfig, cycles: int, show_progress: bool = True, on_row=None,
               policy_factory=None) -> list[dict]:
    """Run (or resume) the baseline and `cycles` cycles; returns every cycle's metrics row."""
    from greenloop.loop.plots import write_plots
    from greenloop.loop.report import write_report

    config = load_or_write(config)
    with LoopContext(config, show_progress, policy_factory) as ctx:
        state = RunState(ctx.folder)
        for cycle in range(cycles + 1):
            row = baseline(ctx, state) if cycle == 0 else one_cycle(ctx, state, cycle)
            if on_row:
                on_row(row)
        write_plots(ctx.folder)
        write_report(ctx.folder)
        return [r for r in read_metrics(ctx.folder) if r["cycle"] <= cycles]


def run_phase(config: CycleConfig, phase: str, cycle: int, show_progress: bool = True, policy_factory=None) -> dict:
    """One phase of one cycle (`greenloop day | sleep | evaluate-cycle --cycle N`)."""
    from greenloop.loop.plots import write_plots
    from greenloop.loop.report import write_report

    if cycle < 1:
        raise ValueError("--cycle counts from 1 (cycle 0 is the baseline, run by evaluate-cycle)")
    config = load_or_write(config)
    with LoopContext(config, show_progress, policy_factory) as ctx:
        state = RunState(ctx.folder)
        unfinished = [c for c in range(1, cycle) if not state.finished("gate", c)]
        if unfinished:
            raise ValueError(f"cycle {cycle}: cycle {unfinished[0]} has not been evaluated and gated yet; "
                             f"run `greenloop evaluate-cycle --cycle {unfinished[0]}` (or `greenloop cycle`) first")
        if phase == "day":
            result = run_day(ctx, cycle, state.current)
            state.mark("day", cycle)
            return result
        if not state.finished("day", cycle):
            raise ValueError(f"cycle {cycle}: its day has not finished; run `greenloop day --cycle {cycle}` first")
        if phase == "sleep":
            return run_sleep(ctx, cycle, state.current)
        if not (ctx.folder / "sleep" / f"cycle-{cycle}.report.json").exists():
            raise ValueError(f"cycle {cycle} has no trained candidate yet; run `greenloop sleep --cycle {cycle}` first")
        baseline(ctx, state)
        row = one_cycle(ctx, state, cycle)
        write_plots(ctx.folder)
        write_report(ctx.folder)
        return row
