"""The parser's hint: on which line a program stops parsing.

A repair model sees what a programmer sees: the program and, when it does not parse, the
line Python's parser reports. Both come from the buggy program alone, so the hint is as
available when repairing as when training. `-1` means the program parses (no hint).
"""

from __future__ import annotations

import ast
import warnings

NO_HINT = -1


def _parse_failure(text: str) -> Exception | None:
    """Why Python's parser rejects `text`, or None when it parses (warnings silenced)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return exc
    return None


def parse_error(text: str) -> str | None:
    """The parser's message for a program that does not parse, None for one that does."""
    exc = _parse_failure(text)
    if exc is None:
        return None
    return (exc.msg or "invalid syntax") if isinstance(exc, SyntaxError) else type(exc).__name__


def parser_error_line(text: str) -> int:
    """0-based row of the first syntax error Python's parser reports, or NO_HINT."""
    exc = _parse_failure(text)
    if not isinstance(exc, SyntaxError) or not exc.lineno:
        return NO_HINT
    rows = text.count("\n") + 1
    return min(max(exc.lineno - 1, 0), rows - 1)
