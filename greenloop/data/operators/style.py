"""Robustness bugs: code that works on the happy path and breaks on the next call, the
shared object or the unexpected error (mutable defaults, aliasing, missing None checks,
swallowed or mistyped exceptions)."""

from __future__ import annotations

import ast
from typing import Iterator

from greenloop.data.operators.base import (Edit, Mutation, MutationOperator, Positions, in_editable, operator_gap,
                                           replace)
from greenloop.data.units import CodeUnit

_EXCEPTION_SWAP = {
    "ValueError": "TypeError", "TypeError": "ValueError", "KeyError": "IndexError", "IndexError": "KeyError",
    "AttributeError": "KeyError", "OSError": "ValueError", "IOError": "ValueError",
    "FileNotFoundError": "PermissionError", "PermissionError": "FileNotFoundError",
    "ZeroDivisionError": "ValueError", "UnicodeDecodeError": "ValueError", "ImportError": "AttributeError",
    "StopIteration": "IndexError", "LookupError": "AttributeError", "RuntimeError": "ValueError",
    "NotImplementedError": "TypeError", "OverflowError": "ValueError",
}
_EMPTY_CONTAINERS = ("list", "dict", "set")


def _is_none_test(test: ast.AST, negated: bool = False) -> str | None:
    """The name `test` compares with None (`x is None`, or `x is not None` when negated)."""
    op = ast.IsNot if negated else ast.Is
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], op) \
            and isinstance(test.left, ast.Name) and isinstance(test.comparators[0], ast.Constant) \
            and test.comparators[0].value is None:
        return test.left.id
    return None


def _whole_lines(pos: Positions, stmt: ast.stmt) -> tuple[int, int] | None:
    """The lines of a statement that has them to itself (nothing before it on its first
    line, nothing but a comment after it on its last), or None."""
    first, last = pos.lines[stmt.lineno - 1], pos.lines[stmt.end_lineno - 1]
    if len(first) - len(first.lstrip(" \t")) != stmt.col_offset:
        return None
    rest = last.encode()[stmt.end_col_offset:].strip()
    if rest and not rest.startswith(b"#"):
        return None
    return pos.line_span(stmt.lineno, stmt.end_lineno)


class MutableDefault(MutationOperator):
    """A `None` default that is replaced by a fresh container inside the function becomes
    a shared mutable default.

    fixed:
        def add(item, seen=None):
            if seen is None:
                seen = []
            seen.append(item)
            return seen
    buggy:
        def add(item, seen=[]):
            seen.append(item)
            return seen
    """

    name, family = "mutable_default", "style"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for func in ast.walk(unit.tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or not in_editable(unit, func.body[0]):
                continue
            params = [*func.args.posonlyargs, *func.args.args]
            defaults = dict(zip([a.arg for a in params[len(params) - len(func.args.defaults):]], func.args.defaults))
            defaults.update({a.arg: d for a, d in zip(func.args.kwonlyargs, func.args.kw_defaults) if d is not None})
            for stmt in func.body:
                fresh = self._fresh_container(stmt)
                if fresh is None:
                    continue
                name, value = fresh
                default = defaults.get(name)
                lines = _whole_lines(pos, stmt)
                if isinstance(default, ast.Constant) and default.value is None and lines:
                    yield (*replace(pos, default, pos.text(value)), Edit(lines[0], lines[1], ""))

    @staticmethod
    def _fresh_container(stmt: ast.stmt) -> tuple[str, ast.AST] | None:
        if not (isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1):
            return None
        name, body = _is_none_test(stmt.test), stmt.body[0]
        if name is None or not (isinstance(body, ast.Assign) and len(body.targets) == 1):
            return None
        target, value = body.targets[0], body.value
        empty_call = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) \
            and value.func.id in _EMPTY_CONTAINERS and not value.args and not value.keywords
        if isinstance(target, ast.Name) and target.id == name and (isinstance(value, (ast.List, ast.Dict, ast.Set)) or empty_call):
            return name, value
        return None


class ShallowCopy(MutationOperator):
    """A copy becomes shallow, or no copy at all: `deepcopy` becomes `copy`, and `x.copy()`,
    `x[:]`, `list(x)` become `x` (the caller's object is then changed through an alias).

    fixed:
        snapshot = list(history)
    buggy:
        snapshot = history
    """

    name, family = "shallow_copy", "style"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if not in_editable(unit, node):
                continue
            if isinstance(node, ast.Attribute) and node.attr == "deepcopy" and isinstance(node.value, ast.Name) \
                    and node.value.id == "copy":
                yield replace(pos, node, "copy.copy")
            if not isinstance(node, ast.Assign):
                continue
            value = node.value
            source = None
            if isinstance(value, ast.Call) and not value.keywords:
                if isinstance(value.func, ast.Attribute) and value.func.attr == "copy" and not value.args:
                    source = value.func.value
                elif isinstance(value.func, ast.Name) and value.func.id in _EMPTY_CONTAINERS and len(value.args) == 1:
                    source = value.args[0]
            elif isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Slice) \
                    and value.slice.lower is value.slice.upper is value.slice.step is None:
                source = value.value
            if isinstance(source, (ast.Name, ast.Attribute)):
                yield replace(pos, value, pos.text(source))


class NoneCheckMissing(MutationOperator):
    """A guard against None is dropped: an `if x is None:` early exit, or the `x is not
    None and` half of a condition.

    fixed:
        def name_length(user):
            if user is None:
                return 0
            return len(user.name)
    buggy:
        def name_length(user):
            return len(user.name)
    """

    name, family = "none_check_missing", "style"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            for field in ("body", "orelse"):
                block = getattr(node, field, None)
                if not isinstance(block, list):
                    continue
                for i, stmt in enumerate(block):
                    if isinstance(stmt, ast.If) and in_editable(unit, stmt) and not stmt.orelse \
                            and _is_none_test(stmt.test) and i + 1 < len(block) \
                            and isinstance(stmt.body[-1], (ast.Return, ast.Raise, ast.Continue, ast.Break)):
                        lines = _whole_lines(pos, stmt)
                        if lines:
                            yield (Edit(lines[0], lines[1], ""),)
            if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And) and len(node.values) >= 2 \
                    and in_editable(unit, node) \
                    and _is_none_test(node.values[0], negated=True):
                keyword = operator_gap(pos, node.values[0], node.values[1], "and")
                if keyword is not None:  # from the condition's first token through `and `
                    start, _ = pos.span(node)
                    rest = pos.source[keyword.end:]
                    yield (Edit(start, keyword.end + len(rest) - len(rest.lstrip(" ")), ""),)


class BareExcept(MutationOperator):
    """A handler for one exception type catches everything.

    fixed:
        try:
            value = int(text)
        except ValueError:
            value = 0
    buggy:
        try:
            value = int(text)
        except:
            value = 0
    """

    name, family = "bare_except", "style"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.ExceptHandler) and node.type is not None and node.name is None \
                    and in_editable(unit, node):
                start = pos.offset(node.lineno, node.col_offset) + len("except")
                _, end = pos.span(node.type)
                if pos.source[start:start + 1].isspace():  # not `except*`, whose type is required
                    yield (Edit(start, end, ""),)


class WrongException(MutationOperator):
    """A handler catches a different exception than the one the code raises.

    fixed:
        try:
            port = int(text)
        except ValueError:
            port = 80
    buggy:
        try:
            port = int(text)
        except TypeError:
            port = 80
    """

    name, family = "wrong_exception", "style"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.ExceptHandler) and in_editable(unit, node) and node.type is not None:
                names = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                for name in names:
                    if isinstance(name, ast.Name) and name.id in _EXCEPTION_SWAP:
                        yield replace(pos, name, _EXCEPTION_SWAP[name.id])
