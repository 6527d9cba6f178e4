"""mutate -> validate -> split on small sources the tests write: skipped files, resume
after an interruption, planted duplicates, no leaks between splits, Parquet that
`datasets` loads, and pairs verified by the sandbox."""

import gzip
import json
from pathlib import Path

import pytest

from greenloop.data import mutate as mutate_module
from greenloop.data import validate as validate_module
from greenloop.data.mutate import MutateConfig, run_mutate
from greenloop.data.pairs import make_pair
from greenloop.data.shards import ShardedRun
from greenloop.data.split import SplitConfig, run_split
from greenloop.data.validate import ValidateConfig, run_validate

FUNCS = [
    "def mean(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n",
    "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n    return x\n",
    "def count(items, target):\n    n = 0\n    for item in items:\n        if item == target:\n            n += 1\n    return n\n",
    "def first_word(text):\n    words = text.split()\n    return words[0] if words else ''\n",
]


def write_tree(root: Path) -> Path:
    for i, func in enumerate(FUNCS * 2):
        (root / f"mod{i}.py").write_text(f"import os\n\n\n{func}\n\n{FUNCS[(i + 1) % 4].replace('def ', 'def other_')}")
    (root / "latin1.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (root / "broken.py").write_text("def f(:\n    pass\n")
    return root


def shard_rows(folder: Path) -> dict[str, list[dict]]:
    return {p.name: [json.loads(line) for line in gzip.open(p, "rt")]
            for p in sorted((folder / "shards").glob("pairs-*.jsonl.gz"))}


@pytest.fixture()
def tree(tmp_path):
    (tmp_path / "src").mkdir()
    return write_tree(tmp_path / "src")


def test_mutate_reports_bad_files_and_writes_well_formed_pairs(tree, tmp_path):
    config = MutateConfig(source=f"dir:{tree}", files_per_shard=3)
    summary = run_mutate(config, str(tmp_path / "D"), workers=1)
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert reasons["latin1.py"].startswith("not UTF-8") and reasons["broken.py"].startswith("does not parse")
    rows = [r for shard in shard_rows(tmp_path / "D").values() for r in shard]
    assert len(rows) == summary["pairs"] > 50
    assert {r["family"] for r in rows} >= {"syntax", "logic"}
    for row in rows:
        assert row["buggy"] != row["fixed"] and row["source"] == f"dir:{tree}"
        assert row["unit"] in {"mean", "clamp", "count", "first_word", "other_mean", "other_clamp", "other_count",
                               "other_first_word"}


def test_huge_files_are_skipped(tree, tmp_path):
    summary = run_mutate(MutateConfig(source=f"dir:{tree}", max_file_bytes=60), str(tmp_path / "D"), workers=1)
    assert any(s["reason"].startswith("huge") for s in summary["skipped"])


def test_mutate_resumes_to_the_same_output(tree, tmp_path, monkeypatch):
    config = MutateConfig(source=f"dir:{tree}", files_per_shard=2, seed=7)
    run_mutate(config, str(tmp_path / "whole"), workers=1)

    real, calls = mutate_module.pairs_of_unit, []

    def dies_in_the_fourth_shard(*args, **kwargs):
        calls.append(1)
        if len(calls) == 9:  # shards: [broken, latin1], [mod0, mod1], [mod2, mod3], [mod4, ...]; two units a file
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(mutate_module, "pairs_of_unit", dies_in_the_fourth_shard)
    with pytest.raises(KeyboardInterrupt):
        run_mutate(config, str(tmp_path / "resumed"), workers=1)
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    finished = sorted(p.name for p in (tmp_path / "resumed" / "shards").glob("*.report.json"))
    assert finished == ["pairs-00000.report.json", "pairs-00001.report.json", "pairs-00002.report.json"]
    monkeypatch.setattr(mutate_module, "pairs_of_unit", real)
    run_mutate(config, str(tmp_path / "resumed"), workers=1)
    assert shard_rows(tmp_path / "resumed") == shard_rows(tmp_path / "whole")


def test_a_different_run_in_the_same_folder_is_refused(tree, tmp_path):
    run_mutate(MutateConfig(source=f"dir:{tree}"), str(tmp_path / "D"), workers=1)
    with pytest.raises(ValueError, match="per_operator"):
        run_mutate(MutateConfig(source=f"dir:{tree}", per_operator=3), str(tmp_path / "D"), workers=1)


def planted_pairs():
    """Pairs whose fate in the funnel is known."""
    func = FUNCS[2]
    copy = func.replace("    n = 0\n", "    # how many there are\n    n=0\n\n").replace("return n", "return n  # done")
    wrong = func.replace("n += 1", "n -= 1")
    common = dict(source="dir:x", unit="count")
    return [
        make_pair(bug_type="wrong_operator", family="logic", path="a.py", buggy=wrong, fixed=func, **common),
        # the same change to a near-copy of the function, in another file
        make_pair(bug_type="wrong_operator", family="logic", path="b.py",
                  buggy=copy.replace("n += 1", "n -= 1"), fixed=copy, **common),
        # the same pair with trailing spaces, in another file
        make_pair(bug_type="wrong_operator", family="logic", path="c.py",
                  buggy=wrong.replace("n = 0", "n = 0   "), fixed=func.replace("n = 0", "n = 0   "), **common),
        # another bug in the same function: not a duplicate
        make_pair(bug_type="wrong_comparison", family="logic", path="a.py",
                  buggy=func.replace("==", "!="), fixed=func, **common),
        # a comment is not a bug
        make_pair(bug_type="wrong_literal", family="logic", path="a.py",
                  buggy=func.replace("n = 0", "n = 0  # zero"), fixed=func, **common),
        # labelled syntax, but parses
        make_pair(bug_type="missing_colon", family="syntax", path="a.py", buggy=wrong, fixed=func, **common),
        make_pair(bug_type="missing_colon", family="syntax", path="a.py",
                  buggy=func.replace("for item in items:", "for item in items"), fixed=func, **common),
    ]


def write_pairs_folder(folder: Path, shards: list[list[dict]]) -> None:
    run = ShardedRun(folder, "mutate", {})
    for i, rows in enumerate(shards):
        run.write_shard(f"pairs-{i:05d}", rows, {})
    run.finish({})


def test_validate_removes_exactly_the_planted_rejects(tmp_path):
    rows = planted_pairs()
    write_pairs_folder(tmp_path / "D", [rows])
    with gzip.open(tmp_path / "D" / "shards" / "pairs-00000.jsonl.gz", "at") as fh:
        fh.write(json.dumps({"bug_type": "x", "family": "logic"}) + "\n")
    summary = run_validate(str(tmp_path / "D"), str(tmp_path / "V"), ValidateConfig(), workers=1)
    removed = {s["stage"]: s["removed"] for s in summary["funnel"]}
    assert removed == {"schema": 1, "syntax": 1, "diff": 1, "exact_dup": 1, "near_dup": 1, "tests": 0}
    kept = [r["bug_type"] for r in shard_rows(tmp_path / "V")["pairs-00000.jsonl.gz"]]
    assert kept == ["wrong_operator", "wrong_comparison", "missing_colon"]
    assert "pairs-00000.jsonl.gz:8: field 'source'" in summary["schema_errors"][0]


def test_duplicates_are_found_across_shards_and_after_a_resume(tmp_path, monkeypatch):
    rows = planted_pairs()
    write_pairs_folder(tmp_path / "D", [rows[:1], rows[1:3], rows[3:]])
    whole = run_validate(str(tmp_path / "D"), str(tmp_path / "whole"), ValidateConfig(), workers=1)

    real, calls = validate_module._TestStage.run, []

    def dies_on_third_shard(self, kept):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, kept)

    monkeypatch.setattr(validate_module._TestStage, "run", dies_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        run_validate(str(tmp_path / "D"), str(tmp_path / "resumed"), ValidateConfig(), workers=1)
    monkeypatch.setattr(validate_module._TestStage, "run", real)
    resumed = run_validate(str(tmp_path / "D"), str(tmp_path / "resumed"), ValidateConfig(), workers=1)
    assert resumed["funnel"] == whole["funnel"]
    assert {s["stage"]: s["removed"] for s in whole["funnel"]}["near_dup"] == 1
    assert shard_rows(tmp_path / "resumed") == shard_rows(tmp_path / "whole")


def test_validate_refuses_an_unfinished_input(tmp_path):
    ShardedRun(tmp_path / "D", "mutate", {}).write_shard("pairs-00000", [], {})
    with pytest.raises(ValueError, match="has not finished"):
        run_validate(str(tmp_path / "D"), str(tmp_path / "V"), ValidateConfig(), workers=1)


def test_split_keeps_every_file_in_one_split_and_datasets_loads_it(tree, tmp_path):
    for i in range(30):  # enough files for three splits
        (tree / f"extra{i}.py").write_text(FUNCS[i % 4].replace("def ", f"def f{i}_"))
    run_mutate(MutateConfig(source=f"dir:{tree}", files_per_shard=8), str(tmp_path / "D"), workers=2)
    run_validate(str(tmp_path / "D"), str(tmp_path / "V"), ValidateConfig(), workers=2)
    manifest = run_split(str(tmp_path / "V"), str(tmp_path / "S"), SplitConfig(ratios=(0.6, 0.2, 0.2)))
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_dir=str(tmp_path / "S"))
    assert set(loaded) == {"train", "validation", "test"}
    assert sum(len(loaded[s]) for s in loaded) == manifest["pairs"]
    paths = {s: set(loaded[s]["path"]) for s in loaded}
    assert not paths["train"] & paths["validation"] and not paths["train"] & paths["test"]
    assert not paths["validation"] & paths["test"]
    assert 0.4 < manifest["splits"]["train"]["pairs"] / manifest["pairs"] < 0.8
    buckets = loaded["train"]["bucket"]
    assert set(buckets) <= set(range(5)) and len(set(buckets)) >= 3
    one_bucket = datasets.load_dataset("parquet", data_files={
        s: str(tmp_path / "S" / p) for s, p in manifest["curriculum"][0]["data_files"].items()})
    assert set(one_bucket["train"]["bucket"]) == {0}


def test_verified_pairs_fail_a_test_that_the_original_passes(tmp_path):
    from greenloop.tasks import load_tasks
    from greenloop.types import Candidate
    from greenloop.verify.funnel import VerifyConfig, verify_candidates

    config = MutateConfig(source="humaneval", operators=("wrong_operator", "wrong_comparison", "missing_return"),
                          per_operator=1, limit_files=6)
    summary = run_mutate(config, str(tmp_path / "D"), workers=2)
    rows = [r for shard in shard_rows(tmp_path / "D").values() for r in shard]
    assert rows and all(r["verified"] is True and r["task_id"].startswith("HumanEval/") for r in rows)
    assert summary["verified"]["test_verified"] == len(rows) and summary["verified"]["parser_checked"] == 0
    assert summary["verified"]["mutants"] >= len(rows)
    tasks = load_tasks("humaneval")
    candidates = [Candidate(r["task_id"], side) for r in rows for side in (r["buggy"], r["fixed"])]
    verdicts = verify_candidates(tasks, candidates, VerifyConfig(workers=2, timeout_s=3))
    assert [v.passed for v in verdicts] == [False, True] * len(rows)


def test_a_second_run_is_refused_while_one_writes(tmp_path):
    first = ShardedRun(tmp_path / "D", "mutate", {})
    with pytest.raises(ValueError, match="another greenloop run"):
        ShardedRun(tmp_path / "D", "mutate", {})
    del first
    ShardedRun(tmp_path / "D", "mutate", {})  # the lock went with the first run


def test_byte_order_marks_and_form_feeds_do_not_misplace_functions(tmp_path):
    from greenloop.data.units import SourceFile, file_units, read_source

    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbf" + b"def f():\n    x = 1\x0c\n    return x\n\n\ndef g():\n    return 2\n")
    units = file_units("bom.py", read_source(SourceFile(str(tmp_path), "bom.py")))
    assert [(u.name, u.source) for u in units] == [("f", "def f():\n    x = 1\x0c\n    return x\n"),
                                                  ("g", "def g():\n    return 2\n")]


def test_a_deeply_nested_file_is_skipped_not_fatal(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "deep.py").write_text("def f():\n    return " + " + ".join(['"x"'] * 3000) + "\n")
    (tmp_path / "src" / "ok.py").write_text(FUNCS[0])
    summary = run_mutate(MutateConfig(source=f"dir:{tmp_path / 'src'}"), str(tmp_path / "D"), workers=1)
    assert [s["reason"] for s in summary["skipped"]] == ["does not parse: too deeply nested to parse (line ?)"]
    assert summary["pairs"] > 0


def test_resuming_over_changed_files_is_refused(tree, tmp_path):
    run_mutate(MutateConfig(source=f"dir:{tree}", files_per_shard=1), str(tmp_path / "D"), workers=1)
    (tree / "a_new_file.py").write_text(FUNCS[1])
    with pytest.raises(ValueError, match="inputs"):
        run_mutate(MutateConfig(source=f"dir:{tree}", files_per_shard=1), str(tmp_path / "D"), workers=1)


def test_force_does_not_clear_a_folder_another_run_holds(tmp_path):
    first = ShardedRun(tmp_path / "D", "mutate", {"a": 1})
    first.write_shard("pairs-00000", [], {})
    with pytest.raises(ValueError, match="another greenloop run"):
        ShardedRun(tmp_path / "D", "mutate", {"a": 2}, force=True)
    assert first.done("pairs-00000")


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_windows_and_old_mac_line_ends_keep_every_method(newline):
    from greenloop.data.units import file_units

    text = "class A:\n    def f(self):\n        x = 1\n\n        return x\n\n    def g(self):\n        return 2\n"
    units = file_units("x.py", text.replace("\n", newline))
    assert [(u.name, u.source.replace("\r\n", "\n").replace("\r", "\n")) for u in units] == [
        ("A.f", "def f(self):\n    x = 1\n\n    return x\n"), ("A.g", "def g(self):\n    return 2\n")]


def test_copies_of_a_function_in_other_files_stay_in_one_split(tmp_path):
    func = FUNCS[2]
    rows = []
    for i in range(40):  # 40 files, each with its own function, and a copy of `count` in files 0 and 39
        own = FUNCS[i % 4].replace("def ", f"def f{i}_")
        rows.append(make_pair(bug_type="wrong_literal", family="logic", source="dir:x", path=f"m{i}.py", unit="f",
                              buggy=own.replace("0", "1", 1) if "0" in own else own + "x = 1\n", fixed=own))
    for path, bug in (("m0.py", ("n += 1", "n -= 1")), ("m39.py", ("==", "!="))):
        rows.append(make_pair(bug_type="b", family="logic", source="dir:x", path=path, unit="count",
                              buggy=func.replace(*bug), fixed=func))
    write_pairs_folder(tmp_path / "D", [rows])
    run_validate(str(tmp_path / "D"), str(tmp_path / "V"), ValidateConfig(), workers=1)
    for seed in range(8):
        run_split(str(tmp_path / "V"), str(tmp_path / f"S{seed}"), SplitConfig(ratios=(0.34, 0.33, 0.33), seed=seed))
        import pyarrow.parquet as pq
        where = {}
        for f in (tmp_path / f"S{seed}").glob("*/*/*.parquet"):
            for path in pq.read_table(f, columns=["path"]).column("path").to_pylist():
                where.setdefault(path, set()).add(f.parts[-3])
        assert where["m0.py"] == where["m39.py"] and len(where["m0.py"]) == 1
