"""Triton candidates on a GPU: the same funnel with device="cuda" (CUDA events, an L2
flush between trials, the GPU's device nodes bound into the sandbox), and the GPU's own
ways to game a timer: work left on another stream, replaced CUDA timing calls. Skipped
without a CUDA device and Triton."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)
pytest.importorskip("triton")

from greenloop.tasks.kernels import builtin_problems  # noqa: E402
from greenloop.types import Outcome  # noqa: E402
from greenloop.verify.kernel_verify import KernelConfig, KernelVerifier  # noqa: E402
from tests.kernels.candidates import HEADER, model_new  # noqa: E402

RELU = next(p for p in builtin_problems() if p.name == "level1/relu")
SOFTMAX = next(p for p in builtin_problems() if p.name == "level1/softmax")

MANUAL = "e = (x - x.amax(-1, keepdim=True)).exp()\nreturn e / e.sum(-1, keepdim=True)"


@pytest.fixture(scope="module")
def verifier():
    with KernelVerifier(KernelConfig(device="cuda", trials=20, warmup=5, input_sets=3)) as v:
        yield v


TRITON_RELU = '''```python
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
        return out
```'''


def test_triton_relu_passes_unflagged_on_gpu(verifier):
    (result,) = verifier.verify(RELU, [TRITON_RELU])
    assert result.verdict.passed, result.verdict.detail
    assert result.flags == []
    assert result.verdict.meta["speedup"] > 0


def test_wrong_triton_kernel_fails_on_gpu(verifier):
    wrong = TRITON_RELU.replace("tl.maximum(x, 0.0)", "tl.maximum(x, 0.5)")
    (result,) = verifier.verify(RELU, [wrong])
    assert not result.verdict.passed and "outside tolerance" in result.verdict.detail, result.verdict.detail


def test_work_left_on_another_stream_is_timed(verifier):
    """The same math queued on a side stream: the timer waits for the whole device, so
    it earns no speedup over the reference (an event on the default stream alone would
    have timed almost nothing)."""
    on_side = "".join(f"    {line}\n" for line in MANUAL.splitlines())
    side = model_new("self.side.wait_stream(torch.cuda.current_stream())\nwith torch.cuda.stream(self.side):\n"
                     + on_side, init="self.side = torch.cuda.Stream()")
    (result,) = verifier.verify(SOFTMAX, [side])
    assert result.verdict.passed, result.verdict.detail
    assert result.verdict.meta["speedup"] < 3, result.verdict.meta


def test_replaced_cuda_timing_calls_are_refused_or_caught(verifier):
    plain = model_new(MANUAL, header=HEADER + "torch.cuda.synchronize = lambda: None\n")
    hidden = model_new(MANUAL, header=HEADER + "alias = torch.cuda.Event\nalias.elapsed_time = lambda self, end: 1e-6\n")
    refused, caught = (r.verdict for r in verifier.verify(SOFTMAX, [plain, hidden]))
    assert refused.outcome is Outcome.REJECTED and refused.stage == "static", refused.detail
    assert caught.outcome is Outcome.FAILED and caught.stage == "timing", caught.detail
    assert "Event.elapsed_time" in caught.detail


def test_gpu_candidates_run_in_the_minimal_root(verifier):
    """The device check passed inside the minimal root (CUDA and a Triton kernel work
    there), so candidates did not fall back to the host tree read-only."""
    verifier.verify(RELU, [TRITON_RELU])
    isolation = verifier.isolation
    if isolation["level"] != "namespaces":
        pytest.skip("no mount namespace here")
    assert isolation["filesystem"].startswith("minimal root"), isolation
    assert not [note for note in isolation["notes"] if "minimal root" in note], isolation["notes"]
