"""Atomic checkpoints and resume.

A checkpoint is a folder `checkpoints/step-NNNNNNN/` holding the model
(`save_pretrained`: safetensors + config.json) and `trainer_state.pt` (optimizer, the
progress counters, the best validation figure, torch's and numpy's RNG states). It is
written under a temporary name and renamed into place, then `checkpoints/latest.json`
is replaced to point at it: a kill at any moment leaves the previous checkpoint intact.
Model folders meant for people (`best/`, `final/`) are written the same way and carry the
tokenizer, so `greenloop eval repair` and `greenloop export` need nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "greenloop_tokenizer.json")


def replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def save_model_folder(model, folder: Path, tokenizer_dir: str | None, extra: dict[str, Any] | None = None) -> None:
    """`save_pretrained` plus the tokenizer and a `training.json`, atomically."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if tokenizer_dir:
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).exists():
                shutil.copy2(Path(tokenizer_dir) / name, tmp / name)
    if extra is not None:
        (tmp / "training.json").write_text(json.dumps(extra, indent=2, default=str) + "\n")
    replace_dir(tmp, folder)


def save_checkpoint(run_dir: Path, model, state: dict[str, Any], keep: int) -> Path:
    import torch

    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"step-{state['step']:07d}"
    tmp = root / f".tmp-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(state, tmp / "trainer_state.pt")
    replace_dir(tmp, folder)
    pointer = root / "latest.json.tmp"
    pointer.write_text(json.dumps({"checkpoint": folder.name, "step": state["step"]}) + "\n")
    os.replace(pointer, root / "latest.json")
    finished = sorted(p for p in root.glob("step-*") if p.is_dir() and p != folder)
    for old in finished[:max(0, len(finished) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / "latest.json"
    if not pointer.exists():
        return None
    folder = run_dir / "checkpoints" / json.loads(pointer.read_text())["checkpoint"]
    if not (folder / "trainer_state.pt").exists():
        raise RuntimeError(f"{pointer} points at {folder}, which is incomplete; remove it or use --force")
    return folder


def load_trainer_state(folder: Path) -> dict[str, Any]:
    import torch

    return torch.load(folder / "trainer_state.pt", weights_only=False)


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
