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

Difficulty is `0.5·family + 0.2·size + 0.3·distance`, each term in [0, 1]:
- family: how hard the kind of bug is to see: syntax 0.0, lint 0.2, style 0.4, security 0.6,
  git 0.8, logic 0.8 (a parser points at a syntax error; nothing points at a logic error);
- size: tokens changed by the diff beyond the first, `min(1, (tokens - 1) / 8)`;
- distance: lines from the bug to where it shows, `min(1, log2(1 + lines) / log2(41))`
  (0 on the same line, 0.5 at 5 lines, 1 at 40 or more): for a syntax bug the line the
  parser reports, for everything else the end of the unit (where a wrong value or effect
  leaves the function).

Curriculum buckets (`greenloop data split`) cut the sorted scores of a whole dataset into
five buckets of about equal size, easiest first (`bucket_cuts`); pairs with equal scores
share a bucket, so a score many pairs have (0.0: a one-token syntax bug the parser
reports on its own line) makes its bucket larger, and the rest are split evenly. The
cut points are in the split's manifest.
"""

from __future__ import annotations

import bisect
import collections
import difflib
import hashlib
import math
import io
import tokenize
from typing import Any

from greenloop.data.units import source_lines

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
    pair_id = format(stable_hash(source, path, unit, bug_type, buggy, fixed), "016x")
    return {"pair_id": pair_id, "bug_type": bug_type,
            "family": family, "source": source, "path": path, "unit": unit, "span": list(span),
            "buggy": buggy, "fixed": fixed, "diff": diff, "difficulty": score, "task_id": task_id,
            "verified": verified, "meta": meta or {}}


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of the parts that is the same in every process and run (Python's
    `hash` of a str is not): seeds, dedup keys and split order."""
    text = "\0".join(map(str, parts))
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big")


def stable_bucket(key: str, buckets: int) -> int:
    """Which of `buckets` a key falls in, the same in every process and run (the first 32
    bits of its sha256): the repair tasks' train/eval split, the frozen set's halves."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % buckets


def difficulty(family: str, tokens_changed: int, distance_lines: int) -> float:
    weight = FAMILY_WEIGHT.get(family, 0.5)
    size = min(1.0, max(0, tokens_changed - 1) / 8)
    distance = min(1.0, math.log2(1 + max(0, distance_lines)) / math.log2(41))
    return round(0.5 * weight + 0.2 * size + 0.3 * distance, 4)


def bucket_cuts(scores: list[float]) -> list[float]:
    """Upper bounds of the five buckets: sorted scores are cut so that each bucket holds
    about an equal share of what the buckets before it left. Equal scores share a bucket,
    so a score held by many pairs makes its bucket larger and the others even."""
    counts = sorted(collections.Counter(scores).items())
    remaining, cuts, size = len(scores), [], 0
    for value, count in counts:
        size += count
        if len(cuts) < N_BUCKETS - 1 and size >= remaining / (N_BUCKETS - len(cuts)):
            cuts.append(value)
            remaining -= size
            size = 0
    return cuts


def bucket(score: float, cuts: list[float]) -> int:
    """0 (easiest) .. 4: the first bucket whose upper bound reaches the score."""
    return bisect.bisect_left(cuts, score)


def changed_span(buggy: str, fixed: str) -> tuple[int, int]:
    """First and last line of `fixed` the change touches (1-based); a pure deletion
    points at the line after it. (0, 0) when the sides are equal."""
    head, removed, added = _change_region(buggy, fixed)
    if not removed and not added:
        return (0, 0)
    first = min(head + 1, max(1, fixed.count("\n") + (not fixed.endswith("\n"))))
    return (first, max(first, head + len(added)))


def _lines(text: str) -> list[str]:
    return [line.rstrip("\r\n") for line in source_lines(text)]


def unified_diff(buggy: str, fixed: str, context: int = 2) -> str:
    lines = difflib.unified_diff(source_lines(buggy), source_lines(fixed),
                                 "buggy", "fixed", n=context)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


_SKIPPED = {tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.COMMENT}
_LAYOUT = {tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>"}  # indentation is code in Python


def code_tokens(text: str) -> list[str]:
    """Python tokens of `text` (comments and line breaks left out, indentation kept); where
    it does not tokenize (syntax bugs), whitespace-split words, so every pair gets a size."""
    try:
        return [_LAYOUT.get(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type not in _SKIPPED]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return text.split()


def changed_lines(buggy: str, fixed: str) -> tuple[list[str], list[str]]:
    """The region between the common first and last lines: what the change removes from
    `buggy` and what it puts in `fixed` (one block, however many hunks; token-level
    comparison inside it counts only what differs)."""
    return _change_region(buggy, fixed)[1:]


def _change_region(buggy: str, fixed: str) -> tuple[int, list[str], list[str]]:
    """(lines in common at the start, removed lines, added lines)."""
    a, b = _lines(buggy), _lines(fixed)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return head, a[head:len(a) - tail], b[head:len(b) - tail]


def token_distance(removed: list[str], added: list[str]) -> tuple[int, bool]:
    """(tokens inserted, deleted or replaced, whether the lines differ in code at all).
    Indentation is code in Python; a change of comments or spacing alone is not a change."""
    ta, tb = code_tokens("\n".join(removed).strip()), code_tokens("\n".join(added).strip())
    total = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if tag != "equal":
            total += max(i2 - i1, j2 - j1)
    if total:
        return total, True
    return 0, _indents(removed) != _indents(added)


def _indents(lines: list[str]) -> list[int]:
    return [len(line) - len(line.lstrip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def changed_tokens(buggy: str, fixed: str) -> int:
    """Tokens the change touches (of the changed lines only, so a one-token bug in a long
    function counts as one; an indentation-only change counts as one)."""
    total, meaningful = token_distance(*changed_lines(buggy, fixed))
    return max(total, int(meaningful))
