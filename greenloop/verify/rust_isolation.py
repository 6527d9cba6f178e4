"""What the child running cargo gets before it execs: limits and, where the kernel allows,
namespaces; and how the parent makes sure nothing of it outlives the verdict.

Levels (see `greenloop.verify.rust` for what each protects):
- "namespaces": a new network namespace (no interface up) and a new mount namespace in
  which the hidden paths are covered by empty mounts and the host's tree is read-only,
  except the candidate's temp crate. Needs root or unprivileged user namespaces.
- "rlimits": CPU seconds, file size, no core dumps, optionally address space; a process
  group of its own. Nothing else.

The setup runs in the forked child between fork and exec (subprocess's preexec_fn), so it
imports nothing and takes no lock: only system calls through os, resource and ctypes.
"""

from __future__ import annotations

import functools
import os
import resource
import signal
import subprocess
import tempfile

from greenloop.sandbox import isolation as kernel

MS_REMOUNT = 32


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _set_limits(cpu_s: int, fsize_mb: int, memory_mb: int | None) -> None:
    def cap(which: int, value: int, grace: int = 0) -> None:
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value + grace if hard == resource.RLIM_INFINITY else value))

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_CPU, cpu_s, grace=1)  # SIGXCPU first (reported as a time limit), SIGKILL a second later
    cap(resource.RLIMIT_FSIZE, fsize_mb << 20)
    if memory_mb is not None:
        cap(resource.RLIMIT_AS, memory_mb << 20)


def _enter_namespaces(hidden: tuple[str, ...], workdir: str) -> None:
    uid, gid = os.getuid(), os.getgid()
    flags = kernel.CLONE_NEWNET | kernel.CLONE_NEWNS
    if uid != 0:
        flags |= kernel.CLONE_NEWUSER
    kernel.unshare(flags)
    if uid != 0:  # keep our own ids inside: the toolchain's files stay ours
        _write_file("/proc/self/setgroups", "deny")
        _write_file("/proc/self/uid_map", f"{uid} {uid} 1")
        _write_file("/proc/self/gid_map", f"{gid} {gid} 1")
    kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)
    for path in hidden:
        if os.path.isdir(path):
            kernel.mount("tmpfs", path, "tmpfs", kernel.MS_RDONLY | kernel.MS_NOSUID | kernel.MS_NODEV, "size=4k,mode=0")
        elif os.path.exists(path):
            kernel.mount("/dev/null", path, None, kernel.MS_BIND)
    kernel.mount(workdir, workdir, None, kernel.MS_BIND | kernel.MS_REC)
    kernel.make_tree_readonly("/")
    # The crate's own mount back to read-write; everything else stays read-only.
    kernel.mount(None, workdir, None, MS_REMOUNT | kernel.MS_BIND | kernel.MS_NOSUID)


def child_setup(level: str, hidden: tuple[str, ...], workdir: str, cpu_s: int, fsize_mb: int,
                memory_mb: int | None = None):
    """The function the child runs before exec (raises if isolation cannot be set up, so
    the run fails as the verifier's error, never silently weaker)."""
    hidden = tuple(os.path.abspath(p) for p in hidden)

    def setup() -> None:
        if level == "namespaces":
            _enter_namespaces(hidden, workdir)
        _set_limits(cpu_s, fsize_mb, memory_mb)

    return setup


@functools.cache
def level(requested: str = "auto") -> str:
    """The strongest level this machine gives: tried once, by running `true` under it."""
    if requested == "none":
        return "rlimits"
    workdir = tempfile.mkdtemp(prefix="greenloop-rust-probe-")
    try:
        setup = child_setup("namespaces", (), workdir, cpu_s=5, fsize_mb=1)
        subprocess.run(["true"], cwd=workdir, preexec_fn=setup, check=True, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return "namespaces"
    except (OSError, subprocess.SubprocessError):
        return "rlimits"
    finally:
        os.rmdir(workdir)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_leftovers(root: str) -> int:
    """Kill every process still running from, or in, the temp crate `root` (one that left
    the process group). Returns how many were killed."""
    killed = 0
    prefix = root.rstrip("/") + "/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for link in ("exe", "cwd"):
            try:
                target = os.readlink(f"/proc/{entry}/{link}")
            except OSError:
                continue
            if target == root or target.startswith(prefix):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
                break
    return killed
