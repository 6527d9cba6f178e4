"""`greenloop eval repair` and `greenloop export` on a model trained for a few steps: the
report's figures agree with the predictions, detection counts clean programs, the ONNX
export matches PyTorch and the model card holds the figures."""

import json

import pytest

from greenloop.cli import main
from greenloop.evaluate.repair import RepairOutcome, failure_signature, markdown_table, summarise
from greenloop.train.config import PretrainConfig
from greenloop.train.pretrain import Pretrainer

TINY_TRM = {"hidden_size": 32, "num_attention_heads": 2, "n_layers": 1, "n_latent": 1, "n_deep": 1,
            "supervision_steps": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, grid_folder):
    out = tmp_path_factory.mktemp("trained")
    Pretrainer(PretrainConfig(model="trm", data=str(grid_folder), out=str(out), model_config=TINY_TRM,
                              batch_size=8, steps=20, stages=1, eval_every=20, save_every=20, eval_examples=8,
                              warmup_steps=2, lr=3e-3), progress=False).train()
    return out / "best"


def test_eval_repair_report_matches_its_predictions(trained, split_folder, tmp_path):
    out = tmp_path / "eval"
    assert main(["eval", "repair", "--model", str(trained), "--data", str(split_folder), "--out", str(out),
                 "--latency-samples", "5"]) == 0
    report = json.loads((out / "report.json").read_text())
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert report["pairs"] == len(predictions) == 24
    exact = sum(p["exact"] for p in predictions) / len(predictions)
    assert report["overall"]["exact"] == pytest.approx(exact)
    assert report["by_bug_type"]["missing_colon"]["pairs"] == 24
    detection = report["detection"]["syntax"]
    assert detection["clean"] == 24 and detection["flagged_buggy"] == sum(p["flagged_buggy"] for p in predictions)
    assert report["speed"]["latency_samples"] == 5 and report["speed"]["repairs_per_s"] > 0
    assert "| missing_colon |" in (out / "report.md").read_text()


def test_eval_repair_reads_a_grid_folder_too(trained, grid_folder, capsys):
    assert main(["eval", "repair", "--model", str(trained), "--data", str(grid_folder), "--latency-samples", "0",
                 "--no-detection", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["pairs"] == 24 and report["detection"]["syntax"]["clean"] == 0


def test_signatures_and_summary():
    assert failure_signature("a", "b", "b", None) == "ok"
    assert failure_signature("a", "a", "b", None) == "unchanged"
    assert failure_signature("a", "def f(:\n", "b", None).startswith("does not parse")
    assert failure_signature("a", "x = 1\n", "x = 2\n", "test 3: expected 'ab', got 'ba'") == \
        "fails tests: test _: expected _, got _"
    outcomes = [RepairOutcome("p1", "off_by_one", "logic", False, True, True, True, False, "ok", "a", "b", "b"),
                RepairOutcome("p2", "off_by_one", "logic", False, True, False, True, True, "fails tests: x", "a", "b", "c"),
                RepairOutcome("p3", "sql_injection", "security", True, True, None, False, True, "ok", "a", "b", "b")]
    report = summarise(outcomes)
    assert report["by_bug_type"]["off_by_one"]["verified"] == 0.5
    assert report["detection"]["logic"] == {"buggy": 2, "clean": 2, "flagged_buggy": 2, "flagged_clean": 1,
                                            "recall": 1.0, "precision": 2 / 3}
    assert report["detection"]["security"]["recall"] == 0.0
    assert [g["signature"] for g in report["errors"]] == ["fails tests: x"]
    assert "(3 more do not fit the model's grid" in markdown_table({**report, "skipped_not_fitting_grid": 3})
    assert "do not fit" not in markdown_table(report)


def test_export_onnx_int8_and_model_card(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "export"
    assert main(["export", str(trained), "--out", str(out), "--onnx", "--int8", "--steps", "1"]) == 0
    summary = json.loads((out / "export.json").read_text())
    assert summary["onnx"]["max_abs_diff"] < 1e-3 and summary["onnx"]["top1_agreement"] > 0.99
    assert 0.5 < summary["int8"]["top1_agreement"] <= 1.0
    assert set(summary["sizes_mb"]) == {"model.safetensors", "model.onnx", "model.int8.onnx"}
    card = (out / "README.md").read_text()
    assert f"{summary['parameters']:,} parameters" in card and "model.onnx" in card
    assert (out / "tokenizer.json").exists() and (out / "config.json").exists()


def test_parse_check_never_loses_a_fix_and_needs_a_single_change_model(grid_folder, split_folder, tmp_path,
                                                                         capsys):
    out = tmp_path / "single"
    model = TINY_TRM | {"supervision_steps": 1, "window_radius": 1, "edits": True, "single_change": True}
    Pretrainer(PretrainConfig(model="trm", data=str(grid_folder), out=str(out), model_config=model, batch_size=8,
                              steps=6, stages=1, eval_every=6, save_every=6, eval_examples=8, warmup_steps=1,
                              lr=3e-3, clean_fraction=0.2), progress=False).train()
    runs = {}
    for k in (1, 4):
        assert main(["eval", "repair", "--model", str(out / "best"), "--data", str(split_folder), "--parse-check",
                     str(k), "--latency-samples", "2", "--out", str(tmp_path / f"k{k}")]) == 0
        runs[k] = {p["pair_id"]: p for p in map(json.loads, (tmp_path / f"k{k}" / "predictions.jsonl").open())}
    assert json.loads((tmp_path / "k4" / "report.json").read_text())["speed"]["parse_check"] == 4
    assert main(["export", str(out / "best"), "--report", str(tmp_path / "k4" / "report.json")]) == 0
    card = (out / "best" / "README.md").read_text()
    assert "model.ranked_repairs(" in card and "parse check over the model's 4 likeliest changes" in card
    for pair_id, first in runs[1].items():
        checked = runs[4][pair_id]
        if first["parses"]:       # the model's own answer parses: the check keeps it
            assert checked["prediction"] == first["prediction"]
        assert checked["parses"] >= first["parses"] and checked["exact"] >= first["exact"]
    capsys.readouterr()
    assert main(["eval", "repair", "--model", str(trained_plain(tmp_path, grid_folder)), "--data",
                 str(split_folder), "--parse-check", "3"]) != 0
    assert "--parse-check needs a single_change model" in capsys.readouterr().err


def trained_plain(tmp_path, grid_folder):
    out = tmp_path / "plain"
    Pretrainer(PretrainConfig(model="trm", data=str(grid_folder), out=str(out), model_config=TINY_TRM,
                              batch_size=8, steps=1, stages=1, eval_every=1, save_every=1, eval_examples=8,
                              warmup_steps=1), progress=False).train()
    return out / "best"
