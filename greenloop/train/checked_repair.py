"""Parse-checked repair: the model's k likeliest single changes, in order, and the first
whose program Python's parser accepts.

A syntax fix that leaves a program the parser rejects is wrong for certain, and the parser
says so in microseconds. A single-change model (`edits=true single_change=true`) offers its
own answer first and then its other changes, likeliest first
(`TRMForRepair.ranked_repairs`: the pointer's log-probability of a cell plus those of the
tokens written there); each candidate is decoded and parsed in that order, and the first
that parses is the answer. Where none does, the model's own answer stands. So the check
never loses a fix the model makes (a right fix parses), and with k = 1 it is the model's
own answer. "Leave the program as written" is one of the candidates.
"""

from __future__ import annotations

import ast
import warnings

import numpy as np

from greenloop.train.windows import model_inputs, place


def parses(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def repair_checked(model, source: np.ndarray, hints: np.ndarray, device, decode, k: int,
                   max_steps: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(repaired grids (B, L, W), supervision steps (B,), candidates parsed (B,)).
    `decode(grids) -> list[str]` turns whole grids (n, L, W) into their programs."""
    import torch

    crop, local, starts = model_inputs(model, source, hints)
    ranked, _ = model.ranked_repairs(torch.as_tensor(crop, dtype=torch.long, device=device), k,
                                     hint_lines=torch.as_tensor(local, device=device), steps=max_steps)
    ranked = ranked.cpu().numpy()
    chosen = ranked[:, 0].copy()
    tried = np.zeros(len(source), dtype=np.int64)
    found = np.zeros(len(source), dtype=bool)
    for j in range(ranked.shape[1]):
        looking = np.flatnonzero(~found)
        if len(looking) == 0:
            break
        tried[looking] += 1
        texts = decode(place(source[looking], ranked[looking, j], None if starts is None else starts[looking]))
        for b, text in zip(looking, texts):
            if parses(text):
                chosen[b], found[b] = ranked[b, j], True
    steps = np.full(len(source), max_steps or model.config.supervision_steps, dtype=np.float64)
    return place(source, chosen, starts), steps, tried
