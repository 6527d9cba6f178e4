"""Readers of `greenloop text tokenize` folders: the arrays trainers draw batches from.

`GridData` is one split of a `--format grid` folder: (source, target) grid pairs with
their rows (pair_id, bug_type, family, difficulty, bucket, task_id, verified), filtered
by bucket, family or bug type for a curriculum. `TokenStream` is one split of a `--format
lm` folder: a flat token stream cut into random windows for training or into
consecutive windows for a validation loss. Shards stay memory-mapped; a batch reads only
the cells it needs, and comes back as int64 (what `torch.from_numpy` turns into the
LongTensor an embedding takes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np


def _read_meta(root: str | Path, format: str) -> dict[str, Any]:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{root}: no meta.json; not a finished `greenloop text tokenize` folder "
                                "(run the same command again to finish it)")
    meta = json.loads(path.read_text())
    if meta.get("format") != format:
        raise ValueError(f"{root} holds {meta.get('format')!r} data, not {format!r} "
                         f"(make it with `greenloop text tokenize --format {format}`)")
    return meta


def _shards(root: Path, meta: dict[str, Any], split: str) -> list[str]:
    if split not in meta["splits"]:
        raise ValueError(f"{root}: no split {split!r}; it has {', '.join(meta['splits']) or 'none'}")
    return list(meta["splits"][split]["shards"])


def _open(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (the tokenize run was changed or not finished)")
    return np.load(path, mmap_mode="r")


class GridData:
    """Grid pairs of one split of a `text tokenize --format grid` folder."""

    def __init__(self, root: str | Path, split: str):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.root, self.split = Path(root), split
        meta = _read_meta(self.root, "grid")
        self.lines, self.width, self.vocab_size = int(meta["lines"]), int(meta["width"]), int(meta["vocab_size"])
        self._sources, self._targets, tables = [], [], []
        for name in _shards(self.root, meta, split):
            source, target = (_open(self.root / split / f"{name}.{side}.npy") for side in ("source", "target"))
            table = pq.read_table(self.root / split / f"{name}.rows.parquet")
            if not len(source) == len(target) == table.num_rows or source.shape[1:] != (self.lines, self.width):
                raise ValueError(f"{self.root / split / name}: source, target and rows disagree "
                                 f"({source.shape}, {target.shape}, {table.num_rows} rows)")
            self._sources.append(source)
            self._targets.append(target)
            tables.append(table)
        self.rows: pa.Table = pa.concat_tables(tables)
        self._offsets = np.cumsum([0] + [len(s) for s in self._sources])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def indices(self, buckets: Iterable[int] | None = None, families: Iterable[str] | None = None,
                bug_types: Iterable[str] | None = None) -> np.ndarray:
        """int64 indices of the rows in any of the given buckets, families and bug types
        (None: any)."""
        mask = np.ones(len(self), dtype=bool)
        for column, wanted in (("bucket", buckets), ("family", families), ("bug_type", bug_types)):
            if wanted is None:
                continue
            wanted = {wanted} if isinstance(wanted, (str, int)) else set(wanted)
            values = self.rows.column(column).to_pylist()
            mask &= np.fromiter((v in wanted for v in values), dtype=bool, count=len(values))
        return np.flatnonzero(mask).astype(np.int64)

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(source, target), each int64 (len(idx), lines, width), in the order of `idx`."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        shard = np.searchsorted(self._offsets, idx, side="right") - 1
        source = np.empty((len(idx), self.lines, self.width), dtype=np.int64)
        target = np.empty_like(source)
        for s in np.unique(shard):
            at = np.flatnonzero(shard == s)
            local = idx[at] - self._offsets[s]
            source[at] = self._sources[s][local]
            target[at] = self._targets[s][local]
        return source, target


class TokenStream:
    """Token stream of one split of a `--format lm` folder: documents back to back, each
    `<|bos|> ... <|eos|>`; `doc_starts` holds where each begins."""

    def __init__(self, root: str | Path, split: str):
        self.root, self.split = Path(root), split
        meta = _read_meta(self.root, "lm")
        self.vocab_size = int(meta["vocab_size"])
        names = _shards(self.root, meta, split)
        self._tokens = [_open(self.root / split / f"{name}.tokens.npy") for name in names]
        self._offsets = np.cumsum([0] + [len(t) for t in self._tokens])
        self.doc_starts = np.concatenate([np.asarray(_open(self.root / split / f"{name}.docs.npy")) + offset
                                          for name, offset in zip(names, self._offsets)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        if len(self._tokens) == 1:
            return np.asarray(self._tokens[0][starts[:, None] + np.arange(length)], dtype=np.int64)
        out = np.empty((len(starts), length), dtype=np.int64)
        for row, start in enumerate(starts):
            filled, shard = 0, int(np.searchsorted(self._offsets, start, side="right")) - 1
            while filled < length:  # a window may run across shards
                local = start + filled - self._offsets[shard]
                piece = self._tokens[shard][local:local + length - filled]
                out[row, filled:filled + len(piece)] = piece
                filled += len(piece)
                shard += 1
        return out

    def _check(self, batch_size: int, seq_len: int) -> None:
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be positive, got {batch_size} and {seq_len}")
        if len(self) < seq_len + 1:
            raise ValueError(f"{self.root}/{self.split}: {len(self)} tokens, fewer than seq_len + 1 = {seq_len + 1}")

    def batch(self, rng: np.random.Generator, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y), int64 (batch_size, seq_len), from random windows; y is x shifted by one."""
        self._check(batch_size, seq_len)
        windows = self._windows(rng.integers(0, len(self) - seq_len, size=batch_size), seq_len + 1)
        return windows[:, :-1], windows[:, 1:]

    def sequential_batches(self, batch_size: int, seq_len: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x, y) over consecutive, non-overlapping windows from the start (the last batch
        may be smaller; a tail shorter than a window is left out): a validation loss that
        is the same every time."""
        self._check(batch_size, seq_len)
        count = (len(self) - 1) // seq_len
        for first in range(0, count, batch_size):
            starts = np.arange(first, min(count, first + batch_size), dtype=np.int64) * seq_len
            windows = self._windows(starts, seq_len + 1)
            yield windows[:, :-1], windows[:, 1:]
