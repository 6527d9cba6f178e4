"""The device check a GPU kernel pool runs once per fork server, inside a copy of the
candidates' minimal root and under a candidate's uid, before trusting that root: CUDA
starts there and runs an op, and, where Triton is installed, a Triton kernel compiles
(gcc, ptxas and the driver library found from inside the root) and gives the right
answer. If any of that fails, the pool's candidates get the host tree read-only instead,
and the isolation notes carry the error (see `greenloop.sandbox.rootfs.probe_root`).
"""

from __future__ import annotations

import importlib.util

import torch

from greenloop.verify.kernel_child import load_source

# Loaded from a file in the work dir, as candidates are: Triton's @jit reads source back.
TRITON_TWICE = '''
import triton
import triton.language as tl


@triton.jit
def twice(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) * 2, mask=mask)
'''


def device_ready() -> None:
    """Raise unless CUDA (and Triton, where installed) works here."""
    x = torch.arange(1000, dtype=torch.float32, device="cuda")
    if float((x + 1).sum()) != 500500.0:
        raise RuntimeError("a CUDA addition gave a wrong sum")
    if importlib.util.find_spec("triton") is None:
        return
    twice = load_source(TRITON_TWICE, "greenloop_device_check")["twice"]
    out = torch.empty_like(x)
    twice[(8,)](x, out, x.numel(), BLOCK=128)
    if not torch.equal(out, x * 2):
        raise RuntimeError("a Triton kernel compiled but gave a wrong answer")
