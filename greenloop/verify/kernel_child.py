"""What runs in the sandbox child for a kernel job: plain arrays across the boundary,
inputs and models built from a problem's source, and the reference and candidate modes
(`kernel_trials` times; `kernel_jobs` hands each job to its mode).

Loaded by the kernel pool's fork servers before their zygote forks (with torch):

- `reference`: exec the problem's source, and for each input set build its inputs
  (seed, globals overridden, dtype, edge values), its init inputs and the seeded
  `Model`; return inputs, init inputs and output as plain arrays. The reference runs in
  a child of its own: a candidate's process never holds a reference output.
- `candidate`: exec the candidate, build `ModelNew` from the same seed and init inputs,
  run it on the input arrays it was given; return each output and the inputs as they
  are after the call (the parent judges both).

Every frame is one JSON line. What the child reports about itself (timings, thread
counts, patched clocks) is evidence the parent weighs, not proof: see
`greenloop.verify.kernel_verify` for what is judged outside the child.
"""

from __future__ import annotations

import base64
import os
import sys
import time

import numpy  # noqa: F401  (loaded before the zygote forks: Tensor.numpy needs it)
import torch

FLOAT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                "float64": torch.float64}
_CLOCK = time.perf_counter_ns  # bound at load, before any candidate code exists
_URANDOM = os.urandom
OUT_OF_MEMORY = (MemoryError, torch.OutOfMemoryError)
# What the harness relies on between trials (clocks, what makes inputs, what GPU timing
# calls on its way), as loaded: a candidate that replaces any of them fails the timing
# stage, however it reached them. Checked after warm-up and after every trial.
_WATCHED = {f"{owner.__name__}.{name}": (owner, name, getattr(owner, name)) for owner, names in (
    (time, ("perf_counter", "perf_counter_ns", "monotonic", "time", "process_time")),
    (torch, ("randn", "rand", "randint", "manual_seed", "zeros_like", "empty", "stack", "cat")),
    (torch.Tensor, ("to", "abs", "clone", "__mul__", "__neg__", "__add__", "contiguous")),
    (torch.cuda, ("synchronize", "Event", "current_stream", "default_stream", "device", "_lazy_init")),
    (torch.cuda.Event, ("record", "elapsed_time", "synchronize")),
    (torch._C, ("_cuda_synchronize",)),  # present in CUDA builds only
) for name in names if hasattr(owner, name)}
# GPU timing calls the original functions, bound here, before any candidate code exists:
# a replacement that puts itself back when called is never looked up while timing.
_CUDA_SYNC, _CUDA_EVENT = torch.cuda.synchronize, torch.cuda.Event  # looked up without starting CUDA
_EVENT_RECORD, _EVENT_ELAPSED = torch.cuda.Event.record, torch.cuda.Event.elapsed_time
_DEVICE_SYNC = getattr(torch._C, "_cuda_synchronize", None)  # what torch.cuda.synchronize() ends in


def _tampered() -> list[str]:
    """Watched attributes replaced since load, and any torch function or dispatch mode
    left active (which would see every input the harness makes)."""
    found = [key for key, (owner, name, fn) in _WATCHED.items() if getattr(owner, name, None) is not fn]
    if torch._C._len_torch_function_stack() or torch._C._len_torch_dispatch_stack():
        found.append("a torch function/dispatch mode is active")
    return found


def _forget_harness() -> None:
    """Before candidate code runs: greenloop's modules leave sys.modules, so importing
    them finds nothing to patch (the static stage refuses the import as well)."""
    for name in [n for n in sys.modules if n == "greenloop" or n.startswith("greenloop.")]:
        del sys.modules[name]


# ---- plain arrays across the boundary ---------------------------------------------------

def encode(value):
    """Tensors become {"dtype", "shape", "data": base64}; lists, tuples and scalars stay."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        raw = tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor
        return {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape),
                "data": base64.b64encode(raw.numpy().tobytes()).decode()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot send a {type(value).__name__} across the sandbox boundary")


DTYPES = {"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
          "complex64", "complex128"}


def decode(value):
    """The inverse of `encode`. Raises ValueError on anything `encode` would not have
    written (the parent decodes what a candidate's child sent)."""
    if isinstance(value, dict) and "data" in value:
        if value.get("dtype") not in DTYPES or not isinstance(value.get("shape"), list):
            raise ValueError("malformed array: unknown dtype or shape")
        dtype = getattr(torch, value["dtype"])
        raw = bytearray(base64.b64decode(value["data"]))
        if dtype == torch.bfloat16:
            array = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=dtype)
        else:
            array = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return array.reshape(value["shape"])
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


# ---- building inputs and models -------------------------------------------------------

def load_source(source: str, name: str) -> dict:
    """Run `source` as the module `name`, from a file of that name in the child's private
    work dir: Triton's @jit reads a kernel's source back from its file."""
    path = os.path.join(os.getcwd(), f"{name}.py")
    with open(path, "w") as fh:
        fh.write(source)
    namespace: dict = {"__name__": name, "__file__": path, "__builtins__": __builtins__}
    exec(compile(source, path, "exec"), namespace)
    return namespace


def make_inputs(problem: dict, spec: dict) -> list:
    """The inputs of one input set: globals overridden, seeded, cast, edge values applied."""
    saved = {k: problem[k] for k in spec.get("globals", {}) if k in problem}
    problem.update(spec.get("globals", {}))
    try:
        torch.manual_seed(spec["seed"])
        inputs = list(problem["get_inputs"]())
        init = list(problem["get_init_inputs"]())
    finally:
        problem.update(saved)
    dtype = FLOAT_DTYPES[spec.get("dtype", "float32")]
    return [_edit(x, dtype, spec.get("edge")) for x in inputs], init


def _edit(x, dtype, edge: str | None):
    if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
        return x
    x = x.to(dtype)
    if edge == "zeros":
        return torch.zeros_like(x)
    if edge == "large":
        return x * 1000
    if edge == "negative":
        return -x.abs()
    return x


def build_model(cls, init: list, spec: dict, device: str):
    torch.manual_seed(spec.get("weight_seed", 0))
    model = cls(*init)
    return model.to(device=device, dtype=FLOAT_DTYPES[spec.get("dtype", "float32")]).eval()


def _to(values: list, device: str) -> list:
    return [v.to(device) if isinstance(v, torch.Tensor) else v for v in values]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        _CUDA_SYNC()


def describe(exc: BaseException) -> dict:
    return {"raise": type(exc).__name__, "msg": str(exc)[:300]}


# ---- the reference and candidate modes (`kernel_trials`: timing) -----------------------

def run_reference(job: dict, write) -> None:
    problem = load_source(job["problem"], "kernel_problem")
    device = job.get("device", "cpu")
    for index, spec in enumerate(job["sets"]):
        try:
            inputs, init = make_inputs(problem, spec)
            sent = encode(inputs)  # before the call: a reference that changes its inputs is judged on what it was given
            model = build_model(problem["Model"], init, spec, device)
            with torch.no_grad():
                out = model(*_to(inputs, device))
            _sync(device)
            write({"i": index, "inputs": sent, "init": encode(init), "out": encode(out)}, flush=False)
        except BaseException as exc:  # the problem itself is broken: the verifier says so
            write({"i": index, **describe(exc)})
            return


def run_candidate(job: dict, write) -> None:
    device = job.get("device", "cpu")
    _forget_harness()
    try:
        namespace = load_source(job["candidate"], "kernel_candidate")
        cls = namespace["ModelNew"]
    except BaseException as exc:
        write({"phase": "compile", **describe(exc)})
        return
    write({"phase": "compile", "ok": True})
    models: dict[str, object] = {}
    for index, spec in enumerate(job["sets"]):
        try:
            key = repr((spec["init"], spec.get("dtype"), spec.get("weight_seed")))
            if key not in models:
                models[key] = build_model(cls, decode(spec["init"]), spec, device)
            inputs = _to(decode(spec["inputs"]), device)
            with torch.no_grad():
                out = models[key](*inputs)
            _sync(device)
            frame = {"i": index, "type": type(out).__name__, "out": encode(out) if type(out) is torch.Tensor else None,
                     "after": encode(inputs)}
        except OUT_OF_MEMORY:
            frame = {"i": index, "memory": True}
        except BaseException as exc:
            frame = {"i": index, **describe(exc)}
        write(frame)  # each at once: a run cut short still reports the sets it finished
