"""The static stage for kernel candidates: rules read from the candidate's source, before
anything runs.

Two kinds of finding:

- Refusals (the candidate is REJECTED): code that tampers with the process it is
  measured in. Monkeypatching a module attribute (`time.perf_counter = ...`,
  `torch.softmax = ...`), frame and object introspection (`sys._getframe`, `f_locals`,
  `gc.get_objects`, `__globals__`, `__subclasses__`), dynamic code (`exec`, `eval`,
  `compile`, `__import__`, `importlib`) and the modules that reach around Python
  (`ctypes`, `threading`, `multiprocessing`, `subprocess`, `signal`, `socket`). A kernel
  needs none of them.
- Flags (the candidate still runs and is judged on correctness, but earns no speedup
  credit; see `kernel_verify.reward`):
  `calls_reference_op`: `ModelNew` calls every operator the reference's `Model.forward`
  calls (e.g. `torch.softmax` for a softmax problem) and holds no kernel of its own
  (Triton, an inline C++/CUDA extension, numba);
  `wraps_reference`: `ModelNew` subclasses, builds or calls the reference `Model`;
  `exception_fallback`: a `try` in the candidate whose handler does more than re-raise,
  the usual shape of "run my kernel, fall back to PyTorch when it fails".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

REFUSED_MODULES = {"ctypes", "gc", "inspect", "threading", "_thread", "multiprocessing", "concurrent", "subprocess",
                   "signal", "socket", "importlib", "builtins", "sys", "pickle", "marshal", "mmap", "resource",
                   "os", "io", "greenloop", "torch.overrides", "torch.library", "torch.utils._python_dispatch"}
REFUSED_NAMES = {"exec", "eval", "compile", "__import__", "globals", "vars", "setattr", "delattr", "breakpoint", "open"}
REFUSED_ATTRIBUTES = {"_getframe", "f_locals", "f_globals", "f_back", "f_builtins", "__globals__", "__code__",
                      "__subclasses__", "__builtins__", "__dict__", "__closure__", "gi_frame", "tb_frame",
                      "os", "sys", "builtins", "overrides", "library", "TorchFunctionMode", "TorchDispatchMode",
                      "__torch_function__", "__torch_dispatch__", "sched_setaffinity", "set_num_threads",
                      "set_num_interop_threads"}
PATCHABLE_MODULES = {"time", "torch", "os", "math", "numpy", "np", "F", "nn", "triton", "tl"}
KERNEL_LOADERS = {"load_inline", "load"}  # torch.utils.cpp_extension
OP_ALIASES = {"mm": "matmul", "bmm": "matmul", "matmul": "matmul", "linear": "linear", "addmm": "linear",
              "conv2d": "conv2d", "conv1d": "conv1d", "conv3d": "conv3d"}  # names compared without underscores
BINARY_OPS = {ast.MatMult: "matmul", ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
NOT_OPS = {"super", "__init__", "size", "shape", "view", "reshape", "contiguous", "to", "float", "len", "range",
           "int", "tuple", "list", "dim", "unsqueeze", "squeeze", "permute", "transpose", "empty",
           "empty_like", "zeros", "zeros_like", "ones", "cdiv", "program_id", "arange", "load", "store", "numel",
           "stride", "is_contiguous", "flatten", "expand"}


@dataclass
class StaticReport:
    refusals: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def detail(self) -> str:
        return "; ".join(self.refusals or self.flags)


def check_candidate(candidate: str, reference: str) -> StaticReport:
    """Refusals and flags for a candidate program against its problem's reference source.
    The candidate must parse (the extract stage has checked)."""
    tree = ast.parse(candidate)
    report = StaticReport(refusals=_refusals(tree))
    new_class = _class(tree, "ModelNew")
    if new_class is None:
        report.refusals.append("no class ModelNew is defined")
        return report
    reference_class = _class(ast.parse(reference), "Model")
    reference_ops = _ops_in(reference_class) if reference_class else set()
    candidate_ops = _ops_in(new_class) | _ops_of_functions(tree)
    has_kernel = _has_kernel(tree)
    if reference_ops and reference_ops <= candidate_ops and not has_kernel:
        report.flags.append("calls_reference_op: " + ", ".join(sorted(reference_ops)))
    if _wraps_reference(new_class):
        report.flags.append("wraps_reference: ModelNew builds, subclasses or calls Model")
    fallback = _fallback_line(tree)
    if fallback:
        report.flags.append(f"exception_fallback: a try at line {fallback} catches errors and carries on")
    return report


def _has_kernel(tree: ast.Module) -> bool:
    """A kernel of the candidate's own: a function decorated `@*.jit` (Triton, numba) or an
    inline C++/CUDA extension built with torch.utils.cpp_extension. Read from the syntax
    tree, so a comment or a string naming them does not count."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if _call_name(target) == "jit":
                    return True
        if isinstance(node, ast.Call) and _call_name(node.func) in KERNEL_LOADERS and "cpp_extension" in ast.unparse(node.func):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "torch.utils.cpp_extension":
            return True
    return False


def _class(tree: ast.Module | None, name: str) -> ast.ClassDef | None:
    if tree is None:
        return None
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _refused_module(name: str) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:i]) in REFUSED_MODULES for i in range(1, len(parts) + 1))


def _imported_names(tree: ast.Module) -> set[str]:
    """Every name an import binds (`import torch as T` binds T): attributes of these are
    the module attributes a candidate must not assign."""
    names = set(PATCHABLE_MODULES)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _refusals(tree: ast.Module) -> list[str]:
    found: list[str] = []
    imported = _imported_names(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import):
            found += [f"line {line}: imports {a.name}" for a in node.names if _refused_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and (
                _refused_module(node.module) or any(_refused_module(f"{node.module}.{a.name}") for a in node.names)):
            found.append(f"line {line}: imports from {node.module}")
        elif isinstance(node, ast.Name) and node.id in REFUSED_NAMES:
            found.append(f"line {line}: uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in REFUSED_ATTRIBUTES:
            found.append(f"line {line}: reaches into {node.attr}")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            found += [f"line {line}: patches {_dotted(t)}" for t in targets if _patches_module(t, imported)]
    return sorted(set(found), key=found.index)


def _patches_module(target: ast.expr, imported: set[str]) -> bool:
    """`time.perf_counter = ...`, `T.randn = ...` after `import torch as T`, or
    `Tensor.to = ...` after `from torch import Tensor`: an attribute of something an
    import bound, rather than of an object the candidate made."""
    if not isinstance(target, ast.Attribute):
        return False
    root = target.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id in imported


def _dotted(node: ast.expr) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only used for a message
        return "a module attribute"


def _ops_of_functions(tree: ast.Module) -> set[str]:
    ops: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            ops |= _ops_in(node)
    return ops


def _ops_in(node: ast.AST) -> set[str]:
    """The operators code calls: torch functions, tensor methods, arithmetic (`@` counts
    as `matmul`, `+` as `add`), and the nn modules it builds (`nn.Linear` counts as
    `linear`; `self.linear(x)` is not counted again)."""
    ops: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.BinOp) and type(sub.op) in BINARY_OPS:
            ops.add(BINARY_OPS[type(sub.op)])
        elif isinstance(sub, ast.Call):
            name = _call_name(sub.func)
            if name == "getattr" and len(sub.args) > 1 and isinstance(sub.args[1], ast.Constant):
                name = str(sub.args[1].value).lower()  # getattr(torch, "softmax")(x) is torch.softmax
            if name and name not in NOT_OPS and not _is_self_module_call(sub.func):
                key = name.replace("_", "")  # F.layer_norm and nn.LayerNorm are one operator
                ops.add(OP_ALIASES.get(key, key))
    return ops


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr.lower()
    if isinstance(func, ast.Name):
        return func.id.lower()
    return None


def _is_self_module_call(func: ast.expr) -> bool:
    """`self.linear(x)`: the module was counted where it was built (`nn.Linear(...)`)."""
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self"


def _wraps_reference(cls: ast.ClassDef) -> bool:
    if any(isinstance(b, ast.Name) and b.id == "Model" for b in cls.bases):
        return True
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Model" for n in ast.walk(cls))


def _fallback_line(tree: ast.Module) -> int | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                if not all(isinstance(stmt, ast.Raise) for stmt in handler.body):
                    return node.lineno
    return None
