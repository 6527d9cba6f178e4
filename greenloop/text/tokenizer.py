"""The code tokenizer: byte-level BPE trained on Python, saved so `transformers` loads it.

Exactness: the ByteLevel pre-tokenizer (GPT-2's split, `add_prefix_space=False`), no
normalizer and the ByteLevel decoder map every string to its UTF-8 bytes and back, so
`decode(encode(s)) == s` for any string: non-ASCII, tabs, CR, trailing spaces included.

Special tokens, the same ids in every tokenizer this module trains:

| id | token | meaning |
|---|---|---|
| 0 | `<|pad|>` | an unused cell of a grid, the tail of a batch |
| 1 | `<|bos|>` | starts a document of a language-model stream |
| 2 | `<|eos|>` | ends a document |
| 3 | `<|sep|>` | between a prompt and its completion, or a buggy and a fixed program |
| 4 | `<|eol|>` | ends a row of a grid (`greenloop.text.grid`) |
| 5 | `<|unk|>` | never produced (every byte has a token); kept for tools that expect one |

They enter a sequence only by id: a text that spells one (`"<|eos|>"` in a string
literal) is encoded as ordinary bytes (`encode_special_tokens`, which `tokenizer.json`
does not store, so `load_tokenizer` sets it; `split_special_tokens` for transformers),
so code that mentions them round-trips and never breaks a grid or a document.

Keywords: every word of `keyword.kwlist` and `keyword.softkwlist` is one token, both bare
(`def`) and after one space (` def`). After training, for each such form that the learned
merges leave in pieces, merges joining those pieces are appended at the lowest priority
(forced merges), and as many of the last-learned merges are dropped as the forced ones add
tokens, so the vocabulary stays within `vocab_size`. The result is plain BPE, so any BPE
reader gives the same ids. Appended merges act only on pieces the learned merges leave
side by side, so other words keep their learned split, except that a keyword's pieces
inside a longer word may join (`define` -> `def` + `ine`); since a merge only joins bytes,
every text still round-trips.

Added tokens with `single_word=True` were the other way, and were not taken: they are cut
out of the raw text before pre-tokenization, so ` def` after a word character (`a def`) is
not matched while `def` is, and the indentation before a keyword splits differently
(`  import` -> `  ` + `import`) from anywhere else.

Training corpora (`corpus_texts`): `stdlib`, `dir:PATH`, or a `greenloop data split`
folder, of which only the train split's `buggy` and `fixed` are read, never validation or
test. Heavy imports (`tokenizers`, `pyarrow`) happen inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>", "<|sep|>", "<|eol|>", "<|unk|>")
PAD_ID, BOS_ID, EOS_ID, SEP_ID, EOL_ID, UNK_ID = range(len(SPECIAL_TOKENS))
KEYWORDS = tuple(keyword.kwlist) + tuple(keyword.softkwlist)
MIN_VOCAB_SIZE = 512
TOKENIZER_FILE, INFO_FILE = "tokenizer.json", "greenloop_tokenizer.json"


def keyword_forms() -> list[str]:
    """The strings that must each be one token: every keyword bare and after a space."""
    return [form for word in KEYWORDS for form in (word, " " + word)]


def _empty_tokenizer() -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int = 32768, min_frequency: int = 2,
                    show_progress: bool = False) -> Tokenizer:
    """Train byte-level BPE on `texts`; at most `vocab_size` tokens (fewer when the corpus
    has too few pairs worth merging), keywords forced to single tokens."""
    from tokenizers import pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"--vocab-size {vocab_size}: at least {MIN_VOCAB_SIZE} (256 bytes, the special tokens "
                         "and the keywords need room)")
    if min_frequency < 1:
        raise ValueError(f"--min-frequency {min_frequency}: must be at least 1")
    tok = _empty_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=show_progress,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return _force_keyword_merges(tok, vocab_size)


def _bpe_pieces(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE of one pre-tokenized word as the `tokenizers` model does it: join the
    lowest-ranked adjacent pair (the leftmost on a tie) until none is ranked."""
    pieces = list(word)
    while len(pieces) > 1:
        best = min(range(len(pieces) - 1), key=lambda i: ranks.get((pieces[i], pieces[i + 1]), sys.maxsize))
        if (pieces[best], pieces[best + 1]) not in ranks:
            break
        pieces[best:best + 2] = [pieces[best] + pieces[best + 1]]
    return pieces


def _keyword_chains(words: list[str], merges: list[tuple[str, str]],
                    known: set[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Merges to append so that every word becomes one token, and the tokens they add."""
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    forced: list[tuple[str, str]] = []
    added: list[str] = []
    for word in words:
        pieces = _bpe_pieces(word, ranks)
        while len(pieces) > 1:
            # pieces is a fixed point of every merge so far, so this pair is new and, ranked
            # last, applies only once nothing else does: exactly here
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(ranks)
            forced.append(pair)
            if pair[0] + pair[1] not in known:
                known.add(pair[0] + pair[1])
                added.append(pair[0] + pair[1])
            pieces = _bpe_pieces(word, ranks)
    return forced, added


def _force_keyword_merges(tok: Tokenizer, vocab_size: int) -> Tokenizer:
    from tokenizers import Tokenizer, pre_tokenizers

    data = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    made = {a + b for a, b in merges}
    base = {token for token in vocab if token not in made}  # specials and the 256 byte symbols
    split = pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str
    words = [split(form)[0][0] for form in keyword_forms()]
    kept = len(merges)
    while True:
        known = base | {a + b for a, b in merges[:kept]}
        forced, added = _keyword_chains(words, merges[:kept], set(known))
        over = len(known) + len(added) - vocab_size
        if over <= 0:
            break
        if kept == 0:
            raise ValueError(f"vocab size {vocab_size} is too small to hold the keywords as single tokens")
        kept = max(0, kept - over)  # the last-learned merges are the least useful ones
    order = sorted(known, key=vocab.__getitem__) + added  # learned ids stay as they were
    data["model"]["vocab"] = {token: i for i, token in enumerate(order)}
    data["model"]["merges"] = [list(pair) for pair in merges[:kept] + forced]
    result = Tokenizer.from_str(json.dumps(data, ensure_ascii=False))
    result.encode_special_tokens = True
    if [result.token_to_id(t) for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise RuntimeError("special tokens lost their fixed ids while forcing keyword merges")
    broken = [form for form in keyword_forms() if len(result.encode(form).ids) != 1]
    if broken:
        raise RuntimeError(f"keywords not single tokens after forcing merges: {broken}")
    return result


def save_tokenizer(tok: Tokenizer, folder: str | Path, corpus: str = "", training: dict[str, Any] | None = None) -> Path:
    """Write `tokenizer.json` and the files `transformers` reads (`tokenizer_config.json`,
    `special_tokens_map.json`), then `greenloop_tokenizer.json` (vocabulary size, corpus,
    sha256 of tokenizer.json)."""
    from greenloop.data.shards import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{TOKENIZER_FILE}.tmp"
    tok.save(str(tmp))
    tmp.replace(folder / TOKENIZER_FILE)
    special = {"pad_token": "<|pad|>", "bos_token": "<|bos|>", "eos_token": "<|eos|>", "sep_token": "<|sep|>",
               "unk_token": "<|unk|>", "additional_special_tokens": ["<|eol|>"]}
    write_json(folder / "special_tokens_map.json", special)
    # clean_up_tokenization_spaces would rewrite " ," to "," and break exact decoding
    write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
        "split_special_tokens": True,
        "add_bos_token": False, "add_eos_token": False, **special})
    write_json(folder / INFO_FILE, {
        "vocab_size": tok.get_vocab_size(), "corpus": corpus, "training": training or {},
        "special_tokens": {t: i for i, t in enumerate(SPECIAL_TOKENS)}, "keywords": "forced merges",
        "tokenizer_sha256": tokenizer_fingerprint(folder)})
    return folder


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """The tokenizer in `folder` (written by `save_tokenizer`), its special ids checked."""
    from tokenizers import Tokenizer

    path = Path(folder) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {TOKENIZER_FILE} (train one with `greenloop text train-tokenizer`)")
    tok = Tokenizer.from_file(str(path))
    tok.encode_special_tokens = True
    ids = [tok.token_to_id(t) for t in SPECIAL_TOKENS]
    if ids != list(range(len(SPECIAL_TOKENS))):
        raise ValueError(f"{path}: special tokens {list(SPECIAL_TOKENS)} must have ids 0..5, found {ids}")
    return tok


def tokenizer_fingerprint(folder: str | Path) -> str:
    """sha256 of the folder's tokenizer.json: what identifies a tokenizer in a run."""
    digest = hashlib.sha256()
    with open(Path(folder) / TOKENIZER_FILE, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_texts(spec: str, stats: dict[str, int] | None = None) -> Iterator[str]:
    """The training texts a `--corpus` spec names: whole files of `stdlib` or `dir:PATH`,
    or the train split's `buggy` and `fixed` of a split folder. `stats` (if given) counts
    texts, bytes and skipped files as they are read."""
    stats = stats if stats is not None else {}
    for key in ("texts", "bytes", "skipped"):
        stats.setdefault(key, 0)
    for text in _corpus(spec, stats):
        stats["texts"] += 1
        stats["bytes"] += len(text.encode("utf-8", "surrogatepass"))
        yield text


def _corpus(spec: str, stats: dict[str, int]) -> Iterator[str]:
    from greenloop.data.units import SkipFile, read_source, source_files

    if spec == "stdlib" or spec.startswith("dir:"):
        _, files = source_files(spec)
        for file in files:
            try:
                yield read_source(file)
            except SkipFile:
                stats["skipped"] += 1
        return
    from greenloop.text.tokenize_data import read_parts, split_parts

    parts = split_parts(spec).get("train")
    if not parts:
        raise ValueError(f"--corpus {spec}: the split folder has no train split")
    for batch in read_parts(parts, ["buggy", "fixed"]):
        for buggy, fixed in zip(batch["buggy"], batch["fixed"]):
            yield buggy
            yield fixed
