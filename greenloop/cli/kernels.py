"""`greenloop kernels ls | verify | fuse | sft-data`: KernelBench-format kernel tasks."""

from __future__ import annotations

import json
import sys

PROBLEMS_HELP = "a folder of KernelBench-format problems, or 'builtin' (default), 'level1' or 'level2' for the built-in ones"


def add_commands(commands) -> None:
    group = commands.add_parser("kernels", help="kernel tasks: list, verify candidates, emit fusion problems",
                                description="Kernel tasks in KernelBench's format: a reference Model with get_inputs() "
                                            "and get_init_inputs(); candidates define ModelNew.")
    sub = group.add_subparsers(dest="kernels_command", metavar="COMMAND")
    p = sub.add_parser("ls", help="list problems with their level, category and variants")
    p.add_argument("--problems", default="builtin", help=PROBLEMS_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object per problem")
    p.set_defaults(run=run_ls)
    p = sub.add_parser("verify", help="check candidates against their references and time them",
                       description="Each sample (JSONL: task_id, completion) goes through extract -> static -> compile "
                                   "-> smoke -> all input sets -> timing, in the sandbox. One result line per sample; "
                                   "a .meta.json with the funnel's per-stage counts goes beside the results.")
    p.add_argument("--problems", default="builtin", help=PROBLEMS_HELP)
    p.add_argument("--samples", required=True, help="JSONL of samples: task_id (kernels/level1/softmax), completion")
    p.add_argument("--out", help="results JSONL (default: SAMPLES with _results.jsonl)")
    p.add_argument("--input-sets", type=int, default=5, help="input sets each candidate is checked on (default 5)")
    p.add_argument("--no-timing", dest="timing", action="store_false", help="check correctness only")
    p.add_argument("--trials", type=int, default=30, help="timed calls per measurement (default 30)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before timing (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the sandbox child (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--workers", type=int, default=2, help="sandbox workers for correctness checks (default 2)")
    p.add_argument("--timeout", type=float, default=120.0, help="wall-clock seconds per sandbox job (default 120)")
    p.add_argument("--strict-static", action="store_true", help="refuse flagged candidates instead of only denying speedup credit")
    p.add_argument("--isolation", choices=["auto", "none"], default="auto", help="sandbox isolation (default auto)")
    p.add_argument("--resume", action="store_true", help="keep results already in --out and judge only the rest")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run_verify)
    p = sub.add_parser("fuse", help="emit fusion problems from the reference graphs (torch.fx)",
                       description="Trace each reference with torch.fx, find chains of fusable ops (elementwise after "
                                   "matmul/conv, normalisation + activation) and write each chain as a new problem.")
    p.add_argument("--problems", default="level2", help=PROBLEMS_HELP + " (default level2)")
    p.add_argument("--out", required=True, help="folder for the emitted problems")
    p.add_argument("--min-ops", type=int, default=2, help="shortest chain to emit (default 2)")
    p.set_defaults(run=run_fuse)
    p = sub.add_parser("samples", help="write each problem's reference as a sample (a check of a problem set)",
                       description="Writes one sample per problem whose completion is the reference renamed ModelNew: "
                                   "verifying them checks a problem folder end to end (each should pass, speedup ~1).")
    p.add_argument("--problems", default="builtin", help=PROBLEMS_HELP)
    p.add_argument("--out", required=True, help="samples JSONL")
    p.set_defaults(run=run_samples)
    p = sub.add_parser("sft-data", help="turn KernelBook-style pairs into prompt/completion records",
                       description="Reads JSONL or Parquet with python_code and triton_code fields; writes JSONL "
                                   "records with id, prompt, completion.")
    p.add_argument("--data", required=True, help="KernelBook-style JSONL or Parquet file")
    p.add_argument("--out", required=True, help="output JSONL")
    p.set_defaults(run=run_sft_data)
    group.set_defaults(run=lambda args: group.print_help() or 2)


def load(spec: str) -> dict:
    from greenloop.tasks.kernels import KernelTasks

    problems = KernelTasks().problems(None if spec == "builtin" else spec)
    if not problems:
        raise ValueError(f"no kernel problems found in {spec!r}")
    return {p.name: p for p in problems}


def run_ls(args) -> int:
    for problem in load(args.problems).values():
        if args.json:
            print(json.dumps({"task_id": problem.task_id, "level": problem.level, "category": problem.category,
                              "description": problem.description, "shape_variants": list(problem.shape_variants),
                              "dtypes": list(problem.dtypes), "edge_cases": list(problem.edge_cases)}))
        else:
            variants = f"{len(problem.shape_variants)} shapes, {'/'.join(problem.dtypes)}, edges {','.join(problem.edge_cases) or '-'}"
            print(f"{problem.task_id:<42} L{problem.level} {problem.category:<12} {variants}  {problem.description}")
    return 0


def run_verify(args) -> int:
    from greenloop.verify.kernel_file import verify_samples
    from greenloop.verify.kernel_verify import KernelConfig

    config = KernelConfig(input_sets=args.input_sets, timing=args.timing, trials=args.trials, warmup=args.warmup,
                          threads=args.threads, device=args.device, workers=args.workers, timeout_s=args.timeout,
                          strict_static=args.strict_static, isolation=args.isolation)
    out = args.out or args.samples.removesuffix(".jsonl") + "_results.jsonl"
    summary = verify_samples(load(args.problems), args.samples, out, config, resume=args.resume,
                             progress=not args.quiet and sys.stderr.isatty())
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['correct']}/{summary['samples']} correct ({summary['correct_rate']:.1%}), "
          f"mean reward {summary['mean_reward']:.3f}, {summary['faster_than_reference']} credited as faster, "
          f"{summary['flagged']} flagged; isolation: {summary['isolation'].get('level')}")
    print(f"{'stage':<8} {'entered':>8} {'passed':>8} {'seconds':>9}")
    for stage, row in summary["funnel_this_run"].items():
        print(f"{stage:<8} {row['entered']:>8} {row['passed']:>8} {row['seconds']:>9.2f}")
    print(f"results: {out}")
    return 0


def run_fuse(args) -> int:
    from greenloop.tasks.kernel_fusion import fuse_problems

    problems = load(args.problems)
    report = fuse_problems({name: p.source for name, p in problems.items()}, args.out, min_ops=args.min_ops)
    for path in report.written:
        print(f"wrote {path}")
    for name, why in report.skipped:
        print(f"skipped {name}: {why}")
    print(f"{len(report.written)} fusion problems in {args.out} ({len(report.skipped)} skipped); "
          f"check them with `greenloop kernels ls --problems {args.out}`")
    return 0


def run_samples(args) -> int:
    from greenloop.io import write_jsonl
    from greenloop.tasks.kernels import python_block, rename_class

    rows = [{"task_id": p.task_id, "completion": python_block(rename_class(p.source)), "source": "reference"}
            for p in load(args.problems).values()]
    count = write_jsonl(args.out, rows)
    print(f"{count} reference samples -> {args.out}")
    return 0


def run_sft_data(args) -> int:
    from greenloop.data.kernelbook import read_kernelbook
    from greenloop.io import write_jsonl

    count = write_jsonl(args.out, read_kernelbook(args.data))
    print(f"{count} records -> {args.out}")
    return 0
