"""A scripted policy for loop tests: for the tasks a checkpoint "knows" it answers the
reference program, for the others the broken program back. Everything else in the loop
(verifier, store, training, gates) is real."""

from __future__ import annotations

import time

from greenloop.policy import Generation
from greenloop.tasks import load_tasks
from greenloop.text.edit_format import edit_of, edit_prompt, number_lines


class Oracle:
    name = "oracle"

    def __init__(self, knows: set[str], task_specs: str, delay_s: float = 0.0, style: str = "edit"):
        tasks = load_tasks(task_specs).tasks.values()
        shown = {"edit": edit_prompt, "agent": number_lines}.get(style, lambda text: text)
        self.by_prompt = {shown(t.meta.get("broken", t.prompt)): t for t in tasks}
        self.knows, self.delay_s, self.style = knows, delay_s, style

    def answer(self, prompt: str) -> str:
        task = self.by_prompt[prompt]
        broken = task.meta.get("broken", task.prompt)
        if self.style == "edit":  # unknown tasks get an edit that changes nothing useful
            return edit_of(broken, task.reference) if task.task_id in self.knows else "@@ 1,1\n" + broken.splitlines()[0]
        return task.reference if task.task_id in self.knows else prompt

    def generate_with_usage(self, prompts, n=1, temperature=0.0, max_tokens=256, **options):
        time.sleep(self.delay_s * len(prompts))
        texts = [[self.answer(p)] * n for p in prompts]
        return Generation(texts, [["stop"] * n for _ in prompts], [len(p) for p in prompts],
                          [sum(len(t) for t in ts) for ts in texts])


def factory(schedule: dict[str, set[str]], task_specs: str, delay_s: float = 0.0, style: str = "edit"):
    """(checkpoint, path) -> the Oracle knowing schedule[checkpoint] (or the last one)."""
    def make(checkpoint: str, path: str) -> Oracle:
        knows = schedule.get(checkpoint, schedule[max(schedule, key=len)])
        return Oracle(knows, task_specs, delay_s, style)
    return make


class AgentOracle(Oracle):
    """Tool calls for the agent mode: a patch with the reference fix for known tasks (an
    empty-handed check for the others), then the tests."""

    def answer(self, prompt: str) -> str:
        from greenloop.data.pairs import unified_diff

        task = next(t for shown, t in self.by_prompt.items() if shown in prompt)
        if "[apply_patch]" in prompt or "[run_check]" in prompt:
            return "<run_tests/>"
        if task.task_id not in self.knows:
            return "<run_check/>"
        return f"<apply_patch>\n{unified_diff(task.meta.get('broken', task.prompt), task.reference, context=3)}</apply_patch>"


def agent_factory(schedule: dict[str, set[str]], task_specs: str):
    def make(checkpoint: str, path: str) -> AgentOracle:
        return AgentOracle(schedule.get(checkpoint, schedule[max(schedule, key=len)]), task_specs, style="agent")
    return make
