"""Clean batches: a seeded share of the steps trains on fixed programs as both input and
target, whole and without a hint; the other steps are untouched."""

import numpy as np
import pytest

from greenloop.train.batches import GridBatches
from greenloop.train.config import PretrainConfig


class Pairs:
    """Buggy grids hold 1s in their first three lines, fixed grids 2s in their first six."""

    def __init__(self, rows: int = 40, lines: int = 10, width: int = 8):
        self.source = np.zeros((rows, lines, width), dtype=np.int64)
        self.target = np.zeros((rows, lines, width), dtype=np.int64)
        self.source[:, :3, :4] = 1
        self.target[:, :6, :4] = 2

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, rows):
        return self.source[rows], self.target[rows]


def batches(fraction: float, radius: int = 1) -> GridBatches:
    data = Pairs()
    made = GridBatches(data, batch_size=4, seed=3, hints=np.full(len(data), 2), clean_fraction=fraction)
    made.window_radius = radius
    return made


def test_the_share_of_clean_steps_is_seeded_and_near_the_fraction():
    a, b = batches(0.25), batches(0.25)
    clean = [a.is_clean(step) for step in range(2000)]
    assert clean == [b.is_clean(step) for step in range(2000)]
    assert 0.21 < np.mean(clean) < 0.29
    assert not any(batches(0.0).is_clean(step) for step in range(200))


def test_a_clean_batch_is_the_fixed_programs_whole_and_unhinted():
    made = batches(0.5)
    indices = np.arange(40)
    step = next(s for s in range(100) if made.is_clean(s))
    source, target, hints = made.for_step(step, indices)
    assert np.array_equal(source, target) and (source[:, :6, :4] == 2).all()
    assert source.shape[1] == 7 and (hints == -1).all()          # whole: 6 lines + 1 slack, no window
    step = next(s for s in range(100) if not made.is_clean(s))
    source, target, hints = made.for_step(step, indices)
    assert source.shape[1] == 3 and (source == 1).any() and (hints == 1).all()  # the window around line 2


def test_config_checks_the_fraction_and_old_runs_keep_their_identity():
    with pytest.raises(ValueError, match="clean_fraction"):
        PretrainConfig(data="d", out="o", clean_fraction=1.0)
    assert "clean_fraction" not in PretrainConfig(data="d", out="o").identity()
    assert PretrainConfig(data="d", out="o", clean_fraction=0.1).identity()["clean_fraction"] == 0.1


def test_batch_cells_counts_a_clean_batch_by_its_own_crop():
    made = GridBatches(Pairs(), batch_size=8, seed=3, hints=np.full(40, 2), clean_fraction=0.5, batch_cells=7 * 8 * 3)
    step = next(s for s in range(100) if made.is_clean(s))
    source, _, _ = made.for_step(step, np.arange(40))
    assert source.shape == (3, 7, 8)     # fixed programs: 6 lines + 1 slack, 4 + 4 columns: three fit
