"""The model card (`README.md`) `greenloop export` writes beside a model.

Everything in it is read from the folder (config.json, training.json), the export's own
measurements and, when given, an evaluation report: no figure is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

_KIND = {
    "greenloop_trm": ("TRM (Tiny Recursive Model) for program repair on a token grid",
                      "model.repair(input_ids, hint_lines=hints)  # (B, lines, width) buggy grids and\n"
                      "# each one's parser error row (greenloop.text.hints) -> repaired grids"),
    "greenloop_hrm": ("HRM (Hierarchical Reasoning Model), causal language model",
                      "model.generate(input_ids, max_new_tokens=128)"),
    "greenloop_gpt": ("tiny GPT, causal language model", "model.generate(input_ids, max_new_tokens=128)"),
}
_SKIP = {"architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path"}


def _config_table(config: dict) -> list[str]:
    rows = ["| field | value |", "|---|---|"]
    rows += [f"| {k} | {v} |" for k, v in sorted(config.items()) if k not in _SKIP and not isinstance(v, dict)]
    return rows


def _training_lines(source: Path) -> list[str]:
    path = source / "training.json"
    if not path.exists():
        return ["No training record (training.json) was found beside the model."]
    record = json.loads(path.read_text())
    counters, config = record.get("counters", {}), record.get("config", {})
    best = counters.get("best") or {}
    lines = [f"- data: `{record.get('data')}` ({record.get('format')} format)",
             f"- steps: {counters.get('step')} ({counters.get('updates')} optimizer updates), "
             f"{counters.get('tokens', 0):,} tokens, {counters.get('train_seconds', 0):.0f} s of training",
             f"- optimizer: AdamW, peak lr {config.get('lr')}, warmup {config.get('warmup_steps')} steps, "
             f"cosine per stage, batch {config.get('batch_size')}"]
    if best:
        lines.append(f"- best validation figure {best.get('value'):.4f} at step {best.get('step')} (stage {best.get('stage')})")
    return lines


def _evaluation_lines(evaluation: dict | None) -> list[str]:
    if not evaluation:
        return ["Not evaluated yet: run `greenloop eval repair --model DIR --data SPLIT --out DIR/eval`, "
                "then export again."]
    from greenloop.evaluate.repair import markdown_table

    return [markdown_table(evaluation).rstrip()]


def write_model_card(model, source: Path, path: Path, export: dict, evaluation: dict | None) -> None:
    config = json.loads((source / "config.json").read_text())
    kind, usage = _KIND.get(config.get("model_type"), (config.get("model_type"), ""))
    if config.get("single_change"):
        usage += ("\nmodel.ranked_repairs(input_ids, k=8, hint_lines=hints)  # its own answer, then its likeliest\n"
                  "# other single changes; greenloop.train.checked_repair keeps the first that parses")
    sizes = ", ".join(f"{name} {mb} MB" for name, mb in export["sizes_mb"].items())
    lines = [f"# {source.name}: {kind}", "",
             f"{export['parameters']:,} parameters, trained from scratch with greenloop. Files: {sizes}.", "",
             "## Use", "", "```python", "from greenloop.models import load_model",
             "from greenloop.text.tokenizer import load_tokenizer", "",
             "model = load_model('PATH').eval()", "tokenizer = load_tokenizer('PATH')", usage, "```", ""]
    if "onnx" in export:
        o = export["onnx"]
        lines += [f"`model.onnx` matches PyTorch within {o['max_abs_diff']:.2e} (top-1 agreement "
                  f"{100 * o['top1_agreement']:.2f}% on a {o['shape']} input)."]
        if o.get("steps"):
            lines[-1] += f" It runs {o['steps']} supervision step{'s' if o['steps'] != 1 else ''} without halting."
    if "int8" in export:
        lines += [f"`model.int8.onnx` (dynamic int8) agrees with PyTorch on "
                  f"{100 * export['int8']['top1_agreement']:.2f}% of top-1 predictions."]
    lines += ["", "## Training", "", *_training_lines(source), "", "## Evaluation", "",
              *_evaluation_lines(evaluation), "", "## Configuration", "", *_config_table(config), ""]
    path.write_text("\n".join(lines))
