"""What a training run holds: its folder, data, model, optimizer, device, logs.

`Pretrainer` (the loop) asks this object for batches, validation figures, and saves; this
module owns how those are made, so the loop reads as the algorithm.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from greenloop.train import checkpoint
from greenloop.train.batches import GridBatches, GridExtents, StreamBatches
from greenloop.train.config import PretrainConfig
from greenloop.train.curriculum import Stage, plan_stages
from greenloop.train.validation import fixed_subset, stage_exact, validate_grid, validate_stream


def read_data_meta(folder: str) -> dict:
    path = Path(folder) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{folder}: not a `greenloop text tokenize` folder (no meta.json)")
    meta = json.loads(path.read_text())
    if meta.get("format") not in ("grid", "lm"):
        raise ValueError(f"{path}: format must be 'grid' or 'lm', got {meta.get('format')!r}")
    return meta


class RunSetup:
    def __init__(self, config: PretrainConfig, force: bool = False):
        import torch

        self.config = config
        self.out = Path(config.out)
        self.meta = read_data_meta(config.data)
        self.grid = self.meta["format"] == "grid"
        if config.model == "trm" and not self.grid:
            raise ValueError(f"{config.data}: trm repairs grids; tokenize with --format grid")
        if config.model != "trm" and self.grid:
            raise ValueError(f"{config.data}: {config.model} is a causal language model; tokenize with --format lm")
        if config.clean_fraction and not self.grid:
            raise ValueError(f"clean_fraction: clean batches are repair grids; {config.data} is a token stream")
        if config.threads:
            torch.set_num_threads(config.threads)
        self._prepare_folder(force)
        self._load_data()
        self._build(torch)
        if self.grid:
            self.batches.window_radius = int(getattr(self.core.config, "window_radius", 0) or 0)
        self._writer = None

    # -- folder and identity -----------------------------------------------------------
    def _prepare_folder(self, force: bool) -> None:
        run_file = self.out / "run.json"
        identity = self.config.identity()
        identity["data_meta"] = {k: self.meta.get(k) for k in ("format", "tokenizer_sha256", "splits")}
        identity = json.loads(json.dumps(identity, sort_keys=True, default=str))
        if force and self.out.exists():
            shutil.rmtree(self.out)
        if run_file.exists():
            previous = json.loads(run_file.read_text())["identity"]
            if previous != identity:
                changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
                raise ValueError(f"{self.out} holds a different run (changed: {', '.join(changed)}); "
                                 "use another --out, or --force to start over")
        elif self.out.exists() and any(self.out.iterdir()):
            raise ValueError(f"{self.out} exists and is not a training run folder; use another --out or --force")
        self.out.mkdir(parents=True, exist_ok=True)
        run_file.write_text(json.dumps({"identity": identity, "config": self.config.identity()
                                        | {"max_minutes": self.config.max_minutes}}, indent=2) + "\n")

    # -- data ----------------------------------------------------------------------------
    def _load_data(self) -> None:
        from greenloop.text.datasets import GridData, TokenStream

        cfg = self.config
        if self.grid:
            self.train_data = GridData(cfg.data, "train")
            self.val_data = GridData(cfg.data, "validation")
            self.train_buckets = _column(self.train_data, "bucket")
            self.val_buckets = _column(self.val_data, "bucket")
            self.val_hints = _column(self.val_data, "error_line", missing=-1)
            present = sorted({int(b) for b in self.train_buckets}) if len(self.train_buckets) else []
            self.stages = plan_stages(present, cfg.stages, cfg.steps, cfg.lr, cfg.stage_lr_decay)
            self.batches = GridBatches(self.train_data, cfg.batch_size, cfg.seed, batch_cells=cfg.batch_cells,
                                       hints=_column(self.train_data, "error_line", missing=-1),
                                       clean_fraction=cfg.clean_fraction)
            self._stage_rows = {st.index: _rows_in(self.train_buckets, st.buckets) for st in self.stages}
            self.val_extents = GridExtents.measure(self.val_data)
            self.val_rows = fixed_subset(len(self.val_data), cfg.eval_examples, cfg.seed)
        else:
            self.train_data = TokenStream(cfg.data, "train")
            self.val_data = TokenStream(cfg.data, "validation") if _has_split(cfg.data, "validation") else None
            self.stages = plan_stages(None, 1, cfg.steps, cfg.lr, cfg.stage_lr_decay)
            self.batches = StreamBatches(self.train_data, cfg.batch_size, cfg.seq_len, cfg.seed)
            self.val_batches = self._stream_validation_batches()

    def _stream_validation_batches(self) -> list:
        if self.val_data is None or len(self.val_data) <= self.config.seq_len + 1:
            return []
        cfg, out = self.config, []
        for x, y in self.val_data.sequential_batches(cfg.batch_size, cfg.seq_len):
            out.append((x, y))
            if len(out) * cfg.batch_size >= cfg.eval_examples:
                break
        return out

    def batch_for_step(self, step: int, stage: Stage):
        """(inputs, targets, extra model inputs) as tensors on the device."""
        import torch

        def tensor(array):
            return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.long, device=self.device)

        if self.grid:
            inputs, targets, hints = self.batches.for_step(step, self._stage_rows[stage.index])
            return tensor(inputs), tensor(targets), {"hint_lines": tensor(hints)}
        inputs, targets = self.batches.for_step(step)
        return tensor(inputs), tensor(targets), {}

    # -- model, optimizer, device --------------------------------------------------------
    def _build(self, torch) -> None:
        from accelerate import Accelerator, DistributedDataParallelKwargs

        from greenloop.models import build_model, load_model

        cfg = self.config
        cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device cuda: no CUDA device is available")
        bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and not cpu and torch.cuda.is_bf16_supported())
        # recursive models leave some parameters without a gradient on a step (initial
        # states after the no-grad recursions, an unused halting head): DDP must allow it
        self.accelerator = Accelerator(cpu=cpu, mixed_precision="bf16" if bf16 else "no",
                                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        self.device = self.accelerator.device
        torch.manual_seed(cfg.seed)
        if cfg.init_from:
            model = load_model(cfg.init_from)
        else:
            model = build_model(cfg.model, **self._model_settings())
        self.optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr,
                                           betas=(cfg.beta1, cfg.beta2), fused=False)
        self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        self.core = self.accelerator.unwrap_model(self.model)
        self.supervision_steps = _supervision_steps(self.core)

    def _model_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"vocab_size": int(self.meta["vocab_size"])}
        if self.grid:
            settings.update(grid_lines=int(self.meta["lines"]), grid_width=int(self.meta["width"]))
        settings.update(self.config.model_config)
        return settings

    def autocast(self):
        return self.accelerator.autocast() if self.accelerator.mixed_precision != "no" else contextlib.nullcontext()

    def loss_kwargs(self, inputs, targets, state=None) -> dict[str, Any]:
        if self.grid:
            return {"input_ids": inputs, "labels": targets, "state": state}
        kwargs = {"input_ids": inputs, "targets": targets}
        if state is not None:
            kwargs["state"] = state
        return kwargs

    # -- validation --------------------------------------------------------------------
    def validate(self, stage: Stage) -> dict:
        if self.grid:
            return validate_grid(self.core, self.val_data, self.val_extents, self.val_rows, self.val_buckets,
                                 self.val_hints, self.config.batch_size, self.device)
        if not self.val_batches:
            return {"loss": float("nan"), "batches": 0}
        return validate_stream(self.core, self.val_batches, self.device, lambda x, y: self.loss_kwargs(x, y))

    def best_metric(self, report: dict):
        if self.grid:
            return report["exact"], lambda new, old: new > old
        value = report["loss"]
        return value, lambda new, old: not np.isnan(new) and (np.isnan(old) or new < old)

    def stage_passed(self, report: dict, stage: Stage) -> bool:
        return self.grid and stage_exact(report, stage.buckets) >= self.config.advance_at

    # -- saving, resuming, logging -----------------------------------------------------
    def save_model(self, name: str, counters: dict) -> None:
        if self.accelerator.is_main_process:
            checkpoint.save_model_folder(self.core, self.out / name, self.meta.get("tokenizer"),
                                         {"config": self.config.identity(), "counters": counters,
                                          "data": self.config.data, "format": self.meta["format"]})

    def save_checkpoint(self, counters: dict) -> None:
        if self.accelerator.is_main_process:
            state = {**counters, "optimizer": self.optimizer.state_dict(), "rng": checkpoint.rng_state()}
            checkpoint.save_checkpoint(self.out, self.core, state, self.config.keep_checkpoints)

    def resume(self, counters: dict) -> None:
        folder = checkpoint.latest_checkpoint(self.out)
        if folder is None:
            return
        from safetensors.torch import load_file

        state = checkpoint.load_trainer_state(folder)
        weights = load_file(str(folder / "model.safetensors"), device=str(self.device))
        missing, unexpected = self.core.load_state_dict(weights, strict=False)
        if unexpected or [m for m in missing if m not in _tied_names(self.core)]:
            raise RuntimeError(f"{folder}: checkpoint does not match the model ({missing or unexpected})")
        self.optimizer.load_state_dict(state["optimizer"])
        checkpoint.restore_rng(state["rng"])
        counters.update({k: state[k] for k in counters if k in state})
        self.log({"event": "resume", "step": counters["step"], "checkpoint": folder.name})

    def log(self, record: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record, default=_plain) + "\n")
        writer = self._tensorboard()
        if writer is None or "step" not in record:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                writer.add_scalar(f"{record['event']}/{key}", value, record["step"])

    def train_losses(self) -> list[float]:
        """Training loss per step, read back from metrics.jsonl; a step a resumed run
        repeated counts once (its last record)."""
        by_step = {}
        with open(self.out / "metrics.jsonl") as fh:
            for line in fh:
                record = json.loads(line)
                if record.get("event") == "train":
                    by_step[record["step"]] = record["loss"]
        return [by_step[step] for step in sorted(by_step)]

    def _tensorboard(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: metrics.jsonl has the same figures
                self._writer = False
                return None
            self._writer = SummaryWriter(str(self.out / "tb"))
        return self._writer or None

    def close(self) -> None:
        if self._writer:
            self._writer.close()


def _column(data, name: str, missing: int | None = None) -> np.ndarray:
    rows = data.rows
    names = rows.column_names if hasattr(rows, "column_names") else (list(rows[0]) if rows else [])
    if missing is not None and name not in names:  # a folder tokenized before the column existed
        return np.full(len(data), missing, dtype=np.int64)
    values = rows.column(name).to_pylist() if hasattr(rows, "column") else [r[name] for r in rows]
    return np.asarray(values, dtype=np.int64)


def _rows_in(buckets: np.ndarray, wanted: tuple[int, ...] | None) -> np.ndarray:
    if wanted is None:
        return np.arange(len(buckets), dtype=np.int64)
    return np.flatnonzero(np.isin(buckets, wanted)).astype(np.int64)


def _has_split(folder: str, split: str) -> bool:
    return (Path(folder) / split).is_dir() and any((Path(folder) / split).iterdir())


def _param_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices, not biases, norms or embeddings' 1-D parts."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _supervision_steps(model) -> int:
    steps = getattr(model.config, "supervision_steps", None) or getattr(model.config, "halt_max_steps", None)
    return int(steps) if steps and hasattr(model, "initial_state") else 1


def _tied_names(model) -> set[str]:
    return set(getattr(model, "_tied_weights_keys", None) or ())  # a dict's keys or a list


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)
