"""Repairing a batch of grids, whole or in a window around the parser's error line.

A syntax error is where the parser says it is, give or take a line or two. With
`window_radius = r` (a TRM config field), a program the parser flags is repaired in the
2r+1 rows centred on the flagged row (clamped to the grid), and those rows are pasted
back; the rest of the program is kept as written. The model then spends its compute on
the few lines that matter, and training and inference cut the same windows. A batch in
which some program has no hint (it parses: a logic bug, or a clean program) is repaired
whole. `r = 0` always repairs whole grids.
"""

from __future__ import annotations

import numpy as np

from greenloop.train.batches import COLUMN_SLACK, LINE_SLACK, content_extent


def window_starts(hints: np.ndarray, radius: int, lines: int) -> np.ndarray | None:
    """First row of each program's window, or None when the batch is repaired whole."""
    size = 2 * radius + 1
    if radius <= 0 or len(hints) == 0 or (hints < 0).any() or size >= lines:
        return None
    return np.clip(hints - radius, 0, lines - size).astype(np.int64)


def cut_windows(grids: np.ndarray, starts: np.ndarray, radius: int) -> np.ndarray:
    """(B, L, W) -> (B, 2r+1, W): each grid's rows from its start."""
    rows = starts[:, None] + np.arange(2 * radius + 1)[None, :]
    return np.take_along_axis(grids, rows[:, :, None], axis=1)


def paste_windows(grids: np.ndarray, windows: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Grids with each window's rows replaced (windows may be narrower: the rest is pad)."""
    out = grids.copy()
    size, cols = windows.shape[1], windows.shape[2]
    for b, start in enumerate(starts):
        out[b, start:start + size, :] = 0
        out[b, start:start + size, :cols] = windows[b]
    return out


def crop_size(source: np.ndarray, target: np.ndarray | None, windowed: bool) -> tuple[int, int]:
    """Lines and columns a batch is cut to: the buggy programs' content plus slack (a fix
    may insert), and all of the fixed programs where they are known (training). Windows
    keep all their rows."""
    src_lines, src_cols = content_extent(source)
    tgt_lines, tgt_cols = content_extent(target) if target is not None else (src_lines, src_cols)
    lines = source.shape[1] if windowed else \
        min(max(int(src_lines.max()) + LINE_SLACK, int(tgt_lines.max()), 1), source.shape[1])
    cols = min(max(int(src_cols.max()) + COLUMN_SLACK, int(tgt_cols.max()), 1), source.shape[2])
    return lines, cols


def training_crop(source: np.ndarray, target: np.ndarray, hints: np.ndarray, radius: int):
    """(source, target, hints) as the model sees them in training: windows where the batch
    has hints, then cropped to the content plus slack."""
    starts = window_starts(hints, radius, source.shape[1])
    if starts is not None:
        source, target = cut_windows(source, starts, radius), cut_windows(target, starts, radius)
        hints = hints - starts
    lines, cols = crop_size(source, target, starts is not None)
    return source[:, :lines, :cols], target[:, :lines, :cols], np.where(hints < lines, hints, -1)


def model_inputs(model, source: np.ndarray, hints: np.ndarray):
    """What a batch of buggy grids (B, L, W) gives the model: (crop (B, l, c), the hints in
    the crop, window starts or None). `place` puts the model's answers back."""
    radius = int(getattr(model.config, "window_radius", 0) or 0)
    starts = window_starts(hints, radius, source.shape[1])
    inputs = cut_windows(source, starts, radius) if starts is not None else source
    local = hints - starts if starts is not None else hints
    lines, cols = crop_size(inputs, None, starts is not None)
    crop = np.ascontiguousarray(inputs[:, :lines, :cols])
    return crop, np.where(local < lines, local, -1), starts


def place(source: np.ndarray, answers: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    """Answers (B, l, c) for the crops of `model_inputs` as whole grids, the shape of `source`."""
    answers = answers.astype(source.dtype)
    if starts is not None:
        return paste_windows(source, answers, starts)
    out = np.zeros_like(source)
    out[:, :answers.shape[1], :answers.shape[2]] = answers
    return out


def repair_batch(model, source: np.ndarray, hints: np.ndarray, device, max_steps: int | None = None):
    """Repaired grids, the same shape as `source` (B, L, W), and supervision steps used."""
    import torch

    crop, local, starts = model_inputs(model, source, hints)
    pred, steps = model.repair(torch.as_tensor(crop, dtype=torch.long, device=device), max_steps=max_steps,
                               hint_lines=torch.as_tensor(local, device=device))
    return place(source, pred.cpu().numpy(), starts), steps.cpu().numpy()
