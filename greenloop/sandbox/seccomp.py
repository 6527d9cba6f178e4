"""A seccomp filter that takes from candidates the system calls no test needs and
attackers like: kernel keyrings (state that outlives a process and crosses uids), POSIX
message queues, new System V IPC objects (shared memory, semaphores and message queues,
which would outlive the candidate; with them refused, the zygote need not look for any
after each candidate), tracing and reading other processes, namespaces (unshare, setns, and
clone asking for a new one) and mounts (old and new mount API), kernel modules, BPF,
perf, userfaultfd, io_uring and vsock sockets. They fail with EPERM (clone3 with ENOSYS,
so the C library falls back to plain clone for threads). Other architectures and the
x32 ABI are handled: unknown architecture, no filter (the report says so); x32 calls,
refused.
"""

from __future__ import annotations

import ctypes
import platform
import struct

from greenloop.sandbox.isolation import _libc, check

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
X32_BIT = 0x40000000

# name -> (x86_64, aarch64)
BLOCKED = {
    "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219),
    "mq_open": (240, 180), "ptrace": (101, 117), "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271), "perf_event_open": (298, 241), "bpf": (321, 280),
    "userfaultfd": (323, 282), "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40),
    "umount2": (166, 39), "pivot_root": (155, 41), "chroot": (161, 51),
    "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264), "kexec_load": (246, 104),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "io_uring_setup": (425, 425), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "shmget": (29, 194), "semget": (64, 190), "msgget": (68, 186),
}
CLONE = (56, 220)  # refused when its flags ask for a new namespace
SOCKET = (41, 198)  # refused for AF_VSOCK, which no network namespace covers
CLONE_NEW_ANY = 0x7E020080  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
AF_VSOCK = 40
CLONE3 = 435  # the same number on both
ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}


def _statement(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter(machine: str) -> bytes | None:
    if machine not in ARCHES:
        return None
    column, audit_arch = ARCHES[machine]
    load_word, jump_eq, jump_ge, ret = 0x20, 0x15, 0x35, 0x06
    program = [
        _statement(load_word, 4),  # seccomp_data.arch
        _statement(jump_eq, audit_arch, jt=1),
        _statement(ret, RET_ERRNO | EPERM),  # a foreign ABI: refuse everything
        _statement(load_word, 0),  # seccomp_data.nr
    ]
    if machine == "x86_64":
        program += [_statement(jump_ge, X32_BIT, jf=1), _statement(ret, RET_ERRNO | EPERM)]
    program += [_statement(jump_eq, CLONE3, jf=1), _statement(ret, RET_ERRNO | ENOSYS)]
    jump_set, load_arg0 = 0x45, 16  # seccomp_data.args[0], low word (little-endian)
    program += [
        _statement(jump_eq, CLONE[column], jf=4),
        _statement(load_word, load_arg0),
        _statement(jump_set, CLONE_NEW_ANY, jf=1),
        _statement(ret, RET_ERRNO | EPERM),
        _statement(ret, RET_ALLOW),
        _statement(jump_eq, SOCKET[column], jf=4),
        _statement(load_word, load_arg0),
        _statement(jump_eq, AF_VSOCK, jf=1),
        _statement(ret, RET_ERRNO | EPERM),
        _statement(ret, RET_ALLOW),
    ]
    for numbers in BLOCKED.values():
        program += [_statement(jump_eq, numbers[column], jf=1), _statement(ret, RET_ERRNO | EPERM)]
    program.append(_statement(ret, RET_ALLOW))
    return b"".join(program)


def seccomp_supported() -> bool:
    return platform.machine() in ARCHES


def install_filter() -> bool:
    """Install the filter on this process and so on every process it forks from now on
    (the zygote does this once; it needs CAP_SYS_ADMIN or no_new_privs). False where the
    architecture is not known."""
    program = build_filter(platform.machine())
    if program is None:
        return False
    filters = ctypes.create_string_buffer(program)
    fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxP", len(program) // 8, ctypes.addressof(filters)))
    check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0), "seccomp")
    return True
