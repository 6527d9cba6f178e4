"""The built-in kernel problems: each parses, runs, and stays finite under every shape
variant, dtype and edge case it declares; malformed problem files are refused with
file:line; the `kernels` task family serves them with a ModelNew reference."""

import copy
import textwrap
from collections import Counter

import pytest

from greenloop.io import DataError
from greenloop.tasks import load_tasks
from greenloop.tasks.kernels import (
    builtin_problems,
    kernel_prompt,
    load_problems,
    parse_problem,
    rename_class,
)

torch = pytest.importorskip("torch")

PROBLEMS = {p.name: p for p in builtin_problems()}
MAX_OUTPUT_ELEMENTS = 256 * 1024
CATEGORIES = {"elementwise", "reduction", "softmax", "norm", "matmul", "conv", "pool", "fused"}


def build(source: str, path: str, class_name: str = "Model", overrides: dict | None = None):
    """Run a problem program (tests trust it), build its module from a fixed seed and make
    its inputs after overriding the given globals, as the verifier does for a variant."""
    namespace = {"__name__": "kernel_problem"}
    exec(compile(source, path, "exec"), namespace)  # noqa: S102 - the built-in problems are trusted here
    torch.manual_seed(0)
    model = namespace[class_name](*namespace["get_init_inputs"]())
    namespace.update(overrides or {})
    inputs = namespace["get_inputs"]()
    return model, inputs


def forward(model, inputs, dtype: str | None = None, edge: str | None = None):
    if dtype is not None:
        model = copy.deepcopy(model).to(getattr(torch, dtype))  # .to changes a module in place
        inputs = [x.to(getattr(torch, dtype)) if x.is_floating_point() else x for x in inputs]
    edits = {"zeros": torch.zeros_like, "large": lambda x: x * 1000, "negative": lambda x: -x.abs()}
    if edge is not None:
        inputs = [edits[edge](x) if x.is_floating_point() else x for x in inputs]
    with torch.no_grad():
        out = model(*inputs)
    assert isinstance(out, torch.Tensor), f"forward returned {type(out).__name__}, not one tensor"
    assert torch.isfinite(out).all(), f"non-finite output (dtype {dtype}, edge {edge})"
    return out


def test_enough_problems_in_both_levels_and_every_category():
    levels = Counter(p.level for p in PROBLEMS.values())
    assert len(PROBLEMS) >= 20 and levels[1] >= 10 and levels[2] >= 8, levels
    assert CATEGORIES <= {p.category for p in PROBLEMS.values()}
    assert all(p.category == "fused" for p in PROBLEMS.values() if p.level == 2)
    assert len(set(PROBLEMS.values())) == len(PROBLEMS)  # hashable, though variants are dicts


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problem_is_well_formed(name):
    problem = PROBLEMS[name]
    assert problem.name.startswith(f"level{problem.level}/") and problem.task_id == f"kernels/{name}"
    assert problem.description and "Variants:" in problem.source
    assert problem.dtypes[0] == "float32" and problem.shape_variants


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problem_runs_finite_under_every_variant_dtype_and_edge(name):
    problem = PROBLEMS[name]
    model, inputs = build(problem.source, problem.path)
    out = forward(model, inputs)
    assert out.numel() <= MAX_OUTPUT_ELEMENTS and out.dtype == torch.float32
    for variant in problem.shape_variants:
        varied = forward(*build(problem.source, problem.path, overrides=variant))
        assert varied.shape != out.shape, f"variant {variant} leaves the output shape as it was"
    for dtype in problem.dtypes[1:]:
        assert forward(model, inputs, dtype=dtype).dtype == getattr(torch, dtype)
    for edge in problem.edge_cases:
        forward(model, inputs, edge=edge)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_reference_is_the_problem_renamed_to_model_new(name):
    problem = PROBLEMS[name]
    task = load_tasks(f"kernels:{name.split('/')[0]}").tasks[problem.task_id]
    assert task.entry_point == "ModelNew" and task.tests == () and not task.prompt_is_code
    assert "class ModelNew(" in task.reference and "class Model(" not in task.reference
    model, inputs = build(problem.source, problem.path)
    renamed, _ = build(task.reference, problem.path, class_name="ModelNew")
    with torch.no_grad():
        assert torch.equal(model(*inputs), renamed(*inputs))


def test_family_specs_levels_and_splits():
    level1 = load_tasks("kernels:level1").tasks
    assert level1 and all(t.meta["level"] == 1 and t.family == "kernels" for t in level1.values())
    task = level1["kernels/level1/softmax"]
    assert task.meta["problem"] == "level1/softmax" and task.meta["category"] == "softmax"
    assert task.meta["path"].endswith("softmax.py") and task.meta["dtypes"][0] == "float32"
    assert task.prompt == kernel_prompt(PROBLEMS["level1/softmax"])
    assert "ModelNew" in task.prompt and "```python" in task.prompt and "torch.softmax" in task.prompt
    everything = load_tasks("kernels")
    assert len(everything) == len(PROBLEMS) and everything.data_paths == []
    train, held = load_tasks("kernels@train").tasks, load_tasks("kernels@eval").tasks
    assert held and not set(train) & set(held) and len(train) + len(held) == len(PROBLEMS)
    assert load_tasks("kernels:level2@eval").tasks.keys() <= held.keys()
    with pytest.raises(ValueError, match="did you mean level1"):
        load_tasks("kernels:levle1")
    with pytest.raises(ValueError, match="splits train and eval"):
        load_tasks("kernels@test")


GOOD = '''\
"""A doubling.

Variants: shapes vary n.
"""
import torch
import torch.nn as nn

n = 8


class Model(nn.Module):
    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x):
        return x * 2


def get_inputs():
    return [torch.randn(n)]


def get_init_inputs():
    return []
'''


def write(folder, name: str, text: str):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_folder_loads_with_defaults_and_skips_helpers(tmp_path):
    write(tmp_path, "level3/double.py", GOOD)
    write(tmp_path, "plain.py", GOOD + 'CATEGORY = "elementwise"\nDTYPES = ("float32", "bfloat16")\n')
    write(tmp_path, "__init__.py", "")
    write(tmp_path, "_helpers.py", "not a problem")
    problems = load_problems(tmp_path)
    assert [p.name for p in problems] == ["level3/double", "plain"]
    double, plain = problems
    assert (double.level, double.category, double.dtypes, double.edge_cases) == (3, "other", ("float32",), ())
    assert double.description == "A doubling." and double.shape_variants == ()
    assert (plain.level, plain.category, plain.dtypes) == (1, "elementwise", ("float32", "bfloat16"))
    tasks = load_tasks(f"kernels:{tmp_path}").tasks
    assert set(tasks) == {"kernels/level3/double", "kernels/plain"}


BAD_FILES = {
    "no_model": (GOOD.replace("class Model(", "class Net("), 1, "Model"),
    "model_new_defined": (GOOD + "\n\nclass ModelNew(Model):\n    pass\n", 27, "ModelNew"),
    "bad_dtype": (GOOD + 'DTYPES = ["float32", "float8"]\n', 25, "DTYPES"),
    "empty_dtypes": (GOOD + "DTYPES = []\n", 25, "DTYPES"),
    "bad_edge": (GOOD + 'EDGE_CASES = ["nan"]\n', 25, "EDGE_CASES"),
    "variant_not_global": (GOOD + 'SHAPE_VARIANTS = [{"n": 3}, {"batch": 3}]\n', 25, "SHAPE_VARIANTS[1]"),
    "variant_not_dict": (GOOD + "SHAPE_VARIANTS = [3]\n", 25, "SHAPE_VARIANTS[0]"),
    "not_literal": (GOOD + "DTYPES = list(('float32',))\n", 25, "DTYPES"),
    "bad_level": (GOOD + "LEVEL = 0\n", 25, "LEVEL"),
    "twice": (GOOD + "LEVEL = 1\nLEVEL = 2\n", 26, "LEVEL"),
    "syntax_error": (GOOD.replace("return x * 2", "return x *"), 16, None),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_problem_file_is_refused_with_file_line_and_field(case, tmp_path):
    text, line, field = BAD_FILES[case]
    path = write(tmp_path, f"{case}.py", text)
    with pytest.raises(DataError) as caught:
        parse_problem(path, tmp_path)
    assert str(caught.value).startswith(f"{path}:{line}:")
    assert caught.value.field == field


def test_missing_folder_and_empty_folder_are_refused(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_problems(tmp_path / "absent")
    with pytest.raises(DataError, match="no problem files"):
        load_problems(tmp_path)


def test_rename_touches_names_only():
    source = textwrap.dedent('''\
        import torch.nn as nn
        # Model is the reference
        class Model(nn.Module):
            """Model doc."""
            def __init__(self):
                super(Model, self).__init__()
                self.name = "Model"
                self.kind = nn.Model if False else Model
        m = Model(); ModelX = 1
    ''')
    renamed = rename_class(source)
    assert renamed == source.replace("class Model(", "class ModelNew(").replace(
        "super(Model,", "super(ModelNew,").replace("else Model", "else ModelNew").replace("m = Model()", "m = ModelNew()")
