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

import numpy as np

from greenloop.text.hints import parse_error
from greenloop.train.windows import model_inputs, place


def repair_checked(model, source: np.ndarray, hints: np.ndarray, device, decode, k: int,
                   max_steps: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(repaired grids (B, L, W), supervision steps (B,), distinct candidates parsed (B,)).
    `decode(grids) -> list[str]` turns whole grids (n, L, W) into their programs."""
    import torch

    crop, local, starts = model_inputs(model, source, hints)
    ranked, _, steps = model.ranked_repairs(torch.as_tensor(crop, dtype=torch.long, device=device), k,
                                            hint_lines=torch.as_tensor(local, device=device), max_steps=max_steps)
    ranked = ranked.cpu().numpy()
    chosen = ranked[:, 0].copy()
    tried = np.zeros(len(source), dtype=np.int64)
    found = np.zeros(len(source), dtype=bool)
    seen: list[set[bytes]] = [set() for _ in range(len(source))]
    for j in range(ranked.shape[1]):
        fresh = [b for b in np.flatnonzero(~found) if ranked[b, j].tobytes() not in seen[b]]
        if not fresh:
            continue
        texts = decode(place(source[fresh], ranked[fresh, j], None if starts is None else starts[fresh]))
        for b, text in zip(fresh, texts):
            tried[b] += 1
            seen[b].add(ranked[b, j].tobytes())
            if parse_error(text) is None:
                chosen[b], found[b] = ranked[b, j], True
    return place(source, chosen, starts), steps.cpu().numpy().astype(np.float64), tried
