"""Tiny data for training tests: a split folder of missing-colon pairs over generated
functions, its tokenizer (vocab 512), and the grid and lm folders tokenized from it."""

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from greenloop.data.pairs import make_pair
from greenloop.data.split import _schema as split_schema
from greenloop.text.tokenize_data import TokenizeConfig, run_tokenize
from greenloop.text.tokenizer import save_tokenizer, train_tokenizer

NAMES = ["total", "count", "value", "items", "data", "result", "index", "limit"]
LINES, WIDTH = 8, 16


def program(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    op = rng.choice(["+", "-", "*"])
    head = rng.choice([f"if {a} > {b}:", f"for {a} in {b}:", f"while {a}:"])
    return f"def f_{a}({a}, {b}):\n    {head}\n        {b} = {a} {op} {rng.randint(1, 9)}\n    return {b}\n"


def pairs(count: int, seed: int, bucket_of) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        fixed = program(rng)
        buggy = fixed.replace(":\n        ", "\n        ", 1)
        row = make_pair(bug_type="missing_colon", family="syntax", source="dir:gen", path=f"g{seed}_{i}.py",
                        unit=f"u{i}", buggy=buggy, fixed=fixed, task_id=None, verified=None)
        row["bucket"], row["meta"] = bucket_of(i), "{}"
        rows.append(row)
    return rows


def write_split(root: Path) -> Path:
    for split, count, seed in (("train", 96, 0), ("validation", 24, 1), ("test", 24, 2)):
        rows = pairs(count, seed, lambda i: i % 2)
        for bucket in (0, 1):
            folder = root / split / f"bucket-{bucket}"
            folder.mkdir(parents=True, exist_ok=True)
            chosen = [r for r in rows if r["bucket"] == bucket]
            pq.write_table(pa.Table.from_pylist(chosen, schema=split_schema()), folder / "part-00000.parquet")
    (root / "manifest.json").write_text("{}")
    return root


@pytest.fixture(scope="session")
def split_folder(tmp_path_factory) -> Path:
    return write_split(tmp_path_factory.mktemp("split"))


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, split_folder) -> Path:
    import pyarrow.parquet as pq

    texts = [t for p in sorted(split_folder.glob("train/*/*.parquet"))
             for row in pq.read_table(p).to_pylist() for t in (row["buggy"], row["fixed"])]
    return save_tokenizer(train_tokenizer(texts, vocab_size=512), tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def grid_folder(tmp_path_factory, split_folder, tokenizer_dir) -> Path:
    out = tmp_path_factory.mktemp("grid")
    run_tokenize(TokenizeConfig(tokenizer=str(tokenizer_dir), input=str(split_folder), format="grid",
                                lines=LINES, width=WIDTH), out, workers=1, force=True)
    return out


@pytest.fixture(scope="session")
def lm_folder(tmp_path_factory, split_folder, tokenizer_dir) -> Path:
    out = tmp_path_factory.mktemp("lm")
    run_tokenize(TokenizeConfig(tokenizer=str(tokenizer_dir), input=str(split_folder), format="lm"),
                 out, workers=1, force=True)
    return out
