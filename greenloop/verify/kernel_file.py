"""`greenloop kernels verify` as a job over files: samples in, one result line per sample
out, resumable.

Samples are JSONL, one object per line with `task_id` (`kernels/level1/softmax`, or the
problem's name `level1/softmax`) and `completion`. Results are written per problem as
soon as its candidates are judged, each line the sample's fields plus `sample_line`,
`sample_key`, `passed`, `outcome`, `stage`, `detail`, `flags`, `reward` and the timing
figures. A killed run continues with `resume=True`: samples whose key (line and content)
is already in the results are skipped. A `.meta.json` beside the results holds the config, the sandbox's isolation and
the funnel's per-stage counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import asdict

from greenloop.io import DataError, read_jsonl, require
from greenloop.verify.kernel_run import funnel_counts
from greenloop.verify.kernel_verify import KernelConfig, KernelResult, KernelVerifier
from greenloop.verify.run import progress_bar


def read_samples(path: str, problems: dict) -> dict[str, list[tuple[int, dict]]]:
    """Samples grouped by problem name, in order of first appearance; unknown task ids are
    errors naming file:line."""
    by_name = {p.name: p for p in problems.values()}
    grouped: dict[str, list[tuple[int, dict]]] = {}
    for record in read_jsonl(path):
        task_id = require(record, "task_id")
        require(record, "completion")
        name = task_id.removeprefix("kernels/")
        if name not in by_name:
            raise DataError(path, record.line, f"no kernel problem {task_id!r} (see `greenloop kernels ls`)",
                            field="task_id")
        grouped.setdefault(name, []).append((record.line, record.data))
    return grouped


def sample_key(line: int, sample: dict) -> str:
    """A sample's identity for resume: its line and its content, so an edited samples
    file does not skip the wrong samples."""
    digest = hashlib.sha256(f"{sample.get('task_id')}\0{sample.get('completion')}".encode()).hexdigest()[:16]
    return f"{line}:{digest}"


def _done_keys(out: str, current: set[str]) -> set[str]:
    """Keys of the samples already judged in `out`. The file is rewritten first with only
    the rows of samples still in the samples file, whole lines only (a line cut by a
    kill is judged again), so appending starts on a fresh line."""
    if not os.path.exists(out):
        return set()
    kept = [r.data for r in read_jsonl(out, on_error=lambda err: None) if r.data.get("sample_key") in current]
    tmp = out + ".tmp"
    with open(tmp, "w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in kept)
    os.replace(tmp, out)
    return {row["sample_key"] for row in kept}


def result_row(sample: dict, line: int, result: KernelResult) -> dict:
    verdict = result.verdict
    row = {**sample, "sample_line": line, "sample_key": sample_key(line, sample), "passed": verdict.passed, "outcome": verdict.outcome.value,
           "stage": verdict.stage, "detail": verdict.detail, "flags": result.flags, "reward": result.reward,
           "stages": [{"stage": s.stage, "outcome": s.outcome.value, "seconds": round(s.seconds, 4), "detail": s.detail}
                      for s in verdict.stages]}
    for key in ("speedup", "speedup_ci", "credited_speedup", "noise_floor", "reference", "candidate", "recheck"):
        if key in verdict.meta:
            row[key] = verdict.meta[key]
    return row


def verify_samples(problems: dict, samples: str, out: str, config: KernelConfig, resume: bool = False,
                   progress: bool = True) -> dict:
    grouped = read_samples(samples, problems)
    current = {sample_key(line, sample) for items in grouped.values() for line, sample in items}
    done = _done_keys(out, current) if resume else set()
    if not resume and os.path.exists(out):
        os.unlink(out)
    total = sum(len(v) for v in grouped.values())
    results: list[KernelResult] = []
    by_name = {p.name: p for p in problems.values()}
    bar = progress_bar(total, progress, desc="kernels")
    todo_by_name = {name: [(line, sample) for line, sample in items if sample_key(line, sample) not in done]
                    for name, items in grouped.items()}
    bar.update(total - sum(len(v) for v in todo_by_name.values()))
    with KernelVerifier(config) as verifier, open(out, "a") as fh:
        for name, todo in todo_by_name.items():
            if not todo:
                continue
            judged = verifier.verify(by_name[name], [s["completion"] for _, s in todo])
            for (line, sample), result in zip(todo, judged):
                fh.write(json.dumps(result_row(sample, line, result)) + "\n")
                results.append(result)
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(todo))
        isolation = verifier.isolation
    bar.close()
    summary = summarise_file(out)
    summary["funnel_this_run"] = funnel_counts(results)
    summary["isolation"] = isolation
    with open(out + ".meta.json", "w") as fh:
        json.dump({"config": asdict(config), "summary": summary}, fh, indent=2)
    return summary


def summarise_file(out: str) -> dict:
    rows = [r.data for r in read_jsonl(out, on_error=lambda err: None)] if os.path.exists(out) else []
    correct = [r for r in rows if r.get("passed")]
    rewards = [r["reward"] for r in rows if r.get("reward") is not None]
    speedups = [r["speedup"] for r in correct if "speedup" in r]
    return {"samples": len(rows), "correct": len(correct),
            "correct_rate": len(correct) / len(rows) if rows else 0.0,
            "mean_reward": statistics.fmean(rewards) if rewards else 0.0,
            "median_speedup_of_correct": statistics.median(speedups) if speedups else None,
            "faster_than_reference": sum(1 for r in correct if r.get("credited_speedup", 1.0) > 1.0),
            "flagged": sum(1 for r in rows if r.get("flags")),
            "outcomes": {o: sum(1 for r in rows if r.get("outcome") == o) for o in sorted({r.get("outcome") for r in rows})}}

