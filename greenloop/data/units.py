"""Code units: the functions a pair is cut from, and the source files they come from.

A unit is one function or method, dedented so it parses on its own, with the position it
had in its file. Pairs are made per unit rather than per file so that both sides fit a
model's context (the median standard-library function is 6 lines; 99% are under 64).

Sources of files: `stdlib` (the running Python's standard library, site-packages left
out), `dir:PATH` (every `*.py` under PATH). A file that is not UTF-8, does not parse or is
larger than `max_file_bytes` is skipped and reported with its path and reason; it never
stops a run.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

MAX_FILE_BYTES = 1_000_000
_LINE_END = re.compile(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)")
SKIP_DIRS = {"site-packages", "__pycache__", ".git", ".venv", "venv", "node_modules", ".tox", "build", "dist"}


@dataclass(frozen=True)
class CodeUnit:
    """One function, standing alone. `tree` is its parsed form (parsed once, shared by
    every operator); `first_line` is where it starts in its file."""

    path: str
    name: str
    source: str
    first_line: int
    tree: ast.Module
    editable_from: int = 1  # operators leave lines before this alone (a task's prompt)


@dataclass(frozen=True)
class SourceFile:
    root: str
    path: str  # relative to root

    @property
    def full_path(self) -> str:
        return os.path.join(self.root, self.path)


def source_lines(text: str) -> list[str]:
    """Lines as Python's parser counts them (`str.splitlines` also breaks at form feeds
    and other separators, which would shift every line after them)."""
    if "\r" in text:  # Windows or old Mac line ends, kept as they are
        return [line for line in _LINE_END.split(text) if line]
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def parse_quietly(source: str) -> ast.Module:
    """ast.parse without the SyntaxWarnings (invalid escapes, `1 if`) that old or mutated
    code triggers on the user's terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source)
        except (RecursionError, MemoryError):
            raise SyntaxError("too deeply nested to parse") from None


class SkipFile(Exception):
    """A file the factory will not use; the message is the reason, for the report."""


def source_files(spec: str) -> tuple[str, list[SourceFile]]:
    """The files a `--source` spec names, in a stable order: (source label, files)."""
    if spec == "stdlib":
        root = sysconfig.get_paths()["stdlib"]
        return "stdlib", list(walk_python_files(root))
    if spec.startswith("dir:"):
        root = os.path.abspath(os.path.expanduser(spec[4:]))
        if not os.path.isdir(root):
            raise ValueError(f"--source {spec}: {root} is not a directory")
        return f"dir:{spec[4:]}", list(walk_python_files(root))
    raise ValueError(f"--source {spec!r}: expected stdlib, dir:PATH, or a task family (humaneval, mbpp:PATH, jsonl:PATH)")


def fingerprint(items: Iterable[str]) -> str:
    """A digest of a run's inputs: a resumed run must see the same ones, or its shards
    (slices of the input list) would not line up with the finished ones."""
    digest = hashlib.blake2b(digest_size=12)
    for item in items:
        digest.update(item.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def files_fingerprint(files: list[SourceFile]) -> str:
    def stamp(file: SourceFile) -> str:
        try:
            st = os.stat(file.full_path)
            return f"{file.path}\0{st.st_size}\0{st.st_mtime_ns}"
        except OSError:
            return f"{file.path}\0missing"
    return fingerprint(stamp(f) for f in files)


def walk_python_files(root: str) -> Iterator[SourceFile]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield SourceFile(root, os.path.relpath(os.path.join(dirpath, name), root))


def read_source(file: SourceFile, max_bytes: int = MAX_FILE_BYTES) -> str:
    try:
        size = os.path.getsize(file.full_path)
        if size > max_bytes:
            raise SkipFile(f"huge ({size} bytes > {max_bytes})")
        raw = Path(file.full_path).read_bytes()
    except OSError as exc:
        raise SkipFile(f"unreadable: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark is valid Python source
    except UnicodeDecodeError as exc:
        raise SkipFile(f"not UTF-8 (byte {exc.start})") from None


def file_units(path: str, text: str, max_lines: int = 200) -> list[CodeUnit]:
    """Every function and method of a file (nested ones are part of their parent), each
    dedented and reparsed on its own. Raises SkipFile when the file does not parse."""
    try:
        tree = parse_quietly(text)
    except (SyntaxError, ValueError) as exc:
        raise SkipFile(f"does not parse: {getattr(exc, 'msg', exc)} (line {getattr(exc, 'lineno', None) or '?'})") from None
    lines = source_lines(text)
    units = []
    for qualname, node in _functions(tree.body, ""):
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        if node.end_lineno - first + 1 > max_lines:
            continue
        source = _dedent(lines[first - 1:node.end_lineno], lines[first - 1][:node.col_offset])
        if not source.endswith("\n"):
            source += "\n"
        try:
            unit_tree = parse_quietly(source)
        except SyntaxError:  # a body that only parses in its file (rare: line continuations)
            continue
        units.append(CodeUnit(path, qualname, source, first, unit_tree))
    return units


def _dedent(lines: list[str], margin: str) -> str:
    """Remove the function's own indentation from each line that has it (blank lines and
    strings less indented than the `def` are kept as they are)."""
    return "".join(line[len(margin):] if line.startswith(margin) else line for line in lines)


def _functions(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.AST]]:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, f"{prefix}{node.name}.")
        elif isinstance(node, (ast.If, ast.Try)):  # functions defined under `if TYPE_CHECKING:` etc.
            for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                yield from _functions(block, prefix)


def unit_from_program(path: str, name: str, program: str, editable_from: int = 1) -> CodeUnit:
    """A whole program as one unit (a task's reference solution); raises SkipFile if it
    does not parse."""
    try:
        tree = parse_quietly(program)
    except SyntaxError as exc:
        raise SkipFile(f"does not parse: {exc.msg} (line {exc.lineno})") from None
    return CodeUnit(path, name, program if program.endswith("\n") else program + "\n", 1, tree, editable_from)
