"""Repair metrics: from per-pair outcomes to the report `greenloop eval repair` writes.

Each evaluated pair yields a `RepairOutcome`:
- `exact`: the repaired program equals the fixed one, character for character;
- `parses`: the repaired program parses;
- `verified`: the repaired program passes the task's tests in the sandbox (None when the
  pair has no task, or no `--tasks` were given);
- `flagged_buggy` / `flagged_clean`: the model changed the buggy program / changed the
  already-correct one. Detection treats "the model edits it" as "the model says it is
  buggy": recall = flagged buggy / buggy; precision = flagged buggy / (flagged buggy +
  flagged clean), the clean programs being the pairs' fixed versions.

Failures are grouped by bug type and an error signature (what went wrong, with names and
numbers removed so that like failures group together), each group with a few examples.
Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from greenloop.text.hints import parse_error


@dataclass
class RepairOutcome:
    pair_id: str
    bug_type: str
    family: str
    exact: bool
    parses: bool
    verified: bool | None
    flagged_buggy: bool
    flagged_clean: bool | None
    signature: str
    buggy: str
    fixed: str
    prediction: str
    steps: float = 0.0


_VOLATILE = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+(\.\d+)?\b")


def normalise_message(message: str) -> str:
    """Quoted names and numbers out, so `'foo' is not defined` and `'bar' is not defined`
    share a signature."""
    return _VOLATILE.sub("_", message).strip()[:80]


def failure_signature(buggy: str, prediction: str, fixed: str, verify_detail: str | None) -> str:
    if prediction == fixed:
        return "ok"
    if prediction == buggy:
        return "unchanged"
    error = parse_error(prediction)
    if error is not None:
        return f"does not parse: {normalise_message(error)}"
    if verify_detail:
        return f"fails tests: {normalise_message(verify_detail)}"
    return "parses, differs from the fix"


def _rate(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(outcomes: list[RepairOutcome], examples_per_group: int = 3) -> dict:
    """The report: overall and per bug type / family rates, detection, error analysis."""
    report = {"pairs": len(outcomes), "overall": _group_rates(outcomes),
              "by_family": {}, "by_bug_type": {}, "detection": {}, "errors": []}
    for key, field in (("by_family", "family"), ("by_bug_type", "bug_type")):
        groups: dict[str, list[RepairOutcome]] = defaultdict(list)
        for o in outcomes:
            groups[getattr(o, field)].append(o)
        report[key] = {name: _group_rates(items) for name, items in sorted(groups.items())}
        if field == "family":
            report["detection"] = {name: _detection(items) for name, items in sorted(groups.items())}
    report["families_of"] = {o.bug_type: o.family for o in outcomes}
    report["errors"] = _error_groups(outcomes, examples_per_group)
    return report


def _group_rates(items: list[RepairOutcome]) -> dict:
    with_tests = [o.verified for o in items if o.verified is not None]
    return {"pairs": len(items), "exact": _rate([o.exact for o in items]),
            "parses": _rate([o.parses for o in items]),
            "verified": _rate(with_tests), "with_tests": len(with_tests),
            "mean_steps": float(np.mean([o.steps for o in items])) if items else None}


def _detection(items: list[RepairOutcome]) -> dict:
    clean = [o.flagged_clean for o in items if o.flagged_clean is not None]
    tp = sum(o.flagged_buggy for o in items)
    fp = sum(clean)
    return {"buggy": len(items), "clean": len(clean), "flagged_buggy": tp, "flagged_clean": fp,
            "recall": tp / len(items) if items else None,
            "precision": tp / (tp + fp) if (tp + fp) and clean else None}


def _error_groups(outcomes: list[RepairOutcome], per_group: int) -> list[dict]:
    failures = [o for o in outcomes if not (o.verified if o.verified is not None else o.exact)]
    counts = Counter((o.bug_type, o.signature) for o in failures)
    groups = []
    for (bug_type, signature), count in counts.most_common():
        chosen = [o for o in failures if o.bug_type == bug_type and o.signature == signature][:per_group]
        groups.append({"bug_type": bug_type, "signature": signature, "count": count,
                       "examples": [{"pair_id": o.pair_id, "diff_prediction_vs_fixed": _diff(o.prediction, o.fixed)}
                                    for o in chosen]})
    return groups


def _diff(prediction: str, fixed: str) -> str:
    lines = difflib.unified_diff(prediction.splitlines(keepends=True), fixed.splitlines(keepends=True),
                                 "prediction", "fixed", n=1)
    return "".join(lines)[:2000]


def markdown_table(report: dict) -> str:
    """The per-bug-type table, then detection by family and the largest error groups."""
    def pct(value):
        return "–" if value is None else f"{100 * value:.1f}%"

    lines = [f"Repair evaluation: {report['pairs']} pairs"
             + (f" ({report['skipped_not_fitting_grid']} more do not fit the model's grid and are not evaluated)"
                if report.get("skipped_not_fitting_grid") else ""), "",
             "| bug type | family | pairs | exact fix | parses | verified fix (with tests) |",
             "|---|---|---:|---:|---:|---:|"]
    for bug_type, rates in report["by_bug_type"].items():
        family = report.get("families_of", {}).get(bug_type, "")
        lines.append(f"| {bug_type} | {family} | {rates['pairs']} | {pct(rates['exact'])} | {pct(rates['parses'])} | "
                     f"{pct(rates['verified'])} ({rates['with_tests']}) |")
    o = report["overall"]
    lines.append(f"| **all** | | {o['pairs']} | {pct(o['exact'])} | {pct(o['parses'])} | "
                 f"{pct(o['verified'])} ({o['with_tests']}) |")
    lines += ["", "| family | detection recall | detection precision | clean programs changed |", "|---|---:|---:|---:|"]
    for family, d in report["detection"].items():
        lines.append(f"| {family} | {pct(d['recall'])} | {pct(d['precision'])} | {d['flagged_clean']} of {d['clean']} |")
    if "speed" in report:
        s = report["speed"]
        lines += ["", f"Throughput {s['repairs_per_s']:.1f} repairs/s (batch {s['batch_size']}); single-repair "
                      f"latency p50 {s['latency_ms_p50']:.1f} ms, p99 {s['latency_ms_p99']:.1f} ms"
                      + (f"; parse check over the model's {s['parse_check']} likeliest changes."
                         if s.get("parse_check", 1) > 1 else ".")]
    if report["errors"]:
        lines += ["", "| bug type | failure | count |", "|---|---|---:|"]
        lines += [f"| {g['bug_type']} | {g['signature']} | {g['count']} |" for g in report["errors"][:15]]
    return "\n".join(lines) + "\n"


def outcome_record(o: RepairOutcome) -> dict:
    record = asdict(o)
    record.pop("buggy")
    record.pop("fixed")
    return record
