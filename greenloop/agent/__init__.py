"""The repair agent: tools on a file (`tools`), unified diffs (`patch`), the loop (`loop`)."""

from greenloop.agent.loop import (
           AgentConfig,
           AgentResult,
           Step,
           ToolCall,
           parse_tool_call,
           render_prompt,
           run_agent,
)
from greenloop.agent.patch import PatchError, apply_patch
from greenloop.agent.tools import Observation, Workspace, normalise_signature

__all__ = ["AgentConfig", "AgentResult", "Observation", "PatchError", "Step", "ToolCall", "Workspace",
           "apply_patch", "normalise_signature", "parse_tool_call", "render_prompt", "run_agent"]
