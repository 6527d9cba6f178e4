"""`greenloop data split`: grouped, stratified train/validation/test splits with
curriculum buckets, written as Parquet that `datasets` loads.

Groups: every pair belongs to the group of its source file or task (`source` + `path`), and
a group goes to one split only, so no file or task leaks between splits (mutants of one
function are near-copies of each other; splitting them would inflate test scores). Files
that hold copies of one function (the near-copy `meta.cluster` that validate writes)
are joined into one group, so a copy cannot sit in train while another is in test.

Stratification: groups are visited in a seeded hash order and each goes to the split whose
share of the group's families falls furthest below its target (default 90/5/5); so every
family (syntax, logic, style, security, ...) is split close to the target ratios, not only
the total.

Curriculum: each pair's `bucket` (0 easiest .. 4) places its difficulty among the
quintiles of all the input's difficulties (`pairs.bucket_cuts`), so the buckets are about
equal in size; the cut points are in the manifest. Output layout (so `datasets.load_dataset("parquet", data_dir=S)` finds the splits
by folder name):

    S/train/bucket-0/part-00000.parquet    one file per input shard, split and bucket
    S/validation/...  S/test/...
    S/manifest.json                        counts per split, family and bucket, and the
                                           `data_files` of each split and of each bucket

Every file has the same schema (`SCHEMA`): the pair fields, `bucket`, and `meta` as a JSON
string. Input shards are written one at a time, atomically, and a rerun skips finished
ones; the group assignment depends only on the input and the seed, so a resumed run
writes what an uninterrupted one would.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from greenloop.data.pairs import bucket as difficulty_bucket, bucket_cuts, stable_hash
from greenloop.data.shards import ShardedRun, input_shards, read_pairs

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitConfig:
    ratios: tuple[float, float, float] = (0.90, 0.05, 0.05)
    seed: int = 0

    def __post_init__(self):
        if len(self.ratios) != 3 or any(r < 0 for r in self.ratios) or abs(sum(self.ratios) - 1) > 1e-6:
            raise ValueError(f"--ratios must be three non-negative shares of 1 (train/validation/test), got {self.ratios}")


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("pair_id", pa.string()), ("bug_type", pa.string()), ("family", pa.string()), ("source", pa.string()),
        ("path", pa.string()), ("unit", pa.string()), ("span", pa.list_(pa.int32())), ("buggy", pa.string()),
        ("fixed", pa.string()), ("diff", pa.string()), ("difficulty", pa.float32()), ("bucket", pa.int8()),
        ("task_id", pa.string()), ("verified", pa.bool_()), ("meta", pa.string()),
    ])


def group_of(pair: dict[str, Any]) -> str:
    return f"{pair['source']}\0{pair['path']}"


def assign_groups(counts: dict[str, dict[str, int]], config: SplitConfig) -> dict[str, str]:
    """group -> split, given each group's pair count per family."""
    assigned = {s: {} for s in SPLITS}  # split -> family -> pairs
    totals: dict[str, int] = {}
    result = {}
    for group in sorted(counts, key=lambda group: stable_hash(config.seed, group)):
        families = counts[group]
        best, best_deficit = SPLITS[0], None
        for split, ratio in zip(SPLITS, config.ratios):
            deficit = sum(ratio * (totals.get(f, 0) + n) - assigned[split].get(f, 0) for f, n in families.items())
            if ratio > 0 and (best_deficit is None or deficit > best_deficit):
                best, best_deficit = split, deficit
        result[group] = best
        for f, n in families.items():
            assigned[best][f] = assigned[best].get(f, 0) + n
            totals[f] = totals.get(f, 0) + n
    return result


class _Groups:
    """Files and tasks joined into groups wherever one function's near-copies (the
    `meta.cluster` that validate writes) appear in several of them (union-find)."""

    def __init__(self):
        self.parent: dict[str, str] = {}
        self.families: dict[str, dict[str, int]] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def add(self, pair: dict[str, Any]) -> None:
        group = group_of(pair)
        families = self.families.setdefault(group, {})
        families[pair["family"]] = families.get(pair["family"], 0) + 1
        cluster = (pair.get("meta") or {}).get("cluster")
        root = self.find(group)
        if cluster:
            other = self.find("\1" + cluster)
            if other != root:
                self.parent[max(root, other)] = min(root, other)

    def assign(self, config: SplitConfig) -> dict[str, str]:
        """file or task -> split; joined files share one."""
        merged: dict[str, dict[str, int]] = {}
        for group, families in self.families.items():
            total = merged.setdefault(self.find(group), {})
            for family, n in families.items():
                total[family] = total.get(family, 0) + n
        by_root = assign_groups(merged, config)
        return {group: by_root[self.find(group)] for group in self.families}


def _row(pair: dict[str, Any], cuts: list[float]) -> dict[str, Any]:
    row = {k: pair.get(k) for k in ("pair_id", "bug_type", "family", "source", "path", "unit", "span", "buggy",
                                    "fixed", "diff", "difficulty", "task_id", "verified")}
    row["bucket"] = difficulty_bucket(float(pair.get("difficulty") or 0.0), cuts)
    row["meta"] = json.dumps(pair.get("meta") or {}, ensure_ascii=False, sort_keys=True)
    return row


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), tmp, compression="zstd")
    os.replace(tmp, path)


def _split_shard(run: ShardedRun, shard: Path, assignment: dict[str, str], cuts: list[float]) -> dict[str, Any]:
    name = shard.name[: -len(".jsonl.gz")]
    part = name.rsplit("-", 1)[-1]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for pair in read_pairs([shard]):
        row = _row(pair, cuts)
        groups.setdefault((assignment[group_of(pair)], row["bucket"]), []).append(row)
    counts = {}
    for (split, bucket), rows in sorted(groups.items()):
        _write_parquet(run.out / split / f"bucket-{bucket}" / f"part-{part}.parquet", rows)
        for row in rows:
            key = f"{split}/{row['family']}/{bucket}"
            counts[key] = counts.get(key, 0) + 1
    # the shard's marker: an empty JSONL (the rows live in Parquet) and a report with counts
    return run.write_shard(name, [], {"input": str(shard), "counts": counts})


def run_split(source: str, out: str, config: SplitConfig, force: bool = False) -> dict[str, Any]:
    from tqdm import tqdm
    import sys

    shards = input_shards(source)
    run = ShardedRun(out, "split", {**asdict(config), "input": os.path.abspath(source)}, force=force)
    groups = _Groups()
    scores = []
    for pair in read_pairs(shards):
        groups.add(pair)
        scores.append(float(pair.get("difficulty") or 0.0))
    assignment, cuts = groups.assign(config), bucket_cuts(scores)
    for shard in tqdm(shards, desc="split", unit="shard", disable=not sys.stderr.isatty()):
        if not run.done(shard.name[: -len(".jsonl.gz")]):
            _split_shard(run, shard, assignment, cuts)
    return run.finish({**_manifest(run, shards, assignment), "bucket_cuts": cuts})


def _manifest(run: ShardedRun, shards: list[Path], assignment: dict[str, str]) -> dict[str, Any]:
    table: dict[str, int] = {}
    for shard in shards:
        for key, n in run.report(shard.name[: -len(".jsonl.gz")])["counts"].items():
            table[key] = table.get(key, 0) + n
    splits: dict[str, Any] = {}
    for key, n in sorted(table.items()):
        split, family, bucket = key.split("/")
        entry = splits.setdefault(split, {"pairs": 0, "groups": 0, "by_family": {}, "by_bucket": {}})
        entry["pairs"] += n
        entry["by_family"][family] = entry["by_family"].get(family, 0) + n
        entry["by_bucket"][bucket] = entry["by_bucket"].get(bucket, 0) + n
    for split in assignment.values():
        if split in splits:
            splits[split]["groups"] += 1
    present = [s for s in SPLITS if s in splits]
    buckets = sorted({b for s in present for b in splits[s]["by_bucket"]})
    return {
        "pairs": sum(s["pairs"] for s in splits.values()), "splits": splits,
        "data_files": {s: f"{s}/*/*.parquet" for s in present},
        "curriculum": [{"bucket": int(b), "data_files": {s: f"{s}/bucket-{b}/*.parquet" for s in present
                                                          if b in splits[s]["by_bucket"]}} for b in buckets],
        "load": "datasets.load_dataset('parquet', data_dir=FOLDER) or data_files={split: FOLDER/pattern}",
    }
