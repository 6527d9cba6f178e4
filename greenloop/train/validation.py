"""Validation during training: exact-match repair on grids, loss on token streams.

Both run on a fixed subset chosen once per run (seeded), so figures from different
steps, stages and resumed runs are comparable.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from greenloop.train.batches import COLUMN_SLACK, LINE_SLACK, GridExtents


def fixed_subset(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng([seed, 7]).permutation(n)[:size]).astype(np.int64)


def inference_crop(extents: GridExtents, rows: np.ndarray, lines: int, width: int) -> tuple[int, int]:
    """The crop of the buggy grids only, as at inference (the target is not known)."""
    return (min(int(extents.src_lines[rows].max()) + LINE_SLACK, lines),
            min(int(extents.src_cols[rows].max()) + COLUMN_SLACK, width))


def exact_matches(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per row: the predicted crop equals the target's, and the target has nothing outside
    the crop. pred (B, l, w); target (B, L, W)."""
    lines, cols = pred.shape[1], pred.shape[2]
    inside = (pred == target[:, :lines, :cols]).all(axis=(1, 2))
    outside = target.copy()
    outside[:, :lines, :cols] = 0
    return inside & ~outside.any(axis=(1, 2))


def validate_grid(model, data, extents: GridExtents, rows: np.ndarray, buckets: np.ndarray, hints: np.ndarray,
                  batch_size: int, device) -> dict:
    """Exact-match repair rate on `rows` of the validation data, overall and per bucket,
    and the mean number of supervision steps the model used before halting."""
    import torch

    order = rows[np.argsort(extents.src_lines[rows] * extents.src_cols[rows], kind="stable")]
    hits: dict[int, list[bool]] = defaultdict(list)
    steps_used: list[float] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            source, target = data.batch(chunk)
            lines, cols = inference_crop(extents, chunk, data.lines, data.width)
            chunk_hints = np.where(hints[chunk] < lines, hints[chunk], -1)
            pred, steps = model.repair(torch.as_tensor(source[:, :lines, :cols], device=device),
                                       hint_lines=torch.as_tensor(chunk_hints, device=device))
            ok = exact_matches(pred.cpu().numpy(), target)
            for bucket, hit in zip(buckets[chunk], ok):
                hits[int(bucket)].append(bool(hit))
            steps_used.extend(steps.float().cpu().tolist())
    model.train()
    every = [h for values in hits.values() for h in values]
    return {"exact": float(np.mean(every)) if every else 0.0,
            "exact_by_bucket": {b: float(np.mean(v)) for b, v in sorted(hits.items())},
            "rows_by_bucket": {b: len(v) for b, v in sorted(hits.items())},
            "rows": len(every),
            "mean_supervision_steps": float(np.mean(steps_used)) if steps_used else 0.0}


def stage_exact(report: dict, buckets: tuple[int, ...] | None) -> float:
    """Exact-match over the validation rows of a stage's buckets (weighted by rows)."""
    if buckets is None:
        return report["exact"]
    chosen = [b for b in report["exact_by_bucket"] if b in buckets]
    rows = sum(report["rows_by_bucket"][b] for b in chosen)
    hits = sum(report["exact_by_bucket"][b] * report["rows_by_bucket"][b] for b in chosen)
    return hits / rows if rows else 0.0


def validate_stream(model, batches: list[tuple[np.ndarray, np.ndarray]], device, loss_kwargs) -> dict:
    """Mean next-token loss over fixed validation windows."""
    import torch

    losses = []
    model.eval()
    with torch.no_grad():
        for x, y in batches:
            out = model(**loss_kwargs(torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)))
            losses.append(float(out.loss))
    model.train()
    return {"loss": float(np.mean(losses)) if losses else float("nan"), "batches": len(losses)}
