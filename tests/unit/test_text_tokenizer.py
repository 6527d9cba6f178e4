"""The code tokenizer: exact round trips on any text, keywords as single tokens, fixed
special ids, a saved folder that transformers loads, and training corpora."""

import json
import keyword
import random
import subprocess
import sys
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from greenloop.data.units import SkipFile, file_units, read_source, source_files
from greenloop.text.tokenizer import (BOS_ID, EOL_ID, EOS_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS, corpus_texts,
                                      keyword_forms, load_tokenizer, save_tokenizer, tokenizer_fingerprint,
                                      train_tokenizer)

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CORPUS_FILES = ("functools.py", "textwrap.py", "shlex.py", "fractions.py", "string.py", "bisect.py")
SNIPPETS = [
    "",
    "def f(x):\n    return x + 1\n",
    "def größe(länge):\n    return f\"{länge:>10} ünïcödé — 日本語\"\n",
    "# 🙂 emoji 👩‍💻 in a comment\ns = '🐍'\n",
    "if x:\n\treturn\t1  \n\t\t\n",
    "a = 1\r\nb = 2\r\n",
    "old_mac = 1\rnext = 2\r",
    "trailing spaces    \n   \n",
    "x.is_ = define + classify(import_module, notify)  # async_ await_x\n",
    "\x00\x01\x7f\u200b\ufeff\u00a0 odd bytes\n",
    "class  A :\n    pass\n\n\n\n",
    "    leading indent only",
]


def stdlib_texts(names=CORPUS_FILES) -> list[str]:
    return [(STDLIB / name).read_text(encoding="utf-8") for name in names]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(stdlib_texts(), vocab_size=1024)


def test_special_tokens_have_fixed_ids(tok):
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(6))
    assert (PAD_ID, BOS_ID, EOS_ID, SEP_ID, EOL_ID) == (0, 1, 2, 3, 4)
    assert tok.id_to_token(EOL_ID) == "<|eol|>"


def test_text_that_spells_a_special_token_is_ordinary_text(tok, tmp_path):
    text = 'marker = "<|eol|><|pad|>"  # <|eos|>\n'
    ids = tok.encode(text).ids
    assert not set(ids) & set(range(6)) and tok.decode(ids) == text
    assert not set(load_tokenizer(save_tokenizer(tok, tmp_path)).encode(text).ids) & set(range(6))


@pytest.mark.parametrize("text", SNIPPETS)
def test_round_trip_is_exact(tok, text):
    assert tok.decode(tok.encode(text).ids) == text
    assert PAD_ID not in tok.encode(text).ids


def test_round_trip_on_random_stdlib_functions(tok):
    rng = random.Random(0)
    _, files = source_files("stdlib")
    checked = 0
    for file in rng.sample(files, 40):
        try:
            units = file_units(file.path, read_source(file))
        except SkipFile:
            continue
        for unit in rng.sample(units, min(8, len(units))):
            ids = tok.encode(unit.source).ids
            assert tok.decode(ids) == unit.source, f"{file.path}:{unit.name}"
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("vocab_size", [1024, 1500])
def test_every_keyword_is_one_token_and_words_containing_them_round_trip(vocab_size):
    tok = train_tokenizer(stdlib_texts(), vocab_size=vocab_size)
    assert tok.get_vocab_size() <= vocab_size
    forms = keyword_forms()
    assert len(forms) == 2 * len(keyword.kwlist + keyword.softkwlist)
    for form in forms:
        assert len(tok.encode(form).ids) == 1, (form, tok.encode(form).tokens)
    for text in ("define", "classify", "import_module", "notify", "x.is_", "returned", "iffy", "elsewhere",
                 "nonlocals", "yield_from", "matches", "TrueType", "_private", "__class__", "a def", "\tdef"):
        assert tok.decode(tok.encode(text).ids) == text


def test_keyword_tokens_work_in_context(tok):
    ids = tok.encode("def f():\n    return None").tokens
    assert "def" in ids and "Ġreturn" in ids and "ĠNone" in ids


def test_too_small_vocabulary_is_refused():
    with pytest.raises(ValueError, match="vocab-size"):
        train_tokenizer(["x = 1"], vocab_size=300)


def test_saved_folder_loads_in_transformers_with_the_same_ids(tok, tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = save_tokenizer(tok, tmp_path / "tok", corpus="six stdlib files")
    info = json.loads((folder / "greenloop_tokenizer.json").read_text())
    assert info["tokenizer_sha256"] == tokenizer_fingerprint(folder) and info["vocab_size"] == tok.get_vocab_size()
    assert info["corpus"] == "six stdlib files"
    assert load_tokenizer(folder).encode(SNIPPETS[2]).ids == tok.encode(SNIPPETS[2]).ids
    for cls in (PreTrainedTokenizerFast, AutoTokenizer):
        hf = cls.from_pretrained(str(folder))
        assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id, hf.sep_token_id) == (0, 1, 2, 3)
        for text in SNIPPETS + ["s = '<|eos|>'"]:
            ids = hf(text)["input_ids"]
            assert ids == tok.encode(text).ids
            assert hf.decode(ids) == text


def test_load_refuses_a_folder_without_a_tokenizer(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-tokenizer"):
        load_tokenizer(tmp_path)


def write_split_folder(root: Path, texts: dict[str, list[str]]) -> Path:
    """A minimal `greenloop data split` folder: one part file per split, buggy == fixed."""
    for split, items in texts.items():
        (root / split / "bucket-0").mkdir(parents=True)
        table = pa.table({"buggy": items, "fixed": [t + "\n" for t in items]})
        pq.write_table(table, root / split / "bucket-0" / "part-00000.parquet")
    (root / "manifest.json").write_text("{}")
    return root


def test_split_folder_corpus_reads_only_the_train_split(tmp_path):
    folder = write_split_folder(tmp_path / "S", {"train": ["a = 1", "b = 2"], "validation": ["SECRET_V"],
                                                  "test": ["SECRET_T"]})
    stats: dict = {}
    texts = list(corpus_texts(str(folder), stats))
    assert texts == ["a = 1", "a = 1\n", "b = 2", "b = 2\n"]
    assert stats["texts"] == 4 and stats["bytes"] == sum(len(t) for t in texts)


def test_corpus_specs(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("def f():\n    pass\n")
    (tmp_path / "src" / "bad.py").write_bytes(b"x = '\xe9'\n")
    stats: dict = {}
    assert list(corpus_texts(f"dir:{tmp_path / 'src'}", stats)) == ["def f():\n    pass\n"]
    assert stats["skipped"] == 1
    with pytest.raises(ValueError, match="manifest.json"):
        list(corpus_texts(str(tmp_path / "src")))


def test_import_greenloop_and_building_the_cli_stay_light():
    code = ("import sys, greenloop, greenloop.text, greenloop.text.tokenizer\n"
            "from greenloop.cli import build_parser; build_parser()\n"
            "heavy = {'torch', 'tokenizers', 'transformers'} & set(sys.modules)\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
