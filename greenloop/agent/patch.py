"""Applying a unified diff to one file's text: the agent's `apply_patch` tool.

Models write diffs that are a little off: line numbers that drift, a missing `---`/`+++`
header, a hunk count that does not add up. What matters is the context and the removed
lines, so a hunk is placed where its old lines match exactly, searched outward from the
line number it names; the counts in `@@` headers are not trusted. What cannot be placed or
read raises `PatchError`, whose message names the diff line and says what was expected,
so the agent can show the model its mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(ValueError):
    """A diff that cannot be read or does not fit the file."""

    def __init__(self, line: int, message: str):
        super().__init__(f"patch line {line}: {message}" if line else message)
        self.line = line


@dataclass
class Hunk:
    start: int                      # 1-based first old line, as the header says
    header_line: int                # where the hunk starts in the diff, for errors
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)


def parse_diff(diff: str) -> list[Hunk]:
    """The hunks of a single-file unified diff."""
    hunks: list[Hunk] = []
    lines = diff.splitlines()
    for number, line in enumerate(lines, 1):
        if line.startswith(("--- ", "+++ ", "diff ", "index ")) and (not hunks or _header_zone(hunks[-1])):
            continue
        match = _HUNK.match(line)
        if match:
            hunks.append(Hunk(start=int(match.group(1)), header_line=number))
            continue
        if not hunks:
            if line.strip():
                raise PatchError(number, f"expected a '@@ -a,b +c,d @@' hunk header, found {line[:60]!r}")
            continue
        _add_line(hunks[-1], line, number)
    if not hunks:
        raise PatchError(0, "the diff has no hunks ('@@ -a,b +c,d @@' headers)")
    for hunk in hunks:
        if not hunk.old and not hunk.new:
            raise PatchError(hunk.header_line, "empty hunk")
    return hunks


def _header_zone(hunk: Hunk) -> bool:
    """A `---` line belongs to a new file header only before a hunk has lines."""
    return not hunk.old and not hunk.new


def _add_line(hunk: Hunk, line: str, number: int) -> None:
    if line.startswith("\\"):  # "\ No newline at end of file"
        return
    tag, text = (line[:1], line[1:]) if line else (" ", "")
    if tag == " ":
        hunk.old.append(text)
        hunk.new.append(text)
    elif tag == "-":
        hunk.old.append(text)
    elif tag == "+":
        hunk.new.append(text)
    else:
        raise PatchError(number, f"a hunk line must start with ' ', '-' or '+', found {line[:60]!r}")


def _find(lines: list[str], old: list[str], near: int, after: int) -> int | None:
    """The index where `old` matches exactly, closest to `near`, not before `after`."""
    if not old:
        return max(after, min(near, len(lines)))
    candidates = range(after, len(lines) - len(old) + 1)
    best = None
    for index in candidates:
        if lines[index:index + len(old)] == old and (best is None or abs(index - near) < abs(best - near)):
            best = index
    if best is None:  # trailing whitespace is the commonest slip in model-written diffs
        stripped = [s.rstrip() for s in lines]
        target = [s.rstrip() for s in old]
        for index in candidates:
            if stripped[index:index + len(old)] == target and (best is None or abs(index - near) < abs(best - near)):
                best = index
    return best


def apply_patch(text: str, diff: str) -> str:
    """`text` with every hunk of `diff` applied in order; PatchError if one does not fit."""
    lines = text.splitlines()
    ends_with_newline = text.endswith("\n") or not text
    offset, cursor = 0, 0
    for hunk in parse_diff(diff):
        # `@@ -a,0 ...` (nothing removed) means "insert after line a"; otherwise a is the first old line
        near = max(0, hunk.start + offset - (1 if hunk.old else 0))
        index = _find(lines, hunk.old, near, cursor)
        if index is None:
            first = hunk.old[0] if hunk.old else ""
            raise PatchError(hunk.header_line, f"the hunk's old lines are not in the file (first: {first[:60]!r})")
        lines[index:index + len(hunk.old)] = hunk.new
        offset += len(hunk.new) - len(hunk.old)
        cursor = index + len(hunk.new)
    return "\n".join(lines) + ("\n" if ends_with_newline and lines else "")
