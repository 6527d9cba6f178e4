"""Windows around the parser's line: cut and paste are inverse, a batch without hints is
repaired whole, and a TRM with windows trains and evaluates end to end."""

import json

import numpy as np
import pyarrow.parquet as pq

from greenloop.cli import main
from greenloop.train.config import PretrainConfig
from greenloop.train.pretrain import Pretrainer
from greenloop.train.windows import cut_windows, paste_windows, training_crop, window_starts


def test_starts_are_clamped_and_need_every_hint():
    assert window_starts(np.array([0, 5, 9]), 1, 10).tolist() == [0, 4, 7]
    assert window_starts(np.array([0, -1]), 1, 10) is None      # one program parses: whole grids
    assert window_starts(np.array([3]), 0, 10) is None          # radius 0: whole grids
    assert window_starts(np.array([3]), 5, 10) is None          # the window is the grid


def test_cut_then_paste_restores_the_grid_and_changes_only_the_window():
    rng = np.random.default_rng(0)
    grids = rng.integers(1, 50, (3, 10, 6))
    starts = window_starts(np.array([0, 5, 9]), 1, 10)
    windows = cut_windows(grids, starts, 1)
    assert windows.shape == (3, 3, 6) and np.array_equal(windows[1], grids[1, 4:7])
    assert np.array_equal(paste_windows(grids, windows, starts), grids)
    edited = paste_windows(grids, np.zeros((3, 3, 2), dtype=grids.dtype), starts)
    assert (edited[1, 4:7] == 0).all() and np.array_equal(edited[1, :4], grids[1, :4])


def test_training_crop_windows_hinted_batches_only():
    source = np.zeros((2, 10, 8), dtype=np.int64)
    source[:, :6, :3] = 7
    target = source.copy()
    src, tgt, hints = training_crop(source, target, np.array([4, 1]), radius=1)
    assert src.shape[1] == 3 and hints.tolist() == [1, 1]
    src, _, hints = training_crop(source, target, np.array([4, -1]), radius=1)
    assert src.shape[1] == 7 and hints.tolist() == [4, -1]   # whole (6 lines + 1 slack)


def test_trm_with_windows_trains_and_evaluates(grid_folder, split_folder, tmp_path):
    out = tmp_path / "run"
    model = {"hidden_size": 32, "num_attention_heads": 2, "n_layers": 1, "n_latent": 1, "n_deep": 1,
             "supervision_steps": 1, "window_radius": 1}
    Pretrainer(PretrainConfig(model="trm", data=str(grid_folder), out=str(out), model_config=model, batch_size=8,
                              steps=4, stages=1, eval_every=4, save_every=4, eval_examples=8, warmup_steps=1),
               progress=False).train()
    assert main(["eval", "repair", "--model", str(out / "best"), "--data", str(split_folder), "--latency-samples",
                 "2", "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    buggy = {r["pair_id"]: r["buggy"] for path in split_folder.glob("test/*/*.parquet")
             for r in pq.read_table(path).to_pylist()}
    # the parser flags row 1 (the header without its colon): rows 0-2 are the window, and
    # every row after it is kept exactly as written
    for p in predictions:
        assert p["prediction"].split("\n")[3:] == buggy[p["pair_id"]].split("\n")[3:]
    assert report["pairs"] == 24
