"""Kernel isolation for the fork server and its children: namespaces, mounts, identity.

Levels, strongest first (see the threat model in `greenloop.sandbox`):
- "namespaces": the fork server lives in new PID, network, mount, IPC and UTS namespaces
  (with a user namespace when not root). Children see no network, a read-only file
  system but for their own work dir, no task data files, and only their own processes;
  as root they also run as an unprivileged uid.
- "rlimits": namespaces unavailable. Children still get rlimits, their own session,
  a private work dir, a scrubbed environment and a killed process tree, but they share
  the host's network and can read and write what the user running greenloop can.
"""

from __future__ import annotations

import ctypes
import os
import resource
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, AT_RECURSIVE, AT_FDCWD = 0x1, 0x2, 0x8000, -100
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS = 24, 28, 38
SECURE_NOROOT_AND_LOCKS = 0x2F  # noroot and no_setuid_fixup set, keep_caps clear: each locked
CAPABILITY_VERSION_3 = 0x20080522
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and aarch64

_libc = ctypes.CDLL(None, use_errno=True)  # libc is linked into the interpreter itself


def check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def prctl(option: int, arg: int) -> None:
    check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


def make_tree_readonly(root: str = "/") -> None:
    """Make every mount under `root` read-only and set-uid-free in this mount namespace
    (Linux >= 5.12)."""
    attr = ctypes.create_string_buffer(struct.pack("QQQQ", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0))
    _libc.syscall.restype = ctypes.c_long
    res = _libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), root.encode(),
                        ctypes.c_uint(AT_RECURSIVE), attr, ctypes.c_size_t(32))
    check(0 if res == 0 else -1, "mount_setattr read-only")


def limit_future_privileges() -> None:
    """For the zygote, once: whatever its children do, they can never gain a capability
    (empty bounding set, root's exec privileges off, both locked). The zygote keeps the
    capabilities it holds now; its children give them up in `drop_all_privileges`."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        _libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0)  # fails harmlessly without CAP_SETPCAP
    _libc.prctl(PR_SET_SECUREBITS, ctypes.c_ulong(SECURE_NOROOT_AND_LOCKS), 0, 0, 0)


_CAP_HEADER = ctypes.create_string_buffer(struct.pack("Ii", CAPABILITY_VERSION_3, 0))
_CAP_NONE = ctypes.create_string_buffer(bytes(24))  # effective, permitted, inheritable: all empty, twice
# Looked up once, here: a CDLL resolves a name on first use (several Python calls and a new
# function object), which every child would otherwise repeat in its own copied pages.
_capset = _libc.capset
_capset.argtypes = (ctypes.c_char_p, ctypes.c_char_p)


def drop_all_privileges(identity: tuple[int, int] | None) -> None:
    """Become `identity` (uid, gid) if given, holding no capability and unable to gain
    one (set-uid binaries, file capabilities, uid 0 in a user namespace, whose mounts a
    capable candidate could otherwise undo).
    Supplementary groups were dropped and no_new_privs set in the zygote, once."""
    if identity is not None:
        os.setgid(identity[1])
        os.setuid(identity[0])
    check(_capset(_CAP_HEADER, _CAP_NONE), "capset")


class IsolationReport:
    """What protection is actually in force; carried into verdict metadata and summaries.
    (A plain class: the fork server avoids importing what candidates do not need.)"""

    def __init__(self):
        self.level = "rlimits"
        self.network = "host"  # "none" inside a network namespace
        self.filesystem = "read-write"  # "read-only" when the tree is remounted
        self.hidden_paths = 0
        self.pid_namespace = False
        self.cgroup = "none"  # "v1"/"v2" when a memory/pids cgroup bounds the candidate tree
        self.seccomp = False  # a system-call filter is installed in every candidate
        self.uid = os.getuid()
        self.notes: list[str] = []

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def enter_namespaces(report: IsolationReport) -> bool:
    """Move this process into new namespaces. Returns True when a PID namespace was made
    (the caller must then fork: only its children live in the new PID namespace)."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        flags |= CLONE_NEWUSER
    try:
        unshare(flags)
    except OSError as exc:
        report.notes.append(f"namespaces unavailable ({exc}); isolation falls back to rlimits only")
        return False
    if uid != 0:
        with open("/proc/self/setgroups", "w") as fh:
            fh.write("deny")
        with open("/proc/self/uid_map", "w") as fh:
            fh.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as fh:
            fh.write(f"0 {gid} 1")
    report.level = "namespaces"
    report.network = "none"
    report.pid_namespace = True
    return True


def readonly_host_tree(report: IsolationReport, scratch: str, hidden: list[str]) -> None:
    """The fallback where a minimal root cannot be built: the host's tree, read-only,
    a fresh /proc, a writable scratch tmpfs for work dirs, task data files covered."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if os.getuid() == 0 and not in_user_namespace():
        mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700")
        _expose_to_others(interpreter_paths(), scratch)
        check(_libc.umount2(scratch.encode(), ctypes.c_int(MNT_DETACH)), "umount holding area")
    try:
        make_tree_readonly("/")
        report.filesystem = "read-only"
    except OSError as exc:
        report.notes.append(f"could not make the file system read-only ({exc})")
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        report.notes.append(f"could not mount a private /proc ({exc}): host processes are visible")
    mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=0711")
    for path in hidden:
        hide_path(path, path, report)


def hide_path(path: str, target: str, report: IsolationReport) -> None:
    """Cover `target` (where `path` is seen from the sandbox) with an empty mount."""
    try:
        if os.path.isdir(target):
            mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0")
        elif os.path.exists(target):
            mount("/dev/null", target, None, MS_BIND)
        else:
            return
        report.hidden_paths += 1
    except OSError as exc:
        report.notes.append(f"could not hide {path} ({exc})")


def interpreter_paths() -> list[str]:
    """The interpreter's prefixes and its site-packages: what a candidate's imports need.
    Other sys.path entries (a source checkout on PYTHONPATH) are left out on purpose."""
    paths = {sys.base_prefix, sys.prefix, sys.exec_prefix}
    paths.update(p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p))
    return sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})


def _closed_ancestor(path: str) -> str | None:
    """The highest directory above `path` that other users cannot enter (e.g. /root)."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:depth])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def _expose_to_others(paths: list[str], scratch: str) -> None:
    """Make the interpreter's own files reachable by the unprivileged uid without
    touching the host: a closed directory such as /root is covered, in this mount
    namespace only, by an empty tmpfs into which just the needed paths are bound back.
    Everything else in it (a home directory) stays out of the child's sight."""
    by_ancestor: dict[str, list[str]] = {}
    for path in paths:
        ancestor = _closed_ancestor(path)
        if ancestor:
            by_ancestor.setdefault(ancestor, []).append(path)
    for n, (ancestor, inside) in enumerate(sorted(by_ancestor.items())):
        holding = []
        for i, path in enumerate(inside):
            hold = os.path.join(scratch, f".hold{n}-{i}")
            os.mkdir(hold)
            mount(path, hold, None, MS_BIND | MS_REC)
            holding.append((hold, path))
        mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
        for hold, path in holding:
            os.makedirs(path, mode=0o755, exist_ok=True)
            mount(hold, path, None, MS_BIND | MS_REC)


def in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as fh:
            return fh.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


_JOB_LIMITS = (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE,
               resource.RLIMIT_NOFILE)
_HARD = {}  # hard limits of _JOB_LIMITS, read once (in the zygote, before any fork): they never rise


def set_rlimits(cpu_s: int, memory_mb: int | None, nproc: int, fsize_mb: int, nofile: int) -> None:
    """Soft and hard limits at once, never above the hard limit the process already has
    (RLIMIT_CORE 0 and SIGXFSZ ignored are set once in the zygote). `memory_mb` None:
    address space left at the hard limit."""
    address = None if memory_mb is None else memory_mb << 20
    for which, value in zip(_JOB_LIMITS, (cpu_s, address, nproc, fsize_mb << 20, nofile)):
        hard = _HARD[which] if which in _HARD else resource.getrlimit(which)[1]
        if value is None:
            value = hard
        elif hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def read_hard_limits() -> None:
    """Fill the hard-limit cache, so children do not each ask the kernel."""
    for which in _JOB_LIMITS:
        _HARD[which] = resource.getrlimit(which)[1]


# /proc/sysvipc/<kind>: (column of the id, column of the creator's uid, libc remover)
_IPC_TABLES = {kind: (f"/proc/sysvipc/{kind}", *columns)
               for kind, columns in {"shm": (1, 9, "shmctl"), "msg": (1, 9, "msgctl"), "sem": (1, 6, "semctl")}.items()}
IPC_RMID = 0


def remove_ipc_objects(creator_uid: int | None, everything: bool) -> int:
    """Remove System V IPC objects a candidate left: every object in this IPC namespace
    when it is the server's own (`everything`), else only those the candidate's uid
    created (never another user's objects in the host's namespace). Returns how many."""
    if not everything and creator_uid is None:
        return 0
    removed = 0
    for kind, (path, id_col, uid_col, remover) in _IPC_TABLES.items():
        try:
            fd = os.open(path, os.O_RDONLY)
            try:  # small reads: a large buffer would be a fresh mapping every time
                data = chunk = os.read(fd, 4096)
                while chunk:
                    chunk = os.read(fd, 4096)
                    data += chunk
            finally:
                os.close(fd)
        except OSError:
            continue
        if data.count(b"\n") < 2:  # the header line alone: nothing to remove (the usual case)
            continue
        for row in (line.split() for line in data.decode().splitlines()[1:]):
            if everything or int(row[uid_col]) == creator_uid:
                ident = int(row[id_col])
                if kind == "sem":
                    result = _libc.semctl(ident, 0, IPC_RMID)
                else:
                    result = getattr(_libc, remover)(ident, IPC_RMID, None)
                removed += result == 0
    return removed
