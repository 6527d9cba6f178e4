"""Grid encoding: exact round trips, both overflow limits, batched encoding equal to one at
a time, and decoding that tolerates what a model writes."""

import sysconfig
from pathlib import Path

import numpy as np
import pytest

from greenloop.text.grid import (LINE_TOO_LONG, TOO_MANY_LINES, GridOverflow, decode_grid, decode_grids,
                                 encode_grid, encode_grids, grid_mask)
from greenloop.text.tokenizer import EOL_ID, PAD_ID, train_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TEXTS = [
    "def f(x):\n    return x + 1\n",
    "def f(x):\n    return x + 1",
    "",
    "\n",
    "\n\n\n",
    "def g():\n\n    # blank line above\n    pass\n\n",
    "def größe():\n    return 'ünïcödé 🙂'\n",
    "if a:\r\n\tb = '<|eol|>'  \r\n",
]


@pytest.fixture(scope="module")
def tok():
    texts = [(STDLIB / name).read_text(encoding="utf-8") for name in ("functools.py", "textwrap.py", "shlex.py")]
    return train_tokenizer(texts, vocab_size=1024)


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tok, text):
    grid = encode_grid(tok, text, lines=8, width=24)
    assert grid.shape == (8, 24) and grid.dtype == np.int32
    rows = text.split("\n")
    assert (grid == EOL_ID).sum(axis=1).tolist() == [1] * len(rows) + [0] * (8 - len(rows))
    assert not grid[len(rows):].any()
    assert decode_grid(tok, grid) == text


def test_layout_of_a_row(tok):
    grid = encode_grid(tok, "    return x\n", lines=4, width=16)
    ids = tok.encode("    return x", add_special_tokens=False).ids
    assert grid[0, :len(ids)].tolist() == ids and grid[0, len(ids)] == EOL_ID and not grid[0, len(ids) + 1:].any()
    assert grid[1].tolist() == [EOL_ID] + [PAD_ID] * 15  # the empty row after the trailing newline
    assert grid_mask(grid).sum() == len(ids) + 2


def test_too_many_lines(tok):
    assert encode_grid(tok, "a\n" * 3, lines=4, width=8) is not None  # 4 rows: the last is empty
    assert encode_grid(tok, "a\n" * 4, lines=4, width=8) is None
    with pytest.raises(GridOverflow, match="5 lines") as err:
        encode_grid(tok, "a\n" * 4, lines=4, width=8, strict=True)
    assert err.value.reason == TOO_MANY_LINES


def test_line_too_long(tok):
    line = "result = compute(alpha, beta, gamma) + 'ünï'"
    cells = len(tok.encode(line).ids) + 1
    assert encode_grid(tok, f"x\n{line}\n", lines=4, width=cells) is not None
    assert encode_grid(tok, f"x\n{line}\n", lines=4, width=cells - 1) is None
    with pytest.raises(GridOverflow, match=f"line 2 needs {cells} cells") as err:
        encode_grid(tok, f"x\n{line}\n", lines=4, width=cells - 1, strict=True)
    assert err.value.reason == LINE_TOO_LONG


def test_batched_encoding_matches_one_at_a_time(tok):
    texts = TEXTS + ["a\n" * 9, "x = " + "1 + " * 20 + "1\n"] + TEXTS[:3]
    grids, reasons = encode_grids(tok, texts, lines=8, width=24, dtype=np.uint16)
    assert grids.dtype == np.uint16 and grids.shape == (len(texts), 8, 24)
    assert reasons[len(TEXTS)] == TOO_MANY_LINES and reasons[len(TEXTS) + 1] == LINE_TOO_LONG
    for text, grid, reason in zip(texts, grids, reasons):
        single = encode_grid(tok, text, lines=8, width=24)
        assert (single is None) == (reason is not None)
        if single is None:
            assert not grid.any()
        else:
            assert (grid == single).all()
    fitting = [t for t, r in zip(texts, reasons) if r is None]
    assert decode_grids(tok, grids[[r is None for r in reasons]]) == fitting


def test_decoding_tolerates_model_output(tok):
    a, b = (tok.encode(s).ids for s in ("x = 1", "y"))
    grid = np.zeros((6, 10), dtype=np.int64)
    grid[0, :len(a) + 1 + len(b)] = a + [EOL_ID, *b]  # junk after the eol
    grid[1, :len(b)] = b  # no eol: ends at the first pad
    grid[2, :] = (b * 10)[:10]  # no eol and no pad: the whole row
    grid[3, :2] = [EOL_ID, 7]  # an empty row with junk
    # rows 4 and 5 are all pad: ignored
    assert decode_grid(tok, grid) == "x = 1\ny\n" + "y" * 10 + "\n"
    grid[4, 1:3] = [7, 8]  # starts with pad: an empty row, and it is not trailing any more
    grid[5, :len(b) + 1] = b + [EOL_ID]
    assert decode_grid(tok, grid) == "x = 1\ny\n" + "y" * 10 + "\n\n\ny"
    assert decode_grid(tok, np.zeros((3, 4), dtype=np.int32)) == ""
    grid = np.array([[1, 2, 3, *a, EOL_ID]])  # bos/eos/sep inside a row are dropped
    assert decode_grid(tok, grid) == "x = 1"


def test_bad_shapes_are_refused(tok):
    with pytest.raises(ValueError, match="2-D"):
        decode_grid(tok, np.zeros(4, dtype=np.int32))
    with pytest.raises(ValueError, match="at least"):
        encode_grids(tok, ["x"], lines=4, width=1)
