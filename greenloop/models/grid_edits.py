"""Edits on a token grid: a repair as one output and one insertion per cell.

A model that answers a grid cell by cell with the whole fixed program has to move every
later token of a line one column right when the fix inserts a token (a missing comma, a
missing bracket), and each of those cells is a fresh chance to be wrong. As edits, each
cell of the buggy program answers two small questions instead:

- its output: the token it becomes (itself when kept, another token when replaced,
  `<|pad|>` when deleted);
- its insertion: the token written just before it (`<|pad|>`: none).

A row's repaired tokens are then, cell by cell in order, the insertion and the output, up
to and including the row's `<|eol|>` (cells after it emit nothing), so a fix that
inserts a token is one decision in one cell and the rest of the line is plain copying.

Targets from a (buggy, fixed) pair of grids, row by row (rows are source lines; the eol
is part of the row): the longest common prefix and then the longest common suffix of the
rest. The buggy row's middle (k_a cells) must become the fixed row's middle (k_b tokens).
Cell i of the middle (counting from 0; cell k_a is the first cell of the suffix, which
keeps its own token) inserts a token when i < e = max(0, k_b - k_a), and outputs one when
i < k_a: the middle's tokens are dealt out in that order, and middle cells left over are
deleted. A row whose middle needs more than 2 k_a + 1 tokens cannot be written this way
(nor can a line the fix adds); its targets are the best such edit, which falls short.

A model answers with `EditHeads` in one of two ways:

- per cell (`edit_loss`): every cell gives its output, and one pointer per program picks
  the cell to insert before, or nowhere. At most one insertion per program (the pointer
  learns from a target's first), any number of substitutions and deletions; but every
  cell is a chance to change what was right, and the one cell a fix changes is a small
  share of a loss averaged over hundreds that are copied.
- single change (`single_change_loss`): the pointer picks the one cell that changes, or
  nowhere; that cell gives its output and what is inserted before it (or nothing), and
  every other cell is copied as written. A fix is then a place and at most two tokens,
  each learned at full weight, and nothing else can change. The data factory's bugs are
  single-place mutations; a fix that changes two separate cells cannot be written.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from greenloop.text.tokenizer import EOL_ID, PAD_ID

NONE = PAD_ID  # "no insertion" and "delete this cell" are both the pad token
DEAD = -1e4  # the pointer's score of a cell after its row's eol (finite: exports and bf16 stay clean)


def row_lengths(grid: torch.Tensor) -> torch.Tensor:
    """(B, L, W) -> (B, L): the cells of each row up to and including its first eol (0 if none)."""
    is_eol = grid == EOL_ID
    return torch.where(is_eol.any(-1), is_eol.int().argmax(-1) + 1, 0)


def _suffix(a: torch.Tensor, b: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(B, L): how many cells the rows of a (length n) and b (length m) share at their ends."""
    back = torch.arange(a.shape[-1], device=a.device)
    ia, ib = n[..., None] - 1 - back, m[..., None] - 1 - back
    same = (a.gather(-1, ia.clamp(min=0)) == b.gather(-1, ib.clamp(min=0))) & (ia >= 0) & (ib >= 0)
    return same.long().cumprod(-1).sum(-1)


def edit_targets(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, insertions), each (B, L, W), that turn the `source` grid into `target` (see
    the module docstring). Cells after a source row's eol get NONE in both."""
    n, m = row_lengths(source), row_lengths(target)
    p = torch.minimum((source == target).long().cumprod(-1).sum(-1), torch.minimum(n, m))
    s = torch.minimum(_suffix(source, target, n, m), torch.minimum(n, m) - p)
    k_a, k_b = (n - s - p)[..., None], (m - s - p)[..., None]
    e = (k_b - k_a).clamp(min=0)
    i = torch.arange(source.shape[-1], device=source.device) - p[..., None]  # position in the middle
    width = target.shape[-1]

    def middle_token(offset: torch.Tensor) -> torch.Tensor:
        return target.gather(-1, (p[..., None] + offset).clamp(0, width - 1))

    out_offset = i + torch.minimum(i + 1, e)
    in_middle = (i >= 0) & (i < k_a)
    outputs = torch.where(in_middle, torch.where(out_offset < k_b, middle_token(out_offset), NONE), source)
    ins_offset = i + torch.minimum(i, e)
    inserts = (i >= 0) & (i < e) & (i <= k_a) & (ins_offset < k_b)
    insertions = torch.where(inserts, middle_token(ins_offset), NONE)
    live = live_cells(source)
    return torch.where(live, outputs, NONE), torch.where(live, insertions, NONE)


def live_cells(source: torch.Tensor) -> torch.Tensor:
    """(B, L, W) bool: the cells that emit (up to and including each row's eol)."""
    return torch.arange(source.shape[-1], device=source.device) < row_lengths(source)[..., None]


def apply_edits(source: torch.Tensor, outputs: torch.Tensor, insertions: torch.Tensor) -> torch.Tensor:
    """The grid the edits write, the shape of `source`: each live cell emits its insertion
    (if any) then its output (unless deleted). Tokens past the grid's width are dropped."""
    B, L, W = source.shape
    live = live_cells(source)
    emit_in = live & (insertions != NONE)
    emit_out = live & (outputs != NONE)
    counts = emit_in.long() + emit_out.long()
    start = counts.cumsum(-1) - counts
    spill = 2 * W  # one column past anything a row can fill: where non-emitting cells write
    written = torch.full((B, L, spill + 1), NONE, dtype=source.dtype, device=source.device)
    written.scatter_(-1, torch.where(emit_in, start, spill), insertions.to(source.dtype))
    written.scatter_(-1, torch.where(emit_out, start + emit_in.long(), spill), outputs.to(source.dtype))
    return written[..., :W]


def first_cell(mask: torch.Tensor) -> torch.Tensor:
    """(B, L, W) bool -> (B,): the flat index (row * W + column) of each grid's first True
    cell, L * W ("nowhere", the pointer's last slot) where it has none."""
    flat = mask.flatten(1)
    return torch.where(flat.any(-1), flat.int().argmax(-1), flat.shape[-1])


def cells_at(index: torch.Tensor, grid: torch.Size) -> torch.Tensor:
    """(B,) flat cell indices, L * W meaning nowhere (as `first_cell` gives them and the
    pointer picks them) -> the (B, L, W) bool mask of those cells."""
    return F.one_hot(index, grid[1] * grid[2] + 1)[:, :-1].bool().view(grid)


def _writes(source: torch.Tensor, predicted: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the predicted (outputs, insertions) write `target` exactly (the halting target)."""
    return (apply_edits(source, *predicted) == target).flatten(1).all(dim=1)


def edit_loss(logits: torch.Tensor, where: torch.Tensor, insert_logits, source: torch.Tensor,
              target: torch.Tensor, predicted: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, exact) of an edit answer. `logits` (B, L, W, V): each cell's output; `where`
    (B, L*W + 1): the logits of "insert before cell j" (flat) and, last, of "insert
    nothing"; `insert_logits(mask)`: the token logits (K, V) of the K cells a (B, L, W)
    mask picks; `predicted`: the (outputs, insertions) the model makes as it stands. The
    loss, three means of cross-entropy: the outputs over the live cells; the pointer (its
    target: the first insertion); and the inserted tokens, where the target inserts.
    `exact` (B,) bool: the edits the model makes write `target` exactly (the halting
    target)."""
    outputs, wanted = edit_targets(source, target)
    live = live_cells(source)
    if not live.any():  # nothing to answer: a zero that still has a graph
        loss = logits.sum() * 0 + where.sum() * 0
    else:
        loss = F.cross_entropy(logits[live].float(), outputs[live]) + \
            F.cross_entropy(where.float(), first_cell(wanted != NONE))
        inserts = wanted != NONE
        if inserts.any():
            loss = loss + F.cross_entropy(insert_logits(inserts).float(), wanted[inserts])
    return loss, _writes(source, predicted, target)


def single_change_loss(logits: torch.Tensor, where: torch.Tensor, insert_logits, source: torch.Tensor,
                       target: torch.Tensor, predicted: tuple[torch.Tensor, torch.Tensor]):
    """(loss, exact) when one cell changes and every other is copied as written: the
    pointer's cross-entropy (its target: the first cell the edits change, or nowhere), and
    at that cell the output's and the insertion's (NONE included). `predicted`: the
    (outputs, insertions) the model makes; `exact` (B,) bool: they write `target`."""
    outputs, wanted = edit_targets(source, target)
    first = first_cell(((outputs != source) & live_cells(source)) | (wanted != NONE))
    loss = F.cross_entropy(where.float(), first)
    cell = cells_at(first, source.shape)
    if cell.any():
        loss = loss + F.cross_entropy(logits[cell].float(), outputs[cell]) + \
            F.cross_entropy(insert_logits(cell).float(), wanted[cell])
    return loss, _writes(source, predicted, target)


class EditHeads(nn.Module):
    """Where a grid model inserts and what, read from its answer state y (B, N, C): a score
    per cell and one for "nowhere" (from the mean of y) make one pointer per program; the
    inserted token is read through the model's output embedding `lm_head`, as its outputs are,
    and only for the cells it is needed at."""

    def __init__(self, hidden_size: int, max_cells: int):
        super().__init__()
        self.at = nn.Linear(hidden_size, 1)
        self.nowhere = nn.Linear(hidden_size, 1)
        self.token = nn.Linear(hidden_size, hidden_size, bias=False)
        self.silent_bias = math.log(max_cells) + 4.0  # "nowhere" e^4 times likelier than all cells together

    @torch.no_grad()
    def silence(self, module: nn.Module) -> None:
        """Start silent: the model's weight init calls this for every module after its own
        init, so an untrained model inserts nothing."""
        if any(module is head for head in (self.at, self.nowhere, self.token)):
            module.weight.zero_()
            if module.bias is not None:
                module.bias.fill_(self.silent_bias if module is self.nowhere else 0.0)

    def where(self, y: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """(B, N + 1): "insert before cell j" (flat over the source grid), then "nowhere"."""
        cells = self.at(y).squeeze(-1).masked_fill(~live_cells(source).flatten(1), DEAD)
        return torch.cat((cells, self.nowhere(y.mean(dim=1)).to(cells.dtype)), dim=-1)

    def token_logits(self, lm_head: nn.Module, y: torch.Tensor, cells: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the token inserted: (K, V) for the K cells a (B, L, W) mask picks, or
        (B, N, V) for every cell when `cells` is None."""
        return lm_head(self.token(y if cells is None else y[cells.flatten(1)]))

    def insertions(self, lm_head: nn.Module, y: torch.Tensor, where: torch.Tensor, grid: torch.Size) -> torch.Tensor:
        """(B, L, W): the token inserted before the cell the pointer picks, NONE elsewhere."""
        chosen = cells_at(where.argmax(-1), grid)
        tokens = torch.full(grid, NONE, dtype=torch.long, device=y.device)
        if chosen.any():
            tokens[chosen] = self.token_logits(lm_head, y, chosen).argmax(-1)
        return tokens

    def single_change(self, lm_head: nn.Module, logits: torch.Tensor, y: torch.Tensor, where: torch.Tensor,
                      source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs, insertions) that change only the cell the pointer picks: its output
        (the argmax of its logits) and what is inserted before it (NONE: nothing)."""
        chosen = cells_at(where.argmax(-1), source.shape)
        outputs = source.clone()
        outputs[chosen] = logits[chosen].argmax(-1).to(outputs.dtype)
        return outputs, self.insertions(lm_head, y, where, source.shape)

    def ranked_changes(self, lm_head: nn.Module, logits: torch.Tensor, y: torch.Tensor, where: torch.Tensor,
                       source: torch.Tensor, k: int, per_cell: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's own answer (`single_change`), then the likeliest other single changes
        of each program, best first: (grids (B, k', L, W), log-probabilities (B, k')), k' =
        min(k, the combinations there are). A change's log-probability is the pointer's for
        its cell plus the output's and the insertion's there (the `per_cell` likeliest of
        each, at the k likeliest cells). "Nowhere" is the only change that writes the program
        as written (a cell that keeps its token and inserts nothing is not another); slots
        beyond the finite ones score -inf."""
        score, at, nowhere, o_tok, i_tok = self._change_scores(lm_head, logits, y, where, source, k, per_cell)
        T = o_tok.shape[-1]
        own = torch.zeros_like(score, dtype=torch.bool)  # the model's own answer: each argmax
        own[:, 0, 0, 0] = True
        _, flat = torch.where(own, float("inf"), score).flatten(1).topk(min(k, score[0].numel()), dim=-1)
        p, o, i = flat // (T * T), (flat // T) % T, flat % T                              # (B, K) each

        def pick(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return tokens.gather(1, p[..., None].expand(-1, -1, T)).gather(2, index[..., None]).squeeze(-1)

        grids = write_changes(source, at.gather(1, p), ~nowhere.gather(1, p), pick(o_tok, o), pick(i_tok, i))
        return grids, score.flatten(1).gather(1, flat)

    def _change_scores(self, lm_head, logits, y, where, source, k, per_cell):
        """(log-probabilities (B, P, T, T) of (the P likeliest cells) x (their T likeliest
        outputs) x (T likeliest insertions), the cells (B, P), which of them is "nowhere"
        (B, P), the output and insertion tokens (B, P, T))."""
        N, V = source.shape[1] * source.shape[2], logits.shape[-1]
        top_where, cells = where.float().log_softmax(-1).topk(min(k, N + 1), dim=-1)   # (B, P)
        nowhere, at = cells == N, cells.clamp(max=N - 1)
        out_lp = logits.flatten(1, 2).gather(1, at[..., None].expand(-1, -1, V)).float().log_softmax(-1)
        picked_y = y.gather(1, at[..., None].expand(-1, -1, y.shape[-1]))
        ins_lp = self.token_logits(lm_head, picked_y).float().log_softmax(-1)            # (B, P, V)
        o_lp, o_tok = out_lp.topk(min(per_cell, V), dim=-1)
        i_lp, i_tok = ins_lp.topk(min(per_cell, V), dim=-1)
        score = top_where[..., None, None] + o_lp[..., :, None] + i_lp[..., None, :]
        kept = source.flatten(1).gather(1, at)
        no_op = (o_tok == kept[..., None])[..., :, None] & (i_tok == NONE)[..., None, :]  # writes the program
        score = score.masked_fill(no_op, float("-inf"))                                 # as written: "nowhere"
        only_first = torch.zeros(score.shape[-2:], dtype=torch.bool, device=score.device)
        only_first[0, 0] = True
        as_written = torch.where(only_first, top_where[..., None, None], float("-inf"))  # "nowhere": once
        return torch.where(nowhere[..., None, None], as_written, score), at, nowhere, o_tok, i_tok


def write_changes(source: torch.Tensor, cell: torch.Tensor, moved: torch.Tensor, output: torch.Tensor,
                  insertion: torch.Tensor) -> torch.Tensor:
    """(B, K, L, W): each program with K single changes, one per slot: at flat `cell` (B, K)
    the `output` token and the `insertion` before it, where `moved` (else as written)."""
    B, L, W = source.shape
    K = cell.shape[1]
    grid = source[:, None].expand(B, K, L, W).reshape(B * K, L * W)
    outputs, insertions = grid.clone(), torch.full_like(grid, NONE)
    rows = moved.flatten().nonzero().squeeze(-1)
    cols = cell.flatten()[rows]
    outputs[rows, cols] = output.flatten()[rows].to(grid.dtype)
    insertions[rows, cols] = insertion.flatten()[rows].to(grid.dtype)
    shape = (B * K, L, W)
    return apply_edits(grid.view(shape), outputs.view(shape), insertions.view(shape)).view(B, K, L, W)
