"""A program as a grid of token ids: one source line per row, `lines x width` cells.

Encoding: `text.split("\\n")` gives the rows (so a trailing newline makes a last, empty
row); each row's text, indentation included and newline excluded, is tokenized on its
own and followed by `<|eol|>`; the rest of the row, and every row after the last, is
`<|pad|>` (0). A text with more rows than `lines`, or a row that needs more than `width`
cells with its eol, does not fit: `encode_grid` returns None (or raises `GridOverflow`,
whose `reason` names the limit) and `encode_grids` reports the reason per text.

Decoding is the exact inverse, and tolerates what a model writes: a row ends at its first
`<|eol|>`, or at its first `<|pad|>` if it has none; cells after that are ignored; other
special tokens are dropped; rows after the last one with an eol or any text are ignored.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Sequence

import numpy as np

from greenloop.text.tokenizer import EOL_ID, PAD_ID

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOO_MANY_LINES, LINE_TOO_LONG = "too_many_lines", "line_too_long"
OVERFLOW_REASONS = (TOO_MANY_LINES, LINE_TOO_LONG)


class GridOverflow(ValueError):
    """A text that does not fit the grid; `reason` is TOO_MANY_LINES or LINE_TOO_LONG."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _encode_rows(tok: Tokenizer, rows: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids of many rows, each distinct row encoded once (a pair's two sides, and the
    mutants of one function, share most of their lines): (flat ids of the distinct rows,
    where each row's ids start in it, each row's length)."""
    distinct: dict[str, int] = {}
    refs = np.fromiter((distinct.setdefault(row, len(distinct)) for row in rows), dtype=np.int64, count=len(rows))
    encoded = [encoding.ids for encoding in tok.encode_batch(list(distinct), add_special_tokens=False)]
    sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(sizes.sum()))
    return flat, (np.cumsum(sizes) - sizes)[refs], sizes[refs]


def encode_grids(tok: Tokenizer, texts: Sequence[str], lines: int = 64, width: int = 48,
                 dtype: type = np.int32) -> tuple[np.ndarray, list[str | None]]:
    """Grids of many texts at once (one `encode_batch` call for all their rows):
    `(grids (len(texts), lines, width), reasons)`, where `reasons[i]` is None when text i
    fits and its overflow reason otherwise (its grid is then all pad)."""
    if lines < 1 or width < 2:
        raise ValueError(f"a grid needs at least 1 line and 2 cells a line, got {lines}x{width}")
    rows = [text.split("\n") for text in texts]
    reasons: list[str | None] = [TOO_MANY_LINES if len(r) > lines else None for r in rows]
    fitting = np.array([i for i, reason in enumerate(reasons) if reason is None], dtype=np.int64)
    grids = np.zeros((len(texts), lines, width), dtype=dtype)
    if not len(fitting):
        return grids, reasons
    flat, starts, lengths = _encode_rows(tok, [row for i in fitting for row in rows[i]])
    rows_per_text = np.fromiter((len(rows[i]) for i in fitting), dtype=np.int64, count=len(fitting))
    text_of_row = np.repeat(fitting, rows_per_text)
    row_in_text = np.arange(len(lengths)) - np.repeat(np.cumsum(rows_per_text) - rows_per_text, rows_per_text)
    too_long = lengths + 1 > width
    for i in np.unique(text_of_row[too_long]):
        reasons[i] = LINE_TOO_LONG
    keep = np.flatnonzero(~np.isin(text_of_row, text_of_row[too_long]))  # the rows of texts that fit
    text_of_row, row_in_text, starts, lengths = text_of_row[keep], row_in_text[keep], starts[keep], lengths[keep]
    # all tokens in one scatter: token t of row r goes to cell (text_of_row[r], row_in_text[r], t)
    token_row = np.repeat(np.arange(len(lengths)), lengths)
    column = np.arange(len(token_row)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    grids[text_of_row[token_row], row_in_text[token_row], column] = flat[starts[token_row] + column]
    grids[text_of_row, row_in_text, lengths] = EOL_ID
    return grids, reasons


def encode_grid(tok: Tokenizer, text: str, lines: int = 64, width: int = 48,
                strict: bool = False) -> np.ndarray | None:
    """The (lines, width) int32 grid of `text`; None when it does not fit (or, when
    `strict`, GridOverflow saying which limit and where)."""
    grids, reasons = encode_grids(tok, [text], lines, width)
    if reasons[0] is None:
        return grids[0]
    if not strict:
        return None
    rows = text.split("\n")
    if reasons[0] == TOO_MANY_LINES:
        raise GridOverflow(TOO_MANY_LINES, f"{len(rows)} lines, the grid has {lines}")
    cells = [len(e.ids) + 1 for e in tok.encode_batch(rows, add_special_tokens=False)]
    row = next(i for i, n in enumerate(cells) if n > width)
    raise GridOverflow(LINE_TOO_LONG, f"line {row + 1} needs {cells[row]} cells with its eol, the grid has {width}")


def _row_ends(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: where its text ends (first eol or pad), and whether an eol ends it."""
    stops = (grid == EOL_ID) | (grid == PAD_ID)
    has_stop = stops.any(axis=1)
    ends = np.where(has_stop, stops.argmax(axis=1), grid.shape[1])
    ended_by_eol = has_stop & (grid[np.arange(len(grid)), np.minimum(ends, grid.shape[1] - 1)] == EOL_ID)
    return ends, ended_by_eol


def decode_grids(tok: Tokenizer, grids: np.ndarray) -> list[str]:
    """The texts of a batch of grids (batch, lines, width), one `decode_batch` call."""
    grids = np.asarray(grids)
    pieces: list[list[int]] = []
    rows_per_grid = []
    for grid in grids:
        ends, ended_by_eol = _row_ends(grid)
        present = np.flatnonzero(ended_by_eol | (ends > 0))
        count = int(present[-1]) + 1 if len(present) else 0
        rows_per_grid.append(count)
        pieces.extend(grid[r, :ends[r]].tolist() for r in range(count))
    texts = tok.decode_batch(pieces, skip_special_tokens=True) if pieces else []
    out, start = [], 0
    for count in rows_per_grid:
        out.append("\n".join(texts[start:start + count]))
        start += count
    return out


def decode_grid(tok: Tokenizer, ids: np.ndarray) -> str:
    """The text of one (lines, width) grid: the exact inverse of `encode_grid`."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"a grid is 2-D (lines, width), got shape {ids.shape}")
    return decode_grids(tok, ids[None])[0]


def grid_mask(ids: np.ndarray) -> np.ndarray:
    """True where a cell holds a token (eol included), False on padding."""
    return np.asarray(ids) != PAD_ID
