"""Triton candidates on a GPU: the same funnel with device="cuda" (CUDA events, an L2
flush between trials, the GPU's device nodes bound into the sandbox). Skipped without a
CUDA device and Triton."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)
pytest.importorskip("triton")

from greenloop.tasks.kernels import builtin_problems  # noqa: E402
from greenloop.verify.kernel_verify import KernelConfig, KernelVerifier  # noqa: E402

RELU = next(p for p in builtin_problems() if p.name == "level1/relu")

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


def test_triton_relu_passes_unflagged_on_gpu():
    config = KernelConfig(device="cuda", trials=20, warmup=5, input_sets=3)
    with KernelVerifier(config) as verifier:
        (result,) = verifier.verify(RELU, [TRITON_RELU])
    assert result.verdict.passed, result.verdict.detail
    assert result.flags == []
    assert result.verdict.meta["speedup"] > 0
