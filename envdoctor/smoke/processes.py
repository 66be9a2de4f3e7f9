"""Stopping a whole process tree: torchrun and every worker it started, wherever they are.

Signalling torchrun's process group is not enough: torchrun may start its workers in sessions of
their own, and a worker that is stopped (SIGSTOP, a debugger) ignores SIGTERM until continued, so
once torchrun is killed they live on, re-parented to PID 1. The tree is therefore read from /proc
before anything is signalled, and every process in it is signalled by its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first), read from /proc; empty where there is none."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def stop_tree(proc: subprocess.Popen, sig: int, grace_s: float) -> None:
    """Send ``sig`` to ``proc``'s group and every descendant, give them ``grace_s`` seconds to exit,
    then SIGKILL whatever of the tree is left (stopped processes included); reap ``proc``."""
    tree = descendants(proc.pid)
    _signal(proc.pid, tree, sig)
    _signal(proc.pid, tree, signal.SIGCONT)  # a stopped process acts on sig only once continued
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    _signal(proc.pid, tree + descendants(proc.pid), signal.SIGKILL)
    proc.wait()


def _signal(leader: int, pids: list[int], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
