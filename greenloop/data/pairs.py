"""One repair pair: the record every data command writes, and its difficulty score.

A pair is a plain JSON object (one line of a JSONL shard, one row of a Parquet file):

| field | meaning |
|---|---|
| `pair_id` | stable 16-hex id from source, path, unit, bug type and both sides |
| `bug_type` | the operator or rule that made it (`wrong_operator`, `ruff:F401`, `git:fix`) |
| `family` | `syntax`, `logic`, `style`, `security` (or `lint`, `git`, `qa` for other sources) |
| `source` | where the code came from: `stdlib`, `dir:PATH`, `humaneval`, `git:REPO`, ... |
| `path` | file (relative to the source root) or task id; splits never put one path in two splits |
| `unit` | qualified name of the function the pair is cut from (`Class.method`), or `<module>` |
| `span` | `[first_line, last_line]` of `fixed` that the change touches (1-based) |
| `buggy`, `fixed` | the two sides, each a whole unit that stands alone |
| `diff` | unified diff from buggy to fixed (what a repair model must write) |
| `difficulty` | in [0, 1], `difficulty()` below |
| `task_id` | the task whose tests check the pair, or null |
| `verified` | true when the verifier showed buggy fails a test that fixed passes; null when untested |
| `meta` | anything else (rule message, commit, verdict details) |

Difficulty is `0.5·family + 0.25·size + 0.25·distance`, each term in [0, 1]:
- family: how hard the kind of bug is to see: syntax 0.0, lint 0.2, style 0.4, security 0.6,
  git 0.8, logic 0.8 (a parser points at a syntax error; nothing points at a logic error);
- size: tokens changed by the diff, `min(1, tokens / 12)`;
- distance: lines from the bug to where it shows, `min(1, lines / 20)`: for a syntax bug the
  line the parser reports, for everything else the end of the unit (where a wrong value
  or effect leaves the function).

Curriculum buckets cut the score into fifths: `bucket = min(4, int(difficulty * 5))`.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import tokenize
from typing import Any

FAMILY_WEIGHT = {"syntax": 0.0, "lint": 0.2, "style": 0.4, "security": 0.6, "git": 0.8, "logic": 0.8, "qa": 0.8}
PAIR_FIELDS = ("pair_id", "bug_type", "family", "source", "path", "unit", "span", "buggy", "fixed",
               "diff", "difficulty", "task_id", "verified", "meta")
N_BUCKETS = 5


def make_pair(*, bug_type: str, family: str, source: str, path: str, unit: str, buggy: str, fixed: str,
              symptom_line: int | None = None, task_id: str | None = None, verified: bool | None = None,
              meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build a pair record: span, diff and difficulty are computed from the two sides.
    `symptom_line` is where the bug shows in `buggy` (a syntax error's line); by default the
    last line of the unit."""
    span = changed_span(buggy, fixed)
    diff = unified_diff(buggy, fixed)
    end = fixed.count("\n") + (0 if fixed.endswith("\n") else 1)
    distance = abs((symptom_line if symptom_line is not None else end) - span[0])
    score = difficulty(family, changed_tokens(buggy, fixed), distance)
    key = "\0".join((source, path, unit, bug_type, buggy, fixed))
    return {"pair_id": hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), "bug_type": bug_type,
            "family": family, "source": source, "path": path, "unit": unit, "span": list(span),
            "buggy": buggy, "fixed": fixed, "diff": diff, "difficulty": score, "task_id": task_id,
            "verified": verified, "meta": meta or {}}


def difficulty(family: str, tokens_changed: int, distance_lines: int) -> float:
    weight = FAMILY_WEIGHT.get(family, 0.5)
    size = min(1.0, tokens_changed / 12)
    distance = min(1.0, distance_lines / 20)
    return round(0.5 * weight + 0.25 * size + 0.25 * distance, 4)


def bucket(score: float) -> int:
    return min(N_BUCKETS - 1, int(score * N_BUCKETS))


def changed_span(buggy: str, fixed: str) -> tuple[int, int]:
    """First and last line of `fixed` the change touches (1-based); an insertion into
    `fixed` of nothing (a pure deletion) points at the line after it."""
    a, b = buggy.splitlines(), fixed.splitlines()
    first, last = None, None
    for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lo, hi = j1 + 1, max(j1 + 1, j2)
        first = lo if first is None else min(first, lo)
        last = hi if last is None else max(last, hi)
    if first is None:
        return (0, 0)
    return (first, min(last, max(1, len(b))))


def unified_diff(buggy: str, fixed: str, context: int = 2) -> str:
    lines = difflib.unified_diff(buggy.splitlines(keepends=True), fixed.splitlines(keepends=True),
                                 "buggy", "fixed", n=context)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def code_tokens(text: str) -> list[str]:
    """Python tokens of `text`; where it does not tokenize (syntax bugs), whitespace-split
    words, so every pair gets a size."""
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                  tokenize.ENDMARKER, tokenize.COMMENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return text.split()


def changed_tokens(buggy: str, fixed: str) -> int:
    """Tokens inserted, deleted or replaced between the two sides (of the changed lines only,
    so a one-token bug in a long function counts as one)."""
    a, b = buggy.splitlines(), fixed.splitlines()
    a_changed, b_changed = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            a_changed.extend(a[i1:i2])
            b_changed.extend(b[j1:j2])
    ta, tb = " ".join(a_changed).split(), " ".join(b_changed).split()
    ta, tb = code_tokens("\n".join(a_changed)) or ta, code_tokens("\n".join(b_changed)) or tb
    total = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if tag != "equal":
            total += max(i2 - i1, j2 - j1)
    return total
