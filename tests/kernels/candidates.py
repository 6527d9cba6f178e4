"""Candidates made from a problem's own reference, by rewriting its `forward` with the ast
module: the reference itself, a wrong one, one that changes its inputs, one that caches
its first answer; and hand-written ones (`model_new`). Each is a completion as a model
would write it (a fenced block)."""

from __future__ import annotations

import ast

from greenloop.tasks.kernels import rename_class

KINDS = ("reference", "wrong", "mutates_input", "cached")
HEADER = "import torch\nimport torch.nn as nn\n\n"


def fenced(body: str, header: str = HEADER) -> str:
    return "```python\n" + header + body + "\n```"


def model_new(forward: str, init: str = "", header: str = HEADER) -> str:
    """A fenced `ModelNew` whose `__init__` runs `init` and whose `forward(self, x)` runs
    `forward` (each given unindented, one statement per line)."""
    init_lines = "".join(f"        {line}\n" for line in init.splitlines())
    lines = "".join(f"        {line}\n" for line in forward.splitlines())
    return fenced(f"class ModelNew(nn.Module):\n    def __init__(self):\n        super().__init__()\n{init_lines}\n"
                  f"    def forward(self, x):\n{lines}", header)


def _forward(tree: ast.Module) -> ast.FunctionDef:
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ModelNew")
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")


def candidate(source: str, kind: str) -> str:
    tree = ast.parse(rename_class(source))
    forward = _forward(tree)
    last = forward.body[-1]
    assert isinstance(last, ast.Return), "the test rewrites a forward that ends in a return"
    value = ast.unparse(last.value)
    first = forward.args.args[1].arg
    rewrites = {
        "reference": f"return {value}",
        "wrong": f"return ({value}) * 1.5 + 0.25",
        "mutates_input": f"_out = ({value}).clone()\n{first}.add_(1.0)\nreturn _out",
        "cached": f"if not hasattr(self, '_cached'):\n    self._cached = {value}\nreturn self._cached",
    }
    forward.body[-1:] = ast.parse(rewrites[kind]).body
    return "```python\n" + ast.unparse(tree) + "\n```"
