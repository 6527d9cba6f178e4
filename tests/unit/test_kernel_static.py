"""The kernel static stage, rule by rule, on source text alone."""

from __future__ import annotations

from greenloop.verify.kernel_static import check_candidate

REFERENCE = """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Model(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.linear = nn.Linear(d, d)

    def forward(self, x):
        return F.gelu(self.linear(x))
"""


def candidate(forward: str, extra: str = "", init: str = "self.linear = nn.Linear(d, d)") -> str:
    body = "\n".join("        " + line for line in forward.splitlines())
    return (f"import torch\nimport torch.nn as nn\n{extra}\n\nclass ModelNew(nn.Module):\n"
            f"    def __init__(self, d):\n        super().__init__()\n        {init}\n\n"
            f"    def forward(self, x):\n{body}\n")


def test_the_reference_respelled_is_flagged():
    for forward in ("return torch.nn.functional.gelu(self.linear(x))", "y = self.linear(x)\nreturn y.gelu()"):
        report = check_candidate(candidate(forward), REFERENCE)
        assert report.refusals == []
        assert report.flags == ["calls_reference_op: gelu, linear"]


def test_a_kernel_of_its_own_is_not_flagged():
    triton = candidate("return fused_linear_gelu(x, self.linear.weight)",
                       extra="import triton\nimport triton.language as tl\n\n@triton.jit\ndef k(p):\n    tl.store(p, 0)\n"
                             "def fused_linear_gelu(x, w):\n    return torch.nn.functional.gelu(x @ w.t())\n")
    assert check_candidate(triton, REFERENCE).flags == []
    partial = candidate("return self.linear(x) * torch.sigmoid(1.702 * self.linear(x))")
    assert check_candidate(partial, REFERENCE).flags == []  # uses linear but not gelu


def test_wrapping_the_reference_and_falling_back_are_flagged():
    wraps = REFERENCE + "\n\nclass ModelNew(Model):\n    pass\n"
    assert any(f.startswith("wraps_reference") for f in check_candidate(wraps, REFERENCE).flags)
    fallback = candidate("try:\n    return my_kernel(x)\nexcept Exception:\n    return x")
    assert any(f.startswith("exception_fallback: a try at line") for f in check_candidate(fallback, REFERENCE).flags)
    reraise = candidate("try:\n    return my_kernel(x)\nexcept Exception:\n    raise")
    assert not any(f.startswith("exception_fallback") for f in check_candidate(reraise, REFERENCE).flags)


def test_tampering_is_refused_with_its_line():
    report = check_candidate(candidate("return x", extra="import time\ntime.perf_counter = lambda: 0.0"), REFERENCE)
    assert report.refusals == ["line 4: patches time.perf_counter"]
    report = check_candidate(candidate("return getattr(x, 'f_locals')", extra="from ctypes import c_int"), REFERENCE)
    assert report.refusals == ["line 3: imports from ctypes"]  # getattr with a string is not a reach-in
    report = check_candidate(candidate("setattr(torch, 'relu', None)\nreturn x"), REFERENCE)
    assert "uses setattr" in report.detail


def test_no_modelnew_is_refused():
    assert check_candidate("import torch\n", REFERENCE).refusals == ["no class ModelNew is defined"]
