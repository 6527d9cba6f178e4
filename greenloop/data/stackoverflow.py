"""Question/answer pairs from a Stack Exchange `Posts.xml` dump (`greenloop data stackoverflow`).

Owns the rules that keep a question or an answer, turning a post's HTML into text and
code, and the resumable pass that writes the pairs.

Reading. The dump (`Posts.xml` as is, `.bz2`, `.gz`, or a `.7z` through the `7z` command;
`greenloop.data.stackexchange_dump`) is streamed and each row dropped once handled. Kept
questions wait for their answers in an SQLite table on disk (`questions.sqlite` in the
output folder, deleted when the run finishes), so memory does not grow with the dump; it
holds the records of one unfinished shard at most. Rows are in Id order: an answer comes
after its question.

Rules, in this order; a post is counted under the first it fails:
- a question (PostTypeId 1) needs one of its tags to be a wanted tag or to begin with one
  and a hyphen (`python` takes `python`, `python-3.x`, `python-requests`; not `ipython`):
  `not_tagged`; and a `<pre><code>` block that is not blank: `no_code`;
- an answer (PostTypeId 2) needs its question kept: `question_not_kept`; a score of at
  least `min_score`: `low_score`; and a code block: `no_code`;
- any other row (tag wikis, ...) is counted in `other_rows` and skipped.

Output. `shards/qa-NNNNN.jsonl.gz` of `records_per_shard` records (the last may hold
fewer), in answer Id order, one JSON object a line:

| field | meaning |
|---|---|
| `question_id`, `answer_id` | the posts' Ids |
| `title`, `tags` | the question's title, and its tags as a list in dump order |
| `question_text`, `answer_text` | the body as text: paragraphs apart by a blank line, code blocks fenced with ```, inline code in backticks, list items as `- `, links as their words |
| `question_code`, `answer_code` | the body's `<pre><code>` blocks, unescaped, in order |
| `question_score`, `answer_score` | the posts' scores |
| `accepted` | true when the answer is the question's accepted answer |
| `question_created`, `answer_created` | CreationDate as the dump writes it (UTC, `2008-08-01T14:45:37.090`) |

Posts are CC BY-SA; the ids are there for attribution (`https://stackoverflow.com/a/ID`).
`manifest.json` holds the counts: rows read; questions and answers seen, kept, rejected by rule.

Resuming. Each shard is written (atomically, then its report) and then one SQLite commit
saves the questions added since the last shard with the pass's state (rows read, the last
row's Id, the next shard's number, the counts). A kill loses only what was not committed;
a rerun skips the rows already read (checking the last one's Id, so another dump is
refused) and does the rest, writing what an uninterrupted run writes. A kill between a
shard's rename and the commit makes the rerun write that one shard again, identically.
Malformed XML stops the pass with the file and line; the shards already written stay.
"""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenloop.data.shards import ShardedRun
from greenloop.data.stackexchange_dump import DumpStream, iter_rows
from greenloop.io import DataError

COMMAND = "data stackoverflow"
SHARD_PREFIX = "qa"
QUESTION_RULES = ("not_tagged", "no_code")
ANSWER_RULES = ("question_not_kept", "low_score", "no_code")


@dataclass(frozen=True)
class StackOverflowConfig:
    posts: str                              # Posts.xml, .xml.bz2, .xml.gz, or a .7z holding Posts.xml
    tags: tuple[str, ...] = ("python",)     # a question needs one of these tags, or TAG-something
    min_score: int = 5                      # an answer's score must be at least this
    records_per_shard: int = 10_000

    def __post_init__(self):
        if not self.tags:
            raise ValueError("give at least one --tag")
        for tag in self.tags:
            if not re.fullmatch(r"[a-z0-9+#.][a-z0-9+#.-]*", tag):
                raise ValueError(f"--tag {tag!r}: a tag is lowercase letters, digits and + # . - (python, python-3.x)")
        if self.records_per_shard < 1:
            raise ValueError(f"--records-per-shard must be at least 1, got {self.records_per_shard}")
        if not os.path.isfile(self.posts):
            raise DataError(self.posts, None, "file not found")

    def run_config(self) -> dict[str, Any]:
        """What a resumed run must share with the first (the dump's size stands in for its identity)."""
        return {"posts": str(Path(self.posts).resolve()), "posts_bytes": os.path.getsize(self.posts),
                "tags": list(self.tags), "min_score": self.min_score, "records_per_shard": self.records_per_shard}


_CODE_BLOCK = re.compile(r"<pre\b[^>]*>\s*<code\b[^>]*>(.*?)</code>\s*</pre>", re.DOTALL | re.IGNORECASE)
_INLINE_CODE = re.compile(r"<code\b[^>]*>(.*?)</code>", re.DOTALL | re.IGNORECASE)
_LIST_ITEM = re.compile(r"<li\b[^>]*>", re.IGNORECASE)
_LINE_END = re.compile(r"</tr>|<br\b[^>]*>", re.IGNORECASE)
_PARAGRAPH_END = re.compile(r"</(?:p|div|h[1-6]|blockquote|ul|ol|table|pre)>|<hr\b[^>]*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]*>")
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")


def code_blocks(body: str) -> list[str]:
    """The `<pre><code>` blocks of a post's HTML, as the code they show; blank ones left out."""
    blocks = (html.unescape(_ANY_TAG.sub("", inner)) for inner in _CODE_BLOCK.findall(body))
    return [block for block in blocks if block.strip()]


def body_text(body: str) -> str:
    """A post's HTML as text (the rendering the module docstring describes)."""
    blocks: list[str] = []

    def stash(match: re.Match) -> str:  # code is kept apart so no later rule touches it
        blocks.append(html.unescape(_ANY_TAG.sub("", match.group(1))).strip("\n"))
        return f"\x00{len(blocks) - 1}\x00"

    text = _CODE_BLOCK.sub(stash, body)
    text = re.sub(r"\s+", " ", text)  # as a browser reads HTML: only tags break lines
    text = _PLACEHOLDER.sub(r"\n\n\g<0>\n\n", text)
    text = _INLINE_CODE.sub(r"`\1`", text)
    text = _LIST_ITEM.sub("\n- ", text)
    text = _LINE_END.sub("\n", text)
    text = _PARAGRAPH_END.sub("\n\n", text)
    text = html.unescape(_ANY_TAG.sub("", text))
    text = re.sub(r"\n{3,}", "\n\n", re.sub(r" *\n *", "\n", text)).strip()
    return _PLACEHOLDER.sub(lambda m: f"```\n{blocks[int(m.group(1))]}\n```", text)


def parse_tags(raw: str) -> list[str]:
    """Tags in either of the dump's formats: `<python><list>` (older) or `|python|list|`."""
    if raw.startswith("<"):
        return re.findall(r"<([^<>]+)>", raw)
    return [tag for tag in raw.split("|") if tag]


def has_wanted_tag(tags: list[str], wanted: tuple[str, ...]) -> bool:
    return any(tag == w or tag.startswith(w + "-") for tag in tags for w in wanted)


class QuestionStore:
    """Kept questions on disk, and the pass's state, committed together at each shard.
    Closing without a commit drops what was added since the last one, as a kill does."""

    def __init__(self, path: str | os.PathLike):
        self.db = sqlite3.connect(path, timeout=1)
        try:
            self.db.execute("PRAGMA cache_size=-32768")  # 32 MiB: answers look up recent questions
            # held from the first write to close: a lookup costs 2 µs instead of 12 (no file
            # locking each time), and a second run on the same folder is refused
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self.db.execute("CREATE TABLE IF NOT EXISTS questions (id INTEGER PRIMARY KEY, question TEXT NOT NULL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 0), state TEXT NOT NULL)")
            self.db.commit()
        except sqlite3.OperationalError as exc:
            self.db.close()
            raise ValueError(f"{path}: {exc}; is another run writing to this folder?") from None

    def add(self, question_id: int, question: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO questions VALUES (?, ?)", (question_id, json.dumps(question)))

    def has(self, question_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM questions WHERE id = ?", (question_id,)).fetchone() is not None

    def get(self, question_id: int) -> dict[str, Any]:
        return json.loads(self.db.execute("SELECT question FROM questions WHERE id = ?", (question_id,)).fetchone()[0])

    def load_state(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT state FROM state WHERE id = 0").fetchone()
        return json.loads(row[0]) if row else None

    def commit(self, state: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO state VALUES (0, ?)", (json.dumps(state),))
        self.db.commit()

    def close(self) -> None:
        self.db.close()


@dataclass
class PassState:
    rows_read: int = 0
    last_id: int | None = None
    next_shard: int = 0
    finished: bool = False
    counts: Counter = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "counts": dict(self.counts)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PassState:
        return cls(**{**data, "counts": Counter(data["counts"])}) if data else cls()


def _int(row: dict[str, str], name: str, path: str, line: int, default: int | None = None) -> int | None:
    value = row.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DataError(path, line, f"expected an integer, got {value!r}", field=name) from None


class QAExtraction:
    """One pass over the dump: rows in, shards of records out, state committed per shard."""

    def __init__(self, config: StackOverflowConfig, run: ShardedRun, store: QuestionStore):
        self.config, self.run, self.store = config, run, store
        self.state = PassState.from_json(store.load_state())
        self.pending: list[dict[str, Any]] = []
        missing = [n for n in self.shard_names() if not run.done(n)]
        if missing:
            raise ValueError(f"{run.out}: shard {missing[0]} of this run is missing; use --force to start over")

    def shard_names(self) -> list[str]:
        return [f"{SHARD_PREFIX}-{i:05d}" for i in range(self.state.next_shard)]

    def read_dump(self, show_progress: bool) -> None:
        from tqdm import tqdm

        skip, path = self.state.rows_read, self.config.posts
        with closing(DumpStream(path)) as stream, tqdm(
                total=stream.total, unit="B", unit_scale=True, desc="stackoverflow", disable=not show_progress,
                dynamic_ncols=True) as bar:
            def on_chunk() -> None:
                bar.update(stream.position() - bar.n)
                bar.set_postfix(rows=self.state.rows_read, records=self.state.counts["answers_kept"], refresh=False)

            rows_in_file = 0
            for row, line in iter_rows(stream, "posts", on_chunk):
                rows_in_file += 1
                if rows_in_file > skip:
                    self.handle(row, line)
                elif rows_in_file == skip and _int(row, "Id", path, line) != self.state.last_id:
                    raise ValueError(f"{path} is not the dump this run began on (row {skip} differs); "
                                     "use --force to start over")
        if rows_in_file < skip:
            raise ValueError(f"{path} is shorter than the dump this run began on; use --force to start over")

    def handle(self, row: dict[str, str], line: int) -> None:
        post_id = _int(row, "Id", self.config.posts, line)
        if post_id is None:
            raise DataError(self.config.posts, line, "missing", field="Id")
        kind = row.get("PostTypeId")
        if kind == "1":
            self.consider_question(post_id, row, line)
        elif kind == "2":
            self.consider_answer(post_id, row, line)
        else:
            self.state.counts["other_rows"] += 1
        self.state.rows_read += 1
        self.state.last_id = post_id
        if len(self.pending) >= self.config.records_per_shard:
            self.write_shard()

    def consider_question(self, post_id: int, row: dict[str, str], line: int) -> None:
        counts = self.state.counts
        counts["questions_seen"] += 1
        tags = parse_tags(row.get("Tags", ""))
        if not has_wanted_tag(tags, self.config.tags):
            counts["questions_not_tagged"] += 1
            return
        body = row.get("Body", "")
        code = code_blocks(body)
        if not code:
            counts["questions_no_code"] += 1
            return
        counts["questions_kept"] += 1
        self.store.add(post_id, {
            "title": row.get("Title", ""), "tags": tags, "text": body_text(body), "code": code,
            "score": _int(row, "Score", self.config.posts, line, 0), "created": row.get("CreationDate"),
            "accepted_answer_id": _int(row, "AcceptedAnswerId", self.config.posts, line)})

    def consider_answer(self, post_id: int, row: dict[str, str], line: int) -> None:
        counts = self.state.counts
        counts["answers_seen"] += 1
        parent = _int(row, "ParentId", self.config.posts, line)
        score = _int(row, "Score", self.config.posts, line, 0)
        body = row.get("Body", "")
        code = None
        if parent is None or not self.store.has(parent):
            rejected = "question_not_kept"
        elif score < self.config.min_score:
            rejected = "low_score"
        else:
            code = code_blocks(body)
            rejected = None if code else "no_code"
        if rejected:
            counts[f"answers_{rejected}"] += 1
            return
        counts["answers_kept"] += 1
        question = self.store.get(parent)
        self.pending.append({
            "question_id": parent, "answer_id": post_id, "title": question["title"], "tags": question["tags"],
            "question_text": question["text"], "question_code": question["code"],
            "answer_text": body_text(body), "answer_code": code,
            "question_score": question["score"], "answer_score": score,
            "accepted": question["accepted_answer_id"] == post_id,
            "question_created": question["created"], "answer_created": row.get("CreationDate")})

    def write_shard(self) -> None:
        name = f"{SHARD_PREFIX}-{self.state.next_shard:05d}"
        self.run.write_shard(name, self.pending, {
            "first_answer_id": self.pending[0]["answer_id"], "last_answer_id": self.pending[-1]["answer_id"],
            "rows_read": self.state.rows_read})
        self.pending = []
        self.state.next_shard += 1
        self.store.commit(self.state.to_json())  # after the shard is on disk: see the module docstring

    def finish(self) -> None:
        if self.pending:
            self.write_shard()
        self.state.finished = True
        self.store.commit(self.state.to_json())

    def manifest(self) -> dict[str, Any]:
        counts = self.state.counts
        return {
            "posts": self.config.posts, "tags": list(self.config.tags), "min_score": self.config.min_score,
            "rows_read": self.state.rows_read, "other_rows": counts["other_rows"],
            "questions": {"seen": counts["questions_seen"], "kept": counts["questions_kept"],
                          "rejected": {rule: counts[f"questions_{rule}"] for rule in QUESTION_RULES}},
            "answers": {"seen": counts["answers_seen"], "kept": counts["answers_kept"],
                        "rejected": {rule: counts[f"answers_{rule}"] for rule in ANSWER_RULES}},
            "records": counts["answers_kept"], "shards": self.shard_names()}


def run_stackoverflow(config: StackOverflowConfig, out: str | os.PathLike, force: bool = False,
                      show_progress: bool | None = None) -> dict[str, Any]:
    """Stream the dump into `out` (resuming a run there with the same config); returns the
    manifest. A progress bar shows on a terminal unless `show_progress` says otherwise."""
    run = ShardedRun(out, COMMAND, config.run_config(), force=force)
    store_path, manifest_path = run.out / "questions.sqlite", run.out / "manifest.json"
    if manifest_path.exists():  # finished already
        store_path.unlink(missing_ok=True)
        return json.loads(manifest_path.read_text())
    store = QuestionStore(store_path)  # locked: only one run in a folder at a time
    try:
        for partial in run.shard_dir.glob(f"{SHARD_PREFIX}-*.tmp-*"):  # a killed run's half-written shard
            partial.unlink()
        extraction = QAExtraction(config, run, store)
        if not extraction.state.finished:
            extraction.read_dump(sys.stderr.isatty() if show_progress is None else show_progress)
            extraction.finish()
        manifest = run.finish(extraction.manifest())
    finally:
        store.close()
    store_path.unlink()  # questions were kept only for answers still to come
    return manifest
