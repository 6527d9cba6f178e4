"""Ranked single changes and parse-checked repair: the model's own answer comes first and
the rest are the likeliest changes a brute-force search over every (cell, output,
insertion) finds, with the same scores; a trained model's first candidate is its fix; the parse check keeps the first candidate
that parses, and the model's first choice where none does."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from greenloop.models.grid_edits import EditHeads, apply_edits, live_cells
from greenloop.text.hints import parse_error
from greenloop.train.checked_repair import repair_checked
from tests.unit.test_grid_edits import grid
from tests.unit.test_models import fit, tiny_model
from tests.unit.test_models_trm_edits import substitution_batch

V = 12


def brute_force(source, logits, y, where):
    """Every single change of one (1, L, W) grid with its log-probability, best first."""
    L, W = source.shape[1:]
    lp_where = where[0].log_softmax(-1)
    lp_out = logits[0].flatten(0, 1).log_softmax(-1)
    lp_ins = y[0].log_softmax(-1)  # the heads below read insertions straight from y
    changes = [(float(lp_where[L * W]), source[0])]
    for cell in torch.nonzero(live_cells(source)[0].flatten()).flatten().tolist():
        for o, i in itertools.product(range(V), range(V)):
            if o == int(source.flatten()[cell]) and i == 0:
                continue  # writes the program as written: that is "nowhere"
            outputs, insertions = source.clone().flatten(), torch.zeros(L * W, dtype=torch.long)
            outputs[cell], insertions[cell] = o, i
            written = apply_edits(source, outputs.view(1, L, W), insertions.view(1, L, W))[0]
            changes.append((float(lp_where[cell] + lp_out[cell, o] + lp_ins[cell, i]), written))
    return sorted(changes, key=lambda c: -c[0])


def test_the_model_answer_comes_first_whatever_its_joint_score():
    source = grid([[6, 7], [8]], 4)
    heads = EditHeads(V, max_cells=8)
    with torch.no_grad():
        heads.token.weight.copy_(torch.eye(V))
    where = torch.full((1, 9), -1e4)
    where[0, 0], where[0, 1] = 1.0, 0.9                   # the pointer likes cell 0 a little more
    logits = torch.zeros(1, 2, 4, V)                      # cell 0's outputs are unsure, cell 1's sure
    logits[0, 0, 0, 10] = 0.5
    logits[0, 0, 1, 9] = 20.0
    y = torch.zeros(1, 8, V)
    y[0, :, 0] = 20.0                                     # nothing inserted anywhere
    grids, scores = heads.ranked_changes(torch.nn.Identity(), logits, y, where, source, k=3, per_cell=V)
    assert grids[0, 0, 0, :3].tolist() == [10, 7, 4] and scores[0, 0] < scores[0, 1]  # cell 0 -> 10
    assert grids[0, 1, 0, :3].tolist() == [6, 9, 4]                     # then the joint best: cell 1 -> 9


def test_ranked_changes_are_the_brute_force_best_with_their_scores():
    torch.manual_seed(0)
    source = grid([[6, 7], [8]], 4)                       # (1, 2, 4): 5 live cells
    heads = EditHeads(V, max_cells=8)
    with torch.no_grad():
        heads.token.weight.copy_(torch.eye(V))
    y = torch.randn(1, 8, V)
    logits = torch.randn(1, 2, 4, V)
    where = torch.randn(1, 9)
    where[0, :8][~live_cells(source)[0].flatten()] = -1e4   # cells after a row's eol
    where[0, 8] = 3.0                                        # "nowhere" is likely
    grids, scores = heads.ranked_changes(torch.nn.Identity(), logits, y, where, source, k=20, per_cell=V)
    expected = brute_force(source, logits, y, where)[:20]
    torch.testing.assert_close(scores[0], torch.tensor([s for s, _ in expected]))
    for got, (_, want) in zip(grids[0], expected):
        assert torch.equal(got, want)
    assert torch.equal(grids[0, 0], source[0])           # "nowhere" ranks first: the program as written


def test_a_trained_single_change_model_ranks_its_fix_first():
    model = tiny_model("trm", edits=True, single_change=True, n_deep=1)
    source, target = substitution_batch()
    fit(model, 150, input_ids=source, labels=target)
    grids, scores, steps = model.eval().ranked_repairs(source, k=4, max_steps=1)  # trained one step deep
    assert grids.shape == (2, 4) + tuple(source.shape[1:])
    assert torch.equal(grids[:, 0], target) and torch.equal(grids[:, 0], model.repair(source, max_steps=1)[0])
    assert bool((scores[:, 1:-1] >= scores[:, 2:]).all()) and steps.tolist() == [1, 1]
    for b in range(2):  # distinct programs: no change that writes the program as written twice
        assert len({g.numpy().tobytes() for g in grids[b]}) == 4


def test_ranked_repairs_need_a_single_change_model():
    with pytest.raises(ValueError, match="single_change"):
        tiny_model("trm", edits=True).ranked_repairs(grid([[3]], 4), k=2)


class Ranked:
    """A stand-in model whose ranked repairs are given: the texts they decode to are
    `texts[grid[0, 0, 0]]`."""

    config = SimpleNamespace(window_radius=0, supervision_steps=1)

    def __init__(self, firsts: list[list[int]]):
        self.firsts = firsts

    def ranked_repairs(self, crop, k, hint_lines=None, max_steps=None):
        grids = torch.zeros((crop.shape[0], k) + tuple(crop.shape[1:]), dtype=torch.long)
        for b, firsts in enumerate(self.firsts):
            grids[b, :, 0, 0] = torch.tensor(firsts[:k])
        return grids, torch.zeros(crop.shape[0], k), torch.ones(crop.shape[0], dtype=torch.long)


def test_the_parse_check_keeps_the_first_candidate_that_parses():
    texts = {1: "x = (", 2: "x = 1", 3: "def f(:", 4: "y = 2"}
    source = np.zeros((3, 2, 3), dtype=np.int64)
    source[:, 0, 0] = 9
    model = Ranked([[1, 2, 4], [4, 1, 2], [1, 3, 3]])

    def decode(grids):
        return [texts[int(g[0, 0])] for g in grids]

    repaired, _, tried = repair_checked(model, source, np.full(3, -1), "cpu", decode, k=3)
    assert repaired[:, 0, 0].tolist() == [2, 4, 1]      # the third parses nowhere: the first choice stands
    assert tried.tolist() == [2, 1, 2]                   # a candidate seen before is not parsed again


def parses(text: str) -> bool:
    return parse_error(text) is None


def test_parses_accepts_python_and_rejects_broken_code_quietly(recwarn):
    assert parses("def f(x):\n    return '\\d'\n")          # an invalid escape is only a warning
    assert not parses("def f(x)\n    return x\n")
    assert not parses("x = 1\0")                                 # null bytes: refused, not raised
    assert not [w for w in recwarn if issubclass(w.category, SyntaxWarning)]


def test_with_nothing_that_parses_the_check_gives_repair_s_answer_halting_and_windows_included():
    torch.manual_seed(1)
    model = tiny_model("trm", edits=True, single_change=True, supervision_steps=3, window_radius=1).eval()
    with torch.no_grad():  # live heads, and halting that differs between programs
        model.edit_heads.at.weight.normal_(0.0, 1.0)
        model.edit_heads.nowhere.bias.fill_(0.0)
        model.edit_heads.token.weight.normal_(0.0, 0.5)
        model.q_head.weight.normal_(0.0, 20.0)
    from greenloop.train.windows import repair_batch

    source = np.zeros((6, 7, 8), dtype=np.int64)
    rng = np.random.default_rng(0)
    for b in range(6):
        for row in range(rng.integers(3, 7)):
            width = int(rng.integers(1, 6))
            source[b, row, :width] = rng.integers(6, 30, width)
            source[b, row, width] = 4
    hints = np.array([0, 2, 5, 3, 1, 4])
    from greenloop.train.windows import model_inputs

    crop, local, _ = model_inputs(model, source, hints)
    with torch.no_grad():  # half the programs halt after the first step
        q = model(input_ids=torch.as_tensor(crop), hint_lines=torch.as_tensor(local)).q_halt
        model.q_head.bias.sub_(q.median() + 1e-3)
    expected, expected_steps = repair_batch(model, source, hints, "cpu")
    assert len(set(expected_steps.tolist())) > 1            # some programs halt before others
    for k in (1, 4):
        repaired, steps, _ = repair_checked(model, source, hints, "cpu", lambda g: ["(" for _ in g], k=k)
        assert np.array_equal(repaired, expected) and np.array_equal(steps, expected_steps)
