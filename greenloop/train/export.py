"""`greenloop export DIR`: a trained model folder made ready to ship.

The folder already holds safetensors weights, config.json and the tokenizer (training
writes them). Export adds:
- `README.md`: a model card generated from the folder (architecture, size, training run,
  and the evaluation report when one is given or found in `DIR/eval/report.json`);
- with `--onnx`: `model.onnx` (TRM: inputs `input_ids` (batch, lines, width) and
  `hint_lines` (batch,), the parser's error row or -1; a fixed number of supervision steps,
  dynamic batch, lines and columns; outputs `logits` and `q_halt`, and for a TRM with edits
  `insert_where` and `insert_logits`; GPT/HRM: logits of a token sequence, dynamic batch and length),
  checked against the PyTorch model with onnxruntime on inputs of a shape other than the
  traced one: the largest absolute difference and the top-1 agreement are reported;
- with `--int8`: `model.int8.onnx`, onnxruntime's dynamic int8 quantisation (weights int8,
  activations quantised on the fly) after its pre-processing, with its top-1 agreement.
Sizes of every artefact are reported in `export.json`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

MODEL_FILES = ("config.json", "model.safetensors", "generation_config.json", "training.json")


def _example_inputs(model, seed: int, shape: tuple[int, ...]):
    import torch

    g = torch.Generator().manual_seed(seed)
    high = model.config.vocab_size
    return torch.randint(5, high, shape, generator=g)


def _onnx_module(model, steps: int | None):
    import torch

    if model.config.model_type == "greenloop_trm":
        from greenloop.models.trm import TRMFixedSteps

        chosen = steps or model.config.supervision_steps
        axes = {"input_ids": {0: "batch", 1: "lines", 2: "width"}, "hint_lines": {0: "batch"}}
        return TRMFixedSteps(model, chosen), axes, chosen

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids, use_cache=False).logits

    return Logits(model), {"input_ids": {0: "batch", 1: "sequence"}}, None


def _shapes(model) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A shape to trace with and a different one to check with (dynamic axes must hold)."""
    if model.config.model_type == "greenloop_trm":
        lines, width = model.config.grid_lines, model.config.grid_width
        return (2, min(4, lines), min(6, width)), (3, lines, width)
    return (2, 12), (3, 20)


def _inputs(model, seed: int, shape) -> dict:
    """Named example inputs; a TRM also takes each program's parser hint row (-1: none)."""
    import torch

    inputs = {"input_ids": _example_inputs(model, seed, tuple(shape))}
    if model.config.model_type == "greenloop_trm":
        inputs["hint_lines"] = torch.arange(shape[0]) % shape[1] - (seed % 2)  # some rows, and a -1
    return inputs


def export_onnx(model, path: Path, steps: int | None) -> dict:
    import torch

    module, axes, chosen = _onnx_module(model.eval(), steps)
    traced, checked = _shapes(model)
    outputs = ["logits", "q_halt"] if chosen else ["logits"]
    grid_outputs = {"logits": axes["input_ids"]}
    if getattr(model.config, "edits", False):  # a TRM that answers with edits: where to insert, and what
        outputs += ["insert_where", "insert_logits"]
        grid_outputs.update(insert_where={0: "batch", 1: "cells + 1"}, insert_logits=axes["input_ids"])
    example = _inputs(model, 0, traced)
    with torch.no_grad():
        torch.onnx.export(module, tuple(example.values()), str(path), input_names=list(example),
                          output_names=outputs, dynamic_axes={**axes, **grid_outputs},
                          opset_version=18, dynamo=False)
    return {"steps": chosen, "check_shape": checked, "module": module}


def compare_with_torch(module, model, onnx_path: Path, shape) -> dict:
    import onnxruntime as ort
    import torch

    inputs = _inputs(model, 1, shape)
    with torch.no_grad():
        expected = module(*inputs.values())
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: value.numpy() for name, value in inputs.items()})
    # the logits: the output's, and with edits where and what to insert (not q_halt, output 1: one number)
    pairs = [(got[i], expected[i].numpy()) for i in range(len(expected)) if i != 1]
    return {"max_abs_diff": max(float(np.abs(g - e).max()) for g, e in pairs),
            "top1_agreement": float(np.mean([(g.argmax(-1) == e.argmax(-1)).mean() for g, e in pairs])),
            "shape": list(shape)}


def quantize_int8(onnx_path: Path, out_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out_path.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(out_path), weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 2**20, 3)


def export_model(folder: str, out: str | None = None, onnx: bool = False, int8: bool = False,
                 steps: int | None = None, report: str | None = None) -> dict:
    from greenloop.models import load_model
    from greenloop.train.checkpoint import TOKENIZER_FILES
    from greenloop.train.model_card import write_model_card

    source = Path(folder)
    target = Path(out) if out else source
    model = load_model(source)
    if target != source:
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file() and path.name in MODEL_FILES + TOKENIZER_FILES:
                shutil.copy2(path, target / path.name)
    if not (target / "tokenizer.json").exists():
        raise FileNotFoundError(f"{source}: no tokenizer.json beside the model (training copies it; copy it in)")
    summary: dict = {"folder": str(target), "sizes_mb": {"model.safetensors": _mb(target / "model.safetensors")},
                     "parameters": model.num_parameters()}
    if int8 and not onnx and not (target / "model.onnx").exists():
        onnx = True  # int8 quantises the ONNX graph
    if onnx:
        traced = export_onnx(model, target / "model.onnx", steps)
        summary["onnx"] = {"steps": traced["steps"], **compare_with_torch(traced["module"], model, target / "model.onnx",
                                                                           traced["check_shape"])}
        summary["sizes_mb"]["model.onnx"] = _mb(target / "model.onnx")
        if int8:
            quantize_int8(target / "model.onnx", target / "model.int8.onnx")
            summary["int8"] = compare_with_torch(traced["module"], model, target / "model.int8.onnx", traced["check_shape"])
            summary["sizes_mb"]["model.int8.onnx"] = _mb(target / "model.int8.onnx")
    report_path = Path(report) if report else source / "eval" / "report.json"
    evaluation = json.loads(report_path.read_text()) if report_path.exists() else None
    write_model_card(model, source, target / "README.md", summary, evaluation)
    (target / "export.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
