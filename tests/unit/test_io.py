import gzip

import pytest

from greenloop.io import DataError, read_jsonl, require, write_jsonl


def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,,}\n')
    with pytest.raises(DataError) as err:
        list(read_jsonl(path))
    assert err.value.line == 3 and f"{path}:3" in str(err.value)


def test_on_error_reports_and_continues(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n{"a": 3}\n')
    errors = []
    rows = [r.data["a"] for r in read_jsonl(path, on_error=errors.append)]
    assert rows == [1, 3]
    assert errors[0].line == 2 and "expected a JSON object" in str(errors[0])


def test_require_names_the_field(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"task_id": 5}\n')
    record = next(read_jsonl(path))
    with pytest.raises(DataError, match=r":1: field 'task_id': expected str, got int"):
        require(record, "task_id")
    with pytest.raises(DataError, match="field 'prompt': missing"):
        require(record, "prompt")


def test_gzip_round_trip(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    assert write_jsonl(path, [{"x": i} for i in range(3)]) == 3
    with gzip.open(path, "rt") as fh:
        assert fh.read().count("\n") == 3
    assert [r.data["x"] for r in read_jsonl(path)] == [0, 1, 2]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        list(read_jsonl(tmp_path / "nope.jsonl"))
