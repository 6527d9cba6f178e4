"""Edits on a token grid: targets from (buggy, fixed) pairs write the fixed grid back,
for every kind of single-place change a one-token-per-cell answer can express."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from greenloop.models.grid_edits import NONE, apply_edits, edit_targets, live_cells, row_lengths

EOL = 4


def grid(rows: list[list[int]], width: int = 10) -> torch.Tensor:
    """(1, len(rows), width): each row's tokens, then eol, then pad."""
    out = torch.zeros(1, len(rows), width, dtype=torch.long)
    for r, tokens in enumerate(rows):
        out[0, r, :len(tokens) + 1] = torch.tensor(tokens + [EOL])
    return out


def round_trip(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return apply_edits(source, *edit_targets(source, target))


def test_a_missing_token_is_one_insertion_and_the_rest_is_copied():
    source, target = grid([[7, 8, 9], [10, 11]]), grid([[7, 8, 12, 9], [10, 11]])
    outputs, insertions = edit_targets(source, target)
    assert torch.equal(outputs, source)  # every cell keeps its own token
    assert insertions[0, 0].tolist() == [NONE, NONE, 12] + [NONE] * 7  # before the 9
    assert not bool(insertions[0, 1].ne(NONE).any())
    assert torch.equal(apply_edits(source, outputs, insertions), target)


def test_a_token_missing_at_the_end_of_a_line_is_inserted_before_its_eol():
    source, target = grid([[7, 8]]), grid([[7, 8, 13]])
    _, insertions = edit_targets(source, target)
    assert insertions[0, 0, 2] == 13 and source[0, 0, 2] == EOL
    assert torch.equal(round_trip(source, target), target)


def test_substitutions_and_deletions_are_outputs():
    source, target = grid([[7, 8, 9, 10], [7, 7, 7]]), grid([[7, 5, 9, 10], [7, 7]])
    outputs, insertions = edit_targets(source, target)
    assert outputs[0, 0, 1] == 5
    assert (outputs[0, 1, :4] == NONE).sum() == 1  # one of the three 7s is deleted
    assert not bool(insertions.ne(NONE).any())
    assert torch.equal(apply_edits(source, outputs, insertions), target)


def test_cells_after_a_rows_eol_emit_nothing_whatever_the_answer():
    source = grid([[7, 8]])
    noise = torch.full_like(source, 9)
    written = apply_edits(source, source, noise)  # "insert 9" everywhere: only live cells count
    assert written[0, 0].tolist() == [9, 7, 9, 8, 9, EOL] + [NONE] * 4
    assert live_cells(source)[0, 0].tolist() == [True] * 3 + [False] * 7
    assert row_lengths(grid([[7], [], [7, 8, 9]])).tolist() == [[2, 1, 4]]


def test_two_adjacent_missing_tokens_cannot_be_written():
    # Only one insertion per cell: a fix that needs two in one place falls short (the
    # targets still write one of them), which the module documents.
    source, target = grid([[7, 8]]), grid([[7, 8, 12, 13]])
    written = round_trip(source, target)
    assert not torch.equal(written, target)
    assert written[0, 0, :4].tolist() in ([7, 8, 12, EOL], [7, 8, 13, EOL])


@pytest.mark.parametrize("seed", range(3))
def test_random_single_place_fixes_round_trip(seed):
    rng = random.Random(seed)
    for _ in range(300):
        fixed = [[rng.randint(6, 9) for _ in range(rng.randint(0, 7))] for _ in range(3)]
        buggy = []
        for row in fixed:
            row, change = list(row), rng.choice(["drop", "add", "add2", "swap", "keep"])
            if change == "drop" and row:  # the fix inserts one token
                del row[rng.randrange(len(row))]
            elif change.startswith("add"):  # the fix deletes one or two
                for _ in range(2 if change == "add2" else 1):
                    row.insert(rng.randint(0, len(row)), rng.randint(6, 9))
            elif change == "swap" and row:
                row[rng.randrange(len(row))] = rng.randint(6, 9)
            buggy.append(row)
        source, target = grid(buggy), grid(fixed)
        assert torch.equal(round_trip(source, target), target), (buggy, fixed)
