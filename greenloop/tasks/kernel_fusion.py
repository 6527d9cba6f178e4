"""Fusion tasks from real graphs: level-2 kernel problems cut out of the models users have.

A problem's `Model` is traced with torch.fx and every chain of an anchor (a linear, matmul
or convolution, or a normalisation) followed by elementwise ops along single-user edges is
emitted as a problem of its own in the KernelBench format (see `greenloop.tasks.kernels`):
the chain's nodes copied into a graph of their own, its submodules rebuilt as constructor
calls, its outside tensors as inputs of the recorded shapes. An emitted file is executed
and its output compared with the value the source model computed for that chain before it
is returned; shape, dtype and edge variants are listed only when they were run. Anything
that cannot be emitted is reported as skipped with the reason.

This module owns tracing, finding chains, cutting them out and the batch run over many
problems; writing and checking a cut chain's file is `greenloop.tasks.kernel_fusion_source`.

Trust: `trace_problem` executes the problem's source in this process, with no sandbox.
Problems are the user's own files or greenloop's built-in ones, never candidate code.
Inputs and models are built as the kernel verifier builds them (same seeds, eval mode).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
from torch import nn
from torch.fx import Graph, GraphModule, Node, symbolic_trace
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from greenloop.tasks.kernel_fusion_source import (
    ChainCut,
    FusionError,
    exec_problem,
    is_literal,
    write_problem,
)
from greenloop.verify.kernel_child import build_model, make_inputs

_ANCHORS = ("gemm", "conv", "norm", "affine")  # "affine": batch norm on running stats
_CONTINUES = ("elementwise", "affine")


@dataclass
class TracedProblem:
    name: str
    model: nn.Module               # as built, in eval mode: the owner of every attribute
    graph_module: GraphModule      # every node's meta holds ShapeProp's tensor_meta
    inputs: list                   # the verifier's default input set (seed 0)
    values: dict = field(repr=False)  # node -> its value on `inputs`, cloned when produced


@dataclass(frozen=True)
class FusionChain:
    kind: str                  # "gemm" | "conv" | "norm"
    nodes: tuple[Node, ...]    # anchor first, each used only by the next
    ops: tuple[str, ...]       # e.g. ("linear", "relu", "mul")


@dataclass
class FusionReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (problem or file stem, why)


# ---- which ops fuse ----------------------------------------------------------------------

_NN_MODULES = {
    "gemm": {"Linear": "linear"},
    "conv": {**{f"Conv{d}d": f"conv{d}d" for d in (1, 2, 3)},
             **{f"ConvTranspose{d}d": f"conv_transpose{d}d" for d in (1, 2, 3)}},
    "norm": {"LayerNorm": "layer_norm", "GroupNorm": "group_norm", "RMSNorm": "rms_norm",
             "Softmax": "softmax", "LogSoftmax": "log_softmax",
             **{f"InstanceNorm{d}d": "instance_norm" for d in (1, 2, 3)}},
    "elementwise": {"ReLU": "relu", "ReLU6": "relu6", "GELU": "gelu", "SiLU": "silu",
                    "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyReLU": "leaky_relu",
                    "Hardtanh": "hardtanh", "ELU": "elu", "SELU": "selu", "CELU": "celu",
                    "Softplus": "softplus", "Softsign": "softsign", "Mish": "mish",
                    "Hardswish": "hardswish", "Hardsigmoid": "hardsigmoid"},
}
_METHODS = {
    "gemm": {"matmul": "matmul", "mm": "matmul", "bmm": "bmm", "addmm": "addmm"},
    "norm": {"softmax": "softmax", "log_softmax": "log_softmax"},
    "elementwise": {**{op: op for op in ("relu", "sigmoid", "tanh", "exp", "abs", "neg", "clamp",
                                         "square", "add", "sub", "mul", "div", "clamp_min",
                                         "clamp_max")}, "clip": "clamp"},
}
_ALIASES = {"mm": "matmul", "truediv": "div", "clip": "clamp"}


@cache
def _function_roles() -> dict:
    """Callable -> (op name, role) for the torch, functional and operator callables that fuse."""
    fn = torch.nn.functional
    names = {
        "gemm": [torch.matmul, operator.matmul, torch.mm, torch.bmm, torch.addmm, fn.linear],
        "conv": [fn.conv1d, fn.conv2d, fn.conv3d, fn.conv_transpose1d, fn.conv_transpose2d,
                 fn.conv_transpose3d],
        "norm": [fn.layer_norm, fn.group_norm, fn.instance_norm, fn.rms_norm, torch.softmax,
                 fn.softmax, torch.log_softmax, fn.log_softmax],
        "elementwise": [
            *(getattr(torch, op) for op in ("relu", "sigmoid", "tanh", "exp", "abs", "neg", "clamp",
                                            "clip", "square", "add", "sub", "mul", "div",
                                            "maximum", "minimum")),
            *(getattr(fn, op) for op in ("relu", "relu6", "gelu", "silu", "sigmoid", "tanh",
                                         "leaky_relu", "hardtanh", "elu", "selu", "celu",
                                         "softplus", "softsign", "mish", "hardswish",
                                         "hardsigmoid")),
            operator.add, operator.sub, operator.mul, operator.truediv, operator.neg],
    }
    table = {f: (_ALIASES.get(f.__name__, f.__name__), role) for role, fs in names.items() for f in fs}
    table[fn.batch_norm] = ("batch_norm", "batch_norm")
    return table


def _role(graph_module: GraphModule, node: Node) -> tuple[str, str] | None:
    """(op name, role) of a node, or None when it does not fuse."""
    if node.op == "call_module":
        module = graph_module.get_submodule(node.target)
        cls = type(module).__name__
        if not _is_nn_layer(module):
            return None
        if cls.startswith("BatchNorm"):
            stored = module.track_running_stats and not module.training
            return "batch_norm", "affine" if stored else "norm"
        return next(((ops[cls], role) for role, ops in _NN_MODULES.items() if cls in ops), None)
    if node.op == "call_method":
        return next(((ops[node.target], role) for role, ops in _METHODS.items()
                     if node.target in ops), None)
    if node.op != "call_function":
        return None
    try:
        name, role = _function_roles()[node.target]
    except (KeyError, TypeError):
        return None
    if role == "batch_norm":
        training = node.kwargs.get("training", node.args[5] if len(node.args) > 5 else False)
        role = "norm" if training else "affine"
    return name, role


def _is_nn_layer(module: nn.Module) -> bool:
    """A layer torch.nn defines (not a container), so `nn.<Class>(...)` can rebuild it."""
    cls = type(module)
    containers = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict)
    return getattr(nn, cls.__name__, None) is cls and cls not in containers


def _is_tensor(node: Node) -> bool:
    return isinstance(node.meta.get("tensor_meta"), TensorMetadata)


# ---- tracing and finding chains ----------------------------------------------------------

class _RecordingShapeProp(ShapeProp):
    """ShapeProp that keeps every node's value, cloned before later in-place ops touch it."""

    def __init__(self, module: GraphModule):
        super().__init__(module)
        self.values: dict = {}

    def run_node(self, n: Node):
        result = super().run_node(n)
        self.values[n] = result.clone() if isinstance(result, torch.Tensor) else result
        return result


def trace_problem(source: str, name: str = "problem") -> TracedProblem:
    """Run the problem's source here (trusted), build its seeded Model in eval mode, trace it
    and propagate the default inputs. Raises FusionError saying which step failed."""
    try:
        namespace = exec_problem(source, f"<{name}>")
        inputs, init = make_inputs(namespace, {"seed": 0})
        model = build_model(namespace["Model"], init, {}, "cpu")
    except Exception as exc:
        raise FusionError(f"the problem does not build: {type(exc).__name__}: {exc}") from exc
    try:
        graph_module = symbolic_trace(model)
    except Exception as exc:
        raise FusionError(f"torch.fx cannot trace Model: {type(exc).__name__}: {exc}") from exc
    recorder = _RecordingShapeProp(graph_module)
    try:
        with torch.no_grad():
            recorder.propagate(*inputs)
    except Exception as exc:
        raise FusionError(f"shape propagation failed: {type(exc).__name__}: {exc}") from exc
    return TracedProblem(name, model, graph_module, inputs, recorder.values)


def find_chains(graph_module: GraphModule) -> list[FusionChain]:
    """Every anchor followed by one or more elementwise ops, each intermediate node used only
    by the next one. A batch norm on its running statistics continues a chain (it is a
    per-channel affine map) or, when nothing precedes it, starts one."""
    chains, taken = [], set()
    for node in graph_module.graph.nodes:
        role = _role(graph_module, node)
        if node in taken or role is None or role[1] not in _ANCHORS or not _is_tensor(node):
            continue
        nodes = [node]
        while len(nodes[-1].users) == 1:
            (user,) = nodes[-1].users
            next_role = _role(graph_module, user)
            if next_role is None or next_role[1] not in _CONTINUES or not _is_tensor(user):
                break
            nodes.append(user)
        if len(nodes) > 1:
            taken.update(nodes)
            kind = "norm" if role[1] == "affine" else role[1]
            ops = tuple(_role(graph_module, n)[0] for n in nodes)
            chains.append(FusionChain(kind, tuple(nodes), ops))
    return chains


# ---- cutting a chain out -----------------------------------------------------------------

def _outside(graph: Graph, source: Node, traced: TracedProblem, cut: ChainCut, root: dict):
    """What the chain's graph uses for a value computed outside the chain."""
    if source.op == "get_attr":
        owner_path, _, attr = source.target.rpartition(".")
        owner = traced.model.get_submodule(owner_path)
        tensor = getattr(owner, attr)
        if not isinstance(tensor, torch.Tensor):
            raise FusionError(f"the chain reads {source.target}, a {type(tensor).__name__} attribute")
        if owner_path and _is_nn_layer(owner):
            owner_name = owner_path.replace(".", "_")
            cut.modules[owner_name] = owner
            target = f"{owner_name}.{attr}"
        else:
            target = source.target.replace(".", "_")
            cut.tensors[target] = tensor
        root[target] = tensor
        return graph.get_attr(target)
    value = traced.values[source]
    if isinstance(value, torch.Tensor):
        placeholder = graph.placeholder(source.name)
        placeholder.meta = dict(source.meta)
        cut.inputs.append(value.clone())
        return placeholder
    value = tuple(value) if isinstance(value, torch.Size) else value
    if not is_literal(value):
        raise FusionError(f"the chain reads {source.name}, a {type(value).__name__} that is "
                          "neither a tensor nor a literal")
    return value


def _cut_chain(traced: TracedProblem, chain: FusionChain) -> ChainCut:
    gm, graph, root = traced.graph_module, Graph(), {}
    cut = ChainCut(None, {}, {}, [], traced.values[chain.nodes[-1]])
    env: dict = {}
    inside = set(chain.nodes)
    for node in chain.nodes:  # outside values first, so placeholders lead the graph
        for source in node.all_input_nodes:
            if source not in inside and source not in env:
                env[source] = _outside(graph, source, traced, cut, root)
    for node in chain.nodes:
        copy = graph.node_copy(node, lambda n: env[n])
        if node.op == "call_module":
            copy.target = node.target.replace(".", "_")
            cut.modules[copy.target] = root[copy.target] = gm.get_submodule(node.target)
        env[node] = copy
    graph.output(env[chain.nodes[-1]])
    cut.graph_module = GraphModule(root, graph, class_name="FusedChain")
    return cut


def chain_problem(traced: TracedProblem, chain: FusionChain) -> str:
    """The KernelBench-format source of a problem computing `chain` alone, validated against
    the traced model. Raises FusionError when the chain cannot be emitted."""
    if chain.nodes[0].graph is not traced.graph_module.graph:
        raise ValueError("the chain was found in another graph than the traced problem's")
    cut = _cut_chain(traced, chain)
    return write_problem(cut, chain.ops, traced.name)


def _slug(name: str) -> str:
    return re.sub(r"\W+", "_", Path(name).stem if name.endswith(".py") else name).strip("_")


def fuse_problems(sources: dict[str, str], out_dir: str | Path, min_ops: int = 2) -> FusionReport:
    """Trace each problem, emit `fused_<problem>_<k>.py` into out_dir for its k-th chain of at
    least min_ops ops, and report what was written and what was skipped, with why."""
    if min_ops < 2:
        raise ValueError(f"min_ops must be at least 2 (an anchor and one elementwise op), got {min_ops}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = FusionReport()
    for name, source in sources.items():
        try:
            traced = trace_problem(source, name)
        except FusionError as exc:
            report.skipped.append((name, str(exc)))
            continue
        chains = [c for c in find_chains(traced.graph_module) if len(c.ops) >= min_ops]
        if not chains:
            report.skipped.append((name, f"no chain of {min_ops} or more fusable ops"))
        for k, chain in enumerate(chains):
            stem = f"fused_{_slug(name)}_{k}"
            try:
                text = chain_problem(traced, chain)
            except Exception as exc:  # noqa: BLE001 - one chain's failure never stops the others
                reason = str(exc) if isinstance(exc, FusionError) else f"{type(exc).__name__}: {exc}"
                report.skipped.append((stem, reason))
                continue
            path = out / f"{stem}.py"
            path.write_text(text)
            report.written.append(path)
    return report
