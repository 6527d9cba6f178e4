"""`greenloop data stackoverflow` on small dumps written here: which pairs it keeps, the
text and code it extracts, resuming after a kill, and malformed input."""

from __future__ import annotations

import bz2
import gzip
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest

import greenloop.cli.data
import greenloop.data.stackexchange_dump
from greenloop.cli import main
from greenloop.data.shards import ShardedRun, input_shards, read_pairs
from greenloop.data.stackoverflow import (
    QuestionStore,
    StackOverflowConfig,
    body_text,
    code_blocks,
    has_wanted_tag,
    parse_tags,
    run_stackoverflow,
)
from greenloop.io import DataError

REPO = Path(__file__).resolve().parents[2]
CODE = "<pre><code>if x &lt; 5 and y &gt; 2:\n    print(&quot;a &amp; b&quot;)\n</code></pre>\n"
CODE_TEXT = 'if x < 5 and y > 2:\n    print("a & b")\n'


class Interrupted(Exception):
    """Stands in for Ctrl-C while a shard is written."""


def question(post_id, tags, body, **extra):
    return {"Id": post_id, "PostTypeId": 1, "Score": extra.pop("Score", 3), "Tags": tags, "Body": body,
            "Title": extra.pop("Title", f"question {post_id}"), "CreationDate": f"2010-01-{post_id:02d}T00:00:00.000",
            **extra}


def answer(post_id, parent, score, body):
    return {"Id": post_id, "PostTypeId": 2, "ParentId": parent, "Score": score, "Body": body,
            "CreationDate": f"2011-01-{post_id:02d}T00:00:00.000"}


# In Id order; three rows become records: answers 3 (accepted) and 6 of question 1, answer 10 of question 5.
POSTS = [
    question(1, "|python|list|", "<p>How do I sort <code>d</code> by value?</p>\n" + CODE,
             Title="Sort a dict & keep it", Score=12, AcceptedAnswerId=3),
    question(2, "|java|", "<p>Java.</p>" + CODE),
    answer(3, 1, 10, "<p>Use <code>sorted</code>:</p>\n" + CODE),
    answer(4, 1, 4, "<p>Below the score.</p>" + CODE),
    question(5, "<python-3.x><dict>", "<p>Old tag format.</p>" + CODE),
    answer(6, 1, 5, "<p>Exactly the minimum score.</p>" + CODE),
    question(7, "|python|", "<p>Only inline <code>code</code>.</p>"),
    question(8, "|ipython|", "<p>Not python by the rule.</p>" + CODE),
    question(9, "|python|", "<p>Blank block.</p><pre><code>\n  \n</code></pre>"),
    answer(10, 5, 7, "<p>Answer to the old-format question.</p>" + CODE),
    answer(11, 1, 10, "<p>No code at all.</p>"),
    answer(12, 7, 10, "<p>Its question has no code.</p>" + CODE),
    answer(13, 2, 10, "<p>Its question is Java.</p>" + CODE),
    {"Id": 14, "PostTypeId": 5, "Body": "<p>A tag wiki.</p>"},
]
EXPECTED_PAIRS = [(1, 3, True), (1, 6, False), (5, 10, False)]
EXPECTED_COUNTS = {
    "rows_read": 14, "other_rows": 1, "records": 3,
    "questions": {"seen": 6, "kept": 2, "rejected": {"not_tagged": 2, "no_code": 2}},
    "answers": {"seen": 7, "kept": 3, "rejected": {"question_not_kept": 2, "low_score": 1, "no_code": 1}},
}


def dump_text(posts=POSTS, tail="</posts>\n") -> str:
    rows = ["  <row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in post.items()) + " />\n" for post in posts]
    return '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "".join(rows) + tail


def write_dump(path: Path, text: str | None = None) -> Path:
    data = (dump_text() if text is None else text).encode()
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    with opener(path, "wb") as fh:
        fh.write(data)
    return path


def extract(posts: Path, out: Path, **options) -> dict:
    return run_stackoverflow(StackOverflowConfig(str(posts), **options), out, show_progress=False)


def records(out: Path) -> list[dict]:
    return list(read_pairs(input_shards(out, "qa")))


def counts(manifest: dict) -> dict:
    return {key: manifest[key] for key in EXPECTED_COUNTS}


@pytest.mark.parametrize("name", ["Posts.xml", "Posts.xml.bz2", "Posts.xml.gz"])
def test_keeps_exactly_the_python_pairs_with_code_and_score(tmp_path, name):
    manifest = extract(write_dump(tmp_path / name), tmp_path / "out")
    got = records(tmp_path / "out")
    assert [(r["question_id"], r["answer_id"], r["accepted"]) for r in got] == EXPECTED_PAIRS
    assert counts(manifest) == EXPECTED_COUNTS
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest
    assert not (tmp_path / "out" / "questions.sqlite").exists()
    first = got[0]
    assert first["title"] == "Sort a dict & keep it"
    assert first["tags"] == ["python", "list"] and got[2]["tags"] == ["python-3.x", "dict"]
    assert first["question_code"] == [CODE_TEXT] and first["answer_code"] == [CODE_TEXT]
    assert first["question_text"] == f"How do I sort `d` by value?\n\n```\n{CODE_TEXT}```"
    assert first["answer_text"] == f"Use `sorted`:\n\n```\n{CODE_TEXT}```"
    assert (first["question_score"], first["answer_score"], got[1]["answer_score"]) == (12, 10, 5)
    assert (first["question_created"], first["answer_created"]) == ("2010-01-01T00:00:00.000", "2011-01-03T00:00:00.000")


def test_min_score_and_tags_options(tmp_path):
    dump = write_dump(tmp_path / "Posts.xml")
    manifest = extract(dump, tmp_path / "strict", min_score=8)
    assert [(r["question_id"], r["answer_id"]) for r in records(tmp_path / "strict")] == [(1, 3)]
    assert manifest["answers"]["rejected"]["low_score"] == 3
    extract(dump, tmp_path / "java", tags=("java",))
    assert [(r["question_id"], r["answer_id"]) for r in records(tmp_path / "java")] == [(2, 13)]


def test_tag_rule_and_both_tag_formats():
    assert parse_tags("<python><list>") == ["python", "list"]
    assert parse_tags("|python-3.x|c++|") == ["python-3.x", "c++"]
    assert parse_tags("") == []
    wanted = ("python",)
    assert has_wanted_tag(["list", "python"], wanted) and has_wanted_tag(["python-3.x"], wanted)
    assert has_wanted_tag(["python-requests"], wanted)
    assert not has_wanted_tag(["ipython"], wanted) and not has_wanted_tag(["cpython", "pythonic"], wanted)


def test_html_to_text_and_code():
    body = ('<h2>Title</h2>\n<p>See <a href="https://x.org">the docs</a> &amp; <code>a &lt; b</code>.<br>Next line.</p>\n'
            '<ul>\n<li>one</li>\n<li><em>two</em></li>\n</ul>\n'
            '<pre class="lang-py prettyprint-override"><code>def f():\n    return "&lt;ok&gt;"\n</code></pre>\n'
            '<blockquote><p>quoted</p></blockquote>')
    assert code_blocks(body) == ['def f():\n    return "<ok>"\n']
    assert body_text(body) == ('Title\n\nSee the docs & `a < b`.\nNext line.\n\n- one\n- two\n\n'
                               '```\ndef f():\n    return "<ok>"\n```\n\nquoted')
    assert code_blocks("<p>only <code>inline</code></p><pre>not code</pre>") == []


def shard_files(out: Path) -> dict[str, list[str]]:
    """Each shard's decompressed lines (gzip headers hold a time, so bytes differ run to run)."""
    return {p.name: gzip.decompress(p.read_bytes()).decode().splitlines()
            for p in sorted((out / "shards").glob("qa-*.jsonl.gz"))}


def _reference(tmp_path: Path, dump: Path) -> tuple[dict, dict]:
    manifest = extract(dump, tmp_path / "reference", records_per_shard=1)
    return manifest, shard_files(tmp_path / "reference")


@pytest.mark.parametrize("when", ["before_write", "after_write"])
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, when):
    dump = write_dump(tmp_path / "Posts.xml.bz2")
    manifest, shards = _reference(tmp_path, dump)
    assert len(shards) == 3
    out = tmp_path / "out"
    # killed while the second shard is written: before its file exists (with question 5
    # stored but not committed), or after it exists but before the commit
    script = f"""
import os, signal
from greenloop.data.shards import ShardedRun
from greenloop.data.stackoverflow import StackOverflowConfig, run_stackoverflow
original = ShardedRun.write_shard
def write_shard(self, name, rows, report):
    if name == "qa-00001" and {when == "before_write"}:
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(self, name, rows, report)
    if name == "qa-00001":
        os.kill(os.getpid(), signal.SIGKILL)
    return result
ShardedRun.write_shard = write_shard
run_stackoverflow(StackOverflowConfig({str(dump)!r}, records_per_shard=1), {str(out)!r}, show_progress=False)
"""
    killed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "manifest.json").exists()
    assert (out / "shards" / "qa-00001.jsonl.gz").exists() == (when == "after_write")
    first = (out / "shards" / "qa-00000.jsonl.gz").stat()

    resumed = extract(dump, out, records_per_shard=1)
    assert counts(resumed) == counts(manifest) == EXPECTED_COUNTS
    assert shard_files(out) == shards
    again = (out / "shards" / "qa-00000.jsonl.gz").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns), "a finished shard was redone"


def test_resume_after_an_exception_and_rerun_of_a_finished_run(tmp_path, monkeypatch):
    dump = write_dump(tmp_path / "Posts.xml")
    manifest, shards = _reference(tmp_path, dump)
    original = ShardedRun.write_shard

    def interrupted(self, name, rows, report):
        if name == "qa-00002":
            raise Interrupted(name)
        return original(self, name, rows, report)

    monkeypatch.setattr(ShardedRun, "write_shard", interrupted)
    with pytest.raises(Interrupted):
        extract(dump, tmp_path / "out", records_per_shard=1)
    monkeypatch.setattr(ShardedRun, "write_shard", original)
    assert counts(extract(dump, tmp_path / "out", records_per_shard=1)) == counts(manifest)
    assert shard_files(tmp_path / "out") == shards

    def no_writes(self, name, rows, report):
        raise AssertionError(f"a finished run wrote {name} again")

    monkeypatch.setattr(ShardedRun, "write_shard", no_writes)
    assert counts(extract(dump, tmp_path / "out", records_per_shard=1)) == counts(manifest)


def test_resume_refuses_a_different_dump(tmp_path, monkeypatch):
    dump = write_dump(tmp_path / "Posts.xml")
    original = ShardedRun.write_shard

    def interrupted(self, name, rows, report):
        if name == "qa-00001":
            raise Interrupted(name)
        return original(self, name, rows, report)

    monkeypatch.setattr(ShardedRun, "write_shard", interrupted)
    with pytest.raises(Interrupted):
        extract(dump, tmp_path / "out", records_per_shard=1)
    monkeypatch.setattr(ShardedRun, "write_shard", original)
    # the same size, other Ids: only the row check can tell
    write_dump(dump, dump_text().replace('<row Id="3"', '<row Id="8"'))
    with pytest.raises(ValueError, match="not the dump this run began on"):
        extract(dump, tmp_path / "out", records_per_shard=1)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    first = QuestionStore(tmp_path / "questions.sqlite")
    try:
        with pytest.raises(ValueError, match="another run"):
            QuestionStore(tmp_path / "questions.sqlite")
    finally:
        first.close()
    QuestionStore(tmp_path / "questions.sqlite").close()


@pytest.mark.parametrize("name", ["Posts.xml", "Posts.xml.bz2"])
def test_malformed_xml_names_file_and_line_and_keeps_written_shards(tmp_path, name):
    good = dump_text(tail="")
    bad_row = '  <row Id="15" PostTypeId="2" ParentId="1" Score="9" Body="<p>raw markup</p>" />\n'
    dump = write_dump(tmp_path / name, good + bad_row + "</posts>\n")
    bad_line = good.count("\n") + 1
    with pytest.raises(DataError) as caught:
        extract(dump, tmp_path / "out", records_per_shard=1)
    assert caught.value.path == str(dump) and caught.value.line == bad_line
    assert f"{dump}:{bad_line}: malformed XML" in str(caught.value)
    assert len(shard_files(tmp_path / "out")) == 3  # the shards finished before the bad row stay
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_truncated_dump_and_bad_values(tmp_path):
    truncated = write_dump(tmp_path / "Posts.xml", dump_text(tail="  <row Id=\"15\" PostTyp"))
    with pytest.raises(DataError, match="malformed XML"):
        extract(truncated, tmp_path / "a")
    bad = write_dump(tmp_path / "Bad.xml", dump_text([*POSTS[:3], answer(15, 1, "high", CODE)]))
    with pytest.raises(DataError) as caught:
        extract(bad, tmp_path / "b")
    assert (caught.value.line, caught.value.field) == (6, "Score")
    users = write_dump(tmp_path / "Users.xml", '<?xml version="1.0"?>\n<users>\n  <row Id="1" />\n</users>\n')
    with pytest.raises(DataError, match="expected a dump of <posts>, found <users>"):
        extract(users, tmp_path / "c")


@pytest.mark.skipif(not shutil.which("7z"), reason="needs the 7z command")
def test_7z_archive_with_several_files(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    write_dump(folder / "Posts.xml")
    (folder / "Users.xml").write_text('<?xml version="1.0"?>\n<users>\n</users>\n')
    archive = tmp_path / "site.7z"
    subprocess.run(["7z", "a", "-bd", str(archive), "Posts.xml", "Users.xml"], cwd=folder, check=True,
                   capture_output=True)
    manifest = extract(archive, tmp_path / "out")
    assert counts(manifest) == EXPECTED_COUNTS
    assert [(r["question_id"], r["answer_id"], r["accepted"]) for r in records(tmp_path / "out")] == EXPECTED_PAIRS


def test_7z_without_the_command_says_so(tmp_path, monkeypatch):
    archive = tmp_path / "Posts.7z"
    archive.write_bytes(b"7z\xbc\xaf\x27\x1c")
    monkeypatch.setattr(greenloop.data.stackexchange_dump.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="needs the 7z command"):
        extract(archive, tmp_path / "out")


def test_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(greenloop.cli.data, "DATA_COMMANDS", ("data_stackoverflow",))
    dump = write_dump(tmp_path / "Posts.xml.bz2")
    out = tmp_path / "out"
    argv = ["data", "stackoverflow", "--posts", str(dump), "--out", str(out), "--records-per-shard", "2"]
    assert main(argv) == 0
    assert "wrote 3 records in 2 shards" in capsys.readouterr().out
    assert [p.name for p in input_shards(out, "qa")] == ["qa-00000.jsonl.gz", "qa-00001.jsonl.gz"]
    assert main(argv[:-1] + ["3"]) == 2
    assert "different arguments (records_per_shard)" in capsys.readouterr().err
    assert main(argv + ["--tag", "Python"]) == 2
    assert "--tag 'Python'" in capsys.readouterr().err
    bad = write_dump(tmp_path / "Bad.xml", dump_text(tail="<row Id='x' PostTypeId=\"1\" /></posts>\n"))
    assert main(["data", "stackoverflow", "--posts", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert f"{bad}:{dump_text(tail='').count(chr(10)) + 1}: field 'Id': expected an integer" in capsys.readouterr().err
    assert main(["data", "stackoverflow", "--posts", str(tmp_path / "missing.xml"), "--out", str(out)]) == 2
    assert "file not found" in capsys.readouterr().err
