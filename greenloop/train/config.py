"""`PretrainConfig`: everything a from-scratch training run needs, validated up front.

Values layer as everywhere in greenloop: defaults < a YAML file (`--config`) < `--set
FIELD=VALUE` < explicit flags. `model_config` holds overrides of the model's own config
(`--model-set hidden_size=128`); the rest of the model config comes from the data (vocab
size, grid shape).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

MODEL_NAMES = ("gpt", "trm", "hrm")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class PretrainConfig:
    model: str = "trm"                  # gpt | trm | hrm
    data: str = ""                      # a `greenloop text tokenize` folder
    out: str = ""                       # run folder: checkpoints/, best/, final/, tb/, metrics.jsonl
    model_config: dict = field(default_factory=dict)  # overrides of the model's config
    init_from: str | None = None        # start from a saved model folder, not random weights
    batch_size: int = 32                # rows per step (grid data: at most, see batch_cells)
    batch_cells: int | None = None      # grid data: fewer rows when rows x cropped cells would exceed this
    clean_fraction: float = 0.0         # grid data: share of steps that train on clean programs (see batches)
    seq_len: int = 256                  # token-stream data: tokens per row
    steps: int = 2000                   # optimizer steps per curriculum stage, at most
    stages: int = 5                     # curriculum stages over the difficulty buckets (1: none)
    lr: float = 1e-3                    # peak learning rate of the first stage
    stage_lr_decay: float = 0.7         # stage k's peak lr = lr * decay**k (warm start, gentler steps)
    min_lr_ratio: float = 0.1           # cosine floor, as a fraction of the stage's peak
    warmup_steps: int = 100             # per stage
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    advance_at: float = 0.9             # advance when the stage's validation exact-match reaches this
    eval_every: int = 200               # steps between validations
    eval_examples: int = 256            # validation rows (grid) or sequences (stream) per validation
    save_every: int = 200               # steps between checkpoints
    keep_checkpoints: int = 2
    max_minutes: float | None = None    # wall-clock budget; the run stops cleanly (and resumably) at it
    seed: int = 0
    precision: str = "auto"             # auto: bf16 on a GPU that has it, fp32 elsewhere
    device: str = "auto"                # auto | cpu | cuda
    threads: int | None = None          # torch CPU threads (default: torch's choice)

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model: expected one of {', '.join(MODEL_NAMES)}, got {self.model!r}")
        if not self.data:
            raise ValueError("data: a `greenloop text tokenize` folder is required")
        if not self.out:
            raise ValueError("out: an output folder is required")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("batch_size", "seq_len", "steps", "stages", "eval_every", "eval_examples",
                     "save_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 < self.stage_lr_decay <= 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("lr must be > 0, stage_lr_decay in (0, 1], min_lr_ratio in [0, 1]")
        if self.warmup_steps < 0 or self.grad_clip <= 0:
            raise ValueError("warmup_steps must be >= 0 and grad_clip > 0")
        if not 0 < self.advance_at <= 1:
            raise ValueError(f"advance_at: expected a fraction in (0, 1], got {self.advance_at}")
        if self.batch_cells is not None and self.batch_cells < 1:
            raise ValueError(f"batch_cells: must be at least 1, got {self.batch_cells}")
        if not 0 <= self.clean_fraction < 1:
            raise ValueError(f"clean_fraction: expected a fraction in [0, 1), got {self.clean_fraction}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError("max_minutes: must be positive")
        if not isinstance(self.model_config, dict):
            raise ValueError("model_config: expected a mapping of model config fields")

    def identity(self) -> dict[str, Any]:
        """What must match for a run folder to be resumed (the budget may change)."""
        values = dataclasses.asdict(self)
        for name in ("max_minutes", "eval_every", "save_every", "keep_checkpoints", "threads", "out"):
            values.pop(name)
        if not values["clean_fraction"]:  # runs from before the field resume as they were
            values.pop("clean_fraction")
        return json.loads(json.dumps(values, sort_keys=True, default=str))


def parse_model_settings(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings to a dict; values are read as JSON where they parse (numbers,
    booleans, lists), as text otherwise."""
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-set {item!r}: expected FIELD=VALUE")
        try:
            settings[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key.strip()] = raw
    return settings
