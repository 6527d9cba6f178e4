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
every kernel since 5.12 for the read-only tree):
- Reading expected values: the fork servers are fresh interpreters started with no task
  data; task data files, the recording cache, the samples and results files are covered
  by empty mounts in the child's mount namespace; a private /proc shows only the
  candidate's own processes, so no other process's memory or environment can be read.
- Fooling the judge: outputs cross as builtin data only; objects that claim equality,
  patched builtins, forged frames and early exits all fail.
- Time: wall-clock limits enforced by the server from outside the child (no alarm the
  candidate could cancel), plus RLIMIT_CPU.
- Memory, files, processes: RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_NPROC (as an
  unprivileged uid when the verifier runs as root), no core dumps; where a memory and a
  pids cgroup can be created (cgroup v1 or v2, root or delegated), one per fork server
  caps the candidate's whole process tree, so many processes cannot add up past the
  limit, and candidates are the OOM killer's first choice.
- The host's files: the whole tree is mounted read-only; the only writable place is a
  private tmpfs work dir, deleted after each candidate.
- The network: a new network namespace with no interfaces up (no loopback either).
- Other processes: a PID namespace per server; the candidate cannot see or signal the
  verifier, and after each candidate the server (PID 1 of the namespace) kills every
  process left in it, so no descendant survives the verdict. A server that dies anyway
  costs only its current candidate (reported as that candidate's failure) and is replaced.
- Identity: as root, children drop to uid/gid 65534 with no supplementary groups; the
  interpreter's own directory is bound into view so it can import the standard library,
  and the rest of a closed home directory stays hidden.

Protected with the "rlimits" level only (no namespaces: some containers, hardened
kernels, non-Linux-like setups): time, memory, file size, open files, process count
(counted against the user's own processes), a private work dir and scrubbed environment,
and a killed process tree (process group, then every orphan re-parented to the server,
which is a child subreaper). NOT protected at this level: network access, reading and
writing whatever the user running greenloop can (task data files included), and
signalling the user's other processes. Verdicts and summaries say which level was active.

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
