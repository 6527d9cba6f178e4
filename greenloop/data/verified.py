"""Test-verified pairs from task sources (`humaneval`, `mbpp:PATH`, `jsonl:PATH`).

Each task's reference is mutated below its prompt; the reference and every non-syntax
mutant run through the verifier, and a pair is kept only when the reference passes and
the mutant fails at least one test. Syntax mutants are checked by the parser instead.

The mutants are made task by task while earlier ones run: the verifier takes the next
candidate only when a sandbox worker is free (`Verifier.verify_stream`), so making them
and running them overlap, and no worker waits at the end of a shard for the slowest
candidate of the shard before. A shard's rows are written as soon as its last verdict is
in, so a killed run resumes from the shards already written.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator

from greenloop.data.mutate import (
    MIN_TIMEOUT_S,
    TIMEOUT_FACTOR,
    MutateConfig,
    count_by,
    pairs_of_unit,
)
from greenloop.data.shards import ShardedRun, shard_names
from greenloop.data.units import CodeUnit, SkipFile
from greenloop.types import Candidate, Verdict


def mutate_tasks(run: ShardedRun, config: MutateConfig, workers: int, task_set, tasks) -> list[dict[str, Any]]:
    """Mutants of each task's reference, kept only when the verifier proves them wrong."""
    from tqdm import tqdm

    from greenloop.verify.funnel import Verifier, VerifyConfig

    chunks = [tasks[i:i + config.tasks_per_shard] for i in range(0, len(tasks), config.tasks_per_shard)]
    names = shard_names("pairs", len(chunks))
    shards = [_TaskShard(name, chunk, config) for name, chunk in zip(names, chunks) if not run.done(name)]
    if shards:
        # One sandbox worker more than `workers`: this process makes and judges mutants
        # between runs (about a third of a core), and a worker waiting on it would leave
        # a core idle (MBPP: 50 s with 2 workers on 2 cores, 42 s with 3).
        verify_config = VerifyConfig(workers=workers + 1, timeout_s=config.timeout_s, timeout_factor=TIMEOUT_FACTOR,
                                     min_timeout_s=MIN_TIMEOUT_S)
        progress = tqdm(total=len(shards), desc="mutate+verify", unit="shard", disable=not sys.stderr.isatty())
        with Verifier(task_set, verify_config) as verifier, progress:
            # every reference is timed first (mutants' time limits scale with it)
            verifier.plan_for([Candidate(t.task_id, "") for shard in shards for t in shard.tasks])
            owners: list[tuple[_TaskShard, int]] = []  # candidate index -> (shard, position in it)

            def finish(shard: _TaskShard) -> None:
                if shard.complete and not shard.written:
                    run.write_shard(shard.name, *shard.result())
                    shard.written = True
                    progress.update(1)

            def stream() -> Iterator[Candidate]:
                for shard in shards:
                    for candidate in shard.candidates():
                        owners.append((shard, len(shard.verdicts) - 1))
                        yield candidate
                    finish(shard)  # all its verdicts may already be in

            for index, verdict in verifier.verify_stream(stream()):
                shard, position = owners[index]
                shard.record(position, verdict)
                finish(shard)
    return [run.report(name) for name in names]


def _task_unit(task) -> CodeUnit:
    from greenloop.data.units import unit_from_program

    prompt_lines = task.prompt.count("\n") + (0 if task.prompt.endswith("\n") else 1)
    editable_from = prompt_lines + 1 if task.prompt_is_code and task.reference.startswith(task.prompt) else 1
    return unit_from_program(task.task_id, task.entry_point, task.reference, editable_from)


class _TaskShard:
    """One shard of tasks on its way through the verifier: its candidates (each task's
    reference, then its mutants), the verdicts as they come back, and its rows."""

    def __init__(self, name: str, tasks: list, config: MutateConfig):
        self.name, self.tasks, self.config = name, tasks, config
        self.pairs: list[dict[str, Any] | None] = []  # None: the task's reference
        self.task_ids: list[str] = []
        self.verdicts: list[Verdict | None] = []
        self.skipped: list[dict[str, str]] = []
        self.parser_checked: list[dict[str, Any]] = []
        self.waiting = 0
        self.made = self.written = False

    def candidates(self) -> Iterator[Candidate]:
        operators = self.config.load_operators()
        label = self.config.source.split(":", 1)[0].split("@", 1)[0]
        for task in self.tasks:
            try:
                unit = _task_unit(task)
            except SkipFile as exc:
                self.skipped.append({"path": task.task_id, "reason": f"reference {exc}"})
                continue
            yield self._add(Candidate(task.task_id, unit.source, source="reference"), None)
            for pair in pairs_of_unit(unit, operators, self.config, label, task_id=task.task_id):
                if pair["family"] == "syntax":  # the parser is its check; the sandbox would never run it
                    pair["meta"]["check"] = "parser"
                    self.parser_checked.append(pair)
                    continue
                yield self._add(Candidate(task.task_id, pair["buggy"], source=f"mutation:{pair['bug_type']}"), pair)
        self.made = True

    def _add(self, candidate: Candidate, pair: dict[str, Any] | None) -> Candidate:
        self.pairs.append(pair)
        self.task_ids.append(candidate.task_id)
        self.verdicts.append(None)
        self.waiting += 1
        return candidate

    def record(self, position: int, verdict: Verdict) -> None:
        self.verdicts[position] = verdict
        self.waiting -= 1

    @property
    def complete(self) -> bool:
        return self.made and self.waiting == 0

    def result(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The shard's rows (verified pairs, then parser-checked ones) and its report."""
        reference_ok = {task_id: verdict.passed for task_id, verdict, pair in
                        zip(self.task_ids, self.verdicts, self.pairs) if pair is None}
        rows, rejected = [], {"reference_failed": 0, "mutant_passed": 0, "infra_error": 0}
        for pair, verdict in zip(self.pairs, self.verdicts):
            if pair is None:
                continue
            if not reference_ok.get(pair["task_id"]):
                rejected["reference_failed"] += 1
            elif verdict.reward is None:
                rejected["infra_error"] += 1
            elif verdict.passed:
                rejected["mutant_passed"] += 1  # an equivalent mutant: not a bug, not a pair
            else:
                pair["verified"] = True
                pair["meta"].update({"outcome": verdict.outcome.value, "stage": verdict.stage,
                                     "detail": verdict.detail, "tests_passed": verdict.tests_passed,
                                     "tests_total": verdict.tests_total})
                rows.append(pair)
        verified = len(rows)
        for pair in self.parser_checked:  # kept where the fixed side (the reference) passes its tests
            if reference_ok.get(pair["task_id"]):
                rows.append(pair)
            else:
                rejected["reference_failed"] += 1
        failed_refs = sorted(t for t, ok in reference_ok.items() if not ok)
        report = {"tasks": len(self.tasks), "units": len(reference_ok), "mutants": len(self.pairs) - len(reference_ok),
                  "test_verified": verified, "parser_checked": len(rows) - verified,
                  "rejected": rejected, "by_bug_type": count_by(rows, "bug_type"),
                  "skipped": self.skipped + [{"path": t, "reason": "reference fails its own tests"}
                                             for t in failed_refs]}
        return rows, report
