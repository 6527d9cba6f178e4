"""`greenloop data mutate`: plant bugs with the mutation operators, one pair per mutant.

Code sources (`stdlib`, `dir:PATH`) are cut into function-level units and sharded by
file; shards run on a process pool. For every unit and operator, up to `per_operator`
mutants are drawn at random (seeded by the run's seed, the file, the unit and the
operator, so a shard's output never depends on which process ran it or whether the run
was resumed) from all the sites the operator finds, and kept when they have the family's
property (syntax mutants fail to parse; all others parse).

Task sources (`humaneval`, `mbpp:PATH`, `jsonl:PATH`; `greenloop.data.verified`) mutate
each task's reference solution (below its prompt, which stays as given) and run every
non-syntax mutant and the reference through the verifier: such a pair is kept only when
the reference passes and the mutant fails at least one test (`verified: true`); the
mutant's verdict is in `meta`. Syntax mutants cannot run; their check is the parser (`meta.check: "parser"`,
`verified` null), and they are kept where the reference passes.
A mutant's time limit is 20 times its reference's CPU time (at least 0.1 s, at most
`--timeout`), so mutants that loop forever cost little; one that runs out of time while
the reference passes is a verified bug (outcome `timeout`: slower than the reference by
that much, or never ending). Over HumanEval and MBPP, the slowest mutant that passed
took 16 ms in the sandbox, so 0.1 s leaves a wide margin for a loaded machine. Task
sources run `--workers` + 1 sandbox workers: this process makes and judges the mutants
between runs, and the extra worker keeps the cores busy meanwhile.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from greenloop.data import mutation_operators
from greenloop.data.operators.base import MutationOperator, Positions, apply_edits
from greenloop.data.pairs import make_pair, stable_hash
from greenloop.data.shards import ShardedRun, run_parallel, shard_names
from greenloop.data.units import (
    MAX_FILE_BYTES,
    CodeUnit,
    SkipFile,
    file_units,
    files_fingerprint,
    fingerprint,
    read_source,
    source_files,
)

TASK_FAMILIES = ("humaneval", "mbpp", "jsonl")
# a mutant's time limit: 20x its reference's CPU time in the sandbox, within [0.1 s, --timeout]
TIMEOUT_FACTOR, MIN_TIMEOUT_S = 20.0, 0.1


@dataclass(frozen=True)
class MutateConfig:
    source: str
    operators: tuple[str, ...] = ()  # empty: every registered operator
    per_operator: int = 2  # mutants per operator per unit
    seed: int = 0
    files_per_shard: int = 50  # code sources; task sources shard by `tasks_per_shard`
    tasks_per_shard: int = 40
    max_unit_lines: int = 200
    max_file_bytes: int = MAX_FILE_BYTES
    limit_files: int | None = None  # the first N files only (quick runs)
    timeout_s: float = 3.0  # per verified candidate (task sources); more for a slower reference (see below)

    def __post_init__(self):
        if self.per_operator < 1:
            raise ValueError(f"--per-operator must be >= 1, got {self.per_operator}")
        if self.files_per_shard < 1 or self.tasks_per_shard < 1:
            raise ValueError("shard sizes must be >= 1")
        for name in self.operators:
            mutation_operators.get(name)  # unknown names fail now, with suggestions

    @property
    def is_task_source(self) -> bool:
        return self.source.split(":", 1)[0].split("@", 1)[0] in TASK_FAMILIES

    def load_operators(self) -> list[MutationOperator]:
        return [mutation_operators.get(name)() for name in (self.operators or mutation_operators.names())]


def unit_mutants(unit: CodeUnit, operators: list[MutationOperator], per_operator: int, seed: int
                 ) -> Iterator[tuple[MutationOperator, str, int | None]]:
    """(operator, buggy source, line where the bug shows or None) for up to `per_operator`
    kept mutants of each operator."""
    pos = Positions(unit.source)
    for op in operators:
        mutations = list(dict.fromkeys(op.mutations(unit, pos)))
        random.Random(stable_hash(seed, unit.path, unit.name, op.name)).shuffle(mutations)
        kept = 0
        for mutation in mutations:
            buggy = apply_edits(unit.source, mutation)
            if buggy == unit.source:
                continue
            kept_it, symptom = op.check(buggy)
            if not kept_it:
                continue
            yield op, buggy, symptom
            kept += 1
            if kept == per_operator:
                break


def pairs_of_unit(unit: CodeUnit, operators: list[MutationOperator], config: MutateConfig, source_label: str,
                  task_id: str | None = None) -> Iterator[dict[str, Any]]:
    """The unit's pairs, made one at a time (a caller that runs each mutant as it comes
    never waits for all of a unit's operators)."""
    for op, buggy, symptom in unit_mutants(unit, operators, config.per_operator, config.seed):
        yield make_pair(bug_type=op.name, family=op.family, source=source_label, path=unit.path,
                        unit=unit.name, buggy=buggy, fixed=unit.source, symptom_line=symptom,
                        task_id=task_id, meta={"first_line": unit.first_line})


# ---- code sources -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _CodeShard:
    run: ShardedRun
    name: str
    label: str
    files: tuple
    config: MutateConfig


def _mutate_code_shard(shard: _CodeShard) -> dict[str, Any]:
    operators = shard.config.load_operators()
    rows, skipped, units = [], [], 0
    for file in shard.files:
        try:
            text = read_source(file, shard.config.max_file_bytes)
            file_unit_list = file_units(file.path, text, shard.config.max_unit_lines)
        except SkipFile as exc:
            skipped.append({"path": file.full_path, "reason": str(exc)})
            continue
        units += len(file_unit_list)
        for unit in file_unit_list:
            rows.extend(pairs_of_unit(unit, operators, shard.config, shard.label))
    return shard.run.write_shard(shard.name, rows, {"files": len(shard.files), "units": units, "skipped": skipped,
                                                     "by_bug_type": count_by(rows, "bug_type")})


def count_by(rows: list[dict[str, Any]], field: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[field]] = counts.get(row[field], 0) + 1
    return dict(sorted(counts.items()))


def mutate_code(run: ShardedRun, config: MutateConfig, workers: int, label: str, files: list) -> list[dict[str, Any]]:
    chunks = [tuple(files[i:i + config.files_per_shard]) for i in range(0, len(files), config.files_per_shard)]
    shards = [_CodeShard(run, name, label, chunk, config)
              for name, chunk in zip(shard_names("pairs", len(chunks)), chunks)]
    todo = [s for s in shards if not run.done(s.name)]
    list(run_parallel(_mutate_code_shard, todo, workers, desc="mutate"))
    return [run.report(s.name) for s in shards]


# ---- task sources -------------------------------------------------------------------------------

def load_task_source(config: MutateConfig):
    from greenloop.tasks import load_tasks

    task_set = load_tasks(config.source)
    tasks = [t for t in task_set.tasks.values() if t.reference]
    return task_set, tasks[: config.limit_files] if config.limit_files else tasks


def run_mutate(config: MutateConfig, out: str, workers: int, force: bool = False) -> dict[str, Any]:
    """The whole command: shards (resumed where finished), then the manifest."""
    if config.is_task_source:
        inputs = load_task_source(config)
        stamp = fingerprint(f"{t.task_id}\0{t.reference}" for t in inputs[1])
    else:
        label, files = source_files(config.source)
        inputs = (label, files[: config.limit_files] if config.limit_files else files)
        stamp = files_fingerprint(inputs[1])
    run = ShardedRun(out, "mutate", {**asdict(config), "inputs": stamp}, force=force)
    if config.is_task_source:
        from greenloop.data.verified import mutate_tasks
        reports = mutate_tasks(run, config, workers, *inputs)
    else:
        reports = mutate_code(run, config, workers, *inputs)
    by_type: dict[str, int] = {}
    rejected: dict[str, int] = {}
    for report in reports:
        for key, value in report.get("by_bug_type", {}).items():
            by_type[key] = by_type.get(key, 0) + value
        for key, value in report.get("rejected", {}).items():
            rejected[key] = rejected.get(key, 0) + value
    families = {}
    for name, count in by_type.items():
        family = mutation_operators.get(name).family
        families[family] = families.get(family, 0) + count
    summary = {"source": config.source, "shards": len(reports), "pairs": sum(r["rows"] for r in reports),
               "units": sum(r.get("units", 0) for r in reports), "by_family": dict(sorted(families.items())),
               "by_bug_type": dict(sorted(by_type.items())), "skipped": [s for r in reports for s in r["skipped"]]}
    if config.is_task_source:
        summary["verified"] = {key: sum(r[key] for r in reports)
                               for key in ("tasks", "mutants", "test_verified", "parser_checked")}
        summary["verified"]["rejected"] = rejected
    return run.finish(summary)
