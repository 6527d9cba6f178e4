"""`greenloop kernels verify` over files: results in sample order per problem, bad
samples named by file:line, and a resume that loses nothing and repeats nothing."""

from __future__ import annotations

import json

import pytest

from greenloop.cli import main
from greenloop.io import DataError
from greenloop.tasks.kernels import builtin_problems
from greenloop.verify.kernel_file import verify_samples
from greenloop.verify.kernel_verify import KernelConfig
from tests.kernels.candidates import candidate

PROBLEMS = {p.name: p for p in builtin_problems() if p.name in ("level1/relu", "level1/softmax")}
CONFIG = KernelConfig(timing=False, input_sets=3)


def write_samples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def rows_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_after_a_cut_line_and_an_edited_sample(tmp_path):
    samples, out = tmp_path / "s.jsonl", tmp_path / "r.jsonl"
    relu, softmax = PROBLEMS["level1/relu"], PROBLEMS["level1/softmax"]
    rows = [{"task_id": relu.task_id, "completion": candidate(relu.source, "reference")},
            {"task_id": softmax.task_id, "completion": candidate(softmax.source, "wrong")},
            {"task_id": relu.task_id, "completion": candidate(relu.source, "cached")}]
    write_samples(samples, rows)
    summary = verify_samples(PROBLEMS, str(samples), str(out), CONFIG, progress=False)
    assert summary["samples"] == 3 and summary["correct"] == 1
    first = rows_of(out)
    assert [r["sample_line"] for r in first] == [1, 3, 2]  # grouped by problem, first seen first
    text = out.read_text()
    out.write_text(text[: len(text) - 40])  # a kill cut the last row
    rows[1]["completion"] = candidate(softmax.source, "reference")  # and the user fixed sample 2
    write_samples(samples, rows)
    summary = verify_samples(PROBLEMS, str(samples), str(out), CONFIG, resume=True, progress=False)
    again = rows_of(out)
    assert sorted(r["sample_line"] for r in again) == [1, 2, 3]
    assert summary["samples"] == 3 and summary["correct"] == 2
    assert {r["sample_line"]: r["passed"] for r in again} == {1: True, 2: True, 3: False}
    assert again[0] == first[0]  # judged once, kept as it was


def test_unknown_task_is_named_with_its_line(tmp_path):
    samples = tmp_path / "s.jsonl"
    write_samples(samples, [{"task_id": "kernels/level1/relu", "completion": "x"},
                            {"task_id": "kernels/level9/nothing", "completion": "x"}])
    with pytest.raises(DataError, match=r"s.jsonl:2.*task_id.*level9/nothing"):
        verify_samples(PROBLEMS, str(samples), str(tmp_path / "r.jsonl"), CONFIG, progress=False)


def test_cli_verify_prints_the_funnel(tmp_path, capsys):
    samples = tmp_path / "refs.jsonl"
    assert main(["kernels", "samples", "--problems", "level1", "--out", str(samples)]) == 0
    lines = samples.read_text().splitlines()[:2]
    samples.write_text("\n".join(lines) + "\n")
    assert main(["kernels", "verify", "--samples", str(samples), "--no-timing", "--input-sets", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2/2 correct" in out and "inputs" in out
    assert (tmp_path / "refs_results.jsonl.meta.json").exists()


def test_plain_verify_points_kernel_tasks_to_the_kernel_verifier(tmp_path, capsys):
    samples = tmp_path / "s.jsonl"
    write_samples(samples, [{"task_id": "kernels/level1/relu", "completion": "x"}])
    code = main(["verify", "--tasks", "kernels:level1", "--samples", str(samples), "--out", str(tmp_path / "r.jsonl")])
    assert code == 2 and "greenloop kernels verify" in capsys.readouterr().err
