"""The agent loop on a scripted policy: the policy's text is a test double, the tools
(patching, the parser, the sandboxed tests) are real."""

import pytest

from greenloop.agent import (
    AgentConfig,
    Workspace,
    parse_tool_call,
    render_prompt,
    run_agent,
)
from greenloop.policy import Generation
from greenloop.tasks import TaskSet
from greenloop.types import Task, TestCase
from greenloop.verify.funnel import Verifier, VerifyConfig

BROKEN = "def total(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n"
FIXED = BROKEN.replace("range(n)", "range(n + 1)")
TASK = Task("demo/total", "demo", BROKEN, "total",
            tuple(TestCase(args=(n,), expected=n * (n + 1) // 2) for n in (0, 1, 4, 10)),
            reference=FIXED, prompt_is_code=False, meta={"broken": BROKEN, "hint": "Sum 0..n inclusive."})

GOOD_PATCH = "<apply_patch>\n@@ -3 +3 @@\n-    for i in range(n):\n+    for i in range(n + 1):\n</apply_patch>"


class Scripted:
    """Replies from a script, one per call; records the prompts it was shown."""

    name = "scripted"

    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def generate_with_usage(self, prompts, n=1, temperature=0.0, max_tokens=256, **options):
        self.prompts.append(prompts[0])
        text = self.replies.pop(0)
        return Generation([[text]], [["stop"]], [len(prompts[0].split())], [len(text.split())])


@pytest.fixture(scope="module")
def verifier():
    with Verifier(TaskSet({TASK.task_id: TASK}, []), VerifyConfig(workers=1, timeout_s=5)) as v:
        yield v


def test_fails_then_patches_then_goes_green(verifier):
    policy = Scripted(["Let me run the tests first.\n<run_tests/>", GOOD_PATCH, "<run_check/>", "<run_tests/>"])
    result = run_agent(policy, Workspace(TASK, verifier), AgentConfig(max_steps=6))
    assert result.passed and result.steps_to_green == 4
    assert [s.command for s in result.steps] == ["run_tests", "apply_patch", "run_check", "run_tests"]
    first = result.steps[0]
    assert first.outcome == "failed" and first.error_signature == "tests:wrong output" and "(1/4 tests passed)" in first.observation
    assert "+    for i in range(n + 1):" in result.steps[1].diff
    assert result.final_text == FIXED
    assert result.steps[0].tokens_in > 0 and result.steps[1].tokens_out > 0
    # the model saw what the tests said before it patched
    assert "[run_tests] failed" in policy.prompts[1]


def test_malformed_patch_is_a_failed_step_with_a_clear_error(verifier):
    policy = Scripted(["<apply_patch>\nthis is not a diff\n</apply_patch>", "no tool here", "<run_tests/>"])
    result = run_agent(policy, Workspace(TASK, verifier), AgentConfig(max_steps=3))
    assert not result.passed and result.steps_to_green is None
    patch_step, invalid_step, tests_step = result.steps
    assert patch_step.outcome == "error" and "patch refused: patch line 1" in patch_step.observation
    assert patch_step.error_signature.startswith("patch:") and patch_step.diff == ""
    assert invalid_step.command == "invalid" and invalid_step.error_signature == "agent:no_tool_call"
    assert tests_step.outcome == "failed"
    assert result.final_text == BROKEN  # nothing was changed by the bad patch


def test_check_reports_a_syntax_error_signature(verifier):
    breaking = "<apply_patch>\n@@ -1 +1 @@\n-def total(n):\n+def total(n)\n</apply_patch>"
    result = run_agent(Scripted([breaking, "<run_check/>"]), Workspace(TASK, verifier), AgentConfig(max_steps=2))
    check = result.steps[1]
    assert check.outcome == "error" and check.error_signature.startswith("SyntaxError")
    assert "line" not in check.error_signature  # line numbers are normalised away


def test_step_limit_ends_the_episode(verifier):
    result = run_agent(Scripted(["<run_check/>"] * 3), Workspace(TASK, verifier), AgentConfig(max_steps=3))
    assert len(result.steps) == 3 and not result.passed


def test_tool_call_parsing_takes_the_first_call():
    assert parse_tool_call("<run_check/> then <run_tests/>").command == "run_check"
    call = parse_tool_call("Here:\n```diff\n@@ -1 +1 @@\n-a\n+b\n```\n<run_tests/>")
    assert call.command == "apply_patch" and call.argument.startswith("@@ -1 +1 @@")
    assert parse_tool_call("nothing").command == "invalid"


def test_prompt_numbers_the_lines_and_gives_the_hint():
    prompt = render_prompt(Workspace(TASK, verifier=None))
    assert "3|     for i in range(n):" in prompt and "Sum 0..n inclusive." in prompt
