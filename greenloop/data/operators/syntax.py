"""Syntax bugs: the mutant does not parse (`keep` checks it). Sites are found in the
token stream, so only tokens of code are touched, never text inside strings or comments."""

from __future__ import annotations

import ast
import tokenize
from typing import Iterator

from greenloop.data.operators.base import Edit, Mutation, MutationOperator, Positions, tokens
from greenloop.data.units import CodeUnit

_OPEN, _CLOSE = "([{", ")]}"


def _code_tokens(unit: CodeUnit) -> list[tokenize.TokenInfo]:
    return [t for t in tokens(unit.source) if t.start[0] >= unit.editable_from]


def _token_edit(pos: Positions, tok: tokenize.TokenInfo, text: str = "") -> Mutation:
    start = pos.line_start(tok.start[0]) + tok.start[1]
    end = pos.line_start(tok.end[0]) + tok.end[1]
    return (Edit(start, end, text),)


class MissingColon(MutationOperator):
    """The colon that ends a block header is dropped.

    fixed:
        for item in items:
            total += item
    buggy:
        for item in items
            total += item
    """

    name, family = "missing_colon", "syntax"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        toks = _code_tokens(unit)
        depth = 0
        for i, tok in enumerate(toks[:-1]):
            if tok.type == tokenize.OP and tok.string in _OPEN:
                depth += 1
            elif tok.type == tokenize.OP and tok.string in _CLOSE:
                depth -= 1
            elif tok.string == ":" and depth == 0:
                following = next((t for t in toks[i + 1:] if t.type != tokenize.COMMENT), None)
                if following is not None and following.type == tokenize.NEWLINE:
                    yield _token_edit(pos, tok)


class _DropClosing(MutationOperator):
    closing: str

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for tok in _code_tokens(unit):
            if tok.type == tokenize.OP and tok.string == self.closing:
                yield _token_edit(pos, tok)


class MissingParenthesis(_DropClosing):
    """A closing parenthesis is dropped.

    fixed:
        print(len(items))
    buggy:
        print(len(items)
    """

    name, family, closing = "missing_parenthesis", "syntax", ")"


class MissingBracket(_DropClosing):
    """A closing square bracket is dropped.

    fixed:
        first = items[0]
    buggy:
        first = items[0
    """

    name, family, closing = "missing_bracket", "syntax", "]"


class MissingComma(MutationOperator):
    """A comma between two elements or arguments is dropped.

    fixed:
        point = (x, y)
    buggy:
        point = (x y)
    """

    name, family = "missing_comma", "syntax"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        toks = [t for t in _code_tokens(unit) if t.type not in (tokenize.NL, tokenize.COMMENT)]
        for before, tok, after in zip(toks, toks[1:], toks[2:]):
            # `a, b` -> `a b` fails to parse; a trailing comma (`a,)`) or `a, -b` would not
            if tok.string == "," and after.string not in _CLOSE and before.string not in _OPEN:
                yield _token_edit(pos, tok)


class WrongIndentation(MutationOperator):
    """A statement is indented where it must not be, or a block's first statement is not
    indented.

    fixed:
        if ready:
            start()
        stop()
    buggy:
        if ready:
        start()
        stop()
    """

    name, family = "indentation_error", "syntax"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if not isinstance(block, list) or not block or not isinstance(block[0], ast.stmt):
                    continue
                yield from self._block_mutations(unit, pos, node, block)

    def _block_mutations(self, unit, pos, parent, block) -> Iterator[Mutation]:
        for i, stmt in enumerate(block):
            if stmt.lineno < unit.editable_from or not _starts_line(pos, stmt):
                continue
            line_start = pos.line_start(stmt.lineno)
            if i > 0 and block[i - 1].end_lineno < stmt.lineno:  # indent one statement more
                yield (Edit(line_start, line_start, "  "),)
            header = getattr(parent, "lineno", None) or getattr(getattr(parent, "pattern", None), "lineno", None)
            if i == 0 and header is not None and header < stmt.lineno:
                # the body's first line goes back to the header's indentation
                header_indent = len(pos.lines[header - 1]) - len(pos.lines[header - 1].lstrip(" \t"))
                yield (Edit(line_start, line_start + stmt.col_offset - header_indent, ""),)


def _starts_line(pos: Positions, stmt: ast.stmt) -> bool:
    line = pos.lines[stmt.lineno - 1]
    return len(line) - len(line.lstrip(" \t")) == stmt.col_offset




class UnclosedString(MutationOperator):
    """A one-line string literal loses its closing quote.

    fixed:
        greeting = "hello"
    buggy:
        greeting = "hello
    """

    name, family = "unclosed_string", "syntax"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for tok in _code_tokens(unit):
            if (tok.type == tokenize.STRING and tok.start[0] == tok.end[0] and tok.string[-1] in "'\""
                    and not tok.string.endswith(tok.string[-1] * 3)):
                end = pos.line_start(tok.end[0]) + tok.end[1]
                yield (Edit(end - 1, end, ""),)
