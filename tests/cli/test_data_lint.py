"""`greenloop data lint-pairs` as a user drives it."""

import json

import pytest

from greenloop.cli import data, main


@pytest.fixture(autouse=True)
def lint_command(monkeypatch):
    if "data_lint" not in data.DATA_COMMANDS:
        monkeypatch.setattr(data, "DATA_COMMANDS", (*data.DATA_COMMANDS, "data_lint"))


def test_lint_pairs_writes_shards_and_prints_a_summary(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.py").write_text("def f(x):\n    return not x is None\n")
    (source / "b.py").write_bytes(b"def g(:\n")
    out = tmp_path / "out"
    code = main(["data", "lint-pairs", "--source", f"dir:{source}", "--out", str(out), "--workers", "1",
                 "--files-per-shard", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "2 files (1 skipped), 1 pairs" in printed and "E714 1" in printed
    assert "skipped b.py: does not parse" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pairs"] == 1 and manifest["shards"] == 2
    assert sorted(p.name for p in (out / "shards").glob("*.jsonl.gz")) == [
        "findings-00000.jsonl.gz", "findings-00001.jsonl.gz", "pairs-00000.jsonl.gz", "pairs-00001.jsonl.gz"]


def test_lint_pairs_errors_are_clean(tmp_path, capsys):
    assert main(["data", "lint-pairs", "--source", f"dir:{tmp_path / 'nowhere'}", "--out", str(tmp_path / "o")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["data", "lint-pairs", "--source", f"dir:{tmp_path}", "--out", str(tmp_path / "o"),
                 "--select", "F,NOPE1"]) == 2
    assert "NOPE1" in capsys.readouterr().err


def test_lint_pairs_help_names_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["data", "lint-pairs", "--help"])
    text = capsys.readouterr().out
    for option in ("--source", "--out", "--force", "--workers", "--select", "--unsafe-fixes", "--no-bandit",
                   "--files-per-shard", "--limit-files"):
        assert option in text
