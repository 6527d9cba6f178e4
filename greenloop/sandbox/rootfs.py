"""The file system a candidate sees: a fresh root that holds only what running Python
needs, instead of the host's tree with holes punched in it.

Inside the fork server's mount namespace, a tmpfs becomes the new root. Into it go, read
only: the system directories (/usr, /bin, /lib*, /sbin, /etc), a /dev of null, zero,
full, random and urandom only, and the interpreter's own prefixes and site-packages. Nothing else of the host exists there: no home
directories, no /tmp or /run (so no host unix sockets), no project checkouts or dataset
copies, wherever they lie. Task data inside what is bound (a dataset shipped in
site-packages) is covered as well. After pivot_root the old root is detached; only the
work area (a private tmpfs at the scratch path) is writable.

A pool that asks for devices (GPU nodes) gets those /dev entries, a fresh read-only
sysfs and the LD_LIBRARY_PATH directories that hold driver libraries too, and may name
a device check (`probe_root`) that must pass inside a throwaway copy of the root before
its candidates are given one.
"""

from __future__ import annotations

import fcntl
import glob
import importlib
import os
import platform
import select
import signal

from greenloop.sandbox.child import prepare_zygote
from greenloop.sandbox.cleanup import reap_within
from greenloop.sandbox.isolation import (CLONE_NEWNS, MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID,
                                         MS_PRIVATE, MS_RDONLY, MS_REC, PR_SET_NO_NEW_PRIVS, IsolationReport, _libc,
                                         check, drop_all_privileges, hide_path, interpreter_paths,
                                         make_tree_readonly, mount, prctl, unshare)

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")  # all of /dev a candidate gets
PROBE_WAIT_S = 120.0  # starting CUDA and compiling one Triton kernel, cold
PROBE_REAP_S = 10.0  # for a killed probe stuck in a driver call
PROBE_UID = 999_999  # below the per-candidate uids the server hands out
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}


def _within(path: str, parents: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def _bind_into(root: str, path: str, bound: list[str]) -> None:
    if _within(path, bound) or not os.path.lexists(path):
        return
    target = root + path
    if os.path.islink(path) and os.path.dirname(path) == "/":  # /bin -> usr/bin on merged-/usr systems
        os.symlink(os.readlink(path), target)
        return
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        return
    os.makedirs(target, mode=0o755, exist_ok=True)
    mount(real, target, None, MS_BIND | MS_REC)
    bound.append(path)


def _minimal_dev(root: str, extra: list[str]) -> None:
    """A /dev with only the harmless character devices, not the host's disks, kvm or fuse,
    plus the `extra` ones the pool was asked for (GPU device nodes for kernel timing).
    An extra entry that is a directory (/dev/nvidia-caps) is bound as a directory."""
    dev = os.path.join(root, "dev")
    os.makedirs(dev, mode=0o755, exist_ok=True)
    wanted = [*DEVICES, *(os.path.basename(p) for pattern in extra for p in glob.glob(os.path.join("/dev", pattern)))]
    for name in dict.fromkeys(wanted):
        source, target = os.path.join("/dev", name), os.path.join(dev, name)
        if os.path.isdir(source):
            os.makedirs(target, mode=0o755, exist_ok=True)
            mount(source, target, None, MS_BIND | MS_REC)
        elif os.path.exists(source):
            open(target, "w").close()
            mount(source, target, None, MS_BIND)
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", os.path.join(dev, name))


def driver_library_dirs() -> list[str]:
    """The directories on LD_LIBRARY_PATH that hold a GPU driver's libraries (libcuda,
    libnvidia-*), which a container often keeps outside /usr. Only those: a user's
    other library paths (a home directory, a build tree) stay out of the root."""
    dirs = []
    for path in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if path.startswith("/") and os.path.realpath(path) != "/" and os.path.isdir(path):
            if glob.glob(os.path.join(path, "libcuda*")) or glob.glob(os.path.join(path, "libnvidia*")):
                dirs.append(path)
    return dirs


def _fresh_sysfs(root: str, report: IsolationReport) -> None:
    """A sysfs of this namespace's own, read-only, for a device's user-space driver (bus
    and topology): no host cgroup tree or other mounts beneath it, and only this
    namespace's network devices."""
    target = os.path.join(root, "sys")
    os.makedirs(target, mode=0o755, exist_ok=True)
    try:
        mount("sysfs", target, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        report.notes.append(f"could not mount a sysfs for the devices ({exc})")


def pivot_root(new_root: str, put_old: str) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: no syscall number known for {platform.machine()}")
    check(0 if _libc.syscall(number, new_root.encode(), put_old.encode()) == 0 else -1, "pivot_root")


def build_root(report: IsolationReport, scratch: str, hidden: list[str], devices: list[str] = ()) -> None:
    """Replace this mount namespace's root with a minimal read-only one. `scratch` (an
    existing host directory) is where it is built, and, afterwards, the path of the
    writable work area. Raises OSError if the kernel refuses a step."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = scratch
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    bound: list[str] = []
    for path in (*SYSTEM_DIRS, *interpreter_paths(), *(driver_library_dirs() if devices else ())):
        _bind_into(root, path, bound)
    _minimal_dev(root, list(devices))
    if devices:
        _fresh_sysfs(root, report)
    for path in hidden:
        real = os.path.realpath(path)
        hide_path(path, root + real, report)
    for name in ("proc", "tmp", ".old"):
        os.makedirs(os.path.join(root, name), mode=0o755, exist_ok=True)
    os.makedirs(root + scratch, mode=0o755, exist_ok=True)
    try:  # before the pivot: in a user namespace, proc mounts only while one is visible
        mount("proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        report.notes.append(f"could not mount a private /proc ({exc})")
    pivot_root(root, os.path.join(root, ".old"))
    os.chdir("/")
    check(_libc.umount2(b"/.old", MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    report.filesystem = "minimal root"
    try:
        make_tree_readonly("/")
        report.filesystem = "minimal root, read-only"
    except OSError as exc:
        report.notes.append(f"could not make the new root read-only ({exc})")
    mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=0711")


def probe_root(config: dict, drop_uid: bool) -> str | None:
    """Check, before candidates depend on it, that the minimal root holds what the pool's
    devices need: run `config["root_probe"]` ("module:function", imported by the caller
    already) in a throwaway copy of that root, in a child with its own mount namespace,
    set up as a candidate is (uid, no groups, scrubbed environment, no new privileges).
    None if the function returned; else why not. Whatever it started is killed."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        answer = b"ok"
        try:
            os.close(read_fd)
            # Above the descriptors prepare_zygote points at /dev/null (0-4).
            write_fd = fcntl.fcntl(write_fd, fcntl.F_DUPFD_CLOEXEC, 10)
            _run_probe(config, drop_uid)
        except BaseException as exc:  # noqa: BLE001 (every failure is the answer)
            answer = f"{type(exc).__name__}: {exc}"[:300].encode()
        finally:
            os.write(write_fd, answer)
            os._exit(0)
    os.close(write_fd)
    try:
        if select.select([read_fd], [], [], PROBE_WAIT_S)[0]:
            answer = os.read(read_fd, 400).decode(errors="replace") or "it ended without an answer"
        else:
            answer = f"no answer in {PROBE_WAIT_S:.0f} s"
    finally:
        os.close(read_fd)
        try:  # its process group: a compiler it started too
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reap_within(pid, PROBE_REAP_S)  # one stuck in a driver call is left to the zygote
    return None if answer == "ok" else answer


def _run_probe(config: dict, drop_uid: bool) -> None:
    os.setsid()  # a group of its own, so everything it starts dies with it
    unshare(CLONE_NEWNS)  # the root built here is gone with this child
    build_root(IsolationReport(), config["scratch"], config.get("hidden", []), config.get("devices", []))
    prepare_zygote(drop_groups=drop_uid)  # what every candidate inherits, the control pipes off
    workdir = os.path.join(config["scratch"], "probe")
    os.mkdir(workdir, 0o700)
    if drop_uid:
        os.chown(workdir, PROBE_UID, PROBE_UID)
    os.chdir(workdir)
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    drop_all_privileges((PROBE_UID, PROBE_UID) if drop_uid else None)
    module, _, name = config["root_probe"].partition(":")
    getattr(importlib.import_module(module), name)()
