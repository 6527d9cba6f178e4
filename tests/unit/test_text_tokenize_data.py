"""`greenloop text tokenize` end to end on tiny inputs the tests write: grids that decode
back to the exact pairs, overflow counts, resume, refused argument changes, parallel
workers, the lm stream and its readers, and the CLI."""

import json
import os
import sysconfig
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from greenloop.cli import main
from greenloop.data.pairs import make_pair
from greenloop.data.split import _schema as split_schema
from greenloop.text.datasets import GridData, TokenStream
from greenloop.text.grid import decode_grids, encode_grids
from greenloop.text.hints import parser_error_line
from greenloop.text.tokenize_data import TokenizeConfig, run_tokenize
from greenloop.text.tokenizer import BOS_ID, EOS_ID, SEP_ID, load_tokenizer, save_tokenizer, train_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])
LINES, WIDTH = 16, 24
FUNCS = [
    "def mean(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n",
    "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    return min(x, hi)\n",
    "def größe(wort):\n    return f'ünï {wort} 🙂'\n",
    "def blank():\n\n    pass\n",
    "def tabs():\n\tif x:\r\n\t\treturn '<|eol|>'  \n",
    "def long_body():\n" + "    x += 1\n" * 20,  # 22 rows: too many lines
    "def wide():\n    return " + " + ".join(f"v{i}" for i in range(30)) + "\n",  # a line too long
]


def pair(i: int, fixed: str, bucket: int) -> dict:
    buggy = fixed.replace("return", "retrun", 1) if "return" in fixed else fixed + "x\n"
    row = make_pair(bug_type="misspell", family=("syntax", "logic")[i % 2], source="dir:t", path=f"m{i}.py",
                    unit=f"u{i}", buggy=buggy, fixed=fixed, task_id=None if i % 3 else f"t/{i}",
                    verified=None if i % 3 else bool(i % 2))
    row["bucket"], row["meta"] = bucket, "{}"
    return row


def write_part(root: Path, split: str, bucket: int, part: int, rows: list[dict]) -> None:
    folder = root / split / f"bucket-{bucket}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=split_schema()), folder / f"part-{part:05d}.parquet")


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory) -> Path:
    """train: two buckets, three part files (one holds a duplicate fixed text);
    validation: one part; test: one part."""
    root = tmp_path_factory.mktemp("split")
    rows = [pair(i, f, i % 2) for i, f in enumerate(FUNCS * 2)]
    write_part(root, "train", 0, 0, rows[0:5])
    write_part(root, "train", 0, 1, rows[5:10] + [pair(99, FUNCS[0], 0)])
    write_part(root, "train", 1, 0, rows[10:12])
    write_part(root, "validation", 1, 1, rows[12:14])
    write_part(root, "test", 0, 2, [pair(50, FUNCS[1], 0)])
    (root / "run.json").write_text("{}")
    (root / "manifest.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    texts = [(STDLIB / name).read_text(encoding="utf-8") for name in ("functools.py", "textwrap.py")]
    return save_tokenizer(train_tokenizer(texts, vocab_size=1024), tmp_path_factory.mktemp("tok"))


def part_rows(split_folder: Path, split: str) -> list[dict]:
    tables = [pq.read_table(p) for p in sorted(split_folder.glob(f"{split}/bucket-*/*.parquet"))]
    return pa.concat_tables(tables).to_pylist()


def grid_config(tokenizer, split_folder, **changes) -> TokenizeConfig:
    return TokenizeConfig(**{"tokenizer": str(tokenizer), "input": str(split_folder), "format": "grid",
                             "lines": LINES, "width": WIDTH, **changes})


def test_grid_pairs_decode_back_to_the_exact_texts(tokenizer, split_folder, tmp_path):
    meta = run_tokenize(grid_config(tokenizer, split_folder), str(tmp_path / "G"))
    tok = load_tokenizer(tokenizer)
    assert json.loads((tmp_path / "G" / "meta.json").read_text()) == meta
    assert meta["lines"] == LINES and meta["width"] == WIDTH and meta["vocab_size"] == tok.get_vocab_size()
    assert meta["tokenizer"] == str(tokenizer) and meta["input"] == str(split_folder)
    assert meta["splits"]["train"]["shards"] == ["shard-00000", "shard-00001", "shard-00002"]
    for split in ("train", "validation", "test"):
        rows = part_rows(split_folder, split)
        entry, data = meta["splits"][split], GridData(tmp_path / "G", split)
        _, src_reasons = encode_grids(tok, [r["buggy"] for r in rows], LINES, WIDTH)
        _, tgt_reasons = encode_grids(tok, [r["fixed"] for r in rows], LINES, WIDTH)
        kept = [r for r, a, b in zip(rows, src_reasons, tgt_reasons) if a is None and b is None]
        assert entry["pairs"] == len(rows) and entry["rows"] == len(data) == len(kept)
        assert entry["rows"] + sum(entry["skipped"].values()) == entry["pairs"]
        source, target = data.batch(np.arange(len(data)))
        assert source.dtype == np.int64 and source.shape == (len(kept), LINES, WIDTH)
        assert decode_grids(tok, source) == [r["buggy"] for r in kept]
        assert decode_grids(tok, target) == [r["fixed"] for r in kept]
        assert data.rows.to_pylist() == [{**{k: r[k] for k in data.rows.column_names if k != "error_line"},
                                          "error_line": parser_error_line(r["buggy"])} for r in kept]
    train = meta["splits"]["train"]["skipped"]
    assert train["too_many_lines"] >= 1 and train["line_too_long"] >= 1
    assert np.load(tmp_path / "G" / "train" / "shard-00000.source.npy", mmap_mode="r").dtype == np.uint16
    assert data.rows.column_names == ["pair_id", "bug_type", "family", "difficulty", "bucket", "task_id", "verified",
                                      "error_line"]


def test_grid_data_filters_and_gathers_across_shards(tokenizer, split_folder, tmp_path):
    run_tokenize(grid_config(tokenizer, split_folder), str(tmp_path / "G"))
    data = GridData(tmp_path / "G", "train")
    rows = data.rows.to_pylist()
    assert data.indices().tolist() == list(range(len(data)))
    assert data.indices(buckets=[1]).tolist() == [i for i, r in enumerate(rows) if r["bucket"] == 1]
    assert data.indices(families=["logic"], buckets=[0, 1]).tolist() == \
        [i for i, r in enumerate(rows) if r["family"] == "logic"]
    assert data.indices(bug_types="nope").size == 0
    everything, _ = data.batch(np.arange(len(data)))
    order = np.random.default_rng(0).permutation(len(data))
    source, _ = data.batch(order)
    assert (source == everything[order]).all()
    with pytest.raises(IndexError):
        data.batch(np.array([len(data)]))


def test_resume_redoes_only_missing_shards(tokenizer, split_folder, tmp_path):
    out = tmp_path / "G"
    config = grid_config(tokenizer, split_folder)
    first = run_tokenize(config, str(out))
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".npy", ".parquet"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    (out / "train" / "shard-00001.target.npy").unlink()
    again = run_tokenize(config, str(out))
    assert again["shards_done_now"] == 1 and again["shards_resumed"] == first["shards_done_now"] - 1
    assert again["splits"] == first["splits"]
    for path, (mtime, content) in before.items():
        assert path.read_bytes() == content
        redone = path.name.startswith("shard-00001.") and path.parent.name == "train"
        assert (path.stat().st_mtime_ns != mtime) == redone, path


def test_changed_arguments_are_refused_unless_forced(tokenizer, split_folder, tmp_path):
    out = str(tmp_path / "G")
    run_tokenize(grid_config(tokenizer, split_folder), out)
    with pytest.raises(ValueError, match="width"):
        run_tokenize(grid_config(tokenizer, split_folder, width=WIDTH + 8), out)
    other = save_tokenizer(train_tokenizer(["def f():\n    return 1\n"] * 3, vocab_size=600), tmp_path / "tok2")
    with pytest.raises(ValueError, match="tokenizer"):
        run_tokenize(grid_config(other, split_folder), out)
    meta = run_tokenize(grid_config(tokenizer, split_folder, width=WIDTH + 8), out, force=True)
    assert meta["width"] == WIDTH + 8 and GridData(out, "train").width == WIDTH + 8


def test_parallel_workers_write_the_same_shards(tokenizer, split_folder, tmp_path):
    run_tokenize(grid_config(tokenizer, split_folder), str(tmp_path / "one"), workers=1)
    meta = run_tokenize(grid_config(tokenizer, split_folder), str(tmp_path / "two"), workers=2)
    assert meta["shards_done_now"] == 5
    for path in sorted((tmp_path / "one").glob("*/shard-*.npy")):
        assert (np.load(path) == np.load(tmp_path / "two" / path.parent.name / path.name)).all()


def test_lm_stream_from_a_split_folder(tokenizer, split_folder, tmp_path):
    meta = run_tokenize(TokenizeConfig(tokenizer=str(tokenizer), input=str(split_folder), format="lm"),
                        str(tmp_path / "L"))
    tok = load_tokenizer(tokenizer)
    stream = TokenStream(tmp_path / "L", "train")
    unique = list(dict.fromkeys(r["fixed"] for r in part_rows(split_folder, "train")))
    entry = meta["splits"]["train"]
    assert entry["documents"] == len(unique) == len(stream.doc_starts) and entry["tokens"] == len(stream)
    assert entry["duplicates"] == len(part_rows(split_folder, "train")) - len(unique) > 0
    tokens = np.concatenate([stream._windows(np.array([0]), len(stream))[0]])
    ends = list(stream.doc_starts[1:]) + [len(stream)]
    for start, end, text in zip(stream.doc_starts, ends, unique):
        assert tokens[start] == BOS_ID and tokens[end - 1] == EOS_ID
        assert tok.decode(tokens[start + 1:end - 1].tolist()) == text
    x, y = stream.batch(np.random.default_rng(0), batch_size=8, seq_len=16)
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
    assert (x[:, 1:] == y[:, :-1]).all()
    batches = list(stream.sequential_batches(batch_size=3, seq_len=16))
    xs, ys = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    count = (len(stream) - 1) // 16
    assert len(xs) == count and (xs.reshape(-1) == tokens[:count * 16]).all()
    assert (ys.reshape(-1) == tokens[1:count * 16 + 1]).all()  # windows span the three shards


def test_lm_stream_from_tasks(tokenizer, tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    rows = [{"task_id": "demo/add", "prompt": "def add(a, b):\n", "entry_point": "add",
             "reference": "def add(a, b):\n    return a + b\n", "tests": [{"args": [1, 2]}]},
            {"task_id": "demo/neg", "prompt": "def neg(a):\n", "entry_point": "neg",
             "reference": "def neg(a):\n    return -a\n", "tests": [{"args": [1]}]}]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = run_tokenize(TokenizeConfig(tokenizer=str(tokenizer), input=f"tasks:jsonl:{tasks}", format="lm"),
                        str(tmp_path / "L"))
    tok = load_tokenizer(tokenizer)
    stream = TokenStream(tmp_path / "L", "train")
    assert meta["splits"]["train"]["documents"] == 2
    first = stream._windows(np.array([0]), int(stream.doc_starts[1]))[0].tolist()
    sep = first.index(SEP_ID)
    assert first[0] == BOS_ID and first[-1] == EOS_ID
    assert tok.decode(first[1:sep]) == "def add(a, b):\n" and tok.decode(first[sep + 1:-1]) == "    return a + b\n"


def test_lm_stream_from_source_files_with_a_holdout(tokenizer, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"m{i}.py").write_text(f"def f{i}(x):\n    return x * {i}\n\n\nclass C:\n    def g(self):\n        pass\n")
    (src / "bad.py").write_text("def (:\n")
    meta = run_tokenize(TokenizeConfig(tokenizer=str(tokenizer), input=f"dir:{src}", format="lm",
                                       holdout_fraction=0.3, files_per_shard=4), str(tmp_path / "L"))
    splits = meta["splits"]
    assert set(splits) == {"train", "validation"}
    assert splits["train"]["documents"] + splits["validation"]["documents"] == 24
    assert splits["train"]["skipped_files"] + splits["validation"]["skipped_files"] == 1
    assert len(TokenStream(tmp_path / "L", "validation").doc_starts) == splits["validation"]["documents"]


def test_readers_name_the_problem(tokenizer, split_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        GridData(tmp_path / "nothing", "train")
    run_tokenize(grid_config(tokenizer, split_folder), str(tmp_path / "G"))
    with pytest.raises(ValueError, match="--format lm"):
        TokenStream(tmp_path / "G", "train")
    with pytest.raises(ValueError, match="no split 'dev'"):
        GridData(tmp_path / "G", "dev")
    with pytest.raises(ValueError, match="split folder"):
        TokenizeConfig(tokenizer=str(tokenizer), input="stdlib", format="grid")


def test_cli_trains_and_tokenizes(split_folder, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text((STDLIB / "bisect.py").read_text())
    assert main(["text", "train-tokenizer", "--corpus", f"dir:{src}", "--vocab-size", "600", "--out",
                 str(tmp_path / "T")]) == 0
    assert "tokens" in capsys.readouterr().out
    assert main(["text", "train-tokenizer", "--corpus", f"dir:{src}", "--out", str(tmp_path / "T")]) == 2
    args = ["text", "tokenize", "--tokenizer", str(tmp_path / "T"), "--input", str(split_folder),
            "--out", str(tmp_path / "G"), "--lines", "16", "--width", "32", "--workers", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "train" in out and "line too long" in out
    assert main(args[:-4] + ["--width", "40"]) == 2
    assert "different arguments" in capsys.readouterr().err
    assert os.path.exists(tmp_path / "G" / "train" / "shard-00000.rows.parquet")
