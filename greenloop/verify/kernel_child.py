"""What runs in the sandbox child for a kernel job: build a model, run it, time it.

Loaded by the kernel pool's fork servers before their zygote forks (with torch), and
handed jobs by `greenloop.sandbox.child.run_job`. A job has a `mode`:

- `reference`: exec the problem's source, and for each input set build its inputs
  (seed, globals overridden, dtype, edge values), its init inputs and the seeded
  `Model`; return inputs, init inputs and output as plain arrays. The reference runs in
  a child of its own: a candidate's process never holds a reference output.
- `candidate`: exec the candidate, build `ModelNew` from the same seed and init inputs,
  run it on the input arrays it was given; return each output and the inputs as they
  are after the call (the parent judges both).
- `timing`: warm up, then time trials (at least `trials`, and more until the timed calls
  add up to `min_time_s`, at most `max_trials` or `budget_s` of wall time), each on fresh inputs from `get_inputs()`
  under a seed drawn from os.urandom after the previous trial (so no output can be
  computed ahead). Inputs are made outside the timed region; the clock and the random source are
  bound before any candidate code runs. A random subset of the timed outputs (each with
  probability `keep_fraction`, up to `max_kept`) is kept with its seed, for the parent to
  check against the reference.

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


# ---- the three modes -------------------------------------------------------------------

def run_job(job: dict, write, finish) -> None:
    torch.set_num_threads(int(job.get("threads", 1)))
    note = _pin(job.get("cpu"))
    mode = job["mode"]
    write({"phase": "start", "mode": mode, "pinned": note}, flush=False)
    if mode == "reference":
        _reference(job, write)
    elif mode == "candidate":
        _candidate(job, write)
    elif mode == "timing":
        _timing(job, write)
    write({"end": True})
    finish()


def _pin(cpu: int | None) -> str:
    if cpu is None:
        return "no"
    try:
        os.sched_setaffinity(0, {int(cpu)})
        return f"cpu {cpu}"
    except (OSError, ValueError) as exc:
        return f"could not pin ({exc})"


def _reference(job: dict, write) -> None:
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


def _candidate(job: dict, write) -> None:
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


def _thread_count() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _timing(job: dict, write) -> None:
    device = job.get("device", "cpu")
    spec = job["spec"]
    threads_start = _thread_count()
    try:
        problem = load_source(job["problem"], "kernel_problem")
        if job.get("candidate"):
            _forget_harness()
        cls = load_source(job["candidate"], "kernel_candidate")["ModelNew"] if job.get("candidate") else problem["Model"]
        model = build_model(cls, decode(spec["init"]), spec, device)
        trials = _trials(job, problem, model, device, spec)
    except OUT_OF_MEMORY:
        write({"phase": "timing", "memory": True})
        return
    except BaseException as exc:
        write({"phase": "timing", **describe(exc)})
        return
    write({"phase": "timing", **trials, "threads_start": threads_start, "patched": trials["patched"] + _tampered(),
           "settings": _settings_changed(job)})


def _settings_changed(job: dict) -> list[str]:
    """Thread count and core pinning as the harness set them, or what changed."""
    changed = []
    if torch.get_num_threads() != int(job.get("threads", 1)):
        changed.append(f"torch threads {torch.get_num_threads()}")
    if job.get("cpu") is not None and hasattr(os, "sched_getaffinity") and os.sched_getaffinity(0) != {int(job["cpu"])}:
        changed.append("CPU affinity")
    return changed


def _trials(job: dict, problem: dict, model, device: str, spec: dict) -> dict:
    keep_per_256 = int(job.get("keep_fraction", 0.25) * 256)
    min_total, max_kept, max_trials = job.get("min_time_s", 0.0), job.get("max_kept", 16), job.get("max_trials", 300)
    flush = _l2_flusher(device)
    with torch.no_grad():
        last = _warm_up(job, problem, model, device, spec)
        # The kept copies' buffers, made now: keeping a copy then allocates nothing between
        # timed calls (fresh allocations there slowed the calls after them).
        buffers = [torch.empty_like(last) for _ in range(max_kept)] if keep_per_256 and type(last) is torch.Tensor else []
        del last
        threads_after_warmup, patched = _thread_count(), _tampered()
        times, reservoir, threads_max, wrong_type = [], [], threads_after_warmup, None
        stop_at = _CLOCK() + 1e9 * job.get("budget_s", 3.0)  # inputs are made between trials: bound that too
        while len(times) < job["trials"] or (sum(times) < min_total and len(times) < max_trials and _CLOCK() < stop_at):
            seed = int.from_bytes(_URANDOM(4), "little")
            pad = _random_pad()
            inputs, _ = make_inputs(problem, {**spec, "seed": seed})
            inputs = _to(inputs, device)
            flush()
            out, seconds = _timed_call(model, inputs, device)
            times.append(seconds)
            patched = sorted({*patched, *_tampered()})  # a replacement made during this trial
            threads_max = max(threads_max, _thread_count())
            if type(out) is not torch.Tensor:
                wrong_type = type(out).__name__
                break
            _keep(reservoir, len(times), max_kept, keep_per_256, seed, out, buffers)
            del pad
    kept = [{"seed": seed, "out": encode(out)} for seed, out in reservoir]
    return {"times": times, "kept": kept, "threads_warm": threads_after_warmup, "threads_max": threads_max,
            "wrong_type": wrong_type, "patched": patched}


def _random_pad():
    """Up to 4 MB allocated before a call's tensors: it moves where they land, so an
    alignment that happens to suit (or hurt) a kernel is averaged over, not fixed per
    process."""
    return torch.empty(64 * int.from_bytes(_URANDOM(2), "little") % (1 << 16), dtype=torch.uint8)


def _warm_up(job: dict, problem: dict, model, device: str, spec: dict):
    """`warmup` untimed calls, each on fresh inputs behind a random pad, as the trials
    are. Returns the last output."""
    out = None
    for _ in range(job["warmup"]):
        pad = _random_pad()
        inputs, _ = make_inputs(problem, {**spec, "seed": int.from_bytes(_URANDOM(4), "little")})
        out = model(*_to(inputs, device))
        del pad
    _sync(device)
    return out


def _keep(reservoir: list, trial: int, size: int, keep_per_256: int, seed: int, out, buffers: list) -> None:
    """Reservoir sampling over every trial (each equally likely to be checked, the last as
    much as the first), after a coin with `keep_fraction`: a copy is kept, so the
    candidate cannot change it afterwards; into a buffer made before timing when the
    output fits one."""
    if not keep_per_256 or _URANDOM(1)[0] >= keep_per_256:
        return
    if len(reservoir) < size:
        reservoir.append((seed, _copy(out, buffers.pop() if buffers else None)))
        return
    slot = int.from_bytes(_URANDOM(4), "little") % trial
    if slot < size:
        reservoir[slot] = (seed, _copy(out, reservoir[slot][1]))


def _copy(out, buffer):
    """`out` copied into `buffer` when it has the same shape, dtype, strides and device,
    else into a new tensor."""
    out = out.detach()
    if buffer is not None and (buffer.shape, buffer.dtype, buffer.stride(), buffer.device) == \
            (out.shape, out.dtype, out.stride(), out.device):
        return buffer.copy_(out)
    return out.clone()


def _timed_call(model, inputs: list, device: str):
    """One trial: wall clock on a CPU, CUDA events on a GPU (the end recorded after a
    device-wide synchronize, so no work queued on another stream escapes the measurement)."""
    if device.startswith("cuda"):
        start, end = _CUDA_EVENT(enable_timing=True), _CUDA_EVENT(enable_timing=True)
        _DEVICE_SYNC()  # CUDA is up: the warm-up ran on the device
        _EVENT_RECORD(start)
        out = model(*inputs)
        _DEVICE_SYNC()  # device-wide: work the candidate queued on another stream counts
        _EVENT_RECORD(end)
        _DEVICE_SYNC()
        return out, _EVENT_ELAPSED(start, end) / 1e3
    started = _CLOCK()
    out = model(*inputs)
    return out, (_CLOCK() - started) / 1e9


def _l2_flusher(device: str):
    """On a GPU, overwrite a buffer larger than L2 before each trial so no trial starts
    with its operands cached; on a CPU trials run back to back (documented)."""
    if not device.startswith("cuda"):
        return lambda: None
    buffer = torch.empty(64 << 20, dtype=torch.int32, device=device)  # 256 MB
    return buffer.zero_


