"""ruff and bandit as subprocesses, for `greenloop.data.lint`: finding them, running them
over a batch of files, their JSON answers grouped by file, and ruff's fix edits (rows and
columns, 1-based, columns counting characters) as offsets into the text.

A tool that fails on a batch (a crash, a timeout, output that is not JSON) is run again on
each file alone, so one file it cannot handle costs only that file, reported by path.
Arguments are always lists, never a shell.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess  # nosec B404
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

NEWLINE = re.compile(r"\r\n|\r|\n")  # what ruff and the tokenizer call a line break (not \f, \x1c, ...)
TOOL_TIMEOUT_S = 600  # one tool over one shard's files; a file alone gets a tenth of it


class ToolFailed(Exception):
    """ruff or bandit gave no usable answer; the message says why."""


def find_ruff() -> str:
    """The ruff executable: the `ruff` package's, this environment's, or the one on PATH."""
    try:
        from ruff.__main__ import find_ruff_bin

        return os.fsdecode(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        pass
    beside = os.path.join(os.path.dirname(sys.executable), "ruff")
    found = beside if os.access(beside, os.X_OK) else shutil.which("ruff")
    if not found:
        raise OSError("lint-pairs needs ruff, which is not installed: pip install ruff")
    return found


def require_bandit() -> str:
    """bandit's version; raises when it cannot be imported by this Python."""
    if importlib.util.find_spec("bandit") is None:
        raise OSError("lint-pairs needs bandit, which is not installed: pip install bandit (or pass --no-bandit)")
    try:
        return version("bandit")
    except PackageNotFoundError:
        return "unknown"


def _run_tool(args: list[str], timeout: float, stdin: str | None = None) -> subprocess.CompletedProcess:
    # an argument list of our own making (the tool, its options, file paths): no shell involved
    try:
        return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout,  # nosec B603
                              check=False)
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"timed out after {timeout:.0f} s") from None


def _tool_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    cause = [line for line in lines if line.startswith(("Cause:", "error:"))]
    return (cause or lines or ["no message"])[-1][:300]


@dataclass(frozen=True)
class Ruff:
    """ruff check with one rule selection, as a subprocess."""

    executable: str
    select: str
    target_version: str

    def command(self) -> list[str]:
        return [self.executable, "check", "--output-format", "json", "--isolated", "--no-cache", "--exit-zero",
                "--select", self.select, "--target-version", self.target_version]

    def check_options(self) -> str:
        """Lint an empty file with these options, so a bad selection fails before any
        shard does; returns ruff's version."""
        done = _run_tool(self.command() + ["--stdin-filename", "check.py", "-"], 60, stdin="")
        if done.returncode != 0:
            raise ValueError(f"ruff refuses --select {self.select} / --target-version {self.target_version}: "
                             f"{_tool_error(done.stderr)}")
        return _run_tool([self.executable, "--version"], 60).stdout.strip().removeprefix("ruff ")

    def __call__(self, paths: list[str]) -> dict[str, list[dict]]:
        """ruff's diagnostics for `paths`, by real path."""
        done = _run_tool(self.command() + paths, TOOL_TIMEOUT_S if len(paths) > 1 else TOOL_TIMEOUT_S / 10)
        if done.returncode != 0:
            raise ToolFailed(f"ruff exit {done.returncode}: {_tool_error(done.stderr)}")
        try:
            diagnostics = json.loads(done.stdout or "[]")
        except json.JSONDecodeError as exc:
            raise ToolFailed(f"ruff wrote no JSON ({exc.msg})") from None
        by_path: dict[str, list[dict]] = {}
        for diagnostic in diagnostics:
            by_path.setdefault(os.path.realpath(diagnostic["filename"]), []).append(diagnostic)
        return by_path


def bandit_findings(paths: list[str]) -> dict[str, list[dict]]:
    """bandit's results for `paths`, by real path; a file bandit could not scan maps to a
    one-element list holding `{"error": reason}`."""
    timeout = TOOL_TIMEOUT_S if len(paths) > 1 else TOOL_TIMEOUT_S / 10
    done = _run_tool([sys.executable, "-m", "bandit", "-f", "json", "-q", *paths], timeout)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ToolFailed(f"bandit exit {done.returncode}: {_tool_error(done.stderr)}") from None
    by_path: dict[str, list[dict]] = {}
    for result in report.get("results", []):
        by_path.setdefault(os.path.realpath(result["filename"]), []).append(result)
    for error in report.get("errors", []):
        by_path[os.path.realpath(error["filename"])] = [{"error": str(error.get("reason", "error"))[:300]}]
    return by_path


def run_per_file(scan: Callable[[list[str]], dict[str, list[dict]]], paths: list[str],
                 tool: str) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """`scan` over all paths at once; if the tool fails, over each alone, so one file it
    cannot handle costs only that file. Returns (results by real path, errors by real path)."""
    try:
        return scan(paths), {}
    except ToolFailed as exc:
        if len(paths) == 1:
            return {}, {os.path.realpath(paths[0]): f"{tool}: {exc}"}
    results: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}
    for path in paths:
        try:
            results.update(scan([path]))
        except ToolFailed as exc:
            errors[os.path.realpath(path)] = f"{tool}: {exc}"
    return results, errors


def line_starts(text: str) -> list[int]:
    """Offset where each line starts (plus the empty line after a final line break)."""
    return [0] + [match.end() for match in NEWLINE.finditer(text)]


def _offset(text: str, starts: list[int], location: dict[str, int]) -> int:
    row, column = location["row"], location["column"]  # 1-based; columns count characters
    if not 1 <= row <= len(starts) or column < 1:
        raise ValueError(f"row {row} column {column} is outside the file")
    offset = starts[row - 1] + column - 1
    if offset > (starts[row] if row < len(starts) else len(text)):
        raise ValueError(f"column {column} is past the end of line {row}")
    return offset


def fix_spans(text: str, edits: list[dict], starts: list[int] | None = None) -> list[tuple[int, int, str]]:
    """A fix's edits as (start, end, replacement) character offsets into `text`, in order;
    raises ValueError for edits that fall outside it or overlap."""
    starts = starts or line_starts(text)
    spans = sorted((_offset(text, starts, edit["location"]), _offset(text, starts, edit["end_location"]),
                    edit.get("content") or "") for edit in edits)
    for (start, end, _), following in zip(spans, spans[1:] + [(len(text), len(text), "")]):
        if end < start or following[0] < end:
            raise ValueError("overlapping or reversed edits")
    return spans


def apply_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    parts, done = [], 0
    for start, end, content in spans:
        parts += [text[done:start], content]
        done = end
    return "".join(parts) + text[done:]
