"""The from-scratch trainer: it runs, writes what it says, resumes after a kill with the
same loss curve, refuses a changed run, and follows its curriculum and schedule."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from greenloop.cli import main
from greenloop.models import load_model
from greenloop.train.config import PretrainConfig
from greenloop.train.curriculum import Stage, learning_rate, plan_stages
from greenloop.train.pretrain import Pretrainer

TINY_TRM = {"hidden_size": 32, "num_attention_heads": 2, "n_layers": 1, "n_latent": 1, "n_deep": 1,
            "supervision_steps": 2}
TINY_GPT = {"hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1}


def trm_config(grid_folder, out, **changes) -> PretrainConfig:
    values = dict(model="trm", data=str(grid_folder), out=str(out), model_config=TINY_TRM, batch_size=8,
                  steps=6, stages=2, eval_every=3, save_every=2, eval_examples=8, warmup_steps=2, lr=3e-3)
    return PretrainConfig(**{**values, **changes})


def train_losses(out) -> dict[int, float]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if r["event"] == "train"}


def test_trm_run_writes_models_logs_and_checkpoints(grid_folder, tmp_path):
    out = tmp_path / "run"
    summary = Pretrainer(trm_config(grid_folder, out), progress=False).train()
    assert summary["steps"] == 12 and summary["updates"] >= 12  # two stages of 6 steps
    assert [s["stage"] for s in summary["stages_done"]] == [0, 1]
    for name in ("best", "final"):
        assert (out / name / "model.safetensors").exists() and (out / name / "tokenizer.json").exists()
    assert load_model(out / "final").config.model_type == "greenloop_trm"
    events = [json.loads(line)["event"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events.count("train") == 12 and "validation" in events and "stage" in events
    assert (out / "checkpoints" / "latest.json").exists() and list((out / "tb").iterdir())
    assert len(list((out / "checkpoints").glob("step-*"))) <= 2  # keep_checkpoints


def test_a_killed_run_resumes_with_the_same_loss_curve(grid_folder, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    Pretrainer(trm_config(grid_folder, whole), progress=False).train()

    killed = tmp_path / "killed"
    original = Pretrainer._log_train

    def die_at_step_7(self, *args, **kwargs):
        if self.counters["step"] == 7:
            raise KeyboardInterrupt  # a kill between checkpoints: steps 5-6 were saved, 7 is lost
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Pretrainer, "_log_train", die_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        Pretrainer(trm_config(grid_folder, killed), progress=False).train()
    monkeypatch.setattr(Pretrainer, "_log_train", original)
    assert json.loads((killed / "checkpoints" / "latest.json").read_text())["step"] == 6
    Pretrainer(trm_config(grid_folder, killed), progress=False).train()

    expected, resumed = train_losses(whole), train_losses(killed)
    assert sorted(resumed) == sorted(expected) == list(range(1, 13))
    assert all(resumed[s] == pytest.approx(expected[s], rel=1e-6, abs=1e-7) for s in expected)
    a, b = load_file(str(whole / "final" / "model.safetensors")), load_file(str(killed / "final" / "model.safetensors"))
    assert all(np.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_different_run_in_the_same_folder_is_refused(grid_folder, tmp_path):
    out = tmp_path / "run"
    Pretrainer(trm_config(grid_folder, out, steps=2, stages=1), progress=False).train()
    with pytest.raises(ValueError, match="lr"):
        Pretrainer(trm_config(grid_folder, out, steps=2, stages=1, lr=1e-2), progress=False)
    Pretrainer(trm_config(grid_folder, out, steps=2, stages=1, lr=1e-2), force=True, progress=False)


def test_model_and_data_format_must_agree(grid_folder, lm_folder, tmp_path):
    with pytest.raises(ValueError, match="--format lm"):
        Pretrainer(PretrainConfig(model="gpt", data=str(grid_folder), out=str(tmp_path / "a")), progress=False)
    with pytest.raises(ValueError, match="--format grid"):
        Pretrainer(PretrainConfig(model="trm", data=str(lm_folder), out=str(tmp_path / "b")), progress=False)


def test_gpt_on_a_token_stream_lowers_validation_loss(lm_folder, tmp_path):
    config = PretrainConfig(model="gpt", data=str(lm_folder), out=str(tmp_path / "gpt"), model_config=TINY_GPT,
                            batch_size=8, seq_len=32, steps=60, stages=1, eval_every=30, save_every=60,
                            eval_examples=16, warmup_steps=5, lr=3e-3)
    summary = Pretrainer(config, progress=False).train()
    records = [json.loads(line) for line in (tmp_path / "gpt" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "train"]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:3])
    assert summary["train_loss_last20"] == pytest.approx(np.mean(losses[-20:]))
    assert summary["train_loss_first5"] == pytest.approx(np.mean(losses[:5]))
    assert (tmp_path / "gpt" / "best" / "config.json").exists()


def test_stages_are_cumulative_and_the_schedule_warms_up_then_decays():
    stages = plan_stages([0, 1, 2, 3, 4], stages=5, steps=100, lr=1e-3, decay=0.5)
    assert [s.buckets for s in stages] == [(0,), (0, 1), (0, 1, 2), (0, 1, 2, 3), (0, 1, 2, 3, 4)]
    assert stages[2].peak_lr == pytest.approx(2.5e-4)
    assert [s.buckets for s in plan_stages([0, 1, 2, 3, 4], 2, 10, 1e-3, 1.0)] == [(0, 1, 2), (0, 1, 2, 3, 4)]
    assert plan_stages(None, 5, 10, 1e-3, 1.0) == [Stage(0, None, 10, 1e-3)]
    stage = Stage(0, None, 100, 1.0)
    lrs = [learning_rate(i, stage, warmup=10, min_ratio=0.1) for i in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_cli_pretrain_prints_a_summary(grid_folder, tmp_path, capsys):
    args = ["train", "pretrain", "--model", "trm", "--data", str(grid_folder), "--out", str(tmp_path / "cli"),
            "--steps", "2", "--stages", "1", "--batch-size", "4", "--quiet", "--set", "eval_examples=4"]
    for key, value in TINY_TRM.items():
        args += ["--model-set", f"{key}={value}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trm:" in out and "tokens/s" in out and "best validation" in out and "training loss" in out
    assert main(args[:-2] + ["--set", "lr=0.5"]) == 2  # a different run in the same folder
