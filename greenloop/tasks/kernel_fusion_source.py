"""The source of a fusion task: a chain cut out of a model, written as a KernelBench problem.

`write_problem` turns a `ChainCut` (the chain's own fx graph, the modules and tensors it
reads, its outside inputs and the value the source model computed) into a problem file:
submodules rebuilt as `nn.<Class>(...)` calls read from the module's attributes (and checked
by constructing them), tensors the source set by hand redrawn over the same range, the
graph's generated code as `Model.forward`, inputs of the recorded shapes with the leading
dimension as `batch_size`. The file is executed before it is returned: it must compute the
source's value for the chain from the source's weights, and the shape, dtype and edge
variants it lists are the ones it ran with finite output. Inputs and models are built by
the kernel verifier's own functions, so what is checked here is what the verifier runs.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.fx import GraphModule

from greenloop.verify.kernel_child import build_model, make_inputs

EDGES = ("zeros", "large", "negative")
MAX_OUTPUT_ELEMENTS = 256 * 1024  # the problem format's bound on one output


class FusionError(Exception):
    """A problem or chain that cannot become a fusion task; the message says why."""


@dataclass
class ChainCut:
    """A chain cut out of its model, with what the source computed for it."""

    graph_module: GraphModule   # the chain alone; its code becomes Model.forward
    modules: dict               # attribute name -> source nn.Module, rebuilt in __init__
    tensors: dict               # attribute name -> source tensor on the model itself
    inputs: list                # the chain's outside tensors as the source computed them
    expected: torch.Tensor      # the source's value of the chain's last node


def is_literal(value) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def exec_problem(source: str, label: str) -> dict:
    """Run a problem file's source in a namespace of its own (trusted source only). Unlike
    the verifier's child (`load_source`, which needs a file for Triton), no file is written:
    this runs in the user's process, whose current directory is theirs."""
    namespace: dict = {"__name__": label, "__builtins__": __builtins__}
    exec(compile(source, label, "exec"), namespace)  # noqa: S102 (trusted problem source)
    return namespace


# ---- writing the problem file ------------------------------------------------------------

def _compact(value):
    """(3, 3) -> 3: the form a model's author writes, which the module expands again."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return value[0] if isinstance(value[0], int) and not isinstance(value[0], bool) else value
    return value


def _constructor_kwargs(module: nn.Module) -> dict:
    """The keyword arguments that rebuild the module, read from its attributes."""
    cls = type(module)
    kwargs = {}
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in ("device", "dtype"):
            continue
        if name == "bias" and isinstance(param.default, bool):
            value = getattr(module, "bias", None) is not None
        elif hasattr(module, name):
            value = getattr(module, name)
        elif param.default is not param.empty:
            continue
        else:
            raise FusionError(f"cannot rebuild {cls.__name__}: it keeps no attribute {name!r}")
        value = _compact(tuple(value) if isinstance(value, (torch.Size, list)) else value)
        if param.default is not param.empty and is_literal(param.default) and value == param.default:
            continue
        if not is_literal(value):
            raise FusionError(f"cannot rebuild {cls.__name__}: {name}={value!r} is not a literal")
        kwargs[name] = value
    return kwargs


def _constructor(module: nn.Module) -> str:
    """`nn.Class(arg=...)` rebuilding the module, verified by constructing it and comparing."""
    kwargs = _constructor_kwargs(module)
    rebuilt = type(module)(**kwargs)
    if repr(rebuilt) != repr(module):
        raise FusionError(f"cannot rebuild {module!r}: the rebuilt one is {rebuilt!r}")
    new, old = ({k: (tuple(v.shape), v.dtype) for k, v in m.state_dict().items()} for m in (rebuilt, module))
    for key in sorted(new.keys() | old.keys()):
        if new.get(key) != old.get(key):
            raise FusionError(f"cannot rebuild {module!r}: its {key} is {old.get(key)}, a rebuilt "
                              f"one's {new.get(key)}")
    args = ", ".join(f"{k}={json.dumps(v) if isinstance(v, str) else repr(v)}" for k, v in kwargs.items())
    return f"nn.{type(module).__name__}({args})"


def _dims(parts) -> str:
    return ", ".join(str(p) for p in parts) if len(parts) else "()"


def _dtype_arg(tensor: torch.Tensor) -> str:
    return "" if tensor.dtype == torch.float32 else f", dtype={tensor.dtype}"


def _draw(tensor: torch.Tensor) -> str:
    """An in-place draw resembling the source's tensor: its constant, or its range."""
    if not tensor.is_floating_point():
        raise FusionError(f"the chain reads a {tensor.dtype} tensor; only floating ones are drawn")
    data = tensor.detach().double()
    low, high = (float(data.min()), float(data.max())) if data.numel() else (0.0, 0.0)
    return f"fill_({low:.4g})" if low == high else f"uniform_({low:.4g}, {high:.4g})"


def _redraws(name: str, module: nn.Module) -> list[str]:
    """Lines restoring what the source set by hand: a tensor a fresh module holds constant
    (a norm's scale, its running statistics) but the source changed."""
    fresh = dict(type(module)(**_constructor_kwargs(module)).state_dict())
    lines = []
    for key, tensor in module.state_dict().items():
        start = fresh[key]
        if not tensor.is_floating_point() or start.numel() == 0 or start.min() != start.max():
            continue
        if not torch.equal(tensor, start):
            lines.append(f"self.{name}.{key}.{_draw(tensor)}")
    return lines


def _init_lines(cut: ChainCut) -> list[str]:
    lines = [f"self.{name} = {_constructor(module)}" for name, module in cut.modules.items()]
    for name, tensor in cut.tensors.items():
        drawn = f"torch.empty({_dims(tensor.shape)}{_dtype_arg(tensor)}).{_draw(tensor)}"
        if isinstance(tensor, nn.Parameter):
            lines.append(f"self.{name} = nn.Parameter({drawn})")
        else:
            lines.append(f'self.register_buffer("{name}", {drawn})')
    redraws = [line for name, module in cut.modules.items() for line in _redraws(name, module)]
    if redraws:
        lines += ["with torch.no_grad():", *("    " + line for line in redraws)]
    return lines


def _functional_name(match: re.Match) -> str:
    """`torch._C._nn.gelu` as its users write it, `torch.nn.functional.gelu`, when the same."""
    name = match[1]
    same = getattr(torch.nn.functional, name, None) is getattr(torch._C._nn, name, 0)
    return f"torch.nn.functional.{name}" if same else match[0]


def _forward_lines(graph_module: GraphModule) -> tuple[list[str], list[str]]:
    """The chain's generated forward as method lines, and the imports its code needs."""
    code = re.sub(r"torch\._C\._nn\.(\w+)", _functional_name, graph_module.code.strip())
    imports = []
    for name in graph_module.graph.python_code(root_module="self").globals:
        if name == "torch" or not re.search(rf"(?<![\w.]){re.escape(name)}\b", code):
            continue
        if name not in ("inf", "nan"):
            raise FusionError(f"the chain's code needs {name!r}, which a problem file cannot import")
        imports.append(f"from math import {name}")
    lines = [re.sub(r";\s+(\w+ = )+None$", "", line.rstrip()) for line in code.splitlines()]
    return ["    " + line if line else "" for line in lines], imports


def _input_exprs(cut: ChainCut) -> tuple[int | None, list[str]]:
    """The batch size bound to `batch_size` (None if none), and get_inputs' expressions."""
    for tensor in cut.inputs:
        if not tensor.is_floating_point():
            raise FusionError(f"the chain reads a {tensor.dtype} tensor; only floating inputs are drawn")
    first = cut.inputs[0] if cut.inputs else None
    batch = int(first.shape[0]) if first is not None and first.ndim >= 2 else None
    exprs = []
    for tensor in cut.inputs:
        dims = list(tensor.shape)
        if batch is not None and tensor.ndim == first.ndim and dims[0] == batch:
            dims[0] = "batch_size"
        exprs.append(f"torch.randn({_dims(dims)}{_dtype_arg(tensor)})")
    return batch, exprs


def _body(cut: ChainCut) -> tuple[str, int | None]:
    """The problem file without its docstring and its variant literals."""
    forward, imports = _forward_lines(cut.graph_module)
    batch, exprs = _input_exprs(cut)
    lines = ["import torch", "import torch.nn as nn", *imports, "", ""]
    if batch is not None:
        lines += [f"batch_size = {batch}", "", ""]
    lines += ["class Model(nn.Module):", "    def __init__(self):", "        super().__init__()",
              *("        " + line for line in _init_lines(cut)), "", *forward, "", "",
              "def get_inputs():", f"    return [{', '.join(exprs)}]", "", "",
              "def get_init_inputs():", "    return []", ""]
    return "\n".join(lines), batch


# ---- running the emitted problem ---------------------------------------------------------

def _run(namespace: dict, spec: dict) -> torch.Tensor:
    """The emitted model's output on one input set, built as the verifier builds it."""
    inputs, init = make_inputs(namespace, {"seed": 0, **spec})
    model = build_model(namespace["Model"], init, spec, "cpu")
    with torch.no_grad():
        out = model(*inputs)
    if not isinstance(out, torch.Tensor):
        raise FusionError(f"the emitted forward returns a {type(out).__name__}, not a tensor")
    return out


def _runs_finite(namespace: dict, spec: dict) -> bool:
    try:
        return bool(torch.isfinite(_run(namespace, spec)).all())
    except Exception:  # noqa: BLE001 - a variant the model cannot take is left out, whatever the error
        return False


def _check_same(namespace: dict, cut: ChainCut) -> None:
    """Run the emitted model on the default inputs, then on the chain's own inputs with the
    source's weights, and require the source's value for the chain."""
    if not torch.isfinite(_run(namespace, {})).all():
        raise FusionError("the emitted model's output is not finite on its default inputs")
    model = build_model(namespace["Model"], [], {}, "cpu")
    state = {f"{name}.{key}": value for name, module in cut.modules.items()
             for key, value in module.state_dict().items()}
    model.load_state_dict({**state, **cut.tensors})
    with torch.no_grad():
        out = model(*(x.clone() for x in cut.inputs))
    if out.shape != cut.expected.shape or not torch.allclose(out, cut.expected, rtol=1e-5, atol=1e-6):
        raise FusionError("the emitted model does not compute the source's value for the chain")


def _variants(namespace: dict, batch: int | None) -> dict:
    """The variant literals, each kept only when the emitted model ran it with finite output."""
    found = {"SHAPE_VARIANTS": [], "DTYPES": ["float32"], "EDGE_CASES": []}
    if batch is not None:
        other = batch // 2 + 1 if batch // 2 + 1 != batch else batch + 1
        if _runs_finite(namespace, {"globals": {"batch_size": other}}):
            found["SHAPE_VARIANTS"].append({"batch_size": other})
    if _runs_finite(namespace, {"dtype": "float64"}):
        found["DTYPES"].append("float64")
    found["EDGE_CASES"] = [edge for edge in EDGES if _runs_finite(namespace, {"edge": edge})]
    return found


def _docstring(ops: tuple[str, ...], source_name: str, found: dict) -> str:
    shapes = "shapes vary batch_size" if found["SHAPE_VARIANTS"] else "shapes fixed"
    dtypes = " and ".join(found["DTYPES"])
    edges = ", ".join(found["EDGE_CASES"]) or "none"
    return (f'"""Fused {" + ".join(ops)} from {source_name}.\n\n'
            f'Variants: {shapes}; dtypes {dtypes}; edges {edges}.\n"""\n')


def write_problem(cut: ChainCut, ops: tuple[str, ...], source_name: str) -> str:
    """The checked problem file for a cut chain. Raises FusionError when it cannot be written
    or does not compute the source's value."""
    if cut.expected.numel() > MAX_OUTPUT_ELEMENTS:
        raise FusionError(f"the chain's output has {cut.expected.numel()} elements, over the "
                          f"{MAX_OUTPUT_ELEMENTS} a problem may return")
    body, batch = _body(cut)
    found = _variants(exec_problem(body, "<fused body>"), batch)
    tail = ["LEVEL = 2", 'CATEGORY = "fused"']
    if found["SHAPE_VARIANTS"]:
        tail.append(f"SHAPE_VARIANTS = {json.dumps(found['SHAPE_VARIANTS'])}")
    tail += [f"DTYPES = {json.dumps(found['DTYPES'])}", f"EDGE_CASES = {json.dumps(found['EDGE_CASES'])}"]
    text = _docstring(ops, source_name, found) + body + "\n\n" + "\n".join(tail) + "\n"
    _check_same(exec_problem(text, f"<fused {source_name}>"), cut)
    return text
