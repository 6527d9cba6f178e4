"""`greenloop data validate`: the funnel every pair passes before training sees it.

Stages, in order, each counted (what went in, what it removed):

1. `schema`: the row has the pair fields (`greenloop.data.pairs`) with the right types; a
   bad row is reported with its file:line and field, and dropped.
2. `syntax`: `fixed` parses; `buggy` fails to parse exactly when the family is `syntax`.
3. `diff`: the change is meaningful: the changed lines differ in code tokens or
   indentation (not only in comments or spacing), and the change is small (at most
   `max_changed_tokens` tokens), as Break-It-Fix-It requires of a repair.
4. `exact_dup`: the same buggy and fixed code (up to trailing whitespace and blank lines)
   was seen before.
5. `near_dup`: the same change (bug type and changed lines) to a near-identical function:
   functions are grouped by MinHash LSH (datasketch) over word 3-grams of their code
   (comments left out) at Jaccard
   `near_threshold`, so a copy of a function with other comments, names or a line more,
   mutated the same way, counts once. Different bugs in one function are not duplicates.
6. `tests`: pairs with a `task_id` are checked by the verifier where `--tasks` names their
   tasks (buggy must fail a test, fixed must pass); pairs `mutate` already verified pass
   as they are; pairs without tests pass untested (`verified` stays null).

Each kept pair's `meta.cluster` names its function's near-copy cluster, so `split` can
keep copies of one function (in other files) in one split.

Stages 1–3 run on a process pool; the duplicate stages keep one index across shards, so
shards are finished in order and the index is saved after each one: a killed run resumes
at the first unfinished shard with exactly the state it had.
"""

from __future__ import annotations

import os
import re
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from greenloop.data.pairs import PAIR_FIELDS, changed_lines, code_tokens, stable_hash, token_distance
from greenloop.data.shards import ShardedRun, input_shards, run_parallel
from greenloop.data.units import parse_quietly
from greenloop.io import DataError, read_jsonl

STAGES = ("schema", "syntax", "diff", "exact_dup", "near_dup", "tests")
_WORDS = re.compile(r"\w+|[^\w\s]")
_TYPES = {"bug_type": str, "family": str, "source": str, "path": str, "buggy": str, "fixed": str}


@dataclass(frozen=True)
class ValidateConfig:
    max_changed_tokens: int = 50
    near_threshold: float = 0.85
    num_perm: int = 64
    tasks: str | None = None  # task spec for pairs that carry a task_id and are not yet verified
    timeout_s: float = 3.0

    def __post_init__(self):
        if not 0 < self.near_threshold <= 1:
            raise ValueError(f"--near-threshold must be in (0, 1], got {self.near_threshold}")
        if self.max_changed_tokens < 1:
            raise ValueError(f"--max-changed-tokens must be >= 1, got {self.max_changed_tokens}")


def _parses(source: str) -> bool:
    try:
        parse_quietly(source)
        return True
    except (SyntaxError, ValueError):
        return False


def check_row(row: dict[str, Any], config: ValidateConfig, fixed_parses: dict[int, bool]) -> str | None:
    """The first of the syntax and diff stages the pair fails, or None."""
    fixed_key = stable_hash(row["fixed"])
    if fixed_key not in fixed_parses:
        fixed_parses[fixed_key] = _parses(row["fixed"])
    if not fixed_parses[fixed_key] or _parses(row["buggy"]) == (row["family"] == "syntax"):
        return "syntax"
    size, meaningful = token_distance(*changed_lines(row["buggy"], row["fixed"]))
    if not meaningful or size > config.max_changed_tokens:
        return "diff"
    return None


def _without_comments(source: str) -> str:
    """Comment lines and trailing comments dropped (a line with quotes keeps its `#`: it
    may be inside a string); only for the near-duplicate shingles, so it may be rough."""
    lines = []
    for line in source.splitlines():
        code = line if "'" in line or '"' in line else line.split("#", 1)[0]
        if code.strip():
            lines.append(code)
    return "\n".join(lines)


def normalized(source: str) -> str:
    """Code up to trailing whitespace and blank lines (the exact-duplicate key)."""
    return "\n".join(line.rstrip() for line in source.splitlines() if line.strip())


def _schema_error(record) -> str | None:
    for name, kind in _TYPES.items():
        if not isinstance(record.data.get(name), kind):
            return str(DataError(record.path, record.line, f"missing or not a {kind.__name__}", field=name))
    return None


@dataclass(frozen=True)
class _ShardJob:
    path: str
    config: ValidateConfig


def _screen_shard(job: _ShardJob) -> dict[str, Any]:
    """Stages 1–3 for one shard, plus what the duplicate stages need: each survivor's
    exact key and change key, and one MinHash per distinct fixed function."""
    from datasketch import MinHash

    removed = {stage: 0 for stage in STAGES[:3]}
    errors, survivors, minhashes, fixed_parses = [], [], {}, {}
    for record in read_jsonl(job.path, on_error=lambda e: (errors.append(str(e)), removed.__setitem__("schema", removed["schema"] + 1))):
        error = _schema_error(record)
        if error:
            removed["schema"] += 1
            errors.append(error)
            continue
        row = {name: record.data.get(name) for name in PAIR_FIELDS}
        failed = check_row(row, job.config, fixed_parses)
        if failed:
            removed[failed] += 1
            continue
        fixed_text = normalized(row["fixed"])
        exact = stable_hash(normalized(row["buggy"]) + "\0" + fixed_text)
        fixed_key = stable_hash(fixed_text)
        old, new = changed_lines(row["buggy"], row["fixed"])
        change = stable_hash(row["bug_type"] + "\0" + " ".join(code_tokens("\n".join(old))) + "\0"
                         + " ".join(code_tokens("\n".join(new))))
        if fixed_key not in minhashes:
            words = _WORDS.findall(_without_comments(fixed_text))
            shingles = {" ".join(words[i:i + 3]).encode() for i in range(max(1, len(words) - 2))}
            mh = MinHash(num_perm=job.config.num_perm, seed=1)
            mh.update_batch(sorted(shingles))
            minhashes[fixed_key] = (mh.hashvalues, mh.scheme)
        survivors.append((row, exact, fixed_key, change))
    return {"path": job.path, "removed": removed, "errors": errors, "survivors": survivors, "minhashes": minhashes}


class Deduplicator:
    """The exact and near-duplicate index across shards; picklable, so a resumed run
    continues with the state the last finished shard left."""

    def __init__(self, config: ValidateConfig):
        from datasketch import MinHashLSH

        self.lsh = MinHashLSH(threshold=config.near_threshold, num_perm=config.num_perm)
        self.num_perm = config.num_perm
        self.exact: set[int] = set()
        self.changes: set[tuple[int, int]] = set()
        self.cluster: dict[int, int] = {}  # fixed function -> the representative it is a near-copy of

    def cluster_of(self, fixed_key: int, hashvalues) -> int:
        if fixed_key not in self.cluster:
            from datasketch import MinHash

            values, scheme = hashvalues
            mh = MinHash(num_perm=self.num_perm, seed=1, hashvalues=values, scheme=scheme)
            near = self.lsh.query(mh)
            if near:
                self.cluster[fixed_key] = min(self.cluster[int(k)] for k in near)
            else:
                self.lsh.insert(str(fixed_key), mh)
                self.cluster[fixed_key] = fixed_key
        return self.cluster[fixed_key]

    def verdict(self, exact: int, fixed_key: int, change: int, hashvalues) -> str | None:
        """`exact_dup`, `near_dup` or None (new); remembers the pair."""
        if exact in self.exact:
            return "exact_dup"
        self.exact.add(exact)
        key = (self.cluster_of(fixed_key, hashvalues), change)
        if key in self.changes:
            return "near_dup"
        self.changes.add(key)
        return None


class _TestStage:
    """The verifier, opened when the first pair that needs it arrives."""

    def __init__(self, config: ValidateConfig, workers: int):
        self.config, self.workers = config, workers
        self.task_set, self.verifier = None, None

    def run(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        need = [r for r in rows if r.get("task_id") and r.get("verified") is None]
        if not need or not self.config.tasks:
            return rows, 0
        if self.verifier is None:
            from greenloop.tasks import load_tasks
            from greenloop.verify.funnel import Verifier, VerifyConfig

            self.task_set = load_tasks(self.config.tasks)
            self.verifier = Verifier(self.task_set, VerifyConfig(workers=self.workers, timeout_s=self.config.timeout_s))
        from greenloop.types import Candidate

        checkable = [r for r in need if r["task_id"] in self.task_set.tasks]
        candidates = [Candidate(r["task_id"], side) for r in checkable for side in (r["buggy"], r["fixed"])]
        verdicts = [None] * len(candidates)
        for index, verdict in self.verifier.verify(candidates):
            verdicts[index] = verdict
        failed = set()
        for i, row in enumerate(checkable):
            buggy, fixed = verdicts[2 * i], verdicts[2 * i + 1]
            if fixed.passed and buggy.reward == 0.0:
                row["verified"] = True
                row["meta"] = {**(row.get("meta") or {}), "outcome": buggy.outcome.value, "detail": buggy.detail}
            else:
                failed.add(id(row))
        return [r for r in rows if id(r) not in failed], len(failed)

    def close(self):
        if self.verifier is not None:
            self.verifier.close()


def run_validate(source: str, out: str, config: ValidateConfig, workers: int, force: bool = False) -> dict[str, Any]:
    shards = input_shards(source)
    run = ShardedRun(out, "validate", {**asdict(config), "input": os.path.abspath(source)}, force=force)
    state_path = Path(out) / "dedup-state.pkl"
    names = [Path(p).name[: -len(".jsonl.gz")] for p in shards]
    done, dedup = _resume_point(run, names, state_path, config)
    tests = _TestStage(config, workers)
    todo = [_ShardJob(str(p), config) for p, n in zip(shards, names) if n not in done]
    try:
        for screened in run_parallel(_screen_shard, todo, workers, desc="validate", ordered=True):
            name = Path(screened["path"]).name[: -len(".jsonl.gz")]
            removed = dict(screened["removed"], exact_dup=0, near_dup=0)
            kept = []
            for row, exact, fixed_key, change in screened["survivors"]:
                duplicate = dedup.verdict(exact, fixed_key, change, screened["minhashes"][fixed_key])
                if duplicate:
                    removed[duplicate] += 1
                else:  # the near-copy family of its function, so split keeps copies together
                    row["meta"] = {**(row.get("meta") or {}), "cluster": format(dedup.cluster[fixed_key], "016x")}
                    kept.append(row)
            kept, removed["tests"] = tests.run(kept)
            run.write_shard(name, kept, {"input": screened["path"], "removed": removed, "errors": screened["errors"][:100],
                                         "rows_in": len(screened["survivors"]) + sum(screened["removed"].values())})
            _save_state(state_path, name, dedup)
    finally:
        tests.close()
    return run.finish(_funnel_summary([run.report(n) for n in names]))


def _resume_point(run: ShardedRun, names: list[str], state_path: Path, config: ValidateConfig
                  ) -> tuple[list[str], Deduplicator]:
    """The finished shards a rerun may skip, and the index as it was after the last of
    them. Shards finish in order, so that is the longest finished prefix; if the saved
    index is not from its end (a kill between a shard and its index), start over."""
    prefix = 0
    while prefix < len(names) and run.done(names[prefix]):
        prefix += 1
    if prefix and state_path.exists():
        saved_after, dedup = pickle.loads(state_path.read_bytes())
        if saved_after == names[prefix - 1]:
            return names[:prefix], dedup
    return [], Deduplicator(config)


def _save_state(path: Path, shard: str, dedup: Deduplicator) -> None:
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_bytes(pickle.dumps((shard, dedup), protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)


def _funnel_summary(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stage: pairs that entered it and pairs it removed."""
    total_in = sum(r["rows_in"] for r in reports)
    funnel, remaining = [], total_in
    for stage in STAGES:
        removed = sum(r["removed"].get(stage, 0) for r in reports)
        funnel.append({"stage": stage, "entered": remaining, "removed": removed})
        remaining -= removed
    errors = [e for r in reports for e in r["errors"]]
    return {"pairs_in": total_in, "pairs_out": sum(r["rows"] for r in reports), "funnel": funnel,
            "shards": len(reports), "schema_errors": errors[:100]}
