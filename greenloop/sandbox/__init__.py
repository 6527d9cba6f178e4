"""Running untrusted code: warm fork servers, one fresh child per candidate.

Threat model
============
What runs here is code a model wrote, which may be wrong, wasteful or hostile (a model
trained on rewards learns to game them). The verifier's rule is that the child computes
and the parent judges: a child only ever receives the arguments of the calls to make and
returns plain data (see `codec`); expected values, reference solutions and check
programs stay in the verifier (see `greenloop.verify`). The sandbox then makes sure the
child can neither reach what it was not given nor hurt the host.

Protected, with the "namespaces" level (Linux with unprivileged user namespaces, or root;
a kernel with pivot_root and, for the read-only root, mount_setattr: 5.12 or later):
- Reading expected values: the fork servers are fresh interpreters started with no task
  data. Candidates are forked by a zygote that never sees job data either, so no child
  inherits a trace of an earlier candidate's code or outputs. A child's file system is a
  minimal root holding only the system directories and the interpreter (no home
  directories, project checkouts, /tmp or /run, and no copy of a dataset wherever it
  lies); task data shipped inside what is bound (a package's data dir), the recording
  cache, the samples and results files are covered as well. A private /proc shows only
  the namespace's own processes, so no other process's memory or environment is in reach.
- Fooling the judge: outputs cross as builtin data only; objects that claim equality,
  patched builtins, forged or malformed frames and early exits all fail.
- Time: wall-clock limits enforced by the server from outside the child (no alarm the
  candidate could cancel), plus RLIMIT_CPU.
- Memory, files, processes: RLIMIT_AS (not for CUDA jobs: the driver failed to start under
  an 8 GB address-space cap), RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_NPROC, no core
  dumps; where a memory and a pids cgroup can be created (cgroup v1 or v2, root or
  delegated), one per fork server caps the candidate's whole process tree, so many
  processes cannot add up past the limit, and candidates are the OOM killer's first choice
  (with the zygote they are forked from; a fork server whose zygote dies is replaced).
- The host's files: the root is read-only; the only writable place is a private tmpfs
  work dir, deleted after each candidate. Host unix sockets are not in the root at all.
- The network: a new network namespace with no interfaces up (no loopback either).
- Other processes and state: a PID namespace per server; the candidate cannot see or
  signal the verifier; after each candidate the zygote (PID 1 of the namespace) kills
  every process left in it and returns only when none is left, so no descendant survives
  the verdict. No System V IPC object can outlive a candidate: the seccomp filter refuses
  making one; where there is no filter, the zygote removes those left in the server's
  IPC namespace.
  A server that dies anyway costs only its current candidate (reported as that
  candidate's failure) and is replaced.
- System calls: a seccomp filter refuses kernel keyrings, POSIX message queues, new
  System V IPC objects (shmget, semget, msgget), ptrace and process_vm_*, namespaces
  (unshare, setns, clone with namespace flags) and mounts (old and new mount API), kernel
  modules, BPF, perf, userfaultfd, io_uring and vsock sockets (x86_64 and aarch64; elsewhere the report says there is no filter). It applies
  at the "rlimits" level too. /dev holds only null, zero, full, random and urandom.
- The verifier itself: outputs are decoded and judged under a time limit; whatever a
  candidate's outputs make judging do (overflow, take quadratic time, raise) fails that
  candidate and no other. The verifier parses and compiles a candidate's source (under
  a size limit) but never runs it: the code object goes to the child, marshalled.
- Identity: as root, each candidate runs as a uid of its own (1,000,000 + server pid x
  1000 + a counter) with no supplementary groups, so per-user limits and kernel keyrings
  are its own too. In every case it holds no capability and cannot gain one (empty
  bounding set, locked securebits, no_new_privs, nosuid mounts): in a user namespace,
  where it keeps uid 0, it still cannot unmount or remount anything.

Protected with the "rlimits" level only (no namespaces: some containers, hardened
kernels): time, memory, file size, open files, process count, the cgroup bound where
there is one, a private work dir, a scrubbed environment, and a killed process tree
(process group, then every orphan re-parented to the zygote, a child subreaper). As root,
each candidate still runs as its own uid, so it cannot signal the verifier or write the
host's files (but it also cannot import modules from an interpreter kept in a directory
other users cannot read, such as /root). NOT protected at this level: network access,
reading whatever other users may read (task data files included), and, when greenloop
does not run as root, the user's own files and processes. Verdicts and summaries say
which level was active.

Not protected at any level: kernel exploits and side channels (timing, Spectre-class),
CPU and memory pressure on other work on the same machine within the limits given, and
tasks that only have a check program (no reference, or tests that pass non-plain data):
that program must run beside the candidate, which could then fool it; such verdicts are
marked `judge: child`. For code you would not run on your own machine at all, run the
verifier inside a VM or a container with its own kernel (gVisor, Firecracker).
"""

__all__ = ["Limits", "SandboxError", "WorkerPool"]


def __getattr__(name: str):
    # Lazy: the fork server imports this package, and every module it loads makes each
    # fork dearer; the pool (subprocess, tempfile, ...) is only for the verifier's side.
    if name == "Limits":
        from greenloop.sandbox.limits import Limits

        return Limits
    if name in ("SandboxError", "WorkerPool"):
        from greenloop.sandbox import pool

        return getattr(pool, name)
    raise AttributeError(f"module 'greenloop.sandbox' has no attribute {name!r}")
