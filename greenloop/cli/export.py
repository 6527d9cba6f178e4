"""`greenloop export DIR`: model card, ONNX and int8 for a trained model folder."""

from __future__ import annotations

import argparse


def add_commands(commands) -> None:
    from greenloop.train import export

    p = commands.add_parser("export", help="ship a trained model: model card, ONNX (checked), int8",
                            description=export.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="a model folder (a training run's best/ or final/)")
    p.add_argument("--out", help="write here instead of into the folder (weights, config, tokenizer are copied)")
    p.add_argument("--onnx", action="store_true", help="export model.onnx and check it against PyTorch")
    p.add_argument("--int8", action="store_true", help="also model.int8.onnx (dynamic int8 quantisation)")
    p.add_argument("--steps", type=int, help="TRM: supervision steps in the ONNX graph (default: the model's)")
    p.add_argument("--report", help="an eval report.json to put in the model card (default: FOLDER/eval/report.json)")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    from greenloop.train.export import export_model

    summary = export_model(args.folder, out=args.out, onnx=args.onnx, int8=args.int8, steps=args.steps,
                           report=args.report)
    for name, mb in summary["sizes_mb"].items():
        print(f"{name:20} {mb:10.3f} MB")
    for key in ("onnx", "int8"):
        if key in summary:
            s = summary[key]
            print(f"{key}: max |onnx - torch| {s['max_abs_diff']:.2e}, top-1 agreement {100 * s['top1_agreement']:.2f}% "
                  f"on input {s['shape']}")
    print(f"model card: {summary['folder']}/README.md")
    return 0
