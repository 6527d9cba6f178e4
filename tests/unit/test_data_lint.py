"""lint-pairs: ruff's fixes as pairs, bandit's findings as examples, bad files skipped, resumable."""

import ast
import gzip
import json
import os

import pytest

from greenloop.data import lint
from greenloop.data.lint import LintPairsConfig, run_lint_pairs
from greenloop.data.lint_tools import ToolFailed, apply_spans, fix_spans, run_per_file

CHECKS = '''\
import os


def is_present(value):
    return not value is None


def compare(value):
    return value == None


def local_import():
    import json
    return 1


class Shape:
    def area(self, side):
        if side > 0:
            return side * side
        else:
            return 0
'''
SHELL = '''\
import subprocess


def run(cmd):
    return subprocess.call(cmd, shell=True)
'''
# columns are characters, not bytes: the fix lands after the multi-byte string only if so
ACCENTS = 'def greet(name):\r\n    label = "héllo wörld 😀"; return not name is None\r\n'


def make_source(root):
    root.mkdir()
    (root / "checks.py").write_text(CHECKS)
    (root / "pkg").mkdir()
    (root / "pkg" / "shell.py").write_text(SHELL)
    (root / "pkg" / "accents.py").write_bytes(ACCENTS.encode())
    (root / "latin1.py").write_bytes(b'x = "caf\xe9"\n')
    (root / "broken.py").write_text("def broken(:\n    return 1\n")
    (root / "huge.py").write_text("x = 1\n" * 2000)
    return root


CONFIG = LintPairsConfig(files_per_shard=2, max_file_bytes=5000)


def read_shards(out, prefix):
    rows = []
    for path in sorted((out / "shards").glob(f"{prefix}-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh]
    return rows


def shard_contents(out):
    """Every shard's rows and every report, by file name (gzip headers hold a time stamp)."""
    contents = {}
    for path in sorted((out / "shards").iterdir()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            contents[path.name] = fh.read()
    return contents


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("lint")
    manifest = run_lint_pairs(f"dir:{make_source(base / 'src')}", base / "out", CONFIG)
    return manifest, read_shards(base / "out", "pairs"), read_shards(base / "out", "findings")


def by_rule(pairs, rule):
    return [p for p in pairs if p["bug_type"] == rule]


def test_each_safe_fix_is_a_function_level_pair_labelled_with_its_rule(default_run):
    _, pairs, _ = default_run
    (identity,) = [p for p in by_rule(pairs, "ruff:E714") if p["path"] == "checks.py"]
    assert identity["unit"] == "is_present" and identity["path"] == "checks.py" and identity["family"] == "lint"
    assert "not value is None" in identity["buggy"] and "not value is None" not in identity["fixed"]
    assert "value is not None" in identity["fixed"]
    (branch,) = by_rule(pairs, "ruff:RET505")
    assert branch["unit"] == "Shape.area" and branch["buggy"].startswith("def area(self, side):")
    assert "else:" in branch["buggy"] and "else:" not in branch["fixed"]
    (unused,) = by_rule(pairs, "ruff:F401")  # the module-level `import os` makes no pair
    assert unused["unit"] == "local_import" and "import json" not in unused["fixed"]
    assert unused["meta"]["applicability"] == "safe" and "json" in unused["meta"]["message"]
    for pair in pairs:
        ast.parse(pair["buggy"]), ast.parse(pair["fixed"])
        assert pair["buggy"] != pair["fixed"] and pair["diff"]
        assert pair["buggy"].startswith("def ") and pair["fixed"].startswith("def ")  # dedented, whole


def test_columns_count_characters_and_crlf_files_work(default_run):
    _, pairs, _ = default_run
    (pair,) = [p for p in by_rule(pairs, "ruff:E714") if p["unit"] == "greet"]
    assert 'label = "héllo wörld 😀"; return name is not None' in pair["fixed"]


def test_unsafe_and_module_level_fixes_are_counted_not_paired(default_run):
    manifest, pairs, _ = default_run
    assert not by_rule(pairs, "ruff:E711")
    # unsafe: E711 in compare, F841 (unused `label`) in greet; outside: the module's `import os`
    assert manifest["fixes_skipped"] == {"unsafe": 2, "outside_function": 1}
    assert manifest["pairs"] == len(pairs) == 4
    assert manifest["rules"] == {"E714": 2, "F401": 1, "RET505": 1}


def test_bandit_findings_are_labelled_examples(default_run):
    manifest, _, findings = default_run
    (shell,) = [f for f in findings if f["test_id"] == "B602"]
    assert shell["unit"] == "run" and shell["path"] == os.path.join("pkg", "shell.py")
    assert shell["severity"] == "HIGH" and shell["family"] == "security" and shell["cwe"] == 78
    assert shell["code"] == "def run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    assert shell["lines"] == [2, 2] and shell["meta"]["line_in_file"] == 5
    assert "B404" not in manifest["tests"]  # `import subprocess` is module level
    assert manifest["findings_skipped"]["outside_function"] >= 1


def test_bad_files_are_skipped_with_path_and_reason(default_run):
    manifest, _, _ = default_run
    reasons = {entry["path"]: entry["reason"] for entry in manifest["skipped_files"]}
    assert reasons.keys() == {"latin1.py", "broken.py", "huge.py"}
    assert reasons["latin1.py"].startswith("not UTF-8")
    assert reasons["broken.py"].startswith("does not parse")
    assert reasons["huge.py"].startswith("huge")
    assert manifest["files"] == 6 and manifest["files_linted"] == 3 and manifest["tool_errors"] == []


def test_unsafe_fixes_when_asked(tmp_path):
    source = make_source(tmp_path / "src")
    (source / "quiet.py").write_text("def quiet(action):\n    try:\n        action()\n    except OSError:\n        pass\n")
    run_lint_pairs(f"dir:{source}", tmp_path / "out", LintPairsConfig(unsafe_fixes=True, bandit=False))
    pairs = read_shards(tmp_path / "out", "pairs")
    (pair,) = by_rule(pairs, "ruff:E711")
    assert "value == None" in pair["buggy"] and "value is None" in pair["fixed"]
    assert pair["meta"]["applicability"] == "unsafe" and not pair["meta"]["edits_outside_function"]
    (suppress,) = by_rule(pairs, "ruff:SIM105")  # also adds `import contextlib` above the function
    assert "with contextlib.suppress(OSError):" in suppress["fixed"] and "import" not in suppress["fixed"]
    assert suppress["meta"]["edits_outside_function"]
    assert not list((tmp_path / "out" / "shards").glob("findings-*"))


def test_a_rerun_redoes_only_the_unfinished_shard(tmp_path, monkeypatch):
    source, out = make_source(tmp_path / "src"), tmp_path / "out"
    first = run_lint_pairs(f"dir:{source}", out, CONFIG)
    before = shard_contents(out)
    (out / "shards" / "pairs-00000.report.json").unlink()  # as if killed before it finished
    done = []
    real_call = lint.LintShard.__call__
    monkeypatch.setattr(lint.LintShard, "__call__", lambda self, item: done.append(item[0]) or real_call(self, item))
    second = run_lint_pairs(f"dir:{source}", out, CONFIG)
    assert done == [0]
    assert second == first
    assert shard_contents(out) == before


def test_other_arguments_on_the_same_folder_are_refused(tmp_path):
    source, out = make_source(tmp_path / "src"), tmp_path / "out"
    run_lint_pairs(f"dir:{source}", out, LintPairsConfig(bandit=False, limit_files=1))
    with pytest.raises(ValueError, match="select"):
        run_lint_pairs(f"dir:{source}", out, LintPairsConfig(bandit=False, limit_files=1, select="F"))


def test_a_selection_ruff_does_not_know_is_a_clean_error(tmp_path):
    with pytest.raises(ValueError, match="XYZ9"):
        run_lint_pairs(f"dir:{make_source(tmp_path / 'src')}", tmp_path / "out", LintPairsConfig(select="F,XYZ9"))
    with pytest.raises(ValueError, match="rule codes"):
        LintPairsConfig(select="f401")


def test_fix_spans_use_character_columns_and_refuse_overlaps():
    text = "é = 1\r\nx == None\n"
    edit = {"location": {"row": 2, "column": 1}, "end_location": {"row": 2, "column": 10}, "content": "x is None"}
    assert apply_spans(text, fix_spans(text, [edit])) == "é = 1\r\nx is None\n"
    tail = {"location": {"row": 1, "column": 5}, "end_location": {"row": 3, "column": 1}, "content": ""}
    assert apply_spans(text, fix_spans(text, [tail])) == "é = "
    with pytest.raises(ValueError):
        fix_spans(text, [edit, {**edit, "content": "y"} | {"location": {"row": 2, "column": 3}}])
    with pytest.raises(ValueError):
        fix_spans(text, [{**edit, "location": {"row": 9, "column": 1}}])


def test_a_tool_failing_on_one_file_costs_only_that_file():
    def scan(paths):
        if "/bad.py" in paths and len(paths) > 0:
            raise ToolFailed("crashed")
        return {path: [{"ok": path}] for path in paths}

    results, errors = run_per_file(scan, ["/a.py", "/bad.py", "/c.py"], "ruff")
    assert set(results) == {"/a.py", "/c.py"} and errors == {"/bad.py": "ruff: crashed"}


def test_a_fix_inside_a_function_gives_what_recutting_the_fixed_file_gives():
    from greenloop.data.units import SourceFile, file_units

    text = "import os\n\n\nclass C:\n    def f(self):\n        '''doc'''\n        pass\n        # trailing\n\n\ndef g():\n    return 1\n"
    linted = lint.LintedFile(SourceFile("/nowhere", "m.py"), text, file_units("m.py", text))
    drop_pass = {"location": {"row": 7, "column": 1}, "end_location": {"row": 8, "column": 1}, "content": ""}
    add_import = {"location": {"row": 1, "column": 1}, "end_location": {"row": 1, "column": 1}, "content": "import re\n"}
    for edits, outside in (([drop_pass], False), ([drop_pass, add_import], True)):
        spans = fix_spans(text, edits)
        fixed, edits_outside = lint.fixed_function(linted, linted.unit_index_at(7), spans)
        (recut,) = [u for u in file_units("m.py", apply_spans(text, spans)) if u.name == "C.f"]
        assert fixed == recut.source == "def f(self):\n    '''doc'''\n" and edits_outside is outside
