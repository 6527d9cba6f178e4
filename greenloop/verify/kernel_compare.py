"""Judging a kernel's outputs in the verifier's process: shape, dtype, finiteness, and
closeness within a tolerance chosen by dtype.

Tolerances (`TOLERANCES`): |candidate - reference| <= atol * scale + rtol * |reference|
elementwise, where scale = max(1, max |reference|), so a problem whose outputs are large
(the "large" edge set) is not held to an absolute bound meant for values near one.
float32 allows 1e-4 relative (different summation orders of a reduction or a matmul stay
well inside it; a result off by 1% does not); half precision 1e-2; float64 1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TOLERANCES = {  # dtype -> (rtol, atol relative to the output's scale)
    torch.float64: (1e-9, 1e-12),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
}


@dataclass(frozen=True)
class Mismatch:
    where: str  # "output" or "input 0"
    detail: str


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    return TOLERANCES.get(dtype, (0.0, 0.0))  # integer and boolean outputs must be exact


def compare_output(candidate: torch.Tensor, reference: torch.Tensor) -> str | None:
    """None when the candidate's output is acceptable; otherwise why not, in one line."""
    if candidate.shape != reference.shape:
        return f"shape {tuple(candidate.shape)}, expected {tuple(reference.shape)}"
    if candidate.dtype != reference.dtype:
        return f"dtype {str(candidate.dtype).removeprefix('torch.')}, expected {str(reference.dtype).removeprefix('torch.')}"
    if candidate.numel() == 0:
        return None
    if not reference.is_floating_point():
        wrong = int((candidate != reference).sum())
        return f"{wrong} of {reference.numel()} values differ" if wrong else None
    cand, ref = candidate.double(), reference.double()
    bad_nan = torch.isnan(cand) & ~torch.isnan(ref)
    if bool(bad_nan.any()):
        return f"{int(bad_nan.sum())} NaN values where the reference has numbers"
    rtol, atol = tolerance(reference.dtype)
    finite = torch.isfinite(ref)
    scale = max(1.0, float(ref[finite].abs().max())) if bool(finite.any()) else 1.0
    error = (cand - ref).abs()
    allowed = atol * scale + rtol * ref.abs()
    wrong = ~(error <= allowed) & finite
    wrong |= ~finite & (cand != ref)  # infinities must match exactly
    if not bool(wrong.any()):
        return None
    worst = int(torch.argmax(torch.where(wrong, error, torch.zeros_like(error))))
    return (f"{int(wrong.sum())} of {ref.numel()} values outside tolerance (rtol {rtol:g}, atol {atol:g}x{scale:.3g}); "
            f"worst at flat index {worst}: {float(cand.flatten()[worst]):.6g} vs {float(ref.flatten()[worst]):.6g}")


def inputs_changed(before: list, after: list) -> Mismatch | None:
    """The first input a call changed (values, shape or dtype), if any."""
    if len(before) != len(after):
        return Mismatch("inputs", f"{len(after)} inputs came back, {len(before)} were given")
    for index, (old, new) in enumerate(zip(before, after)):
        if isinstance(old, torch.Tensor):
            same = (isinstance(new, torch.Tensor) and old.shape == new.shape and old.dtype == new.dtype
                    and torch.equal(torch.nan_to_num(old), torch.nan_to_num(new)))
        else:
            same = old == new
        if not same:
            return Mismatch(f"input {index}", "the candidate changed an input in place")
    return None
