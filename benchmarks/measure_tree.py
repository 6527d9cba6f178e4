"""Measuring a process tree: this process and all its descendants.

Owns the helpers benchmarks use to measure work spread over forked processes:

- `tree_cpu_seconds`: CPU seconds (user + system) used so far by the whole tree;
- `MemorySampler`: peak RSS and PSS summed over the tree, sampled every 0.1 s from a
  separate process (SAMPLER, its source) so that reading /proc costs the measured
  process nothing;
- `bare_fork_cpu_ms`: the CPU cost of one fork + _exit + wait of a fresh interpreter
  (FORK_PROBE, its source), the least any fresh-process-per-candidate verifier pays.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

# Runs in its own process so that reading /proc costs this process nothing. Commands on
# stdin: "start" resets the peaks, "stop" prints them as one JSON line.
SAMPLER = r'''
import json, os, sys, threading, time
root, interval, me = int(sys.argv[1]), float(sys.argv[2]), os.getpid()
peak = {"rss_kb": 0, "pss_kb": 0, "processes": 0, "samples": 0}
lock, active = threading.Lock(), False

def tree(pid):
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        if p == me:
            continue
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out

def sample():
    rss = pss = n = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                fields = dict(line.split(":", 1) for line in fh.read().splitlines()[1:] if ":" in line)
            rss += int(fields["Rss"].split()[0])
            pss += int(fields["Pss"].split()[0])
            n += 1
        except (OSError, KeyError, ValueError):
            pass
    return rss, pss, n

def loop():
    while True:
        time.sleep(interval)
        with lock:
            if not active:
                continue
            rss, pss, n = sample()
            peak["samples"] += 1
            if rss > peak["rss_kb"]:
                peak["rss_kb"] = rss
            if pss > peak["pss_kb"]:
                peak["pss_kb"] = pss
            if n > peak["processes"]:
                peak["processes"] = n

threading.Thread(target=loop, daemon=True).start()
for line in sys.stdin:
    with lock:
        if line.strip() == "start":
            for key in peak:
                peak[key] = 0
            active = True
            rss, pss, n = sample()
            peak.update(rss_kb=rss, pss_kb=pss, processes=n)
        elif line.strip() == "stop":
            active = False
            rss, pss, n = sample()
            peak.update(rss_kb=max(rss, peak["rss_kb"]), pss_kb=max(pss, peak["pss_kb"]), processes=max(n, peak["processes"]))
            sys.stdout.write(json.dumps(peak) + "\n")
            sys.stdout.flush()
'''


def tree_cpu_seconds(exclude: int) -> float:
    """CPU seconds (user + system) used so far by this process and all its descendants:
    this process, its reaped children (getrusage), and every live descendant's own and
    reaped-children times from /proc. Differences over an interval are robust to other
    load on the machine in a way wall time is not. `exclude`: the sampler's pid."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    ticks = 0
    stack = [os.getpid()]
    while stack:
        pid = stack.pop()
        try:
            if pid != os.getpid():
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    stack.extend(c for c in map(int, fh.read().split()) if c != exclude)
        except (OSError, ValueError):
            pass
    return total + ticks / os.sysconf("SC_CLK_TCK")


class MemorySampler:
    """Peak RSS and PSS summed over this process's tree, sampled from another process."""

    def __init__(self, interval_s: float = 0.1):
        self.process = subprocess.Popen([sys.executable, "-c", SAMPLER, str(os.getpid()), str(interval_s)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        self.process.stdin.write("start\n")
        self.process.stdin.flush()

    def stop(self) -> dict:
        self.process.stdin.write("stop\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


# Run in a fresh interpreter (smaller than this process, as a fork server's zygote is).
FORK_PROBE = r"""
import os, resource, sys
def cpu():
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
n, started = int(sys.argv[1]), cpu()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print(1000 * (cpu() - started) / n)
"""


def bare_fork_cpu_ms(n: int = 2000) -> float:
    """CPU ms (parent and child) of one fork + _exit + wait of a fresh interpreter doing
    nothing else: the least any verifier that gives each candidate a fresh forked Python
    process pays per candidate, before isolation, messages or judging."""
    done = subprocess.run([sys.executable, "-c", FORK_PROBE, str(n)], capture_output=True, text=True, check=True)
    return float(done.stdout)
