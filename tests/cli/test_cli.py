"""The command line as a user drives it: main(argv) -> int."""

import json

import pytest

from greenloop.cli import main

ADD_TASK = {"task_id": "c/add", "prompt": "def add(a, b):\n", "entry_point": "add",
            "tests": [{"args": [1, 2], "expected": 3}, {"args": [-1, 1], "expected": 0}]}


@pytest.fixture
def files(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(ADD_TASK) + "\n")
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        json.dumps({"task_id": "c/add", "completion": "    return a + b\n", "model": "m1"}) + "\n"
        + "{not json\n"
        + json.dumps({"task_id": "c/add", "completion": "    return a - b\n"}) + "\n"
        + json.dumps({"task_id": "c/add"}) + "\n")
    return tasks, samples, tmp_path / "results.jsonl"


def test_verify_writes_one_result_per_sample_in_order(files, capsys):
    tasks, samples, out = files
    code = main(["verify", "--tasks", f"jsonl:{tasks}", "--samples", str(samples), "--out", str(out),
                 "--workers", "1", "--json", "--quiet"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["candidates"] == 2 and summary["passed"] == 1
    assert summary["outcomes"] == {"passed": 1, "failed": 1}
    assert {"seconds", "candidates_per_s", "stages", "isolation"} <= set(summary)
    assert any(":2:" in line and "invalid JSON" in line for line in summary["bad_sample_lines"])
    assert any(":4: field 'completion': missing" in line for line in summary["bad_sample_lines"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["passed"] for r in rows] == [True, False]
    assert rows[0]["model"] == "m1"  # extra fields are kept
    for key in ("outcome", "stage", "tests_passed", "tests_total", "detail"):
        assert key in rows[1]
    assert rows[1]["outcome"] == "failed" and rows[1]["tests_total"] == 2
    assert rows[0]["isolation"] in ("namespaces", "rlimits")
    meta = json.loads((out.parent / "results.jsonl.meta.json").read_text())
    assert meta["config"]["type"] == "VerifyConfig" and meta["config"]["workers"] == 1


def test_strict_makes_a_bad_line_fatal(files, capsys):
    tasks, samples, out = files
    code = main(["verify", "--tasks", f"jsonl:{tasks}", "--samples", str(samples), "--out", str(out), "--strict", "--quiet"])
    assert code == 2
    assert "samples.jsonl:2" in capsys.readouterr().err


def test_eval_prints_pass_at_k(files, capsys):
    tasks, samples, out = files
    code = main(["eval", "--tasks", f"jsonl:{tasks}", "--samples", str(samples), "-k", "1,2,5", "--json", "--quiet",
                 "--workers", "1"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["pass_at_k"] == {"1": 0.5, "2": 1.0}
    assert summary["skipped_k"] == [5]


def test_resume_keeps_finished_results(files, capsys):
    tasks, samples, out = files
    args = ["verify", "--tasks", f"jsonl:{tasks}", "--samples", str(samples), "--out", str(out), "--quiet", "--workers", "1"]
    assert main(args) == 0
    first = out.read_text().splitlines()
    out.write_text(first[0] + "\n" + first[1][:10])  # killed while writing the second line
    assert main(args + ["--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["resumed_from"] == 1 and summary["candidates"] == 1
    assert out.read_text().splitlines() == first


def test_tasks_ls_and_export(tmp_path, capsys):
    assert main(["tasks", "ls"]) == 0
    names = capsys.readouterr().out.split()
    assert names == sorted(names) and {"humaneval", "jsonl", "koans", "mbpp", "rust_koans"} <= set(names)
    out = tmp_path / "ref.jsonl"
    assert main(["tasks", "export", "--tasks", "humaneval", "--format", "samples", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 164 and rows[0]["task_id"] == "HumanEval/0"
    exported = tmp_path / "tasks.jsonl"
    assert main(["tasks", "export", "--tasks", "humaneval", "--out", str(exported)]) == 0
    capsys.readouterr()
    assert main(["tasks", "ls", "--tasks", f"jsonl:{exported}"]) == 0
    assert capsys.readouterr().out.count("\n") == 164


def test_unknown_family_and_config_errors_are_clear(tmp_path, capsys):
    samples = tmp_path / "s.jsonl"
    samples.write_text("")
    assert main(["verify", "--tasks", "humaneva", "--samples", str(samples), "--out", str(tmp_path / "o")]) == 2
    assert "Did you mean 'humaneval'" in capsys.readouterr().err
    assert main(["verify", "--tasks", "humaneval", "--samples", str(samples), "--out", str(tmp_path / "o"),
                 "--set", "timeout_s=-1"]) == 2
    assert "timeout_s must be > 0" in capsys.readouterr().err
    assert main(["verify", "--tasks", "humaneval", "--samples", str(samples), "--out", str(tmp_path / "o"),
                 "--set", "nonsense=1"]) == 2
    assert "FIELD one of" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    for argv in (["--help"], ["verify", "--help"], ["eval", "--help"], ["tasks", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    assert "--samples" in capsys.readouterr().out


def test_bad_inputs_give_one_clear_line_not_a_traceback(files, tmp_path, capsys):
    tasks, samples, out = files
    base = ["--tasks", f"jsonl:{tasks}", "--samples", str(samples), "--quiet"]
    bad_yaml = tmp_path / "c.yaml"
    bad_yaml.write_text("workers: [1,\n")
    assert main(["verify", *base, "--out", str(out), "--config", str(bad_yaml)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["verify", *base, "--out", str(tmp_path)]) == 2
    assert "Is a directory" in capsys.readouterr().err
    assert main(["eval", *base, "-k", "0"]) == 2
    assert "every k must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "samples_results.jsonl").exists()  # nothing ran


def test_resume_after_a_gzip_cut_off_mid_stream(files, capsys):
    import gzip

    tasks, samples, _ = files
    out = samples.parent / "results.jsonl.gz"
    args = ["verify", "--tasks", f"jsonl:{tasks}", "--samples", str(samples), "--out", str(out), "--quiet", "--workers", "1"]
    assert main(args) == 0
    whole = gzip.open(out, "rt").read().splitlines()
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 12])  # killed before the gzip trailer was written
    assert main(args + ["--resume"]) == 0
    assert gzip.open(out, "rt").read().splitlines() == whole


def test_python_dash_m_greenloop_runs_the_same_commands(tmp_path):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "greenloop", "tasks", "ls", "--tasks", "humaneval"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("HumanEval/0\thas_close_elements")
