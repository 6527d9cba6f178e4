"""Sharded, resumable output for the data commands.

An output folder holds `run.json` (the command and its resolved config), one
`shards/NAME.jsonl.gz` per finished shard with its `shards/NAME.report.json` (counts,
skipped files and why), and, once every shard is done, `manifest.json` (the totals).

A shard is written to a temporary file and renamed, and its report is written after it, so
a shard with a report is complete. A killed run, started again with the same arguments,
skips every shard that has a report and redoes only the rest; because each shard's work
depends only on its inputs and the seed, the result is the same as an uninterrupted run.
Started again with different arguments on the same folder, it refuses (naming what
changed) unless told `--force`, which clears the folder first. A lock on the folder
refuses a second run while one is writing there.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from greenloop.io import read_jsonl, write_jsonl


def write_json(path: str | os.PathLike, data: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, ensure_ascii=False, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


class ShardedRun:
    """One data command's output folder."""

    def __init__(self, out: str | os.PathLike, command: str, config: dict[str, Any], force: bool = False):
        self.out = Path(out)
        self.shard_dir = self.out / "shards"
        config = json.loads(json.dumps(config))  # as it will read back (tuples become lists)
        run_file = self.out / "run.json"
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.out / ".lock", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ValueError(f"another greenloop run is writing to {self.out}") from None
        if force:  # everything but the lock we hold
            for entry in self.out.iterdir():
                if entry.name != ".lock":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        if run_file.exists():
            previous = json.loads(run_file.read_text())
            changed = sorted(k for k in set(previous.get("config", {})) | set(config)
                             if previous.get("config", {}).get(k) != config.get(k))
            if previous.get("command") != command or changed:
                what = f"command {previous.get('command')!r}" if previous.get("command") != command else ", ".join(changed)
                raise ValueError(f"{self.out} holds a run with different arguments ({what}); "
                                 "use another --out, or --force to start over")
        elif any(e.name != ".lock" for e in self.out.iterdir()):
            raise ValueError(f"{self.out} is not empty and holds no greenloop run; use another --out or --force")
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.shard_dir.glob("*.tmp-*"):  # left by a killed write; nobody else writes here now
            stale.unlink()
        write_json(run_file, {"command": command, "config": config})

    def __getstate__(self) -> dict[str, Any]:  # worker processes get the paths, not the lock
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def shard_path(self, name: str) -> Path:
        return self.shard_dir / f"{name}.jsonl.gz"

    def report_path(self, name: str) -> Path:
        return self.shard_dir / f"{name}.report.json"

    def done(self, name: str) -> bool:
        return self.report_path(name).exists() and self.shard_path(name).exists()

    def write_shard(self, name: str, rows: Iterable[dict[str, Any]], report: dict[str, Any]) -> dict[str, Any]:
        report = {**report, "shard": name, "rows": write_jsonl(self.shard_path(name), rows)}
        write_json(self.report_path(name), report)
        return report

    def report(self, name: str) -> dict[str, Any]:
        return json.loads(self.report_path(name).read_text())

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        write_json(self.out / "manifest.json", summary)
        return summary


def shard_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def input_shards(folder: str | os.PathLike, prefix: str = "pairs") -> list[Path]:
    """The finished `PREFIX-*` shards of a data command's output folder, in order; refuses
    a folder whose run has not finished (it would silently miss data)."""
    folder = Path(folder)
    if not (folder / "run.json").exists():
        raise ValueError(f"{folder}: not a greenloop data folder (no run.json)")
    if not (folder / "manifest.json").exists():
        raise ValueError(f"{folder}: its run has not finished (no manifest.json); run the same command again to resume it")
    shards = sorted((folder / "shards").glob(f"{prefix}-*.jsonl.gz"))
    if not shards:
        kinds = sorted({p.name.split("-")[0] for p in (folder / "shards").glob("*.jsonl.gz")})
        raise ValueError(f"{folder}: no {prefix} shards" + (f" (it holds {', '.join(kinds)} records)" if kinds else ""))
    return shards


def read_pairs(paths: Sequence[str | os.PathLike]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for record in read_jsonl(path):
            yield record.data


def run_parallel(work: Callable[[Any], dict[str, Any]], items: Sequence[Any], workers: int,
                 desc: str, unit: str = "shard", ordered: bool = False) -> Iterator[dict[str, Any]]:
    """Run `work(item)` for each item on `workers` processes (in this process when 1);
    yields each result as it finishes (in item order when `ordered`), with a progress bar
    on a terminal."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not sys.stderr.isatty() or not items,
               dynamic_ncols=True)
    try:
        if workers <= 1 or len(items) <= 1:
            for item in items:
                report = work(item)
                bar.update(1)
                yield report
            return
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(workers, len(items))) as pool:
            for report in (pool.imap if ordered else pool.imap_unordered)(work, items):
                bar.update(1)
                yield report
    finally:
        bar.close()
