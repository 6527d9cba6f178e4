"""greenloop: train code models on execution-verified feedback.

The public API is the core types; nothing heavy is imported here (no torch).
"""

__version__ = "0.1.0"
__all__ = ["NO_EXPECTED", "Candidate", "Episode", "Outcome", "Pair", "StageResult", "Task", "TestCase", "Verdict"]


def __getattr__(name: str):
    # The core types load on first use, so the sandbox's fork servers (which import this
    # package) stay small: every module they hold makes each fork dearer.
    if name in __all__:
        from greenloop import types

        return getattr(types, name)
    raise AttributeError(f"module 'greenloop' has no attribute {name!r}")
