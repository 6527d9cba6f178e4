"""One way to bound trusted work in the verifier's own process: an interval timer."""

from __future__ import annotations

import contextlib
import signal
import threading
import time


@contextlib.contextmanager
def time_guard(seconds: float, what: str = "judging the candidate's outputs"):
    """Raise TimeoutError in the block after `seconds`. For trusted code fed untrusted
    values (a huge number, a set of colliding hashes) or a slow reference. Only the main
    thread gets signals: elsewhere the block runs unbounded. A timer the caller had set
    goes on afterwards where it was."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"{what} took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    caller_delay, caller_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if caller_delay:
            left = max(caller_delay - (time.monotonic() - started), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, left, caller_interval)
