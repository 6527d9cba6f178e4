"""`greenloop train pretrain`: train a model from scratch on a tokenized folder.

The loop, in order: draw the step's batch (a pure function of seed and step), forward,
backward, clip, AdamW update at the stage's warmup + cosine learning rate; every
`eval_every` steps validate, keep the best model, and advance the curriculum stage when
its criterion is met; every `save_every` steps write a checkpoint atomically. A killed run
started again with the same command resumes from its latest checkpoint and continues
exactly as the uninterrupted run would have (same batches, same optimizer state, same
RNG), so its loss curve is the same.

A step is one batch. Recursive models with deep supervision (TRM, HRM with ACT) make one
optimizer update per supervision step on that batch, carrying their detached latent
state, and stop early when every example has halted.

Outputs in `out/`: `run.json` (the resolved config), `metrics.jsonl` (training and
validation figures), `tb/` (TensorBoard), `checkpoints/`, `best/` (best by validation:
exact-match repair on grids, loss on token streams) and `final/` (the last weights), each
with the tokenizer.
"""

from __future__ import annotations

import shutil
import sys
import time

import numpy as np

from greenloop.train.config import PretrainConfig
from greenloop.train.curriculum import Stage, learning_rate
from greenloop.train.run_setup import RunSetup


class Pretrainer:
    """One training run; `train()` runs it to the end of its budget and returns a summary."""

    def __init__(self, config: PretrainConfig, force: bool = False, progress: bool | None = None):
        self.config = config
        self.setup = RunSetup(config, force=force)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.counters = {"step": 0, "stage": 0, "stage_step": 0, "updates": 0, "tokens": 0,
                         "train_seconds": 0.0, "best": None, "stages_done": [], "finished": False}
        self.setup.resume(self.counters)

    # -- the loop ---------------------------------------------------------------------
    def train(self) -> dict:
        s, cfg = self.setup, self.config
        stages = s.stages
        bar = self._progress_bar(sum(st.steps for st in stages))
        started = self._started = time.perf_counter()
        stop_reason = "finished"
        while not self.counters["finished"]:
            stage = stages[self.counters["stage"]]
            if self._over_budget(started):
                stop_reason = "time budget"
                break
            lr = learning_rate(self.counters["stage_step"], stage, cfg.warmup_steps, cfg.min_lr_ratio)
            loss, tokens, updates = self._train_batch(stage, lr)
            self.counters["step"] += 1
            self.counters["stage_step"] += 1
            self.counters["tokens"] += tokens
            self.counters["updates"] += updates
            elapsed = self.counters["train_seconds"] + time.perf_counter() - started
            self._log_train(loss, lr, tokens, elapsed, bar, stage)
            if self.counters["step"] % cfg.eval_every == 0 or self.counters["stage_step"] >= stage.steps:
                self._validate_and_advance(stage, stages)
            if self.counters["step"] % cfg.save_every == 0 or self.counters["finished"]:
                self._checkpoint(started)
        self.counters["train_seconds"] += time.perf_counter() - started
        if bar is not None:
            bar.close()
        self._checkpoint(None)
        return self._finish(stop_reason)

    def _over_budget(self, started: float) -> bool:
        budget = self.config.max_minutes
        return budget is not None and self.counters["train_seconds"] + time.perf_counter() - started >= budget * 60

    def _train_batch(self, stage: Stage, lr: float) -> tuple[float, int, int]:
        s = self.setup
        inputs, targets, extra = s.batch_for_step(self.counters["step"], stage)
        for group in s.optimizer.param_groups:
            group["lr"] = lr
        model = s.model
        if s.supervision_steps > 1:
            state = s.core.initial_state(inputs)
        else:
            state = None
        losses, updates = [], 0
        for _ in range(s.supervision_steps):
            with s.autocast():
                out = model(**s.loss_kwargs(inputs, targets, state), **extra)
            s.accelerator.backward(out.loss)
            s.accelerator.clip_grad_norm_(model.parameters(), self.config.grad_clip)
            s.optimizer.step()
            s.optimizer.zero_grad(set_to_none=True)
            losses.append(float(out.loss.detach()))
            updates += 1
            if state is None:
                break
            state = out.state
            if bool(out.halted.all()):
                break
        return float(np.mean(losses)), int(inputs.numel()) * updates, updates

    # -- validation, stages, checkpoints -----------------------------------------------
    def _validate_and_advance(self, stage: Stage, stages: list[Stage]) -> None:
        s, c = self.setup, self.counters
        report = s.validate(stage)
        metric, better = s.best_metric(report)
        improved = c["best"] is None or better(metric, c["best"]["value"])
        if improved:
            c["best"] = {"value": metric, "step": c["step"], "stage": stage.index}
            s.save_model("best", {**c, "train_seconds": c["train_seconds"] + time.perf_counter() - self._started})
        s.log({"event": "validation", "step": c["step"], "stage": stage.index, **report,
               "best": c["best"], "improved": improved})
        advance = s.stage_passed(report, stage) or c["stage_step"] >= stage.steps
        if not advance:
            return
        c["stages_done"].append({"stage": stage.index, "steps": c["stage_step"], "at_step": c["step"],
                                 "validation": report, "passed": s.stage_passed(report, stage)})
        if stage.index + 1 < len(stages):
            c["stage"], c["stage_step"] = stage.index + 1, 0
            s.log({"event": "stage", "step": c["step"], "stage": c["stage"],
                   "buckets": stages[c["stage"]].buckets, "peak_lr": stages[c["stage"]].peak_lr})
        else:
            c["finished"] = True

    def _checkpoint(self, started: float | None) -> None:
        counters = dict(self.counters)
        if started is not None:
            counters["train_seconds"] += time.perf_counter() - started
        self.setup.save_checkpoint(counters)

    def _finish(self, stop_reason: str) -> dict:
        s, c = self.setup, self.counters
        s.save_model("final", c)
        if c["best"] is None and (s.out / "final").exists():
            shutil.copytree(s.out / "final", s.out / "best", dirs_exist_ok=True)
        summary = {"stopped": stop_reason, "steps": c["step"], "updates": c["updates"], "stage": c["stage"],
                   "stages_done": c["stages_done"], "best": c["best"], "tokens": c["tokens"],
                   "train_seconds": round(c["train_seconds"], 1),
                   "tokens_per_s": round(c["tokens"] / c["train_seconds"], 1) if c["train_seconds"] else 0.0,
                   "parameters": s.core.num_parameters(), "out": str(s.out)}
        losses = s.train_losses()
        if losses:  # the first steps against the last: did training lower the loss?
            summary["train_loss_first5"] = float(np.mean(losses[:5]))
            summary["train_loss_last20"] = float(np.mean(losses[-20:]))
        s.log({"event": "end", **summary})
        s.close()
        return summary

    # -- reporting ---------------------------------------------------------------------
    def _progress_bar(self, total: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=self.counters["step"], desc=f"pretrain {self.config.model}",
                    unit="step", dynamic_ncols=True)

    def _log_train(self, loss: float, lr: float, tokens: int, elapsed: float, bar, stage: Stage) -> None:
        c = self.counters
        rate = c["tokens"] / elapsed if elapsed > 0 else 0.0
        if bar is not None:
            bar.update(1)
            bar.set_postfix(stage=stage.index, loss=f"{loss:.4f}", tok_s=f"{rate:,.0f}", refresh=False)
        self.setup.log({"event": "train", "step": c["step"], "stage": stage.index, "loss": loss,
                            "lr": lr, "tokens": c["tokens"], "tokens_per_s": rate, "seconds": elapsed})


def run_pretrain(config: PretrainConfig, force: bool = False, progress: bool | None = None) -> dict:
    return Pretrainer(config, force=force, progress=progress).train()

