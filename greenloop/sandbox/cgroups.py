"""Control groups that bound a worker's whole candidate tree, where the kernel lets us.

Per-process rlimits cap each process, but a candidate with 16 processes of 2 GB each
still holds 32 GB. A memory cgroup (and a pids cgroup) per fork server caps the tree as
a whole. cgroup v2 and v1 are both tried; where neither can be written (no delegation,
no root), the report says so and the rlimits remain the only bound.
"""

from __future__ import annotations

import os
import signal
import time

SERVER_HEADROOM_MB = 256  # the fork server itself lives in the same group


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) for every cgroup mount."""
    out = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fstype, _, options = right.split()[:3]
                if fstype in ("cgroup", "cgroup2"):
                    out.append((left.split()[4], fstype, options))
    except OSError:
        pass
    return out


def _own_paths() -> dict[str, str]:
    """Controller name (or "" for v2) -> this process's cgroup path."""
    paths = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


class WorkerCgroups:
    """The cgroup directories one fork server joins, and where OOM kills are counted."""

    def __init__(self, dirs: list[str] | None = None, oom_files: list[str] | None = None, kind: str = "none"):
        self.dirs = dirs or []
        self.oom_files = oom_files or []
        self.kind = kind

    @classmethod
    def create(cls, name: str, memory_mb: int, max_processes: int) -> "WorkerCgroups":
        groups = cls()
        try:
            own = _own_paths()
        except OSError:
            return groups
        limit = str((memory_mb + SERVER_HEADROOM_MB) << 20)
        for point, fstype, options in _mounts():
            if fstype == "cgroup2" and "" in own:
                groups._try(os.path.join(point, own[""].lstrip("/"), name),
                            {"memory.max": limit, "memory.swap.max": "0", "pids.max": str(max_processes + 4)},
                            "memory.events", "v2")
            elif fstype == "cgroup" and "memory" in options.split(",") and "memory" in own:
                groups._try(os.path.join(point, own["memory"].lstrip("/"), name),
                            {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit},
                            "memory.oom_control", "v1")
            elif fstype == "cgroup" and "pids" in options.split(",") and "pids" in own:
                groups._try(os.path.join(point, own["pids"].lstrip("/"), name),
                            {"pids.max": str(max_processes + 4)}, None, "v1")
        return groups

    def _try(self, path: str, limits: dict[str, str], oom_file: str | None, kind: str) -> None:
        try:
            os.mkdir(path)
        except OSError:
            return
        written = 0
        for key, value in limits.items():
            try:
                with open(os.path.join(path, key), "w") as fh:
                    fh.write(value)
                written += 1
            except OSError:
                pass  # a controller not enabled here: the others may still be
        if not written:
            os.rmdir(path)
            return
        self.dirs.append(path)
        if oom_file and os.path.exists(os.path.join(path, oom_file)):
            self.oom_files.append(os.path.join(path, oom_file))
        self.kind = kind if self.kind in ("none", kind) else "mixed"

    def join(self, pid: int = 0) -> None:
        for path in self.dirs:
            with open(os.path.join(path, "cgroup.procs"), "w") as fh:
                fh.write(str(pid or os.getpid()))

    def open_counters(self) -> None:
        """Keep the OOM counters open: after the sandbox's root is built, /sys is gone."""
        self._fds = []
        for path in self.oom_files:
            try:
                self._fds.append(os.open(path, os.O_RDONLY))
            except OSError:
                pass

    def oom_kills(self) -> int:
        total = 0
        for fd in getattr(self, "_fds", []):
            try:
                text = os.pread(fd, 4096, 0).decode()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    total += int(value)
        return total

    def remove(self, wait_s: float = 5.0) -> None:
        """Kill whatever is still in the groups (a zygote or candidate still dying after
        its server), then remove them, waiting a bounded time for the kernel to let go."""
        deadline = time.monotonic() + wait_s
        for path in self.dirs:
            while True:
                for pid in self._members(path):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)

    @staticmethod
    def _members(path: str) -> list[int]:
        try:
            with open(os.path.join(path, "cgroup.procs")) as fh:
                return [int(line) for line in fh if line.strip()]
        except (OSError, ValueError):
            return []

    def to_config(self) -> dict:
        return {"dirs": self.dirs, "oom_files": self.oom_files, "kind": self.kind}

    @classmethod
    def from_config(cls, data: dict | None) -> "WorkerCgroups":
        return cls(**data) if data else cls()
