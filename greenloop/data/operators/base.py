"""The mutation operator protocol, and the text edits operators return.

An operator never rewrites code through `ast.unparse` (that would reformat the whole unit
and make every diff huge): it finds sites in the parsed unit and returns `Edit`s, exact
replacements of character ranges of the original text, so a pair's diff is the bug and
nothing else. `greenloop.data.mutate.unit_mutants` applies them and keeps only results
with the family's property (`MutationOperator.keep`): syntax mutants fail to parse, every
other family's mutants parse.
"""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
from dataclasses import dataclass
from typing import ClassVar, Iterator

from greenloop.data.units import CodeUnit, parse_quietly, source_lines

FAMILIES = ("syntax", "logic", "style", "security")


@dataclass(frozen=True, order=True)
class Edit:
    """Replace characters [start, end) of a unit's source with `text`."""

    start: int
    end: int
    text: str


Mutation = tuple[Edit, ...]


def apply_edits(source: str, mutation: Mutation) -> str:
    for edit in sorted(mutation, reverse=True):
        source = source[:edit.start] + edit.text + source[edit.end:]
    return source


class Positions:
    """Absolute character offsets of a unit's AST nodes (ast columns are UTF-8 bytes)."""

    def __init__(self, source: str):
        self.source = source
        self.lines = source_lines(source)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, byte_col: int) -> int:
        line = self.lines[lineno - 1]
        if not line.isascii():
            byte_col = len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))
        return self.starts[lineno - 1] + byte_col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset))

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.source[start:end]

    def line_span(self, first: int, last: int) -> tuple[int, int]:
        """Whole lines first..last (1-based), newline included."""
        return (self.starts[first - 1], self.starts[last])

    def line_start(self, lineno: int) -> int:
        return self.starts[lineno - 1]


class MutationOperator:
    """Finds every site where the bug can be planted and says how (`mutations`).

    Subclasses set `name` and `family` and write a docstring with a `fixed:` block and a
    `buggy:` block: the conformance tests check that the operator turns the first into the
    second.
    """

    name: ClassVar[str]
    family: ClassVar[str]

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        raise NotImplementedError

    def keep(self, buggy: str) -> bool:
        """The family's property: syntax bugs do not parse; every other bug does."""
        return self.check(buggy)[0]

    def check(self, buggy: str) -> tuple[bool, int | None]:
        """(whether `buggy` has the family's property, the line the parser reports or None),
        from one parse."""
        try:
            parse_quietly(buggy)
        except SyntaxError as exc:
            return self.family == "syntax", exc.lineno or 1
        except ValueError:  # null bytes
            return self.family == "syntax", 1
        return self.family != "syntax", None

    @classmethod
    def example(cls) -> tuple[str, str]:
        """The (fixed, buggy) example of the docstring."""
        return _example_blocks(inspect.getdoc(cls) or "")


def _example_blocks(doc: str) -> tuple[str, str]:
    blocks: dict[str, list[str]] = {}
    current = None
    for line in doc.splitlines():
        if line.strip() in ("fixed:", "buggy:"):
            current = blocks.setdefault(line.strip()[:-1], [])
        elif current is not None:
            if line and not line.startswith(" "):
                current = None
            else:
                current.append(line)
    if "fixed" not in blocks or "buggy" not in blocks:
        raise ValueError("docstring lacks a fixed:/buggy: example")
    return tuple(textwrap.dedent("\n".join(blocks[k])).strip("\n") + "\n" for k in ("fixed", "buggy"))


def tokens(source: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def in_editable(unit: CodeUnit, node: ast.AST) -> bool:
    return getattr(node, "lineno", 0) >= unit.editable_from


def walk_function_bodies(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except docstrings (a string literal that is a docstring is not code)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if id(node) not in docstrings:
            yield node


def replace(pos: Positions, node: ast.AST, text: str) -> Mutation:
    start, end = pos.span(node)
    return (Edit(start, end, text),)


def operator_gap(pos: Positions, left: ast.AST, right: ast.AST, symbol: str) -> Edit | None:
    """The edit position of `symbol` between two operands (skipping parentheses and
    whitespace); None when the gap holds something else (a comment, say)."""
    start = pos.offset(left.end_lineno, left.end_col_offset)
    end = pos.offset(right.lineno, right.col_offset)
    gap = pos.source[start:end]
    stripped = gap.replace("(", " ").replace(")", " ").replace("\\\n", "  ").replace("\n", " ")
    words = stripped.split()
    if " ".join(words) != symbol:
        return None
    first = symbol.split()[0]
    index = stripped.index(first)
    last_word_end = stripped.rindex(symbol.split()[-1]) + len(symbol.split()[-1])
    return Edit(start + index, start + last_word_end, symbol)
