"""Kernel problems: PyTorch reference models to make faster, in KernelBench's file format,
and the `kernels` task family that serves them.

A problem is one Python file defining `Model` (an nn.Module), `get_inputs()` (the forward
arguments) and `get_init_inputs()` (the constructor arguments). A candidate answers with a
whole program defining `ModelNew`: the same constructor and forward signature, the same
output, faster. Optional plain literals tell the verifier more:

    LEVEL = 1                                   # else from a parent folder named levelN, else 1
    CATEGORY = "softmax"                        # elementwise | reduction | softmax | norm | ...
    SHAPE_VARIANTS = [{"batch_size": 7}]        # module globals overridden for one input set
    DTYPES = ["float32", "float64"]             # the first is the default
    EDGE_CASES = ["zeros", "large", "negative"]  # input edits for which the output stays finite

Files are read here with `ast`, never run: only the verifier's sandbox runs them. A file
without the optional names (a plain KernelBench problem) still loads.

Specs: `kernels` (the built-in problems under `kernel_problems/`), `kernels:level1` and
`kernels:level2` (one built-in level), `kernels:DIR` (every problem file under a folder;
`kernels:./level1` for a local folder of that name). Split: a third of the problems, chosen
by a stable hash of the name, are `eval`; the rest `train` (`kernels@eval`).
"""

from __future__ import annotations

import ast
import difflib
import io
import os
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenloop.io import DataError
from greenloop.types import Task

PROBLEMS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_problems")
REFERENCE_CLASS = "Model"
CANDIDATE_CLASS = "ModelNew"
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")
EDGE_CASE_NAMES = ("zeros", "large", "negative")
OPTIONAL_NAMES = ("LEVEL", "CATEGORY", "SHAPE_VARIANTS", "DTYPES", "EDGE_CASES")
DEFAULT_CATEGORY = "other"
SPLITS = ("train", "eval")
EVAL_SHARE = 3  # one problem in three is frozen for evaluation
_LEVEL_FOLDER = re.compile(r"level(\d+)")


@dataclass(frozen=True)
class KernelProblem:
    """One problem file: what it is and how the verifier may vary its inputs."""

    name: str  # path under the problems root, without `.py`: "level1/softmax"
    level: int
    category: str
    description: str  # the docstring's first line
    source: str
    path: str
    shape_variants: tuple[dict[str, Any], ...] = ()
    dtypes: tuple[str, ...] = ("float32",)
    edge_cases: tuple[str, ...] = ()

    @property
    def task_id(self) -> str:
        return f"kernels/{self.name}"

    def __hash__(self) -> int:  # the variants are dicts; a problem is known by its file
        return hash((self.name, self.path, self.source))


def python_block(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```\n"


def kernel_instruction(reference: str, class_name: str = REFERENCE_CLASS, new_name: str = CANDIDATE_CLASS) -> str:
    """The request to make one PyTorch module faster. Kernel tasks and KernelBook training
    pairs share it, so a model trained on the pairs meets the same wording in the tasks."""
    return (
        f"Here is a PyTorch program that defines the module `{class_name}`:\n\n"
        f"{python_block(reference)}\n"
        f"Write `{new_name}`, a faster drop-in replacement for `{class_name}`: the same constructor "
        f"arguments, the same forward signature and the same output (up to floating-point rounding). "
        f"You may write custom kernels (Triton, or CUDA through torch.utils.cpp_extension.load_inline), "
        f"fuse operations or choose a better algorithm. `{new_name}` is built with the arguments "
        f"`{class_name}` takes and called on the same inputs. Answer with the complete Python program, "
        f"imports included, in one ```python block.\n"
    )


def kernel_prompt(problem: KernelProblem) -> str:
    return kernel_instruction(problem.source)


# --- reading problem files ----------------------------------------------------------------


def _assigned_names(tree: ast.Module) -> set[str]:
    """Names a module-level assignment binds (tuple targets included)."""
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for target in targets:
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _check_definitions(path: str, tree: ast.Module) -> None:
    found = {node.name: node for node in tree.body
             if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    wanted = ((REFERENCE_CLASS, ast.ClassDef, "class"), ("get_inputs", ast.FunctionDef, "function"),
              ("get_init_inputs", ast.FunctionDef, "function"))
    for name, kind, word in wanted:
        node = found.get(name)
        if node is None:
            raise DataError(path, 1, f"no module-level {word} {name!r}: a problem defines Model, get_inputs "
                                     "and get_init_inputs", field=name)
        if not isinstance(node, kind):
            raise DataError(path, node.lineno, f"{name!r} must be a {word}", field=name)
    if CANDIDATE_CLASS in found:
        raise DataError(path, found[CANDIDATE_CLASS].lineno,
                        f"defines {CANDIDATE_CLASS!r}, the name a candidate's class takes", field=CANDIDATE_CLASS)


def _optional_literals(path: str, tree: ast.Module) -> dict[str, tuple[Any, int]]:
    """The optional names' values and lines, read as literals without running anything."""
    found: dict[str, tuple[Any, int]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name) or target.id not in OPTIONAL_NAMES:
            continue
        name = target.id
        if name in found:
            raise DataError(path, node.lineno, f"assigned twice (first on line {found[name][1]})", field=name)
        try:
            found[name] = (ast.literal_eval(value), node.lineno)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise DataError(path, node.lineno, "must be a plain literal (the file is read, not run)",
                            field=name) from None
    return found


def _names_list(path: str, line: int, field: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DataError(path, line, "expected a list of strings", field=field)
    for item in value:
        if item not in allowed:
            raise DataError(path, line, f"unknown {item!r}; expected some of {', '.join(allowed)}", field=field)
    if len(set(value)) != len(value):
        raise DataError(path, line, "lists an entry twice", field=field)
    return tuple(value)


def _shape_variants(path: str, line: int, value: Any, globals_: set[str]) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, (list, tuple)):
        raise DataError(path, line, "expected a list of dicts", field="SHAPE_VARIANTS")
    for index, variant in enumerate(value):
        where = f"SHAPE_VARIANTS[{index}]"
        if not isinstance(variant, dict) or not variant:
            raise DataError(path, line, "expected a non-empty dict of module globals to override", field=where)
        for key in variant:
            if not isinstance(key, str) or key not in globals_ or key in OPTIONAL_NAMES:
                raise DataError(path, line, f"{key!r} is not a global the file assigns "
                                            "(a variant overrides globals that get_inputs reads)", field=where)
    return tuple(dict(v) for v in value)


def _level(path: str, literals: dict[str, tuple[Any, int]]) -> int:
    if "LEVEL" in literals:
        value, line = literals["LEVEL"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataError(path, line, "expected a positive int", field="LEVEL")
        return value
    match = _LEVEL_FOLDER.fullmatch(Path(path).parent.name)
    return int(match.group(1)) if match else 1


def _category(path: str, literals: dict[str, tuple[Any, int]]) -> str:
    value, line = literals.get("CATEGORY", (DEFAULT_CATEGORY, 0))
    if not isinstance(value, str) or not value.strip():
        raise DataError(path, line, "expected a non-empty string", field="CATEGORY")
    return value


def parse_problem(path: str | os.PathLike, root: str | os.PathLike) -> KernelProblem:
    """Read one problem file under `root`; a malformed one raises DataError naming file:line
    and the field at fault."""
    path = str(path)
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, None, f"cannot read: {exc}") from None
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise DataError(path, exc.lineno, f"not valid Python: {exc.msg}") from None
    _check_definitions(path, tree)
    literals = _optional_literals(path, tree)
    dtypes, edges, variants = ("float32",), (), ()
    if "DTYPES" in literals:
        dtypes = _names_list(path, literals["DTYPES"][1], "DTYPES", literals["DTYPES"][0], DTYPE_NAMES)
        if not dtypes:
            raise DataError(path, literals["DTYPES"][1], "expected at least one dtype", field="DTYPES")
    if "EDGE_CASES" in literals:
        edges = _names_list(path, literals["EDGE_CASES"][1], "EDGE_CASES", literals["EDGE_CASES"][0],
                            EDGE_CASE_NAMES)
    if "SHAPE_VARIANTS" in literals:
        value, line = literals["SHAPE_VARIANTS"]
        variants = _shape_variants(path, line, value, _assigned_names(tree))
    name = Path(os.path.relpath(path, root)).with_suffix("").as_posix()
    docstring = (ast.get_docstring(tree) or "").strip()
    return KernelProblem(name=name, level=_level(path, literals), category=_category(path, literals),
                         description=docstring.splitlines()[0] if docstring else name, source=source, path=path,
                         shape_variants=variants, dtypes=dtypes, edge_cases=edges)


def load_problems(root: str | os.PathLike) -> list[KernelProblem]:
    """Every problem file under `root` (recursively, by name), skipping `__init__.py` and
    files whose name starts with `_` (helpers)."""
    root = str(root)
    if not os.path.isdir(root):
        raise DataError(root, None, "not a folder of kernel problems")
    paths = sorted((p for p in Path(root).rglob("*.py") if not p.name.startswith("_")),
                   key=lambda p: p.relative_to(root).as_posix())
    if not paths:
        raise DataError(root, None, "holds no problem files (*.py)")
    return [parse_problem(p, root) for p in paths]


def builtin_root() -> str:
    return PROBLEMS_DIR


def builtin_levels() -> list[str]:
    return sorted(d for d in os.listdir(PROBLEMS_DIR) if _LEVEL_FOLDER.fullmatch(d))


def builtin_problems() -> list[KernelProblem]:
    return load_problems(PROBLEMS_DIR)


# --- tasks ----------------------------------------------------------------------------------


def rename_class(source: str, old: str = REFERENCE_CLASS, new: str = CANDIDATE_CLASS) -> str:
    """The program with every name `old` written `new`: the class statement, `super(Model,
    self)`, calls. Strings, comments and attributes (`nn.Model`) are left alone; the rest of
    the text, layout and comments included, is unchanged."""
    lines = io.StringIO(source).readlines()
    spots, previous = [], None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.string == old and (previous is None or previous.string != "."):
            spots.append(token.start)
        if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            previous = token
    for row, col in reversed(spots):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[col + len(old):]
    return "".join(lines)


def split_of(problem_name: str) -> str:
    from greenloop.data.pairs import stable_bucket

    return "eval" if stable_bucket(problem_name, EVAL_SHARE) == 0 else "train"


def kernel_task(problem: KernelProblem) -> Task:
    meta = {"level": problem.level, "category": problem.category, "problem": problem.name, "path": problem.path,
            "description": problem.description, "shape_variants": [dict(v) for v in problem.shape_variants],
            "dtypes": list(problem.dtypes), "edge_cases": list(problem.edge_cases),
            "split": split_of(problem.name)}
    return Task(task_id=problem.task_id, family="kernels", prompt=kernel_prompt(problem),
                entry_point=CANDIDATE_CLASS, tests=(), reference=rename_class(problem.source),
                prompt_is_code=False, meta=meta)


class KernelTasks:
    """`--tasks kernels[:level1|:level2|:DIR][@train|@eval]`: PyTorch models to make faster."""

    name = "kernels"

    def problems(self, arg: str | None) -> list[KernelProblem]:
        if arg is None:
            return builtin_problems()
        levels = builtin_levels()
        if arg in levels:
            return [p for p in builtin_problems() if p.name.startswith(f"{arg}/")]
        if os.path.isdir(arg):
            return load_problems(arg)
        close = difflib.get_close_matches(arg, levels, n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"kernels:{arg}: neither a built-in level ({', '.join(levels)}) nor a folder{hint}")

    def load(self, arg: str | None, split: str | None) -> list[Task]:
        if split not in (None, *SPLITS):
            raise ValueError(f"kernel tasks have the splits {' and '.join(SPLITS)}, not {split!r}")
        tasks = [kernel_task(p) for p in self.problems(arg)]
        return [t for t in tasks if split is None or t.meta["split"] == split]

    def data_paths(self, arg: str | None) -> list[str]:
        return []
