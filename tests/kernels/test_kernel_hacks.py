"""Known ways to game a kernel verifier, each against the real funnel in the sandbox:
each must fail (or earn no speedup credit) for the reason it deserves, while an honest
candidate that is really faster is credited."""

from __future__ import annotations

import pytest

from greenloop.tasks.kernels import builtin_problems, load_problems
from greenloop.types import Outcome
from greenloop.verify.kernel_verify import KernelConfig, KernelVerifier
from tests.kernels.candidates import fenced, model_new

SOFTMAX = next(p for p in builtin_problems() if p.name == "level1/softmax")

HONEST = model_new("e = (x - x.amax(-1, keepdim=True)).exp()\nreturn e / e.sum(-1, keepdim=True)")


@pytest.fixture(scope="module")
def verifier():
    with KernelVerifier(KernelConfig(trials=12, warmup=3, min_time_s=0.0, keep_fraction=1.0)) as v:
        yield v


def verdicts(verifier, completions, problem=SOFTMAX):
    return [r.verdict for r in verifier.verify(problem, completions)]


def test_honest_rewrite_passes_unflagged(verifier):
    (result,) = verifier.verify(SOFTMAX, [HONEST])
    assert result.verdict.passed, result.verdict.detail
    assert result.flags == [] and result.verdict.stage == "timing"
    assert 0.5 <= result.reward <= 1.0


def test_answer_wrong_only_when_timed_is_caught(verifier):
    """Right for the checked calls, then fast garbage: the timed outputs are checked too."""
    sneaky = model_new("self.calls += 1\nif self.calls > 8:\n    return torch.zeros_like(x)\n"
                       "e = (x - x.amax(-1, keepdim=True)).exp()\nreturn e / e.sum(-1, keepdim=True)",
                       init="self.calls = 0")
    (verdict,) = verdicts(verifier, [sneaky])
    assert verdict.outcome is Outcome.FAILED and verdict.stage == "timing"
    assert "timed call" in verdict.detail and "wrong result" in verdict.detail


def test_patched_clock_is_refused_or_caught(verifier):
    plain = fenced(HONEST.split("```python\n")[1].split("```")[0], "import time\ntime.perf_counter_ns = lambda: 0\n")
    hidden = HONEST.replace("import torch\n", "import torch\nimport time as clock_module\nc = clock_module\n"
                            "c.perf_counter_ns = lambda: 0\n", 1)
    refused, caught = verdicts(verifier, [plain, hidden])
    assert refused.outcome is Outcome.REJECTED and refused.stage == "static" and "patches time" in refused.detail
    assert caught.outcome is Outcome.FAILED and caught.stage == "timing"
    assert caught.detail == "the candidate replaced what timing relies on (time.perf_counter_ns)"


def test_reaching_around_the_static_rules_is_caught_when_timed(verifier):
    """What the static stage cannot see, the timing child checks: inputs made through a
    replaced torch.randn, and thread settings changed through getattr."""
    hooked = HONEST.replace("import torch\n", "import torch\nalias = torch\nalias.randn = alias.zeros\n", 1)
    threads = model_new("e = (x - x.amax(-1, keepdim=True)).exp()\nreturn e / e.sum(-1, keepdim=True)",
                        init="getattr(torch, 'set_num_' + 'threads')(2)")
    hooked_verdict, threads_verdict = verdicts(verifier, [hooked, threads])
    assert hooked_verdict.stage == "timing" and "torch.randn" in hooked_verdict.detail, hooked_verdict.detail
    # Paired timing (a CPU): the timed process may start no thread, so more torch threads end it.
    assert threads_verdict.stage == "timing" and threads_verdict.outcome is Outcome.FAILED
    assert "may start no thread" in threads_verdict.detail and "Thread creation failed" in threads_verdict.detail, \
        threads_verdict.detail


def test_changed_thread_settings_are_caught_when_timing_is_not_paired():
    """Unpaired timing (a GPU's, or `paired=False`) reads the settings back after the trials."""
    threads = model_new("e = (x - x.amax(-1, keepdim=True)).exp()\nreturn e / e.sum(-1, keepdim=True)",
                        init="getattr(torch, 'set_num_' + 'threads')(2)")
    with KernelVerifier(KernelConfig(trials=12, warmup=3, min_time_s=0.1, paired=False)) as unpaired:
        (verdict,) = verdicts(unpaired, [threads])
    assert verdict.stage == "timing" and "torch threads 2" in verdict.detail, verdict.detail


def test_a_replacement_that_puts_itself_back_is_caught_between_trials(verifier):
    """Swapped in during one timed call and undone by its own first use, it is gone by the
    end of the run: the check after every trial still sees it."""
    sneaky = HONEST.replace("import torch\n", "import torch\nalias = torch\n", 1).replace(
        "        e = (x - x.amax", "        self.calls += 1\n        if self.calls == 20:\n"
        "            real = alias.randn\n\n"
        "            def once(*args, **kwargs):\n                alias.randn = real\n"
        "                return real(*args, **kwargs)\n            alias.randn = once\n        e = (x - x.amax", 1).replace(
        "super().__init__()\n", "super().__init__()\n        self.calls = 0\n", 1)
    (verdict,) = verdicts(verifier, [sneaky])
    assert verdict.stage == "timing" and "torch.randn" in verdict.detail, verdict.detail


@pytest.mark.parametrize("code, reason", [
    ("import ctypes\n", "imports ctypes"),
    ("import threading\n", "imports threading"),
    ("import sys\nf = sys._getframe\n", "reaches into _getframe"),
    ("x = eval('1')\n", "uses eval"),
    ("torch.softmax = lambda x, dim: x\n", "patches torch.softmax"),
    ("import torch as T\nT.randn = T.zeros\n", "patches T.randn"),
    ("from torch import Tensor\nTensor.to = None\n", "patches Tensor.to"),
    ("import greenloop.verify.kernel_child as k\n", "imports greenloop"),
    ("import os\nos.write(3, b'')\n", "imports os"),
    ("from torch.overrides import TorchFunctionMode\n", "imports from torch.overrides"),
    ("f = open\n", "uses open"),
])
def test_tampering_is_refused_before_running(verifier, code, reason):
    (verdict,) = verdicts(verifier, [HONEST.replace("import torch.nn as nn\n", "import torch.nn as nn\n" + code, 1)])
    assert verdict.outcome is Outcome.REJECTED and reason in verdict.detail


def test_failures_name_what_went_wrong(verifier):
    cases = {
        "no_code": "I would use a fused kernel here.",
        "no_class": fenced("def forward(x):\n    return x\n"),
        "raises": model_new("raise RuntimeError('kernel launch failed')"),
        "not_a_tensor": model_new("return x.tolist()"),
        "nan": model_new("return x * float('nan')"),
        "shape": model_new("return torch.softmax(x, dim=-1)[:, :10]"),
        "hangs": model_new("while True:\n    pass"),
        "import_error": fenced("import not_a_module\n\n\nclass ModelNew(nn.Module):\n    pass\n"),
    }
    config = KernelConfig(trials=5, warmup=1, timeout_s=5.0, timing=False)
    with KernelVerifier(config) as quick:
        got = dict(zip(cases, verdicts(quick, list(cases.values()))))
    assert got["no_code"].stage == "extract" and got["no_code"].outcome is not Outcome.PASSED
    assert got["no_class"].outcome is Outcome.REJECTED and "no class ModelNew" in got["no_class"].detail
    assert got["raises"].stage == "smoke" and "RuntimeError: kernel launch failed" in got["raises"].detail
    assert "not a torch.Tensor" in got["not_a_tensor"].detail
    assert "NaN" in got["nan"].detail
    assert ", 10), expected (" in got["shape"].detail
    assert got["hangs"].outcome is Outcome.TIMEOUT
    assert got["import_error"].stage == "compile" and "ModuleNotFoundError" in got["import_error"].detail
    assert not any(v.passed for v in got.values())


SLOW_SUM = '''"""Row sums, computed one row at a time (a slow reference on purpose).

Variants: none.
"""
import torch
import torch.nn as nn

rows = 256
cols = 512


class Model(nn.Module):
    def forward(self, x):
        return torch.stack([row.sum() for row in x])


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []
'''

FAST_SUM = fenced("class ModelNew(nn.Module):\n    def forward(self, x):\n        return x.sum(dim=1)\n")


def test_real_large_speedup_is_rechecked_and_credited(tmp_path, verifier):
    (tmp_path / "slow_sum.py").write_text(SLOW_SUM)
    (problem,) = load_problems(tmp_path)
    (result,) = verifier.verify(problem, [FAST_SUM])
    meta = result.verdict.meta
    assert result.verdict.passed, result.verdict.detail
    assert meta["speedup"] > 10 and "recheck" in meta and meta["recheck"]["speedup"] > 5, (result.verdict.detail, meta)
    assert meta["credited_speedup"] > 4 and result.reward == 1.0, (result.verdict.detail, meta)
