"""greenloop: train code models on execution-verified feedback.

The public API is the core types; nothing heavy is imported here (no torch).
"""

from greenloop.types import NO_EXPECTED, Candidate, Episode, Outcome, Pair, StageResult, Task, TestCase, Verdict

__version__ = "0.1.0"
__all__ = ["NO_EXPECTED", "Candidate", "Episode", "Outcome", "Pair", "StageResult", "Task", "TestCase", "Verdict"]
