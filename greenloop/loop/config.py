"""The settings of a self-improvement run, written into its folder as `config.json`.

A run folder holds everything the run makes: `store.db` (episodes and evaluation results),
`checkpoints/cycle-N/` (the model each sleep trained), `sleep/cycle-N.jsonl` (what it was
trained on), `state.json` (the promoted checkpoint and the finished phases),
`metrics.jsonl` (one line per cycle), `plots/`, and with `curriculum` on, `curriculum.json`
(each task's recent day outcomes and each day's draw).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from greenloop.evaluate.gates import GateConfig
from greenloop.train.finetune import FinetuneConfig


@dataclass(frozen=True)
class CycleConfig:
    model: str                                   # the starting model folder
    out: str                                     # the run folder
    train_tasks: str = "koans@train,repair:humaneval@train"
    eval_tasks: str = "koans@eval,repair:humaneval@eval"   # the frozen set: never trained on
    train_per_day: int | None = 200              # training tasks drawn each day (None: all)
    curriculum: bool = False                     # draw them by recent success (loop/curriculum.py), not uniformly
    eval_limit: int | None = None                # a fixed subset of the frozen set (None: all)
    mode: str = "sample"                         # "sample": k answers per task; "agent": tool-using episodes
    k: int = 8                                   # answers per training task and day
    temperature: float = 0.8                     # day sampling; evaluation is greedy
    max_tokens: int = 384
    max_steps: int = 6                           # agent mode
    per_task_examples: int = 2                   # distinct passing answers kept per task and day
    replay_ratio: float = 1.0                    # earlier cycles' examples mixed in, per new example
    prompt_style: str = "auto"                   # "edit", "raw" (greenloop models), "instruct" (chat LLMs), "auto"
    batch_size: int = 64                         # sequences per generation call (local models)
    workers: int | None = None                   # verifier workers
    seed: int = 0
    sleep: FinetuneConfig = field(default_factory=FinetuneConfig)
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self):
        if self.mode not in ("sample", "agent"):
            raise ValueError(f"mode must be 'sample' or 'agent', got {self.mode!r}")
        if self.prompt_style not in ("auto", "edit", "raw", "instruct"):
            raise ValueError(f"prompt_style must be auto, edit, raw or instruct, got {self.prompt_style!r}")
        for name, value, least in (("k", self.k, 1), ("per_task_examples", self.per_task_examples, 1),
                                   ("max_tokens", self.max_tokens, 1), ("max_steps", self.max_steps, 1),
                                   ("batch_size", self.batch_size, 1), ("replay_ratio", self.replay_ratio, 0)):
            if value < least:
                raise ValueError(f"cycle config {name}: must be >= {least}, got {value}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CycleConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown cycle config fields: {', '.join(unknown)}")
        data = dict(data)
        data["sleep"] = FinetuneConfig(**data.get("sleep", {}))
        gate = dict(data.get("gate", {}))
        gate["critical"] = tuple(gate.get("critical", ()))
        data["gate"] = GateConfig(**gate)
        return cls(**data)


def load_or_write(config: CycleConfig) -> CycleConfig:
    """A new run writes its config; a resumed run must be started with the same one
    (what a finished phase did depends on it), else this says which fields differ."""
    path = Path(config.out) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        # read back through from_dict, so a field added since the run began (a folder without
        # `curriculum`, or a sleep without `prompt_weight`) reads as its default
        saved = json.loads(json.dumps(CycleConfig.from_dict(json.loads(path.read_text())).to_dict()))
        current = json.loads(json.dumps(config.to_dict()))
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise ValueError(f"{config.out} was started with other settings ({', '.join(changed)} differ); "
                             f"use the same ones to resume, or a new --out")
        return config
    path.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return config
