"""What runs in the forked child: become unprivileged, run the candidate, stream outputs.

The child never sees expected values. For each call it was given it writes one frame,
a JSON line on fd 3: {"i": k, "v": <plain data>} or {"i": k, "raise": "TypeError", ...}.
Tasks that only have a check program run it here instead and report {"check": ...}; the
parent marks such verdicts as judged in the child.
"""

from __future__ import annotations

import json
import marshal
import os
import resource
import signal
import sys
import time

from greenloop.sandbox import codec
from greenloop.sandbox.isolation import drop_all_privileges, set_rlimits

RESULT_FD = 3
SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


_pending: list[bytes] = []
_pending_size = 0
FLUSH_BYTES = 1 << 16
# One encoder, built and run in the zygote (`prepare_zygote`): json.dumps with separators
# builds a new encoder per call, and its first run in a child copies dozens of pages.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _write(frame: dict, flush: bool = True) -> None:
    """Queue a frame; write queued frames when asked or when 64 KiB have gathered. The
    first output is flushed at once (the parent judges it early), later ones in bulk."""
    global _pending_size
    data = (_encode(frame) + "\n").encode()
    _pending.append(data)
    _pending_size += len(data)
    if flush or _pending_size >= FLUSH_BYTES:
        view = memoryview(b"".join(_pending))
        _pending.clear()
        _pending_size = 0
        while view:
            view = view[os.write(RESULT_FD, view):]


JOB_FD = 4
MAX_FD = 1 << 16
READ_BYTES = 1 << 16  # a read buffer of 1 MB would be a fresh mapping (mmap, mremap) per read


def prepare_zygote(drop_groups: bool) -> None:
    """Once, in the zygote: the parts of a child's set-up that are the same for every
    child, inherited through fork. Each step a fresh child takes itself copies the pages
    it touches out of the memory it shares with the zygote, so children start faster
    the less they have to do. Holders sit on fds 3 and 4 so that descriptors the zygote
    receives never land there (`ready_spare` puts a child's own ones there)."""
    os.environ.clear()
    os.environ.update(SAFE_ENV)
    if "tempfile" in sys.modules:  # a temp dir chosen before (the host's /tmp) is forgotten:
        sys.modules["tempfile"].tempdir = None  # a child's comes from its TMPDIR, its work dir
    sys.argv = ["candidate"]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the file cap fail; they don't kill
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if drop_groups:
        os.setgroups([])
    try:  # when memory runs out, candidates (and the zygote, which a server replaces) go first
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    for _ in range(10):  # past CPython's warm-up count, so children run it specialised
        _encode({"i": 0, "v": [1, 2.5, "s", None, True, {"t": [float("nan")]}]})
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2, RESULT_FD, JOB_FD):
        os.dup2(devnull, fd)
    os.close(devnull)


def ready_spare(result_w: int, log_fd: int, job_r: int, workdir: str) -> None:
    """In the zygote, just before a fork, so the child inherits it rather than doing it:
    the child's result pipe on 3, job pipe on 4, log on 1 and 2 (stdin stays /dev/null),
    its work dir as the current directory and as HOME and TMPDIR. `restore_fds` puts
    the zygote's descriptors back after the fork."""
    os.dup2(result_w, RESULT_FD)
    os.dup2(job_r, JOB_FD)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.chdir(workdir)
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir


def restore_fds() -> None:
    os.dup2(0, 1)
    os.dup2(0, 2)
    os.dup2(0, RESULT_FD)
    os.dup2(0, JOB_FD)


def prepare_spare() -> None:
    """What a pre-forked child does before it has a job: its own session, and only the
    descriptors `ready_spare` gave it (stdin, log, result pipe, job pipe)."""
    os.setsid()
    os.closerange(JOB_FD + 1, MAX_FD)


def receive_job() -> dict | None:
    """Block until the server hands over a job (None if it never will). The job comes
    from the server, marshalled (one C call to read, not a JSON parser)."""
    chunks = []
    while chunk := os.read(JOB_FD, READ_BYTES):
        chunks.append(chunk)
    os.close(JOB_FD)
    return marshal.loads(b"".join(chunks)) if chunks else None


def enter_job(job: dict, identity: tuple[int, int] | None, nproc: int) -> None:
    """Drop privileges and apply the job's limits. Runs before any candidate code."""
    limits = job["limits"]
    drop_all_privileges(identity)  # the seccomp filter comes from the zygote, installed once
    memory_mb = limits["memory_mb"] if limits.get("cap_address_space", True) else None
    set_rlimits(cpu_s=limits["cpu_s"], memory_mb=memory_mb, nproc=nproc,
                fsize_mb=limits["max_file_mb"], nofile=limits["max_open_files"])
    # sys.stdin/stdout/stderr are the inherited objects on fds 0-2, which now hold
    # /dev/null and the capped log file; run_job flushes them before the child exits.


def _describe(exc: BaseException) -> dict:
    return {"raise": type(exc).__name__, "msg": str(exc)[:300]}


def _finish() -> None:
    """Flush what the candidate printed (to the capped log), then end without cleanup."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # a candidate may have replaced or closed them
            pass
    os._exit(0)


def run_job(job: dict) -> None:
    """Compile and run the candidate, writing one frame per call. Never returns. A job
    with a `runner` is handed to that module's `run_job(job, write, finish)`; the module
    must have been loaded by the server (the pool's `warm_modules`): nothing is imported
    here from outside the candidate's root."""
    if job.get("runner"):
        runner = sys.modules.get(job["runner"])
        if runner is None:
            _write({"phase": "compile", "raise": "ImportError", "msg": f"runner {job['runner']} is not loaded"})
            _finish()
        runner.run_job(job, _write, _finish)
        _finish()
    started = time.perf_counter()
    namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        compiled = job.get("compiled")  # marshalled by the verifier, which compiled it
        code = marshal.loads(compiled) if compiled is not None else compile(job["code"], "<candidate>", "exec")
        exec(code, namespace)
    except MemoryError:
        _write({"phase": "compile", "memory": True})
        _finish()
    except BaseException as exc:  # the candidate's own failure, any kind
        _write({"phase": "compile", **_describe(exc)})
        _finish()
    _write({"phase": "compile", "ok": True, "s": time.perf_counter() - started}, flush=False)
    if job.get("check") is not None:
        _run_check(job, namespace)
        _finish()
    func = namespace.get(job["entry"])
    if not callable(func):
        _write({"phase": "entry", "raise": "NameError", "msg": f"entry point {job['entry']!r} is not defined"})
        _finish()
    calls = marshal.loads(job["calls"]) if job.get("calls") else []  # [[args, kwargs], ...], marshalled
    for index, (args, kwargs) in enumerate(calls):
        frame = _call(func, index, args, kwargs, bool(job.get("return_args")))
        _write(frame, flush=index == 0)
    _write({"end": True, "s": time.perf_counter() - started})
    _finish()


def _call(func, index: int, args: list, kwargs: dict, return_args: bool) -> dict:
    try:
        frame = {"i": index, "v": func(*args, **kwargs)}
    except MemoryError:
        return {"i": index, "memory": True}
    except BaseException as exc:
        frame = {"i": index, **_describe(exc)}
    try:
        if "v" in frame:
            frame["v"] = codec.encode(frame["v"])
        if return_args:  # the task is judged on what the call did to its arguments too
            frame["after"] = [codec.encode(args), codec.encode(kwargs)]
        return frame
    except codec.Refused as exc:
        return {"i": index, "refused": str(exc)}
    except RecursionError:
        return {"i": index, "refused": "nesting too deep"}


def _run_check(job: dict, namespace: dict) -> None:
    """Check-program-only tasks: the program runs here, next to the candidate."""
    try:
        exec(compile(job["check"], "<check>", "exec"), namespace)
    except AssertionError as exc:
        _write({"check": "failed", "raise": "AssertionError", "msg": str(exc)[:300]})
        return
    except MemoryError:
        _write({"check": "failed", "memory": True})
        return
    except BaseException as exc:
        _write({"check": "failed", **_describe(exc)})
        return
    _write({"check": "passed"})
