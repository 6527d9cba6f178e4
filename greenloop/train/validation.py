"""Validation during training: exact-match repair on grids, loss on token streams.

Both run on a fixed subset chosen once per run (seeded), so figures from different
steps, stages and resumed runs are comparable.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from greenloop.train.batches import GridExtents


def fixed_subset(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng([seed, 7]).permutation(n)[:size]).astype(np.int64)


def validate_grid(model, data, extents: GridExtents, rows: np.ndarray, buckets: np.ndarray, hints: np.ndarray,
                  batch_size: int, device) -> dict:
    """Exact-match repair rate on `rows` of the validation data, overall and per bucket,
    and the mean number of supervision steps the model used before halting."""
    import torch

    from greenloop.train.windows import repair_batch

    order = rows[np.argsort(extents.src_lines[rows] * extents.src_cols[rows], kind="stable")]
    hits: dict[int, list[bool]] = defaultdict(list)
    steps_used: list[float] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            source, target = data.batch(chunk)
            pred, steps = repair_batch(model, source, hints[chunk], device)
            ok = (pred == target).all(axis=(1, 2))
            for bucket, hit in zip(buckets[chunk], ok):
                hits[int(bucket)].append(bool(hit))
            steps_used.extend(steps.astype(float).tolist())
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
