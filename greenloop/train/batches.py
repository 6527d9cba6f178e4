"""Deterministic training batches from `greenloop text tokenize` folders.

A batch is a pure function of (seed, step): the generator for step g is seeded with
`[seed, g]`, so a run resumed at step g draws exactly the batches an uninterrupted run
would, whichever process or machine draws them.

Grid batches are cropped to their content: a program of 12 lines of at most 20 tokens
does not pay for a 64×48 grid. To keep crops small, each step draws `pool` times more rows
than it needs, sorts them by size and takes a random run of neighbours. The crop keeps
`slack` spare columns (and one spare line) beyond the buggy program, because a fix may
insert tokens; inference crops the same way (`greenloop.train.windows`), so the model sees
the same shapes in training and use.

With `clean_fraction = f`, about a fraction f of the steps are clean batches: the rows'
fixed programs as both input and target, whole and without a parser hint, as a program
that parses reaches the model at inference. A repair model then learns to leave a
correct program alone; without them it has only ever seen programs with a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLUMN_SLACK = 4
LINE_SLACK = 1


def content_extent(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines and columns used by each grid of (N, L, W): the last non-pad line + 1 and the
    widest row's last non-pad cell + 1 (0 for an empty grid)."""
    used = grids != 0                                       # (N, L, W)
    rows = used.any(axis=2)                                 # (N, L)
    lines = np.where(rows.any(axis=1), rows.shape[1] - np.argmax(rows[:, ::-1], axis=1), 0)
    cols_any = used.any(axis=1)                             # (N, W)
    cols = np.where(cols_any.any(axis=1), cols_any.shape[1] - np.argmax(cols_any[:, ::-1], axis=1), 0)
    return lines.astype(np.int64), cols.astype(np.int64)


@dataclass
class GridExtents:
    src_lines: np.ndarray
    src_cols: np.ndarray
    tgt_lines: np.ndarray
    tgt_cols: np.ndarray

    @classmethod
    def measure(cls, data, chunk: int = 4096) -> "GridExtents":
        parts = []
        for start in range(0, len(data), chunk):
            source, target = data.batch(np.arange(start, min(start + chunk, len(data))))
            parts.append(content_extent(source) + content_extent(target))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty, empty)
        return cls(*(np.concatenate([p[i] for p in parts]) for i in range(4)))

    def area(self, idx: np.ndarray) -> np.ndarray:
        return np.maximum(self.src_lines[idx] + LINE_SLACK, self.tgt_lines[idx]) * \
            np.maximum(self.src_cols[idx] + COLUMN_SLACK, self.tgt_cols[idx])


class GridBatches:
    """Cropped (source, target) batches of repair grids for one training stage."""

    def __init__(self, data, batch_size: int, seed: int, pool: int = 8, extents: GridExtents | None = None,
                 batch_cells: int | None = None, hints: np.ndarray | None = None, clean_fraction: float = 0.0):
        self.data, self.batch_size, self.seed, self.pool = data, batch_size, seed, pool
        self.batch_cells, self.clean_fraction = batch_cells, clean_fraction
        self.extents = extents or GridExtents.measure(data)
        self.hints = hints if hints is not None else np.full(len(data), -1, dtype=np.int64)
        self.window_radius = 0  # the model's (greenloop.train.windows)

    def is_clean(self, step: int) -> bool:
        """Whether step's batch is a clean one (a pure function of seed and step)."""
        return self.clean_fraction > 0 and np.random.default_rng([self.seed, step, 1]).random() < self.clean_fraction

    def rows_for_step(self, step: int, indices: np.ndarray, clean: bool = False) -> np.ndarray:
        if len(indices) == 0:
            raise ValueError("no training rows in this stage's buckets")
        rng = np.random.default_rng([self.seed, step])
        drawn = indices[rng.integers(0, len(indices), size=self.batch_size * self.pool)]
        drawn = drawn[np.argsort(self.extents.area(drawn), kind="stable")]
        start = int(rng.integers(0, len(drawn) - self.batch_size + 1))
        rows = drawn[start:start + self.batch_size]
        if self.batch_cells:  # big programs come in smaller batches: about the same work per step
            e = self.extents
            src_lines, src_cols = (e.tgt_lines, e.tgt_cols) if clean else (e.src_lines, e.src_cols)  # the input
            lines = np.maximum.accumulate(np.maximum(src_lines[rows] + LINE_SLACK, e.tgt_lines[rows]))
            if self.window_radius and not clean and (self.hints[rows] >= 0).all():
                lines = np.minimum(lines, 2 * self.window_radius + 1)
            cols = np.maximum.accumulate(np.maximum(src_cols[rows] + COLUMN_SLACK, e.tgt_cols[rows]))
            fits = np.arange(1, len(rows) + 1) * lines * cols <= self.batch_cells
            rows = rows[:max(1, int(np.argmin(fits)) if not fits.all() else len(rows))]
        return rows

    def get(self, rows: np.ndarray, clean: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source, target, parser hint rows) of the rows as the model trains on them:
        windows around the hint where the model uses them, cropped to content plus slack.
        `clean`: the fixed programs as both source and target, whole, with no hint."""
        from greenloop.train.windows import training_crop

        source, target = self.data.batch(rows)
        if clean:
            return training_crop(target, target, np.full(len(rows), -1, dtype=np.int64), self.window_radius)
        return training_crop(source, target, self.hints[rows], self.window_radius)

    def for_step(self, step: int, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clean = self.is_clean(step)
        return self.get(self.rows_for_step(step, indices, clean), clean)


class StreamBatches:
    """(x, y) windows of a token stream; y is x shifted by one token."""

    def __init__(self, data, batch_size: int, seq_len: int, seed: int):
        if len(data) <= seq_len + 1:
            raise ValueError(f"the token stream has {len(data)} tokens: fewer than one row of seq_len {seq_len}")
        self.data, self.batch_size, self.seq_len, self.seed = data, batch_size, seq_len, seed

    def for_step(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        return self.data.batch(np.random.default_rng([self.seed, step]), self.batch_size, self.seq_len)
