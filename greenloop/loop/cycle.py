"""`greenloop cycle`: day → sleep → eval → gate, N times, resumable at any point.

Cycle 0 evaluates the starting model on the frozen set: the baseline. Each cycle N then
works the training tasks with the promoted checkpoint (day), trains a candidate from what
it verified (sleep), evaluates the candidate on the frozen set (eval) and gates it
against the promoted checkpoint (paired exact McNemar, family margins, critical tasks):
promoted, it becomes the checkpoint of the next day; rolled back, the next day starts from
the same checkpoint again, and `metrics.jsonl` says why.

`state.json` records the promoted checkpoint, the cycle its frozen-set answers were stored
under, and the finished phases; with the store's per-episode commits and the atomic
checkpoints, a run killed anywhere resumes where it stopped when started again with the
same arguments.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from greenloop.evaluate.cycle_metrics import TaskResult, summarise
from greenloop.evaluate.gates import gate, paired_test
from greenloop.loop.config import CycleConfig, load_or_write
from greenloop.loop.context import LoopContext
from greenloop.loop.phases import eval_results, eval_tasks, run_day, run_eval, run_sleep


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
        self.done.append(f"{phase}:{cycle}")
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"current": self.current, "current_eval_cycle": self.current_eval_cycle,
                                   "done": self.done}, indent=2) + "\n")
        tmp.replace(self.path)


def _metrics_cycles(path: Path) -> set[int]:
    if not path.exists():
        return set()
    return {json.loads(line)["cycle"] for line in path.read_text().splitlines() if line.strip()}


def _append_metrics(ctx: LoopContext, row: dict) -> None:
    path = ctx.folder / "metrics.jsonl"
    if row["cycle"] in _metrics_cycles(path):
        return  # written before a kill: the row is already there
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def _record(ctx: LoopContext, cycle: int, checkpoint: str, results: dict[str, TaskResult],
            previous: dict[str, TaskResult] | None) -> dict:
    summary = summarise(results, previous)
    metrics = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and v is not None}
    ctx.store.add_eval_results(ctx.run_id, cycle, checkpoint, metrics)
    for family, rate in summary["family_pass_rates"].items():
        ctx.store.add_eval_results(ctx.run_id, cycle, checkpoint, {"pass_rate": rate}, family=family)
    return summary


def baseline(ctx: LoopContext, state: RunState) -> dict:
    started = time.perf_counter()
    results = run_eval(ctx, 0, "base")
    summary = _record(ctx, 0, "base", results, None)
    if not state.finished("eval", 0):
        state.mark("eval", 0)
    row = {"cycle": 0, "checkpoint": "base", "promoted": True, "current": "base", **summary,
           "baseline_pass_rate": summary["pass_rate"], "eval_seconds": time.perf_counter() - started}
    _append_metrics(ctx, row)
    return row


def one_cycle(ctx: LoopContext, state: RunState, cycle: int) -> dict:
    times = {}
    started = time.perf_counter()
    day = run_day(ctx, cycle, state.current)
    times["day_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    sleep = run_sleep(ctx, cycle, state.current)
    times["sleep_seconds"] = time.perf_counter() - started
    candidate = f"cycle-{cycle}"
    started = time.perf_counter()
    after = run_eval(ctx, cycle, candidate)
    times["eval_seconds"] = time.perf_counter() - started
    before = eval_results(ctx, state.current_eval_cycle)
    base = eval_results(ctx, 0)
    families = {t: r.family for t, r in after.items()}
    critical = {t.task_id for t in eval_tasks(ctx) if t.meta.get("critical")}
    decision = gate(_passes(before), _passes(after), families, critical, ctx.config.gate)
    summary = _record(ctx, cycle, candidate, after, before)
    vs_base = paired_test(_passes(base), _passes(after))
    row = {"cycle": cycle, "checkpoint": candidate, "promoted": decision.promote, "previous": state.current,
           **summary, "baseline_pass_rate": sum(r.passed for r in base.values()) / len(base),
           "gate": decision.summary(), "gate_reasons": decision.reasons,
           "vs_previous": {"gains": decision.test.gains, "losses": decision.test.losses,
                           "p_better": decision.test.p_better, "p_worse": decision.test.p_worse},
           "vs_baseline": {"gains": vs_base.gains, "losses": vs_base.losses, "p_better": vs_base.p_better},
           "day": day, "sleep": {k: v for k, v in sleep.items() if k != "seconds"}, **times}
    _append_metrics(ctx, row)
    if not state.finished("gate", cycle):
        if decision.promote:
            state.current, state.current_eval_cycle = candidate, cycle
        state.mark("gate", cycle)
    row["current"] = state.current
    return row


def _passes(results: dict[str, TaskResult]) -> dict[str, bool]:
    return {t: r.passed for t, r in results.items()}


def run_cycles(config: CycleConfig, cycles: int, show_progress: bool = True, on_row=None,
               policy_factory=None) -> list[dict]:
    """Run (or resume) the baseline and `cycles` cycles; returns the metrics rows."""
    from greenloop.loop.plots import write_plots
    from greenloop.loop.report import write_report

    config = load_or_write(config)
    rows = []
    with LoopContext(config, show_progress, policy_factory) as ctx:
        state = RunState(ctx.folder)
        for cycle in range(cycles + 1):
            if cycle > 0 and state.finished("gate", cycle):
                continue
            row = baseline(ctx, state) if cycle == 0 else one_cycle(ctx, state, cycle)
            rows.append(row)
            if on_row:
                on_row(row)
        write_plots(ctx.folder)
        write_report(ctx.folder)
    return rows


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
            return run_day(ctx, cycle, state.current)
        if phase == "sleep":
            return run_sleep(ctx, cycle, state.current)
        if not (ctx.folder / "sleep" / f"cycle-{cycle}.report.json").exists():
            raise ValueError(f"cycle {cycle} has no trained candidate yet; run `greenloop day` and "
                             f"`greenloop sleep` for it first")
        if not state.finished("eval", 0):
            baseline(ctx, state)
        row = one_cycle(ctx, state, cycle)
        write_plots(ctx.folder)
        write_report(ctx.folder)
        return row
