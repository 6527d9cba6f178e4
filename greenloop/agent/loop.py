"""The repair agent: a model proposes tool calls on a broken file until its tests pass.

The model sees a prompt (the task, the file with line numbers, the tool syntax) and the
transcript so far, and answers with one tool call:

    <apply_patch>            a unified diff of the file, e.g.
    @@ -3,1 +3,1 @@
    -    return n
    +    return n + 1
    </apply_patch>
    <run_check/>             parse/compile the file (cargo check for Rust)
    <run_tests/>             run the task's tests in the sandbox

A fenced ```diff block counts as apply_patch. A reply with no tool call is a step too: it
is recorded (command "invalid") and the model is told the syntax. The loop ends when the
tests pass or after `max_steps`; every step keeps the model's text, the diff it made, what
the tool said, the normalised error signature and the token counts.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from greenloop.agent.tools import Observation, Workspace
from greenloop.text.edit_format import number_lines

PROMPT = """You are fixing a bug in {file_name}. {hint}
Use exactly one tool per reply:
<apply_patch>
(a unified diff of {file_name}: @@ -LINE,COUNT +LINE,COUNT @@ then ' ', '-', '+' lines)
</apply_patch>
<run_check/>
<run_tests/>

{file_name}:
{numbered}
"""

_PATCH = re.compile(r"<apply_patch>\s*\n?(.*?)(?:</apply_patch>|\Z)", re.DOTALL)
_FENCED_DIFF = re.compile(r"```(?:diff|patch)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_SIMPLE = re.compile(r"<(run_check|run_tests)\s*/?>")


@dataclass(frozen=True)
class ToolCall:
    command: str      # "apply_patch", "run_check", "run_tests" or "invalid"
    argument: str = ""


@dataclass
class Step:
    command: str
    model_text: str
    diff: str
    observation: str
    outcome: str
    error_signature: str
    tokens_in: int
    tokens_out: int
    seconds: float


@dataclass
class AgentResult:
    task_id: str
    passed: bool
    steps: list[Step] = field(default_factory=list)
    final_text: str = ""
    steps_to_green: int | None = None

    @property
    def error_signatures(self) -> list[str]:
        return [s.error_signature for s in self.steps if s.error_signature]


def parse_tool_call(text: str) -> ToolCall:
    """The first tool call in a reply, by position."""
    found: list[tuple[int, ToolCall]] = []
    for pattern in (_PATCH, _FENCED_DIFF):
        match = pattern.search(text)
        if match:
            found.append((match.start(), ToolCall("apply_patch", match.group(1))))
    simple = _SIMPLE.search(text)
    if simple:
        found.append((simple.start(), ToolCall(simple.group(1))))
    return min(found, key=lambda item: item[0])[1] if found else ToolCall("invalid")


def render_prompt(workspace: Workspace) -> str:
    numbered = number_lines(workspace.text)
    hint = workspace.task.meta.get("hint", "")
    return PROMPT.format(file_name=workspace.file_name, hint=hint, numbered=numbered)


def execute(workspace: Workspace, call: ToolCall) -> Observation:
    if call.command == "apply_patch":
        return workspace.apply_patch(call.argument)
    if call.command == "run_check":
        return workspace.run_check()
    if call.command == "run_tests":
        return workspace.run_tests()
    return Observation("no tool call found: reply with <apply_patch>...</apply_patch>, <run_check/> or "
                       "<run_tests/>", "error", "agent:no_tool_call")


@dataclass(frozen=True)
class AgentConfig:
    max_steps: int = 8
    temperature: float = 0.0
    max_tokens: int = 384


def run_agent(policy, workspace: Workspace, config: AgentConfig = AgentConfig()) -> AgentResult:
    """Let `policy` work on `workspace` until its tests pass or the steps run out."""
    transcript = render_prompt(workspace)
    result = AgentResult(workspace.task.task_id, False)
    for number in range(1, config.max_steps + 1):
        started = time.perf_counter()
        text, tokens_in, tokens_out = _ask(policy, transcript, config)
        call = parse_tool_call(text)
        observation = execute(workspace, call)
        result.steps.append(Step(call.command, text, observation.diff, observation.text, observation.outcome,
                                 observation.error_signature, tokens_in, tokens_out, time.perf_counter() - started))
        if observation.outcome == "passed":
            result.passed, result.steps_to_green = True, number
            break
        transcript += f"{text.strip()}\n[{call.command}] {observation.text}\n"
    result.final_text = workspace.text
    return result


def _ask(policy, transcript: str, config: AgentConfig) -> tuple[str, int, int]:
    """One reply and its prompt and completion token counts."""
    out = policy.generate_with_usage([transcript], n=1, temperature=config.temperature, max_tokens=config.max_tokens)
    return out.texts[0][0], out.prompt_tokens[0], out.completion_tokens[0]
