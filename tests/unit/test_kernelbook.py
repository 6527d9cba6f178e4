"""KernelBook-style pairs read from JSONL and Parquet as prompt/completion records, with
errors that name file:line and the field."""

import json

import pytest

from greenloop.data.kernelbook import read_kernelbook
from greenloop.io import DataError
from greenloop.tasks.kernels import kernel_instruction

PYTHON = "import torch\nfrom torch import nn\n\n\nclass Helper(nn.Module):\n    pass\n\n\nclass Adder(nn.Module):\n" \
         "    def forward(self, x, y):\n        return x + y\n"
TRITON = "import triton\n\n\nclass AdderNew(nn.Module):\n    def forward(self, x, y):\n        return add_kernel(x, y)\n"
ROWS = [
    {"python_code": PYTHON, "triton_code": TRITON, "entry_point": "Adder", "repo_name": "someone/adders",
     "uuid": "u-1"},
    {"python_code": PYTHON, "triton_code": TRITON, "id": 7},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path, rows):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    columns = sorted({k for r in rows for k in r} - {"id"})
    pq.write_table(pa.table({c: [r.get(c) for r in rows] for c in columns}), path)
    return path


def check_records(records, path):
    first, second = records
    assert first == {"id": "u-1", "prompt": kernel_instruction(PYTHON, "Adder", "AdderNew"),
                     "completion": f"```python\n{TRITON.rstrip()}\n```\n", "entry_point": "AdderNew",
                     "source": "someone/adders"}
    assert "class Adder(" in first["prompt"] and "`AdderNew`" in first["prompt"]
    assert second["entry_point"] == "AdderNew" and second["source"] == str(path)
    return second


def test_jsonl_pairs_become_records(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    second = check_records(list(read_kernelbook(path)), path)
    assert second["id"] == "7"


def test_parquet_pairs_become_records(tmp_path):
    path = write_parquet(tmp_path / "pairs.parquet", ROWS)
    second = check_records(list(read_kernelbook(path)), path)
    assert second["id"] == "pairs.parquet:2"  # no uuid on that row: named by file and row


def test_instruction_matches_the_kernel_tasks():
    from greenloop.tasks import load_tasks

    task = load_tasks("kernels:level1").tasks["kernels/level1/relu"]
    head = kernel_instruction("SOURCE").split("SOURCE")[1]
    assert head.strip("`\n ") and head in task.prompt


BAD_ROWS = {
    "missing_triton": ({"python_code": PYTHON}, "triton_code", "missing"),
    "python_not_string": ({"python_code": 3, "triton_code": TRITON}, "python_code", "expected str"),
    "entry_not_string": ({"python_code": PYTHON, "triton_code": TRITON, "entry_point": 1}, "entry_point", "expected"),
    "entry_not_defined": ({"python_code": PYTHON, "triton_code": TRITON, "entry_point": "Mul"}, "entry_point",
                          "no class 'Mul'"),
    "no_rewrite_found": ({"python_code": PYTHON, "triton_code": "x = 1\n"}, "entry_point", "missing"),
    "rewrite_missing": ({"python_code": PYTHON, "triton_code": "x = 1\n", "entry_point": "Adder"}, "triton_code",
                        "AdderNew"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_jsonl_row_names_file_line_and_field(case, tmp_path):
    row, field, words = BAD_ROWS[case]
    path = write_jsonl(tmp_path / "pairs.jsonl", [ROWS[0], row])
    with pytest.raises(DataError, match=words) as caught:
        list(read_kernelbook(path))
    assert str(caught.value).startswith(f"{path}:2: field {field!r}:")


def test_null_parquet_cell_names_row_and_field(tmp_path):
    path = write_parquet(tmp_path / "pairs.parquet", [ROWS[0], {**ROWS[0], "python_code": None}])
    with pytest.raises(DataError, match="expected str, got NoneType") as caught:
        list(read_kernelbook(path))
    assert str(caught.value).startswith(f"{path}:2: field 'python_code':")


def test_on_error_skips_bad_rows_and_keeps_the_rest(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n" + json.dumps({"python_code": PYTHON}) + "\n"
                    + json.dumps(ROWS[1]) + "\n")
    errors = []
    records = list(read_kernelbook(path, on_error=errors.append))
    assert [r["id"] for r in records] == ["u-1", "7"]
    assert [(e.line, e.field) for e in errors] == [(2, None), (3, "triton_code")]


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        list(read_kernelbook(tmp_path / "absent.parquet"))
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a Parquet file"):
        list(read_kernelbook(tmp_path / "junk.parquet"))
