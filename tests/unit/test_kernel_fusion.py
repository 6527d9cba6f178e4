"""Fusion tasks cut from traced models: the chains found, the files written, their outputs."""

import ast
import inspect
import os

import pytest
import torch
from torch.fx import Interpreter

from greenloop.tasks.kernel_fusion import (
    chain_problem,
    find_chains,
    fuse_problems,
    trace_problem,
)
from greenloop.tasks.kernel_fusion_source import exec_problem
from greenloop.tasks.kernels import PROBLEMS_DIR, builtin_problems, load_problems

HEADER = '''"""{doc}"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 8
'''
FOOTER = '''

def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return {init}
'''


def problem(doc, body, shape, init="[]"):
    return HEADER.format(doc=doc) + body + FOOTER.format(shape=shape, init=init)


LINEAR_RELU_SCALE = problem("Linear, relu, scale.", '''
class Model(nn.Module):
    def __init__(self, in_features, out_features, scale):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scale = scale

    def forward(self, x):
        return torch.relu(self.linear(x)) * self.scale
''', "batch_size, 32", "[32, 24, 0.5]")

CONV_BN_RELU = problem("Conv, batch norm, relu, then a mean over the map.", '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        with torch.no_grad():
            self.block[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        return self.block(x).mean(dim=(2, 3))
''', "batch_size, 3, 12, 12")

LAYER_NORM_GELU = problem("Layer norm, tanh gelu, shift.", '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(64)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x):
        return self.act(self.norm(x)) + 1.0
''', "batch_size, 5, 64")

DATA_DEPENDENT = problem("A branch on the data.", '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 16)

    def forward(self, x):
        y = self.linear(x)
        if y.sum() > 0:
            return torch.relu(y)
        return torch.tanh(y)
''', "batch_size, 16")

SHARED_VALUE = problem("The linear's output is used twice, so nothing fuses along one edge.", '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 16)

    def forward(self, x):
        y = self.linear(x)
        return torch.relu(y) + y
''', "batch_size, 16")

SWAPPED_WEIGHT = problem("A linear given a weight of another shape than it was built with.", '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 4)
        self.linear.weight = nn.Parameter(torch.randn(4, 8))

    def forward(self, x):
        return torch.relu(self.linear(x))
''', "batch_size, 8")

TRACEABLE = {
    "linear_relu_scale": (LINEAR_RELU_SCALE, ("linear", "relu", "mul")),
    "conv_bn_relu": (CONV_BN_RELU, ("conv2d", "batch_norm", "relu")),
    "layer_norm_gelu": (LAYER_NORM_GELU, ("layer_norm", "gelu", "add")),
}


def load(text):
    return exec_problem(text, "<fused problem under test>")


def run_problem(namespace):
    torch.manual_seed(0)
    model = namespace["Model"](*namespace["get_init_inputs"]()).eval()
    with torch.no_grad():
        return model, model(*namespace["get_inputs"]())


def interpreted_values(graph_module, inputs):
    """Every node's value in the source graph, recorded by a plain fx Interpreter."""
    values = {}

    class Recorder(Interpreter):
        def run_node(self, n):
            values[n] = super().run_node(n)
            return values[n]

    with torch.no_grad():
        Recorder(graph_module).run(*inputs)
    return values


def source_state(source_model, emitted_model):
    """The source's tensors under the emitted names: `block.0.weight` became `block_0.weight`."""
    source = {}
    for key, value in source_model.state_dict().items():
        path, _, attr = key.rpartition(".")
        source[f"{path.replace('.', '_')}.{attr}" if path else attr] = value
    return {key: source[key] for key in emitted_model.state_dict()}


@pytest.mark.parametrize("name", sorted(TRACEABLE))
def test_chains_are_named_by_their_ops(name):
    source, ops = TRACEABLE[name]
    chains = find_chains(trace_problem(source, name).graph_module)
    assert [chain.ops for chain in chains] == [ops]
    assert chains[0].kind == {"linear": "gemm", "conv2d": "conv", "layer_norm": "norm"}[ops[0]]


def test_a_value_with_two_users_ends_the_chain():
    assert find_chains(trace_problem(SHARED_VALUE, "shared").graph_module) == []


@pytest.mark.parametrize("name", sorted(TRACEABLE))
def test_emitted_model_computes_what_the_source_chain_computed(name):
    source, _ = TRACEABLE[name]
    traced = trace_problem(source, name)
    (chain,) = find_chains(traced.graph_module)
    namespace = load(chain_problem(traced, chain))
    model, out = run_problem(namespace)
    assert isinstance(out, torch.Tensor) and torch.isfinite(out).all()

    values = interpreted_values(traced.graph_module, traced.inputs)
    inside = set(chain.nodes)
    outside = list(dict.fromkeys(n for node in chain.nodes for n in node.all_input_nodes
                                 if n not in inside and n.op != "get_attr"))
    assert list(inspect.signature(model.forward).parameters) == [n.name for n in outside]
    model.load_state_dict(source_state(traced.model, model))
    with torch.no_grad():
        out = model(*(values[n] for n in outside))
    assert torch.allclose(out, values[chain.nodes[-1]], rtol=1e-5, atol=1e-6)


def test_emitted_file_carries_the_format_as_literals():
    traced = trace_problem(LINEAR_RELU_SCALE, "linear_relu_scale")
    (chain,) = find_chains(traced.graph_module)
    text = chain_problem(traced, chain)
    tree = ast.parse(text)
    docstring = ast.get_docstring(tree).splitlines()
    assert docstring[0] == "Fused linear + relu + mul from linear_relu_scale."
    assert docstring[2] == ("Variants: shapes vary batch_size; dtypes float32 and float64; "
                            "edges zeros, large, negative.")
    literals = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and node.targets[0].id.isupper()}
    assert literals == {"LEVEL": 2, "CATEGORY": "fused", "SHAPE_VARIANTS": [{"batch_size": 5}],
                        "DTYPES": ["float32", "float64"], "EDGE_CASES": ["zeros", "large", "negative"]}
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert functions == {"get_inputs", "get_init_inputs"}
    assert "self.linear = nn.Linear(in_features=32, out_features=24)" in text
    namespace = load(text)
    assert namespace["get_init_inputs"]() == []
    assert [tuple(x.shape) for x in namespace["get_inputs"]()] == [(8, 32)]
    namespace["batch_size"] = 5
    assert run_problem(namespace)[1].shape == (5, 24)


def test_fuse_problems_writes_each_chain_and_says_why_it_skipped(tmp_path, monkeypatch):
    sources = {name: source for name, (source, _) in TRACEABLE.items()}
    sources.update(data_dependent=DATA_DEPENDENT, shared=SHARED_VALUE, swapped=SWAPPED_WEIGHT)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = fuse_problems(sources, tmp_path / "out")
    assert list(elsewhere.iterdir()) == []  # nothing written where the user happens to be
    assert sorted(p.name for p in report.written) == [
        "fused_conv_bn_relu_0.py", "fused_layer_norm_gelu_0.py", "fused_linear_relu_scale_0.py"]
    skipped = dict(report.skipped)
    assert skipped.keys() == {"data_dependent", "shared", "fused_swapped_0"}
    assert skipped["data_dependent"].startswith("torch.fx cannot trace Model")
    assert skipped["shared"] == "no chain of 2 or more fusable ops"
    assert skipped["fused_swapped_0"].startswith("cannot rebuild Linear")
    problems = load_problems(tmp_path / "out")  # the task family reads every written file
    assert {(p.level, p.category) for p in problems} == {(2, "fused")}
    for path in report.written:
        assert torch.isfinite(run_problem(load(path.read_text()))[1]).all()


def test_min_ops_leaves_out_short_chains(tmp_path):
    report = fuse_problems({"linear_relu_scale": LINEAR_RELU_SCALE}, tmp_path, min_ops=4)
    assert report.written == []
    assert report.skipped == [("linear_relu_scale", "no chain of 4 or more fusable ops")]


@pytest.mark.skipif(not os.path.isdir(os.path.join(PROBLEMS_DIR, "level2")),
                    reason="no built-in level-2 problems")
def test_builtin_level2_problems_yield_fusion_tasks_that_run(tmp_path):
    sources = {p.name.replace("/", "_"): p.source for p in builtin_problems() if p.level == 2}
    report = fuse_problems(sources, tmp_path)
    assert len(report.written) >= 3, report.skipped
    for path in report.written:
        out = run_problem(load(path.read_text()))[1]
        assert torch.isfinite(out).all(), path.name
    assert len(load_problems(tmp_path)) == len(report.written)
