"""`greenloop eval repair`: run a repair model over held-out pairs and measure it.

Pairs come from a `greenloop data split` folder (encoded with the model's own tokenizer) or
from a `greenloop text tokenize --format grid` folder (decoded back to text; the tokenizer
must be the model's). The model repairs them in batches sorted by size; each repaired grid
is decoded to text and compared with the fixed program; with `--tasks`, pairs that carry a
task are also run against its tests in the sandbox. The clean (fixed) programs are
repaired too, to measure detection: a model that edits correct code raises false alarms.
Speed: batched repairs per second over the whole set, and single-repair latency (batch 1)
p50/p99 over a sample.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from greenloop.evaluate.repair import RepairOutcome, failure_signature, markdown_table, outcome_record, summarise
from greenloop.text.hints import parse_error, parser_error_line


@dataclass(frozen=True)
class RepairEvalConfig:
    model: str
    data: str
    split: str = "test"
    tasks: str | None = None        # task specs for execution verification of task-derived pairs
    limit: int | None = 2000        # pairs, drawn at random (seeded); None or 0: all
    batch_size: int = 64
    latency_samples: int = 200
    max_steps: int | None = None    # supervision steps at most (default: the model's)
    detection: bool = True          # also repair the clean programs
    parse_check: int = 1            # k > 1: the first of the model's k likeliest changes that parses
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.latency_samples < 0:
            raise ValueError("batch_size must be >= 1 and latency_samples >= 0")
        if self.parse_check < 1:
            raise ValueError(f"parse_check: expected at least 1 candidate, got {self.parse_check}")


@dataclass
class EvalPairs:
    rows: list[dict]            # pair fields: pair_id, bug_type, family, task_id, buggy, fixed
    source: np.ndarray          # (N, L, W) buggy grids
    target: np.ndarray          # (N, L, W) fixed grids
    skipped: int                # pairs that do not fit the grid


def load_eval_pairs(folder: str, split: str, tokenizer, lines: int, width: int) -> EvalPairs:
    root = Path(folder)
    meta_path = root / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("format") == "grid":
        return _from_grid_folder(root, split, tokenizer)
    if not (root / split).is_dir():
        raise FileNotFoundError(f"{folder}: no {split!r} split (expected a `greenloop data split` folder "
                                "or a `greenloop text tokenize --format grid` folder)")
    return _from_split_folder(root, split, tokenizer, lines, width)


def _from_split_folder(root: Path, split: str, tokenizer, lines: int, width: int) -> EvalPairs:
    import pyarrow.parquet as pq

    from greenloop.text.grid import encode_grids

    columns = ["pair_id", "bug_type", "family", "task_id", "buggy", "fixed"]
    rows = [row for path in sorted((root / split).glob("*/*.parquet"))
            for row in pq.read_table(path, columns=columns).to_pylist()]
    # both sides in one call, so the lines they share are encoded once
    grids, reasons = encode_grids(tokenizer, [r["buggy"] for r in rows] + [r["fixed"] for r in rows], lines, width)
    fits = np.array([a is None and b is None for a, b in zip(reasons[:len(rows)], reasons[len(rows):])], dtype=bool)
    if not fits.any():
        raise ValueError(f"{root}/{split}: no pairs that fit a {lines}x{width} grid")
    kept = [row for row, ok in zip(rows, fits) if ok]
    return EvalPairs(kept, grids[:len(rows)][fits], grids[len(rows):][fits], int((~fits).sum()))


def _from_grid_folder(root: Path, split: str, tokenizer) -> EvalPairs:
    from greenloop.text.datasets import GridData
    from greenloop.text.grid import decode_grid

    data = GridData(root, split)
    source, target = data.batch(np.arange(len(data)))
    meta = data.rows.to_pylist() if hasattr(data.rows, "to_pylist") else list(data.rows)
    rows = [{**m, "buggy": decode_grid(tokenizer, s), "fixed": decode_grid(tokenizer, t)}
            for m, s, t in zip(meta, source, target)]
    return EvalPairs(rows, source, target, 0)


def repair_grids(repair, grids: np.ndarray, hints: np.ndarray, batch_size: int):
    """Repaired grids (N, L, W) and supervision steps used, in input order; seconds spent.
    `repair(grids, hints) -> (grids, steps)` repairs one batch; `hints`: each program's
    parser error row (-1: it parses)."""
    import torch

    areas = (grids != 0).any(axis=2).sum(axis=1) * (grids != 0).any(axis=1).sum(axis=1)
    order = np.lexsort((areas, hints < 0))  # flagged programs together (windows), then by size
    out = np.zeros_like(grids)
    steps = np.zeros(len(grids), dtype=np.float64)
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk], steps[chunk] = repair(grids[chunk], hints[chunk])
    return out, steps, time.perf_counter() - started


def latency_ms(repair, texts: list[str], grids: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Milliseconds per single repair, the parser's hint included (it is part of a repair)."""
    import torch

    if samples == 0:
        return np.zeros(0)
    picks = np.random.default_rng([seed, 11]).choice(len(grids), size=min(samples, len(grids)), replace=False)
    times = []
    with torch.no_grad():
        for i in picks:
            started = time.perf_counter()
            hint = np.asarray([parser_error_line(texts[i])], dtype=np.int64)
            repair(grids[i:i + 1], hint)
            times.append((time.perf_counter() - started) * 1000)
    return np.asarray(times)


def make_repairer(model, tokenizer, config: RepairEvalConfig, device):
    """`repair(grids, hints) -> (grids, steps)`: the model's answer, or with
    config.parse_check = k > 1 the first of its k likeliest single changes that parses."""
    from functools import partial

    from greenloop.text.grid import decode_grids
    from greenloop.train.windows import repair_batch

    if config.parse_check <= 1:
        return partial(repair_batch, model, device=device, max_steps=config.max_steps)
    if not getattr(model.config, "single_change", False):
        raise ValueError(f"{config.model}: --parse-check needs a single_change model "
                         "(trained with --model-set edits=true --model-set single_change=true)")
    from greenloop.train.checked_repair import repair_checked

    def repair(grids, hints):
        return repair_checked(model, grids, hints, device, partial(decode_grids, tokenizer), config.parse_check,
                              config.max_steps)[:2]
    return repair


def verify_repairs(rows: list[dict], predictions: list[str], tasks_spec: str | None) -> list[tuple[bool | None, str]]:
    """(passed, detail) per pair: the repaired program against its task's tests, or (None, "")
    where the pair has no task or no tasks were given."""
    results: list[tuple[bool | None, str]] = [(None, "")] * len(rows)
    if not tasks_spec:
        return results
    from greenloop.tasks import load_tasks
    from greenloop.types import Candidate
    from greenloop.verify.funnel import VerifyConfig, verify_candidates

    tasks = load_tasks(tasks_spec)
    chosen = [i for i, r in enumerate(rows) if r.get("task_id") in tasks.tasks]
    candidates = [Candidate(rows[i]["task_id"], predictions[i], source="model:repair") for i in chosen]
    for i, verdict in zip(chosen, verify_candidates(tasks, candidates, VerifyConfig()) if candidates else []):
        results[i] = (verdict.passed, "" if verdict.passed else verdict.detail)
    return results


def evaluate_repair(config: RepairEvalConfig, progress: bool = False) -> tuple[dict, list[RepairOutcome]]:
    import torch

    from greenloop.models import load_model
    from greenloop.text.grid import decode_grid
    from greenloop.text.tokenizer import load_tokenizer

    if config.threads:
        torch.set_num_threads(config.threads)
    model = load_model(config.model).eval()
    tokenizer = load_tokenizer(config.model)
    lines, width = model.config.grid_lines, model.config.grid_width
    pairs = load_eval_pairs(config.data, config.split, tokenizer, lines, width)
    if config.limit and len(pairs.rows) > config.limit:
        keep = np.sort(np.random.default_rng([config.seed, 3]).choice(len(pairs.rows), config.limit, replace=False))
        pairs = EvalPairs([pairs.rows[i] for i in keep], pairs.source[keep], pairs.target[keep], pairs.skipped)
    device = torch.device("cpu")
    started = time.perf_counter()  # the parser's hint is part of a repair's cost
    hints = np.asarray([parser_error_line(r["buggy"]) for r in pairs.rows], dtype=np.int64)
    hint_seconds = time.perf_counter() - started
    repair = make_repairer(model, tokenizer, config, device)
    repaired, steps, seconds = repair_grids(repair, pairs.source, hints, config.batch_size)
    seconds += hint_seconds
    predictions = [decode_grid(tokenizer, g) for g in repaired]
    clean_changed: list[bool | None] = [None] * len(pairs.rows)
    if config.detection:
        clean_hints = np.asarray([parser_error_line(r["fixed"]) for r in pairs.rows], dtype=np.int64)
        on_clean, _, _ = repair_grids(repair, pairs.target, clean_hints, config.batch_size)
        clean_changed = [bool((a != b).any()) for a, b in zip(on_clean, pairs.target)]
    verified = verify_repairs(pairs.rows, predictions, config.tasks)
    outcomes = []
    for i, row in enumerate(pairs.rows):
        passed, detail = verified[i]
        prediction = predictions[i]
        outcomes.append(RepairOutcome(
            pair_id=row["pair_id"], bug_type=row["bug_type"], family=row["family"],
            exact=prediction == row["fixed"], parses=parse_error(prediction) is None, verified=passed,
            flagged_buggy=bool((repaired[i] != pairs.source[i]).any()), flagged_clean=clean_changed[i],
            signature=failure_signature(row["buggy"], prediction, row["fixed"], detail),
            buggy=row["buggy"], fixed=row["fixed"], prediction=prediction, steps=float(steps[i])))
    report = summarise(outcomes)
    latencies = latency_ms(repair, [r["buggy"] for r in pairs.rows], pairs.source, config.latency_samples, config.seed)
    report["speed"] = {"repairs_per_s": len(pairs.rows) / seconds if seconds else 0.0, "batch_size": config.batch_size,
                       "seconds": seconds, "latency_ms_p50": float(np.percentile(latencies, 50)) if len(latencies) else 0.0,
                       "latency_ms_p99": float(np.percentile(latencies, 99)) if len(latencies) else 0.0,
                       "latency_samples": len(latencies), "threads": torch.get_num_threads(),
                       "parse_check": config.parse_check}
    report["skipped_not_fitting_grid"] = pairs.skipped
    report["model"] = {"path": str(Path(config.model).resolve()), "parameters": model.num_parameters(),
                       "type": model.config.model_type}
    report["data"] = {"path": str(Path(config.data).resolve()), "split": config.split, "tasks": config.tasks}
    return report, outcomes


def write_report(report: dict, outcomes: list[RepairOutcome], out: str) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (folder / "report.md").write_text(markdown_table(report))
    with open(folder / "predictions.jsonl", "w") as fh:
        for o in outcomes:
            fh.write(json.dumps(outcome_record(o)) + "\n")
