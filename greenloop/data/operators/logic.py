"""Logic bugs: the mutant parses and runs, and computes the wrong thing. These are the
bugs only tests can catch, so task-family sources keep one only when the verifier shows
it fails a test that the original passes."""

from __future__ import annotations

import ast
import dataclasses
from typing import Iterator

from greenloop.data.operators.base import (Edit, Mutation, MutationOperator, Positions, in_editable,
                                           operator_gap, replace, walk_function_bodies)
from greenloop.data.units import CodeUnit

_BINOP_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
                 ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
_BINOP_SWAP = {"+": "-", "-": "+", "*": "+", "/": "*", "//": "/", "%": "//", "**": "*", "&": "|", "|": "&",
               "^": "|", "<<": ">>", ">>": "<<"}
_CMP_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
               ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
_CMP_SWAP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "is": "is not",
             "is not": "is", "in": "not in", "not in": "in"}


def _is_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


class OffByOne(MutationOperator):
    """A bound or index moves by one: a range's end, a constant index or slice bound, or a
    `± 1` adjustment that is dropped.

    fixed:
        for i in range(len(items) - 1):
            pairs.append((items[i], items[i + 1]))
    buggy:
        for i in range(len(items)):
            pairs.append((items[i], items[i + 1]))
    """

    name, family = "off_by_one", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if not in_editable(unit, node):
                continue
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
                    and 1 <= len(node.args) <= 3 and not node.keywords:
                yield from self._shift(pos, node.args[0 if len(node.args) == 1 else 1])
            elif isinstance(node, ast.Subscript):
                index = node.slice
                bounds = [index.lower, index.upper] if isinstance(index, ast.Slice) else [index]
                for bound in bounds:
                    if _is_int(bound):
                        yield from self._shift(pos, bound)
            elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) and _is_int(node.right) \
                    and node.right.value == 1:
                symbol = operator_gap(pos, node.left, node.right, "+" if isinstance(node.op, ast.Add) else "-")
                if symbol is not None:  # delete from the operator to the end: `(a or b) + 1` -> `(a or b)`
                    left_end = pos.offset(node.left.end_lineno, node.left.end_col_offset)
                    gap = pos.source[left_end:symbol.start]  # the left operand's closing parentheses stay
                    yield (Edit(left_end + len(gap.rstrip()), pos.span(node)[1], ""),)

    def _shift(self, pos: Positions, node: ast.AST) -> Iterator[Mutation]:
        if _is_int(node):
            for value in (node.value - 1, node.value + 1):
                if value >= 0 or node.value < 0:
                    yield replace(pos, node, str(value))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) and _is_int(node.right):
            return  # `n - 1` -> `n` is the drop-the-adjustment site above
        else:
            text = pos.text(node)
            if isinstance(node, (ast.Name, ast.Call, ast.Attribute, ast.Subscript)):
                yield replace(pos, node, f"{text} + 1")
                yield replace(pos, node, f"{text} - 1")


class WrongOperator(MutationOperator):
    """An arithmetic or bitwise operator is replaced by a near one (+ and -, * and +, // and /).

    fixed:
        area = width * height
    buggy:
        area = width + height
    """

    name, family = "wrong_operator", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if not in_editable(unit, node):
                continue
            if isinstance(node, ast.BinOp):
                symbol = _BINOP_SYMBOL.get(type(node.op))
                if symbol is None or (symbol == "%" and isinstance(node.left, (ast.Constant, ast.JoinedStr))):
                    continue  # `"%s" % x` is formatting, not arithmetic
                edit = operator_gap(pos, node.left, node.right, symbol)
                if edit is not None:
                    yield (dataclasses.replace(edit, text=_BINOP_SWAP[symbol]),)
            elif isinstance(node, ast.AugAssign):
                symbol = _BINOP_SYMBOL.get(type(node.op))
                edit = operator_gap(pos, node.target, node.value, symbol + "=") if symbol else None
                if edit is not None:
                    yield (dataclasses.replace(edit, text=_BINOP_SWAP[symbol] + "="),)


class WrongComparison(MutationOperator):
    """A comparison is replaced by its near neighbour (< and <=, == and !=, in and not in).

    fixed:
        if count >= limit:
            return True
    buggy:
        if count > limit:
            return True
    """

    name, family = "wrong_comparison", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.Compare) and in_editable(unit, node):
                operands = [node.left, *node.comparators]
                for op, left, right in zip(node.ops, operands, operands[1:]):
                    symbol = _CMP_SYMBOL[type(op)]
                    edit = operator_gap(pos, left, right, symbol)
                    if edit is not None:
                        yield (dataclasses.replace(edit, text=_CMP_SWAP[symbol]),)


class NegatedCondition(MutationOperator):
    """The condition of an `if`, `while` or conditional expression is negated (or loses
    its `not`).

    fixed:
        if not queue:
            return None
    buggy:
        if queue:
            return None
    """

    name, family = "negated_condition", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if isinstance(node, (ast.If, ast.While, ast.IfExp)) and in_editable(unit, node.test):
                test = node.test
                if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                    # keep the operand as written, with any parentheses around it
                    yield replace(pos, test, pos.text(test)[len("not"):].strip())
                elif isinstance(test, (ast.Name, ast.Call, ast.Attribute, ast.Subscript)):
                    yield replace(pos, test, f"not {pos.text(test)}")
                else:
                    yield replace(pos, test, f"not ({pos.text(test)})")


class MissingReturn(MutationOperator):
    """The value a function computes at the end is not returned.

    fixed:
        def total(items):
            return sum(items)
    buggy:
        def total(items):
            sum(items)
    """

    name, family = "missing_return", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for func in ast.walk(unit.tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            last = func.body[-1]
            if isinstance(last, ast.Return) and last.value is not None and in_editable(unit, last) \
                    and not (isinstance(last.value, ast.Constant) and last.value.value is None):
                start, _ = pos.span(last)
                value = pos.source[start + len("return"):pos.span(last)[1]]
                if isinstance(last.value, ast.Tuple) and not value.lstrip().startswith("("):
                    continue  # `return a, b` -> `a, b` would still build the tuple; not this bug
                yield (Edit(start, start + len("return") + len(value) - len(value.lstrip()), ""),)


class WrongVariable(MutationOperator):
    """A variable is used where another of the same function was meant (variable misuse).

    fixed:
        def scale(values, factor):
            return [v * factor for v in values]
    buggy:
        def scale(values, factor):
            return [v * factor for v in factor]
    """

    name, family = "wrong_variable", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for func in ast.walk(unit.tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            args = func.args
            local = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.arg not in ("self", "cls")]
            local += [n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
            names = sorted(set(local))
            if len(names) < 2:
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names \
                        and in_editable(unit, node):
                    for other in names:
                        if other != node.id:
                            yield replace(pos, node, other)


# calls whose result does not depend on the order of their arguments: swapping them is no bug
_SYMMETRIC = {"max", "min", "assertEqual", "assertNotEqual", "assertIs", "assertIsNot", "assertAlmostEqual",
              "assertNotAlmostEqual", "assertCountEqual", "assertSetEqual", "isclose", "gcd", "lcm", "hypot"}


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


class SwappedArguments(MutationOperator):
    """Two neighbouring positional arguments of a call trade places.

    fixed:
        result = divmod(total, size)
    buggy:
        result = divmod(size, total)
    """

    name, family = "swapped_arguments", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.Call) and in_editable(unit, node) and _callee(node) not in _SYMMETRIC:
                for a, b in zip(node.args, node.args[1:]):
                    if isinstance(a, ast.Starred) or isinstance(b, ast.Starred):
                        continue
                    ta, tb = pos.text(a), pos.text(b)
                    if ast.dump(a) != ast.dump(b):  # `f(0xff, 255)` swapped is the same call
                        (sa, ea), (sb, eb) = pos.span(a), pos.span(b)
                        yield (Edit(sa, ea, tb), Edit(sb, eb, ta))


class WrongLiteral(MutationOperator):
    """A number or string literal is replaced by a wrong one (a number moves by one or
    becomes 0; a string loses its last character or becomes empty).

    fixed:
        retries = 3
    buggy:
        retries = 4
    """

    name, family = "wrong_literal", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in walk_function_bodies(unit.tree):
            if not (isinstance(node, ast.Constant) and in_editable(unit, node)):
                continue
            text = pos.text(node)
            value = node.value
            if type(value) is int and text.isdigit():
                for new in dict.fromkeys((value + 1, value - 1 if value > 0 else 2, 0)):
                    if new != value:
                        yield replace(pos, node, str(new))
            elif type(value) is str and text[:1] in "'\"" and text[-1:] == text[:1] and len(text) == len(value) + 2 \
                    and "\\" not in text and text[:3] not in ('"""', "'''"):
                quote = text[0]
                yield replace(pos, node, f"{quote}{value[:-1]}{quote}" if value else f"{quote} {quote}")
                if len(value) > 1:
                    yield replace(pos, node, quote * 2)


class WrongBoolean(MutationOperator):
    """True and False trade places, or `and` becomes `or` (and back).

    fixed:
        ok = ready and valid
    buggy:
        ok = ready or valid
    """

    name, family = "wrong_boolean", "logic"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if not in_editable(unit, node):
                continue
            if isinstance(node, ast.Constant) and type(node.value) is bool:
                yield replace(pos, node, str(not node.value))
            elif isinstance(node, ast.BoolOp):
                symbol = "and" if isinstance(node.op, ast.And) else "or"
                for left, right in zip(node.values, node.values[1:]):
                    edit = operator_gap(pos, left, right, symbol)
                    if edit is not None:
                        yield (dataclasses.replace(edit, text="or" if symbol == "and" else "and"),)
