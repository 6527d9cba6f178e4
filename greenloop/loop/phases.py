"""The three phases of a cycle, each resumable: day, sleep, eval.

- day: the policy works on a seeded draw of training tasks (k sampled answers per task,
  or one agent episode per task); every answer is verified and stored as an episode the
  moment it is judged. A resumed day skips the (task, sample) keys the store holds. With
  `curriculum` on, the draw is weighted by `AdaptiveCurriculum` instead of uniform: each
  finished day adds one attempt per task it worked (solved: any verified answer passed;
  no attempt when every answer was an INFRA_ERROR). `curriculum.json` holds its state,
  the day last folded in (`meta.through_cycle`) and each day's draw (`meta.draws`), saved
  before the day starts, so a resumed day works the same tasks.
- sleep: curates the day's verified answers into (prompt, completion) examples, mixes in
  earlier cycles' examples (the replay buffer against forgetting), and fine-tunes the
  current checkpoint into `checkpoints/cycle-N`. A finished checkpoint is not retrained.
- eval: the frozen set, never trained on, answered greedily once per task (or by one agent
  episode), stored as phase "eval" under the checkpoint's name.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace

from greenloop.agent import AgentConfig, Workspace, run_agent
from greenloop.data.shards import write_json
from greenloop.evaluate.cycle_metrics import TaskResult
from greenloop.io import read_jsonl, write_jsonl
from greenloop.loop.context import LoopContext
from greenloop.loop.curriculum import AdaptiveCurriculum
from greenloop.store.records import EpisodeMode, EpisodeRecord, StepRecord
from greenloop.types import Candidate, Outcome, Task

CHUNK = 16  # tasks per policy call
CURRICULUM_FILE = "curriculum.json"


def task_group(task: Task) -> str:
    """The family a task's pass rate is reported under (and gated on)."""
    meta = task.meta
    return str(meta.get("koan_family") or (f"{task.family}:{meta['bug_family']}" if "bug_family" in meta else task.family))


def day_tasks(ctx: LoopContext, cycle: int) -> list[Task]:
    tasks = sorted(ctx.train.tasks.values(), key=lambda t: t.task_id)
    limit = ctx.config.train_per_day
    if ctx.config.curriculum:
        return _curriculum_draw(ctx, cycle, tasks)
    if limit is None or limit >= len(tasks):
        return tasks
    return sorted(random.Random(f"{ctx.config.seed}:day:{cycle}").sample(tasks, limit), key=lambda t: t.task_id)


def _curriculum(ctx: LoopContext) -> AdaptiveCurriculum:
    path = ctx.folder / CURRICULUM_FILE
    return AdaptiveCurriculum.load(path) if path.exists() else AdaptiveCurriculum(seed=ctx.config.seed)


def _day_outcomes(ctx: LoopContext, cycle: int) -> dict[str, list[bool | None]]:
    """Every answer the day verified is one attempt at its task (k samples give k
    attempts, so one day already places a task above, inside or below the band); an
    answer the verifier could not judge (INFRA_ERROR) is None and not counted."""
    verdicts: dict[str, list[bool | None]] = {}
    for episode in ctx.store.episodes(run_id=ctx.run_id, cycle=cycle, phase="day"):
        judged = None if episode.outcome is Outcome.INFRA_ERROR else episode.passed
        verdicts.setdefault(episode.task_id, []).append(judged)
    return verdicts


def _fold_days(ctx: LoopContext, curriculum: AdaptiveCurriculum, through: int) -> None:
    """Add the outcomes of the finished days up to `through` not yet in the curriculum, and save it."""
    folded = curriculum.meta.get("through_cycle", 0)
    for cycle in range(folded + 1, through + 1):
        curriculum.update_many(_day_outcomes(ctx, cycle))
        curriculum.meta["through_cycle"] = cycle
    if through > folded:
        curriculum.save(ctx.folder / CURRICULUM_FILE)


def _curriculum_draw(ctx: LoopContext, cycle: int, tasks: list[Task]) -> list[Task]:
    """The day's tasks drawn by the curriculum, once: a resumed day reads its draw back."""
    curriculum = _curriculum(ctx)
    _fold_days(ctx, curriculum, cycle - 1)
    draws = curriculum.meta.setdefault("draws", {})
    if str(cycle) not in draws:
        limit = len(tasks) if ctx.config.train_per_day is None else ctx.config.train_per_day
        draws[str(cycle)] = sorted(curriculum.sample([t.task_id for t in tasks], limit))
        curriculum.save(ctx.folder / CURRICULUM_FILE)
    drawn = set(draws[str(cycle)])
    return [t for t in tasks if t.task_id in drawn]


def _sampled_episodes(ctx: LoopContext, tasks: list[Task], cycle: int, phase: str, checkpoint: str,
                      n: int, temperature: float) -> None:
    """k answers per task from the policy, verified and stored one episode each."""
    policy = ctx.policy(checkpoint)
    done = ctx.store.done_keys(ctx.run_id, cycle, phase)  # a task cut off halfway keeps what it stored
    for start in range(0, len(tasks), CHUNK):
        chunk = tasks[start:start + CHUNK]
        started = time.perf_counter()
        out = policy.generate_with_usage([ctx.prompt(t) for t in chunk], n=n, temperature=temperature,
                                         max_tokens=ctx.config.max_tokens, seed=ctx.config.seed + cycle)
        candidates = [Candidate(t.task_id, ctx.program_of(t, text), f"model:{checkpoint}", i)
                      for t, texts in zip(chunk, out.texts) for i, text in enumerate(texts)
                      if (t.task_id, i) not in done]
        answers = {(t.task_id, i): text for t, texts in zip(chunk, out.texts) for i, text in enumerate(texts)}
        verdicts = dict(ctx.verifier.verify(candidates))
        seconds = (time.perf_counter() - started) / max(1, len(candidates))
        position = {t.task_id: i for i, t in enumerate(chunk)}
        for index, candidate in enumerate(candidates):
            task_index = position[candidate.task_id]
            verdict = verdicts[index]
            ctx.store.add_episode(EpisodeRecord(
                run_id=ctx.run_id, cycle=cycle, phase=phase, task_id=candidate.task_id, outcome=verdict.outcome,
                policy=checkpoint, mode=EpisodeMode.SAMPLE, sample_idx=candidate.sample_idx,
                task_family=task_group(chunk[task_index]), steps_to_green=1 if verdict.passed else None,
                error_signature=verdict.error_signature, first_error_signature=verdict.error_signature,
                completion=answers[(candidate.task_id, candidate.sample_idx)], tokens_in=out.prompt_tokens[task_index],
                tokens_out=round(out.completion_tokens[task_index] / n), seconds=seconds,
                meta={"stage": verdict.stage, "tests_passed": verdict.tests_passed, "tests_total": verdict.tests_total,
                      "program": candidate.completion}))  # what was judged: the answer with its edit applied, or extracted
        ctx.progress(f"{phase} {cycle}", min(start + CHUNK, len(tasks)), len(tasks))


def _agent_episodes(ctx: LoopContext, tasks: list[Task], cycle: int, phase: str, checkpoint: str,
                    temperature: float) -> None:
    policy = ctx.policy(checkpoint)
    config = AgentConfig(max_steps=ctx.config.max_steps, temperature=temperature, max_tokens=ctx.config.max_tokens)
    for number, task in enumerate(tasks, 1):
        started = time.perf_counter()
        result = run_agent(policy, Workspace(task, ctx.verifier), config)
        steps = tuple(StepRecord(s.command, s.model_text, s.diff, s.observation, _step_outcome(s.outcome),
                                 s.error_signature, s.tokens_in, s.tokens_out, s.seconds) for s in result.steps)
        signatures = result.error_signatures
        ctx.store.add_episode(EpisodeRecord(
            run_id=ctx.run_id, cycle=cycle, phase=phase, task_id=task.task_id,
            outcome=Outcome.PASSED if result.passed else Outcome.FAILED, policy=checkpoint, mode=EpisodeMode.AGENT,
            task_family=task_group(task), steps_to_green=result.steps_to_green,
            error_signature="" if result.passed else (signatures[-1] if signatures else "agent:no_progress"),
            first_error_signature=signatures[0] if signatures else "", completion=result.final_text,
            tokens_in=sum(s.tokens_in for s in steps), tokens_out=sum(s.tokens_out for s in steps),
            seconds=time.perf_counter() - started, steps=steps))
        ctx.progress(f"{phase} {cycle}", number, len(tasks))


def _step_outcome(text: str) -> Outcome | None:
    try:
        return Outcome(text)
    except ValueError:
        return None  # "ok"/"error" of a patch or a check: no verdict


def _pending(ctx: LoopContext, tasks: list[Task], cycle: int, phase: str, n: int) -> list[Task]:
    done = ctx.store.done_keys(ctx.run_id, cycle, phase)
    return [t for t in tasks if any((t.task_id, i) not in done for i in range(n))]


def run_day(ctx: LoopContext, cycle: int, checkpoint: str) -> dict:
    n = ctx.config.k if ctx.config.mode == "sample" else 1
    tasks = day_tasks(ctx, cycle)
    todo = _pending(ctx, tasks, cycle, "day", n)
    if ctx.config.mode == "sample":
        _sampled_episodes(ctx, todo, cycle, "day", checkpoint, n, ctx.config.temperature)
    else:
        _agent_episodes(ctx, todo, cycle, "day", checkpoint, ctx.config.temperature)
    episodes = ctx.store.episodes(run_id=ctx.run_id, cycle=cycle, phase="day")
    solved = {e.task_id for e in episodes if e.passed}
    report = {"tasks": len(tasks), "resumed": len(tasks) - len(todo), "episodes": len(episodes),
              "episodes_passed": sum(e.passed for e in episodes), "tasks_solved": len(solved)}
    if ctx.config.curriculum:
        curriculum = _curriculum(ctx)
        _fold_days(ctx, curriculum, cycle)
        report["curriculum"] = curriculum.status(ctx.train.tasks)  # training tasks by standing, after today
    return report


def run_eval(ctx: LoopContext, cycle: int, checkpoint: str) -> dict[str, TaskResult]:
    tasks = ctx.frozen_list
    todo = _pending(ctx, tasks, cycle, "eval", 1)
    if ctx.config.mode == "sample":
        _sampled_episodes(ctx, todo, cycle, "eval", checkpoint, 1, 0.0)
    else:
        _agent_episodes(ctx, todo, cycle, "eval", checkpoint, 0.0)
    return eval_results(ctx, cycle)


def eval_results(ctx: LoopContext, cycle: int) -> dict[str, TaskResult]:
    """The frozen-set answers stored for a cycle, by task; unjudged (INFRA_ERROR) ones left out."""
    frozen = {t.task_id: t for t in ctx.frozen_list}
    return {e.task_id: TaskResult(e.task_id, task_group(frozen[e.task_id]), e.passed, e.steps_to_green,
                                  e.error_signature)
            for e in ctx.store.episodes(run_id=ctx.run_id, cycle=cycle, phase="eval")
            if e.task_id in frozen and e.outcome is not Outcome.INFRA_ERROR}  # the verifier's failure, not the model's


def curate(ctx: LoopContext, cycle: int) -> list[dict]:
    """This cycle's new examples: up to `per_task_examples` distinct passing answers per
    task. Tasks solved only after failures (some answers failed, or the agent erred first)
    are marked `after_failure`: practice on the model's own mistakes."""
    by_task: dict[str, list[EpisodeRecord]] = {}
    for episode in ctx.store.episodes(run_id=ctx.run_id, cycle=cycle, phase="day"):
        by_task.setdefault(episode.task_id, []).append(episode)
    examples = []
    for task_id, episodes in sorted(by_task.items()):
        task = ctx.train.tasks.get(task_id)
        passing = sorted({e.completion if e.mode is EpisodeMode.AGENT else e.meta["program"]
                          for e in episodes if e.passed})  # an agent episode stores the final file itself
        after_failure = any(not e.passed for e in episodes) or any(e.first_error_signature for e in episodes if e.passed)
        for program in passing[:ctx.config.per_task_examples]:
            examples.append({"task_id": task_id, "cycle": cycle, "prompt": ctx.prompt(task),
                             "completion": ctx.training_completion(task, program), "after_failure": after_failure})
    return examples


def run_sleep(ctx: LoopContext, cycle: int, checkpoint: str) -> dict:
    """Curate, mix in replay, fine-tune `checkpoint` into checkpoints/cycle-N."""
    from greenloop.train.finetune import finetune

    target = ctx.checkpoint_dir(cycle)
    report_path = ctx.folder / "sleep" / f"cycle-{cycle}.report.json"
    if report_path.exists():  # written after the checkpoint, atomically: the sleep is done
        return json.loads(report_path.read_text())
    new = curate(ctx, cycle)
    write_jsonl(ctx.folder / "sleep" / f"cycle-{cycle}.jsonl", new)
    if not new:  # nothing verified today: training on replay alone would only repeat an earlier sleep
        report = {"new_examples": 0, "after_failure": 0, "replay_examples": 0,
                  "skipped": "the day verified no answer to learn from"}
    else:
        replay = _replay(ctx, cycle, int(len(new) * ctx.config.replay_ratio))
        examples = [(e["prompt"], e["completion"]) for e in new + replay]
        settings = replace(ctx.config.sleep, chat=ctx.style == "instruct")  # train as the policy will be asked
        summary = finetune(ctx.model_path(checkpoint), examples, target, settings,
                           progress=ctx.show_progress, desc=f"sleep {cycle}")
        report = {"new_examples": len(new), "after_failure": sum(e["after_failure"] for e in new),
                  "replay_examples": len(replay), **summary}
    write_json(report_path, report)
    return report


def _replay(ctx: LoopContext, cycle: int, count: int) -> list[dict]:
    earlier = [r.data for c in range(1, cycle) if (ctx.folder / "sleep" / f"cycle-{c}.jsonl").exists()
               for r in read_jsonl(ctx.folder / "sleep" / f"cycle-{c}.jsonl")]
    if count <= 0 or not earlier:
        return []
    return random.Random(f"{ctx.config.seed}:replay:{cycle}").sample(earlier, min(count, len(earlier)))
