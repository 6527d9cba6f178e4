"""Running untrusted code. PLACEHOLDER_DOC"""

from greenloop.sandbox.limits import Limits
from greenloop.sandbox.pool import SandboxError, WorkerPool

__all__ = ["Limits", "SandboxError", "WorkerPool"]
