"""Timed outputs kept for checking: copied into buffers made before timing, so keeping
allocates nothing between timed calls, and never shared with what the candidate holds."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from greenloop.verify.kernel_trials import _copy, _keep  # noqa: E402


def test_a_copy_into_a_fitting_buffer_is_that_buffer_with_the_outputs_values():
    out, buffer = torch.arange(6.0).reshape(2, 3), torch.empty(2, 3)
    kept = _copy(out, buffer)
    assert kept is buffer and torch.equal(kept, out)
    out.add_(1)  # the candidate changes its tensor afterwards
    assert torch.equal(kept, torch.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("buffer", [torch.empty(3, 2), torch.empty(2, 3, dtype=torch.float64),
                                    torch.empty(3, 2).t(), None])
def test_a_buffer_that_does_not_fit_gives_a_fresh_copy(buffer):
    out = torch.arange(6.0).reshape(2, 3)
    kept = _copy(out, buffer)
    assert kept is not buffer and kept.data_ptr() != out.data_ptr() and torch.equal(kept, out)


def test_keeping_every_trial_takes_buffers_then_reuses_the_replaced_ones():
    buffers = [torch.empty(4) for _ in range(3)]
    made = {b.data_ptr() for b in buffers}
    reservoir: list = []
    for trial in range(1, 40):
        _keep(reservoir, trial, 3, 256, trial, torch.full((4,), float(trial)), buffers)
    assert not buffers and len(reservoir) == 3
    assert {t.data_ptr() for _, t in reservoir} == made  # no tensor made while timing
    for seed, tensor in reservoir:
        assert torch.equal(tensor, torch.full((4,), float(seed)))
