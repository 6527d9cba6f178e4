"""`greenloop text tokenize`: sharded, resumable tokenization into memory-mappable arrays.

Two formats. `grid` reads a `greenloop data split` folder and writes each pair as two
grids (`greenloop.text.grid`): `buggy` is the source, `fixed` the target; a pair where
either side does not fit is skipped and counted by reason. `lm` writes a flat token
stream for causal language models, each document `<|bos|> ids <|eos|>`; its input is a
split folder (a document is a pair's `fixed` code, identical texts kept once per split),
`tasks:SPEC` (a document is `<|bos|> prompt <|sep|> completion <|eos|>`, the completion
being the reference without the prompt when it starts with it, as in HumanEval), or
`stdlib` / `dir:PATH` (a document is one function, `greenloop.data.units`; every file goes
to `train`, or a `--holdout-fraction` of files, chosen by a hash of the path, to
`validation`).

Output layout (`.npy` files open with `np.load(path, mmap_mode="r")`; ids are uint16 when
the vocabulary fits, int32 otherwise):

    OUT/meta.json                          format, lines/width, vocab size, tokenizer path
                                           and sha256, input, per split: rows (grid) or
                                           documents and tokens (lm), skipped by reason,
                                           shard names; seconds and samples/s of the run
    OUT/{split}/shard-NNNNN.source.npy     grid: (n, lines, width) buggy
    OUT/{split}/shard-NNNNN.target.npy     grid: (n, lines, width) fixed
    OUT/{split}/shard-NNNNN.rows.parquet   grid: pair_id, bug_type, family, difficulty,
                                           bucket, task_id, verified, error_line (the
                                           parser's row for buggy, -1: it parses);
                                           one row per grid
    OUT/{split}/shard-NNNNN.tokens.npy     lm: the 1-D stream
    OUT/{split}/shard-NNNNN.docs.npy       lm: int64 start offset of each document
    OUT/run.json, OUT/shards/*.report.json bookkeeping (`greenloop.data.shards.ShardedRun`)

One input shard (a split folder's Parquet part file; 50 source files; 1,000 tasks) makes
one output shard. Shards run on a process pool; each file is written under a temporary
name and renamed, then the shard's report, so a shard with its report and files is done.
A rerun with the same arguments redoes only missing shards; different arguments (the
tokenizer's sha256 and the input's files included) are refused unless `--force`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from greenloop.data.shards import ShardedRun, run_parallel, write_json
from greenloop.text.grid import OVERFLOW_REASONS, encode_grids
from greenloop.text.hints import parser_error_line
from greenloop.text.tokenizer import BOS_ID, EOS_ID, SEP_ID, load_tokenizer, tokenizer_fingerprint

FORMATS = ("grid", "lm")
ROW_COLUMNS = ("pair_id", "bug_type", "family", "difficulty", "bucket", "task_id", "verified")
GRID_FILES, LM_FILES = ("source.npy", "target.npy", "rows.parquet"), ("tokens.npy", "docs.npy")
ENCODE_CHUNK = 1024  # texts per encode_batch call: big enough to batch, small enough for memory


@dataclass(frozen=True)
class TokenizeConfig:
    tokenizer: str  # folder written by `greenloop text train-tokenizer`
    input: str  # split folder; or, for lm, tasks:SPEC, stdlib, dir:PATH
    format: str = "grid"
    lines: int = 64
    width: int = 48
    holdout_fraction: float = 0.0  # lm from stdlib/dir: share of files put in validation
    files_per_shard: int = 50
    docs_per_shard: int = 1000

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"--format {self.format!r}: choose from {', '.join(FORMATS)}")
        if self.lines < 1 or self.width < 2:
            raise ValueError(f"--lines {self.lines} --width {self.width}: need at least 1 line of 2 cells")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"--holdout-fraction {self.holdout_fraction}: must be in [0, 1)")
        if self.holdout_fraction and not _is_code_source(self.input):
            raise ValueError("--holdout-fraction applies to stdlib and dir:PATH inputs only")
        if self.format == "grid" and (_is_code_source(self.input) or self.input.startswith("tasks:")):
            raise ValueError(f"--format grid needs a split folder (greenloop data split), not {self.input!r}")


@dataclass(frozen=True)
class ShardJob:
    """One output shard and what it is made from (picklable: it travels to a worker)."""

    split: str
    name: str
    kind: str  # grid | lm-pairs | lm-docs | lm-files
    inputs: tuple[str, ...] = ()  # a Parquet part file, or source files
    keep: tuple[int, ...] | None = None  # lm-pairs: rows that are first of their text
    documents: tuple[tuple[str, ...], ...] = ()  # lm-docs: texts joined by <|sep|>
    duplicates: int = 0

    @property
    def key(self) -> str:
        return f"{self.split}-{self.name}"


def _is_code_source(spec: str) -> bool:
    return spec == "stdlib" or spec.startswith("dir:")


def split_parts(folder: str | Path) -> dict[str, list[Path]]:
    """A `greenloop data split` folder's part files, per split, bucket by bucket."""
    from greenloop.data.split import SPLITS

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder (expected a `greenloop data split` output)")
    if not (folder / "manifest.json").exists():
        state = "its run has not finished (no manifest.json)" if (folder / "run.json").exists() else \
            "not a `greenloop data split` folder (no manifest.json)"
        raise ValueError(f"{folder}: {state}")

    def order(path: Path) -> tuple[int, str]:
        return int(path.parent.name.rpartition("-")[2] or 0), path.name

    parts = {s: sorted(folder.glob(f"{s}/bucket-*/*.parquet"), key=order) for s in SPLITS}
    parts = {s: files for s, files in parts.items() if files}
    if not parts:
        raise ValueError(f"{folder}: no {'/'.join(SPLITS)}/bucket-*/*.parquet files")
    return parts


def read_parts(parts: Sequence[Path], columns: Sequence[str]) -> Iterator[dict[str, list]]:
    """The named columns of each part file, one dict of lists per file."""
    import pyarrow.parquet as pq

    for path in parts:
        missing = set(columns) - set(pq.read_schema(path).names)
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(sorted(missing))}; is it a split folder's part file?")
        yield pq.read_table(path, columns=list(columns)).to_pydict()


def _files_stamp(paths: Sequence[Path]) -> str:
    from greenloop.data.units import fingerprint

    return fingerprint(f"{p}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}" for p in paths)


def plan_shards(config: TokenizeConfig) -> tuple[list[ShardJob], str]:
    """Every output shard of the run, in order, and a fingerprint of the input."""
    if config.input.startswith("tasks:"):
        return _plan_tasks(config)
    if _is_code_source(config.input):
        return _plan_files(config)
    parts = split_parts(config.input)
    stamp = _files_stamp([p for files in parts.values() for p in files])
    if config.format == "grid":
        return [ShardJob(split, f"shard-{i:05d}", "grid", (str(p),))
                for split, files in parts.items() for i, p in enumerate(files)], stamp
    jobs = []
    for split, files in parts.items():
        seen: set[bytes] = set()
        for i, (path, batch) in enumerate(zip(files, read_parts(files, ["fixed"]))):
            keep = []
            for row, text in enumerate(batch["fixed"]):
                digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
                if digest not in seen:
                    seen.add(digest)
                    keep.append(row)
            jobs.append(ShardJob(split, f"shard-{i:05d}", "lm-pairs", (str(path),), tuple(keep),
                                 duplicates=len(batch["fixed"]) - len(keep)))
    return jobs, stamp


def _plan_tasks(config: TokenizeConfig) -> tuple[list[ShardJob], str]:
    from greenloop.data.units import fingerprint
    from greenloop.tasks import TaskSpec, load_tasks

    by_split: dict[str, list[tuple[str, str]]] = {}
    for piece in config.input[len("tasks:"):].split(","):
        split = TaskSpec.parse(piece).split or "train"
        for task in load_tasks(piece).tasks.values():
            if task.reference is None:
                continue
            completion = task.reference
            if task.prompt_is_code and completion.startswith(task.prompt):
                completion = completion[len(task.prompt):]
            by_split.setdefault(split, []).append((task.prompt, completion))
    if not by_split:
        raise ValueError(f"--input {config.input}: no task with a reference solution")
    jobs = []
    for split, docs in by_split.items():
        for i, start in enumerate(range(0, len(docs), config.docs_per_shard)):
            jobs.append(ShardJob(split, f"shard-{i:05d}", "lm-docs",
                                 documents=tuple(docs[start:start + config.docs_per_shard])))
    return jobs, fingerprint(text for docs in by_split.values() for doc in docs for text in doc)


def _plan_files(config: TokenizeConfig) -> tuple[list[ShardJob], str]:
    from greenloop.data.pairs import stable_hash
    from greenloop.data.units import files_fingerprint, source_files

    _, files = source_files(config.input)
    by_split: dict[str, list[str]] = {}
    for file in files:
        held_out = stable_hash("holdout", file.path) / 2**64 < config.holdout_fraction
        by_split.setdefault("validation" if held_out else "train", []).append(file.full_path)
    jobs = []
    for split, paths in sorted(by_split.items()):
        for i, start in enumerate(range(0, len(paths), config.files_per_shard)):
            jobs.append(ShardJob(split, f"shard-{i:05d}", "lm-files", tuple(paths[start:start + config.files_per_shard])))
    return jobs, files_fingerprint(files)


@functools.lru_cache(maxsize=2)
def _tokenizer(folder: str, sha256: str):
    return load_tokenizer(folder)  # sha256 in the key: a retrained tokenizer is reloaded


def _write_array(path: Path, array: np.ndarray) -> None:
    """An .npy file that `np.load(..., mmap_mode="r")` maps, written atomically. Streamed
    with `write_array` rather than copied into an `open_memmap`: the bytes are the same,
    and filling a fresh mapping page by page measured 10x slower."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)


def _write_rows(path: Path, table) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _grid_shard(tok, job: ShardJob, config: TokenizeConfig, dtype: type, folder: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(job.inputs[0])
    missing = {"buggy", "fixed", *ROW_COLUMNS} - set(table.column_names)
    if missing:
        raise ValueError(f"{job.inputs[0]}: no column(s) {', '.join(sorted(missing))}")
    buggy, fixed = table.column("buggy").to_pylist(), table.column("fixed").to_pylist()
    shape = (len(buggy), config.lines, config.width)
    sources, targets = np.empty(shape, dtype=dtype), np.empty(shape, dtype=dtype)  # kept pairs fill the front
    keep, kept = np.zeros(len(buggy), dtype=bool), 0
    skipped = dict.fromkeys(OVERFLOW_REASONS, 0)
    for start in range(0, len(buggy), ENCODE_CHUNK):
        # both sides in one call, so the lines they share are encoded once
        chunk = buggy[start:start + ENCODE_CHUNK] + fixed[start:start + ENCODE_CHUNK]
        grids, reasons = encode_grids(tok, chunk, config.lines, config.width, dtype)
        half = len(chunk) // 2
        for i, (a, b) in enumerate(zip(reasons[:half], reasons[half:])):
            if a or b:
                skipped[a or b] += 1
            else:
                keep[start + i] = True
        fits = keep[start:start + half]
        n = int(fits.sum())
        sources[kept:kept + n], targets[kept:kept + n] = grids[:half][fits], grids[half:][fits]
        kept += n
    _write_array(folder / f"{job.name}.source.npy", sources[:kept])
    _write_array(folder / f"{job.name}.target.npy", targets[:kept])
    rows = table.select(list(ROW_COLUMNS)).filter(pa.array(keep))
    hints = [parser_error_line(text) for text, fits in zip(buggy, keep) if fits]
    _write_rows(folder / f"{job.name}.rows.parquet", rows.append_column("error_line", pa.array(hints, pa.int32())))
    return {"pairs": len(buggy), "rows": kept, "skipped": skipped, "samples": len(buggy)}


def _stream(tok, documents: Sequence[Sequence[str]], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """`<|bos|> a <|sep|> b ... <|eos|>` per document, concatenated; and the start offsets."""
    flat = [text for doc in documents for text in doc]
    ids = iter([e.ids for e in tok.encode_batch(flat, add_special_tokens=False)] if flat else [])
    tokens: list[int] = []
    starts = np.empty(len(documents), dtype=np.int64)
    for d, doc in enumerate(documents):
        starts[d] = len(tokens)
        tokens.append(BOS_ID)
        for j in range(len(doc)):
            if j:
                tokens.append(SEP_ID)
            tokens.extend(next(ids))
        tokens.append(EOS_ID)
    return np.array(tokens, dtype=dtype), starts


def _lm_documents(job: ShardJob) -> tuple[list[tuple[str, ...]], dict[str, Any]]:
    from greenloop.data.units import SkipFile, SourceFile, file_units, read_source

    if job.kind == "lm-docs":
        return list(job.documents), {}
    if job.kind == "lm-pairs":
        fixed = next(read_parts([Path(job.inputs[0])], ["fixed"]))["fixed"]
        return [(fixed[i],) for i in job.keep or ()], {"duplicates": job.duplicates}
    documents, skipped = [], 0
    for path in job.inputs:
        try:
            units = file_units(path, read_source(SourceFile(os.path.dirname(path), os.path.basename(path))))
        except SkipFile:
            skipped += 1
            continue
        documents.extend((unit.source,) for unit in units)
    return documents, {"files": len(job.inputs), "skipped_files": skipped}


def _lm_shard(tok, job: ShardJob, dtype: type, folder: Path) -> dict[str, Any]:
    documents, extra = _lm_documents(job)
    tokens, starts = _stream(tok, documents, dtype)
    _write_array(folder / f"{job.name}.tokens.npy", tokens)
    _write_array(folder / f"{job.name}.docs.npy", starts)
    return {**extra, "documents": len(documents), "tokens": int(tokens.size), "samples": len(documents)}


def tokenize_shard(job: ShardJob, out: str, config: TokenizeConfig, sha256: str, limit_threads: bool) -> dict[str, Any]:
    """Tokenize one shard and write its files, then its report (the worker's entry point)."""
    if limit_threads:  # one process per core already; the tokenizer's own threads would contend
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    started = time.perf_counter()
    tok = _tokenizer(config.tokenizer, sha256)
    dtype = np.uint16 if tok.get_vocab_size() <= 65535 else np.int32
    folder = Path(out) / job.split
    folder.mkdir(parents=True, exist_ok=True)
    if job.kind == "grid":
        report = _grid_shard(tok, job, config, dtype, folder)
    else:
        report = _lm_shard(tok, job, dtype, folder)
    files = GRID_FILES if job.kind == "grid" else LM_FILES
    report = {**report, "split": job.split, "shard": job.name, "input": job.inputs[0] if job.inputs else None,
              "files": [f"{job.split}/{job.name}.{f}" for f in files], "seconds": round(time.perf_counter() - started, 3)}
    write_json(Path(out) / "shards" / f"{job.key}.report.json", report)
    return report


def _finished(out: Path, job: ShardJob) -> dict[str, Any] | None:
    path = out / "shards" / f"{job.key}.report.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    return report if all((out / f).exists() for f in report["files"]) else None


def run_tokenize(config: TokenizeConfig, out: str, workers: int = 1, force: bool = False) -> dict[str, Any]:
    """Tokenize `config.input` into `out` (resuming a run with the same arguments); returns
    and writes `meta.json`."""
    started = time.perf_counter()
    config = TokenizeConfig(**{**asdict(config), "tokenizer": os.path.abspath(config.tokenizer),
                               "input": _absolute_input(config.input)})
    tok = load_tokenizer(config.tokenizer)
    sha256 = tokenizer_fingerprint(config.tokenizer)
    jobs, input_stamp = plan_shards(config)
    run = ShardedRun(out, "text-tokenize", {**asdict(config), "tokenizer_sha256": sha256, "input_files": input_stamp},
                     force=force)
    for stale in run.out.glob("*/.shard-*.tmp-*"):  # left by a killed run; the run's lock is ours now
        stale.unlink()
    reports = {job.key: _finished(run.out, job) for job in jobs}
    todo = [job for job in jobs if reports[job.key] is None]
    in_process = workers <= 1 or len(todo) <= 1
    work = functools.partial(tokenize_shard, out=str(run.out), config=config, sha256=sha256,
                             limit_threads=not in_process)
    samples = tokens = 0
    for report in run_parallel(work, todo, workers, desc=f"tokenize {config.format}"):
        reports[f"{report['split']}-{report['shard']}"] = report
        samples += report["samples"]
        tokens += report.get("tokens", 0)
    seconds = time.perf_counter() - started
    meta = {"format": config.format, "vocab_size": tok.get_vocab_size(), "tokenizer": config.tokenizer,
            "tokenizer_sha256": sha256, "input": config.input, "splits": _split_totals(jobs, reports, config.format),
            "seconds": round(seconds, 3), "samples": samples, "samples_per_s": round(samples / max(seconds, 1e-9), 1),
            "shards_done_now": len(todo), "shards_resumed": len(jobs) - len(todo),
            "dtype": "uint16" if tok.get_vocab_size() <= 65535 else "int32"}
    if config.format == "grid":
        meta.update(lines=config.lines, width=config.width)
    else:
        meta["tokens_per_s"] = round(tokens / max(seconds, 1e-9), 1)
    write_json(run.out / "meta.json", meta)
    return meta


def _absolute_input(spec: str) -> str:
    if spec.startswith("dir:"):
        return "dir:" + os.path.abspath(os.path.expanduser(spec[4:]))
    if spec == "stdlib" or spec.startswith("tasks:"):
        return spec
    return os.path.abspath(spec)


def _split_totals(jobs: list[ShardJob], reports: dict[str, Any], format: str) -> dict[str, Any]:
    counts = ("pairs", "rows") if format == "grid" else ("documents", "tokens", "duplicates", "skipped_files")
    splits: dict[str, Any] = {}
    for job in jobs:
        report = reports[job.key]
        entry = splits.setdefault(job.split, {**dict.fromkeys(counts, 0), "shards": []})
        if format == "grid":
            entry.setdefault("skipped", dict.fromkeys(OVERFLOW_REASONS, 0))
            for reason, n in report["skipped"].items():
                entry["skipped"][reason] += n
        for key in counts:
            entry[key] += report.get(key, 0)
        entry["shards"].append(job.name)
    return splits
