"""Linter-derived data (`greenloop data lint-pairs`): ruff's autofixes as repair pairs,
bandit's findings as labelled security examples.

Both tools run as subprocesses, once per shard (a slice of the sorted file list); their
rules are theirs, never re-implemented here. A file that is huge, not UTF-8 or does not
parse is skipped before either tool sees it and reported with its path and reason; a file
a tool fails on is reported under `tool_errors` and the rest of its shard goes on.

Pairs (`pairs-NNNNN` shards, the record of `greenloop.data.pairs`): ruff runs with
`--output-format json --isolated --no-cache`; every diagnostic that carries a fix (a safe
one, or also an unsafe one with `unsafe_fixes`; display-only fixes never) has just that
fix's edits applied to the original file, and is kept only when the fixed code still
parses (`fixed_function`). The pair is the enclosing function (qualified name as `file_units` makes them)
in the original file and the same function in the fixed file, both dedented, standing
alone. `bug_type` is `ruff:CODE`, `family` is `lint`, and `meta` holds `rule` (ruff's
rule name), `message`, `fix` (the fix's own message), `applicability`, `line` (the
diagnostic's line in `buggy`) and `edits_outside_function` (true when the fix also edits
lines outside the function, say an import it adds, which the pair does not show).

Fixes outside any function are skipped and counted (`outside_function`), as are fixes in
functions over `max_unit_lines`: module-level fixes are mostly unused or unsorted imports,
which depend on the whole file, so no small window of lines could show why they are wrong.
Other counted reasons a fix makes no pair: `unsafe`/`display-only` (not enabled),
`bad_edit`, `fixed_code_does_not_parse`, `function_lost` (the fixed file has no function
of that name), `no_change_in_function`, `duplicate` (the same pair from another diagnostic).

Findings (`findings-NNNNN` shards, one JSON object a line), from `bandit -f json -q`:

| field | meaning |
|---|---|
| `finding_id` | stable 16-hex id from source, path, unit, test id, lines and code |
| `test_id`, `test_name` | bandit's test (`B602`, `subprocess_popen_with_shell_equals_true`) |
| `severity`, `confidence` | bandit's `LOW`/`MEDIUM`/`HIGH` |
| `cwe` | the CWE number, or null |
| `message` | bandit's issue text |
| `family` | `security` |
| `source`, `path`, `unit` | as in a pair |
| `code` | the enclosing function, dedented, standing alone |
| `lines` | `[first, last]` of `code` the finding covers (1-based) |
| `meta` | `line_in_file`, `more_info` (bandit's documentation link) |

Findings outside a function (module-level imports of `subprocess`, `pickle`, ...) are
skipped and counted the same way as fixes.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from greenloop.data.lint_tools import (NEWLINE, Ruff, apply_spans, bandit_findings, find_ruff, fix_spans, line_starts,
                                       require_bandit, run_per_file)
from greenloop.data.pairs import make_pair
from greenloop.data.shards import ShardedRun, run_parallel, shard_names
from greenloop.data.units import (MAX_FILE_BYTES, CodeUnit, SkipFile, SourceFile, file_units, files_fingerprint,
                                  parse_quietly, read_source, source_files)

# rule families whose fixes are bug-ish or style; W and PERF rarely fix anything but cost nothing
DEFAULT_SELECT = "F,E,W,B,C4,UP,SIM,PIE,RET,PERF,RUF,FURB,RSE"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass(frozen=True)
class LintPairsConfig:
    select: str = DEFAULT_SELECT  # ruff rule selection, as ruff's --select spells it
    unsafe_fixes: bool = False  # also apply fixes ruff marks unsafe (they may change behaviour)
    bandit: bool = True  # write bandit findings alongside the pairs
    files_per_shard: int = 50
    limit_files: int | None = None  # only the first N files of the sorted list (quick runs)
    # the Python the code is read as: the one that runs greenloop (and parsed the files)
    target_version: str = field(default_factory=lambda: f"py{sys.version_info.major}{sys.version_info.minor}")
    max_file_bytes: int = MAX_FILE_BYTES
    max_unit_lines: int = 200  # longer functions make no pair (as in `file_units`)

    def __post_init__(self):
        if not re.fullmatch(r"[A-Z]+[0-9]*(,[A-Z]+[0-9]*)*", self.select):
            raise ValueError(f"select {self.select!r}: expected comma-separated ruff rule codes or prefixes (F,E711,UP)")
        if not re.fullmatch(r"py3[0-9]{1,2}", self.target_version):
            raise ValueError(f"target_version {self.target_version!r}: expected py3N, like py311")
        for name in ("files_per_shard", "limit_files", "max_file_bytes", "max_unit_lines"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


class NotAnExample(Exception):
    """A fix or finding that makes no record; the message is the counted reason."""


def last_line(unit: CodeUnit) -> int:
    return unit.first_line + len(NEWLINE.findall(unit.source)) - 1


@dataclass
class LintedFile:
    """A source file read and cut into functions (of any length), ready for the tools' output."""

    file: SourceFile
    text: str
    units: list[CodeUnit]
    starts: list[int] = field(init=False, repr=False)
    first_lines: list[int] = field(init=False, repr=False)

    def __post_init__(self):
        self.starts = line_starts(self.text)
        self.first_lines = [unit.first_line for unit in self.units]

    @classmethod
    def read(cls, file: SourceFile, max_bytes: int) -> LintedFile:
        text = read_source(file, max_bytes)  # raises SkipFile
        linted = cls(file, text, file_units(file.path, text, max_lines=sys.maxsize))
        for unit in linted.units:
            # file_units cuts lines with str.splitlines, which also breaks at \f, \x1c, ...
            # where the parser does not; such a file's functions would be misplaced
            low, high = linted.span_of(unit)
            expected = textwrap.dedent(text[low:high])
            if (expected if expected.endswith("\n") else expected + "\n") != unit.source:
                raise SkipFile(f"line breaks other than \\n and \\r (form feed, ...) misplace function {unit.name}")
        return linted

    def unit_index_at(self, line: int) -> int:
        index = bisect.bisect_right(self.first_lines, line) - 1
        if index < 0 or line > last_line(self.units[index]):
            raise NotAnExample("outside_function")
        return index

    def span_of(self, unit: CodeUnit) -> tuple[int, int]:
        end = last_line(unit)
        return self.starts[unit.first_line - 1], self.starts[end] if end < len(self.starts) else len(self.text)


def _same_function(units: list[CodeUnit], index: int, fixed_units: list[CodeUnit]) -> CodeUnit:
    """The function of `fixed_units` that is `units[index]`: same name, same occurrence."""
    name = units[index].name
    before = sum(1 for unit in units[:index] if unit.name == name)
    twins = [unit for unit in fixed_units if unit.name == name]
    if len(twins) != sum(1 for unit in units if unit.name == name):
        raise NotAnExample("function_lost")
    return twins[before]


def _without_trailing_comments(source: str) -> str:
    """A function ends at its last statement (as `file_units` cuts it): the blank or comment
    lines a fix that deletes that statement leaves behind go too."""
    lines = _LINE.findall(source)
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    text = "".join(lines)
    return text if text.endswith("\n") else text + "\n"


def fixed_function(linted: LintedFile, index: int, spans: list[tuple[int, int, str]]) -> tuple[str, bool]:
    """Function `index` of the file with the fix applied, dedented, and whether the fix also
    edits outside it. Raises NotAnExample when the fixed code does not parse.

    A fix inside the function is applied to the function alone: the fixed file parses when
    the fixed function, at its old indentation, does, and parsing a function instead of its
    file per fix is what keeps big files fast. Any other fix is applied to the whole file,
    which is parsed and cut into functions again."""
    low, high = linted.span_of(linted.units[index])
    # an insertion right at either edge of the function (an import above it) is outside it
    inside = all(low <= start and end <= high and not (start == end and start in (low, high))
                 for start, end, _ in spans)
    if inside:
        source = textwrap.dedent(apply_spans(linted.text[low:high], [(s - low, e - low, c) for s, e, c in spans]))
        if source[:1].strip():  # the def (or decorator) line still sets the indentation
            source = _without_trailing_comments(source)
            try:
                parse_quietly(source)
            except (SyntaxError, ValueError):
                raise NotAnExample("fixed_code_does_not_parse") from None
            return source, False
    try:
        fixed_units = file_units(linted.file.path, apply_spans(linted.text, spans), max_lines=sys.maxsize)
    except SkipFile:
        raise NotAnExample("fixed_code_does_not_parse") from None
    return _same_function(linted.units, index, fixed_units).source, not inside


def fix_pair(linted: LintedFile, diagnostic: dict, label: str, config: LintPairsConfig) -> dict[str, Any]:
    """The pair one diagnostic's fix makes, or NotAnExample with the reason it makes none."""
    fix = diagnostic["fix"]
    applicability = fix.get("applicability", "unknown")
    if applicability != "safe" and not (applicability == "unsafe" and config.unsafe_fixes):
        raise NotAnExample(applicability)
    index = linted.unit_index_at(diagnostic["location"]["row"])
    unit = linted.units[index]
    if last_line(unit) - unit.first_line + 1 > config.max_unit_lines:
        raise NotAnExample("function_too_long")
    try:
        spans = fix_spans(linted.text, fix["edits"], linted.starts)
    except (ValueError, KeyError, TypeError):
        raise NotAnExample("bad_edit") from None
    fixed, outside = fixed_function(linted, index, spans)
    if fixed == unit.source:
        raise NotAnExample("no_change_in_function")
    meta = {"rule": diagnostic.get("name"), "message": diagnostic.get("message"), "fix": fix.get("message"),
            "applicability": applicability, "line": diagnostic["location"]["row"] - unit.first_line + 1,
            "edits_outside_function": outside}
    return make_pair(bug_type=f"ruff:{diagnostic['code']}", family="lint", source=label, path=linted.file.path,
                     unit=unit.name, buggy=unit.source, fixed=fixed, meta=meta)


def finding_record(linted: LintedFile, result: dict, label: str, config: LintPairsConfig) -> dict[str, Any]:
    """The labelled example one bandit result makes, or NotAnExample with the reason."""
    unit = linted.units[linted.unit_index_at(result["line_number"])]
    length = last_line(unit) - unit.first_line + 1
    if length > config.max_unit_lines:
        raise NotAnExample("function_too_long")
    covered = result.get("line_range") or [result["line_number"]]
    lines = [max(1, min(covered) - unit.first_line + 1), min(length, max(covered) - unit.first_line + 1)]
    cwe = (result.get("issue_cwe") or {}).get("id")
    key = "\0".join((label, linted.file.path, unit.name, result["test_id"], str(lines), unit.source))
    return {"finding_id": hashlib.blake2b(key.encode(), digest_size=8).hexdigest(),
            "test_id": result["test_id"], "test_name": result.get("test_name"),
            "severity": result.get("issue_severity"), "confidence": result.get("issue_confidence"),
            "cwe": cwe, "message": result.get("issue_text"), "family": "security", "source": label,
            "path": linted.file.path, "unit": unit.name, "code": unit.source, "lines": lines,
            "meta": {"line_in_file": result["line_number"], "more_info": result.get("more_info")}}


def _diagnostic_order(diagnostic: dict) -> tuple:
    location = diagnostic["location"]
    return location["row"], location["column"], diagnostic.get("code") or "", json.dumps(diagnostic["fix"], sort_keys=True)


def file_pairs(linted: LintedFile, diagnostics: list[dict], label: str, config: LintPairsConfig,
               skipped: Counter) -> list[dict[str, Any]]:
    """One pair per applicable fix, in file order; the reasons for the others go to `skipped`."""
    pairs, seen = [], set()
    for diagnostic in sorted((d for d in diagnostics if d.get("fix") and d.get("code")), key=_diagnostic_order):
        try:
            pair = fix_pair(linted, diagnostic, label, config)
        except NotAnExample as exc:
            skipped[str(exc)] += 1
            continue
        if pair["pair_id"] in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(pair["pair_id"])
        pairs.append(pair)
    return pairs


def file_findings(linted: LintedFile, results: list[dict], label: str, config: LintPairsConfig,
                  skipped: Counter) -> list[dict[str, Any]]:
    findings = []
    for result in sorted(results, key=lambda r: (r["line_number"], r.get("col_offset", 0), r["test_id"])):
        try:
            findings.append(finding_record(linted, result, label, config))
        except NotAnExample as exc:
            skipped[str(exc)] += 1
    return findings


def read_files(files: list[SourceFile], max_bytes: int) -> tuple[list[LintedFile], list[dict[str, str]]]:
    """The files that can be linted, and the others with the reason each is skipped."""
    linted, skipped = [], []
    for file in files:
        try:
            linted.append(LintedFile.read(file, max_bytes))
        except SkipFile as exc:
            skipped.append({"path": file.path, "reason": str(exc)})
    return linted, skipped


def shard_name(prefix: str, index: int) -> str:
    return shard_names(prefix, index + 1)[index]


@dataclass
class ShardRecords:
    """What one shard's files make, and what they could not make and why."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    fixes_skipped: Counter = field(default_factory=Counter)
    findings_skipped: Counter = field(default_factory=Counter)
    tool_errors: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class LintShard:
    """The work of one shard (picklable, for the worker pool): lint its files, write
    `findings-NNNNN` (unless bandit is off), then `pairs-NNNNN`, whose report marks it done."""

    run: ShardedRun
    label: str
    ruff: Ruff
    config: LintPairsConfig

    def __call__(self, item: tuple[int, list[SourceFile]]) -> dict[str, Any]:
        index, files = item
        linted, skipped_files = read_files(files, self.config.max_file_bytes)
        records = self.lint(linted)
        if self.config.bandit:
            self.run.write_shard(shard_name("findings", index), records.findings,
                                 {"findings": len(records.findings),
                                  "tests": dict(Counter(f["test_id"] for f in records.findings))})
        report = {"files": len(files), "files_linted": len(linted), "pairs": len(records.pairs),
                  "findings": len(records.findings),
                  "rules": dict(Counter(p["bug_type"].removeprefix("ruff:") for p in records.pairs)),
                  "tests": dict(Counter(f["test_id"] for f in records.findings)),
                  "fixes_skipped": dict(records.fixes_skipped), "findings_skipped": dict(records.findings_skipped),
                  "skipped_files": skipped_files, "tool_errors": records.tool_errors}
        return self.run.write_shard(shard_name("pairs", index), records.pairs, report)

    def lint(self, linted: list[LintedFile]) -> ShardRecords:
        records = ShardRecords()
        paths = [os.path.realpath(lf.file.full_path) for lf in linted]
        if not paths:
            return records
        diagnostics, ruff_errors = run_per_file(self.ruff, paths, "ruff")
        results, bandit_errors = run_per_file(bandit_findings, paths, "bandit") if self.config.bandit else ({}, {})
        for lf, path in zip(linted, paths):
            file_results = results.get(path, [])
            if file_results and "error" in file_results[0]:
                bandit_errors[path], file_results = f"bandit: {file_results[0]['error']}", []
            for errors in (ruff_errors, bandit_errors):
                if path in errors:
                    records.tool_errors.append({"path": lf.file.path, "reason": errors[path]})
            if path not in ruff_errors:
                records.pairs += file_pairs(lf, diagnostics.get(path, []), self.label, self.config,
                                            records.fixes_skipped)
            records.findings += file_findings(lf, file_results, self.label, self.config, records.findings_skipped)
        return records


def shard_done(run: ShardedRun, index: int, config: LintPairsConfig) -> bool:
    return run.done(shard_name("pairs", index)) and (not config.bandit or run.done(shard_name("findings", index)))


def summarize(label: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest: totals over every shard's report."""
    totals: dict[str, Any] = {"source": label, "shards": len(reports)}
    for key in ("files", "files_linted", "pairs", "findings"):
        totals[key] = sum(report[key] for report in reports)
    for key in ("rules", "tests", "fixes_skipped", "findings_skipped"):
        counts = sum((Counter(report[key]) for report in reports), Counter())
        totals[key] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    for key in ("skipped_files", "tool_errors"):
        totals[key] = [entry for report in reports for entry in report[key]]
    return totals


def run_lint_pairs(spec: str, out: str | os.PathLike, config: LintPairsConfig, workers: int = 1,
                   force: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`greenloop data lint-pairs`: lint every file of a source in shards (resuming a
    previous run in `out`), then write manifest.json; returns it."""
    label, files = source_files(spec)
    files = files[:config.limit_files] if config.limit_files else files
    ruff = Ruff(find_ruff(), config.select, config.target_version)
    tools = {"ruff": ruff.check_options()}
    if config.bandit:
        tools["bandit"] = require_bandit()
    run = ShardedRun(out, "lint-pairs", {"source": spec, **asdict(config), "tools": tools,
                                         "inputs": files_fingerprint(files)}, force=force)
    step = config.files_per_shard
    slices = [files[start:start + step] for start in range(0, len(files), step)]
    todo = [(index, part) for index, part in enumerate(slices) if not shard_done(run, index, config)]
    if progress:
        progress(f"lint-pairs: {len(files)} files in {len(slices)} shards"
                 + (f", {len(slices) - len(todo)} already done" if len(todo) < len(slices) else ""))
    for _ in run_parallel(LintShard(run, label, ruff, config), todo, workers, desc="lint-pairs"):
        pass
    reports = [run.report(shard_name("pairs", index)) for index in range(len(slices))]
    return run.finish(summarize(label, reports))
