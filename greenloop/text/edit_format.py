"""The `edit` answer format: the lines to change, not the whole program.

A small model asked for the whole fixed program must copy a few hundred tokens without a
slip to fix one; asked for the edit, it writes a dozen. The prompt is the broken program
with its lines numbered (`7| code`), and the answer is one block per changed region:

    @@ 7,1                 replace 1 line starting at line 7 with the lines below
        return a * b
    @@ 12,0                insert the lines below before line 12 (count 0)
        return total

Blocks refer to the broken program's line numbers and may come in any order; blocks
that overlap, point past the end or cannot be read raise `EditError`.

When the program does not parse, the prompt ends with the line Python's parser reports,
repeated (`# parser: line 7` then `7| code`): what a programmer, or an agent's
`run_check`, sees first. It comes from the broken program alone, so it is there at
training and at repair time alike, and it puts the line to fix right before the answer,
where a small model copies it far more reliably than from the middle of the program.
"""

from __future__ import annotations

import difflib
import re

_HEADER = re.compile(r"^@@ (\d+),(\d+)\s*$")


class EditError(ValueError):
    pass


def number_lines(program: str) -> str:
    return "".join(f"{i}| {line}\n" for i, line in enumerate(program.splitlines(), 1))


def edit_prompt(program: str) -> str:
    """The numbered program, and the parser's error line when it does not parse."""
    from greenloop.text.hints import NO_HINT, parser_error_line

    row = parser_error_line(program)
    if row == NO_HINT:
        return number_lines(program)
    return number_lines(program) + f"# parser: line {row + 1}\n{row + 1}| {program.splitlines()[row]}\n"


def edit_of(broken: str, fixed: str) -> str:
    """The edit that turns `broken` into `fixed`."""
    before, after = broken.splitlines(), fixed.splitlines()
    blocks = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            blocks.append(f"@@ {i1 + 1},{i2 - i1}\n" + "".join(line + "\n" for line in after[j1:j2]))
    return "".join(blocks)


def parse_edit(edit: str) -> list[tuple[int, int, list[str]]]:
    blocks: list[tuple[int, int, list[str]]] = []
    for number, line in enumerate(edit.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            blocks.append((int(header.group(1)), int(header.group(2)), []))
        elif blocks:
            blocks[-1][2].append(line)
        elif line.strip():
            raise EditError(f"edit line {number}: expected '@@ LINE,COUNT', found {line[:60]!r}")
    if not blocks:
        raise EditError("the edit has no '@@ LINE,COUNT' block")
    while blocks[-1][2] and not blocks[-1][2][-1].strip():  # blank lines after the answer are not part of it
        blocks[-1][2].pop()
    return blocks


def apply_edit(broken: str, edit: str) -> str:
    lines = broken.splitlines()
    blocks = sorted(parse_edit(edit), key=lambda b: (b[0], b[1]))
    out, cursor = [], 1
    for start, count, new in blocks:
        if start < cursor or start + count - 1 > len(lines) or start < 1 or (count == 0 and start > len(lines) + 1):
            raise EditError(f"block @@ {start},{count} overlaps another or lies outside the program's "
                            f"{len(lines)} lines")
        out.extend(lines[cursor - 1:start - 1])
        out.extend(new)
        cursor = start + count
    out.extend(lines[cursor - 1:])
    return "\n".join(out) + "\n"
