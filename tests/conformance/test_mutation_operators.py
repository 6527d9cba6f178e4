"""Every registered mutation operator: its documented example holds, its mutants differ
from the original and have its family's property, on its example and on a sample module
that has a site for every operator."""

import ast

import pytest

from greenloop.data import mutation_operators
from greenloop.data.mutate import unit_mutants
from greenloop.data.operators.base import FAMILIES, Positions, apply_edits
from greenloop.data.units import file_units, unit_from_program

SAMPLE = '''
import copy
import subprocess
import yaml


def window_sums(items, size, seen=None):
    """Sums of each window."""
    if seen is None:
        seen = []
    if items is None:
        return []
    total = 0
    sums = []
    for i in range(len(items) - size + 1):
        total = sum(items[i:i + size])
        if total >= 10 and not seen:
            sums.append(total * 2)
    while False:
        break
    return sums


def load(path, cursor, name):
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh)
    except OSError:
        config = {"name": "default"}
    snapshot = list(config)
    deep = copy.deepcopy(config)
    cursor.execute("SELECT id FROM users WHERE name = ?", (name,))
    subprocess.run(["grep", name, path], check=True)
    return divmod(len(snapshot), len(deep))


async def refresh(client, key):
    data = await client.fetch(key)
    return data
'''

NAMES = mutation_operators.names()


def all_mutants(op, source):
    unit = unit_from_program("sample.py", "sample", source)
    return [apply_edits(unit.source, m) for m in op.mutations(unit, Positions(unit.source))]


def parses(source):
    try:
        ast.parse(source)
        return True
    except SyntaxError:
        return False


def test_every_operator_the_issue_names_is_registered():
    assert len(NAMES) == 24
    assert {mutation_operators.get(n).family for n in NAMES} == set(FAMILIES)


@pytest.mark.parametrize("name", NAMES)
def test_operator_declares_itself(name):
    op = mutation_operators.get(name)
    assert op.name == name
    assert op.family in FAMILIES
    assert op.__doc__ and op.__doc__.strip().splitlines()[0]


@pytest.mark.parametrize("name", NAMES)
def test_documented_example_holds(name):
    op = mutation_operators.get(name)()
    fixed, buggy = op.example()
    assert parses(fixed)
    assert buggy in all_mutants(op, fixed)
    assert op.keep(buggy)


@pytest.mark.parametrize("name", NAMES)
def test_mutants_differ_and_have_the_family_property(name):
    op = mutation_operators.get(name)()
    mutants = all_mutants(op, SAMPLE)
    assert mutants, f"{name} found no site in the sample"
    assert all(m != SAMPLE for m in mutants)
    if op.family == "syntax":
        kept = [m for m in mutants if op.keep(m)]
        assert kept and not any(parses(m) for m in kept)
    else:  # a non-syntax operator never breaks the parse, on any site
        assert all(parses(m) for m in mutants)


@pytest.mark.parametrize("name", NAMES)
def test_mutants_of_real_functions_keep_the_family_property(name):
    op = mutation_operators.get(name)()
    units = file_units("sample.py", SAMPLE)
    for unit in units:
        for got_op, buggy, symptom in unit_mutants(unit, [op], per_operator=3, seed=1):
            assert buggy != unit.source
            assert parses(buggy) == (op.family != "syntax")
            assert (symptom is not None) == (op.family == "syntax")


def test_prompt_lines_are_left_alone():
    source = "def f(a, b):\n    return a + b\n"
    unit = unit_from_program("t", "f", source, editable_from=2)
    op = mutation_operators.get("swapped_arguments")()
    assert all_mutants(op, source) == []  # no call at all
    op = mutation_operators.get("missing_parenthesis")()
    mutants = [apply_edits(unit.source, m) for m in op.mutations(unit, Positions(unit.source))]
    assert mutants == []  # the only parentheses are in the prompt's line


def test_unknown_operator_suggests_a_name():
    from greenloop.registry import RegistryError

    with pytest.raises(RegistryError, match="wrong_operator"):
        mutation_operators.get("wrong_operater")


@pytest.mark.parametrize("name, source, unwanted", [
    ("swapped_arguments", "x = f(0xff, 255)\n", None),  # the same value written twice: no bug
    ("swapped_arguments", "m = max(a, b)\n", None),  # order does not matter
    ("off_by_one", "ok = (a or b) + 1 == 3\n", "ok = (a or b) == 3\n"),
])
def test_no_equivalent_or_broken_mutants(name, source, unwanted):
    op = mutation_operators.get(name)()
    mutants = all_mutants(op, source)
    if unwanted is None:
        assert mutants == []
    else:
        assert unwanted in mutants and all(parses(m) for m in mutants)


def test_guards_below_a_prompt_are_editable():
    source = 'def f(x):\n    """Doc."""\n    if x is None:\n        return 0\n    return len(x)\n'
    unit = unit_from_program("t", "f", source, editable_from=3)
    op = mutation_operators.get("none_check_missing")()
    mutants = [apply_edits(unit.source, m) for m in op.mutations(unit, Positions(unit.source))]
    assert mutants == ['def f(x):\n    """Doc."""\n    return len(x)\n']
