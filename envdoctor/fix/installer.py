"""The installer process: ``<python> -m pip`` (or ``uv pip --python <python>`` when uv is on PATH).

The only module that starts pip. Each command runs in its own process group and session, bounded by
a timeout, holding the prefix's lock fd, killed with envdoctor (PR_SET_PDEATHSIG); SIGINT, SIGTERM
and SIGHUP received meanwhile are remembered and forwarded to it (:class:`Interrupts`). Touches the
target only through the installer it runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

PIP_TIMEOUT_S = 1800.0  # one pip command (a CUDA torch download is several GB)
STOP_GRACE_S = 30.0  # after a forwarded SIGINT/SIGTERM, time the installer gets to stop before SIGKILL


def installer_argv(python: str, args: list[str]) -> list[str]:
    """``<python> -m pip ARGS``, or ``uv pip ARGS --python <python>`` when uv is on PATH."""
    uv = shutil.which("uv")
    if uv is None:
        return [python, "-m", "pip", "--disable-pip-version-check", *args]
    translated = [
        {"--force-reinstall": "--reinstall"}.get(a, a) for a in args if a not in ("-y", "--no-input")
    ]
    return [uv, "pip", translated[0], "--python", python, *translated[1:]]


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP during a transaction: remembered and forwarded to the installer's
    process group (started in a session of its own, so a terminal's Ctrl-C reaches only envdoctor);
    the transaction then rolls back instead of dying half-way."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self.child: subprocess.Popen | None = None
        self.raising = False  # raise KeyboardInterrupt too (while a smoke-train runs)
        self._saved: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._saved = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received = self.received or signum
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, signum)
        if self.raising:
            raise KeyboardInterrupt

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The installer gets SIGKILL when envdoctor dies (SIGKILL included): it never runs on detached."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None


@dataclass
class StepResult:
    command: str
    ok: bool
    seconds: float
    detail: str = ""  # last line of the installer's error output on failure


def run_pip(
    python: str, args: list[str], timeout: float, guard: Interrupts | None = None, lock_fd: int | None = None
) -> StepResult:
    """One installer command, bounded by ``timeout``; after a forwarded signal, by :data:`STOP_GRACE_S`.

    The installer inherits the prefix's lock (``lock_fd``): were it ever to outlive envdoctor, no
    other fix or rollback could start until it ended.
    """
    argv = installer_argv(python, args)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=() if lock_fd is None else (lock_fd,),
            preexec_fn=_die_with_parent,
        )
    except OSError as exc:
        return StepResult(shlex.join(argv), False, 0.0, f"cannot start: {exc.strerror or exc}")
    if guard is not None:
        guard.child = proc
    deadline, detail = start + timeout, ""
    while True:
        try:
            out, err = proc.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if guard is not None and guard.received and deadline > now + STOP_GRACE_S:
                deadline = now + STOP_GRACE_S
            if now >= deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                detail = (
                    "stopped" if guard is not None and guard.received else f"timed out after {timeout:.0f} s"
                )
                break
    if guard is not None:
        guard.child = None
    text = (err or out or b"").decode("utf-8", errors="replace")
    context = (out or b"").decode("utf-8", errors="replace") if err else ""  # pip's conflict causes
    ok = proc.returncode == 0 and not detail
    if guard is not None and guard.received:
        detail = f"interrupted by {guard.name}"
    return StepResult(
        shlex.join(argv), ok, time.monotonic() - start, detail or ("" if ok else _error_line(text, context))
    )


# pip's last line after a resolver conflict points at its docs; the line before it says what conflicts.
_GENERIC = "ResolutionImpossible: for help visit"
_UNREACHABLE = re.compile(r"Failed to establish a new connection: \[Errno -?\d+\] ([^'\"]+)|Read timed out")


def _error_line(text: str, context: str = "") -> str:
    """The line of pip's output that says why it failed, with what it needs to be understood.

    ``text`` is pip's stderr (else its stdout), ``context`` its stdout, where a resolver conflict's causes
    are printed ("The user requested (constraint) torch<=2.14.1"): they are kept, and an index that could
    not be reached is said, since pip then reports only what it could not find.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    every = lines + [line.strip() for line in context.splitlines() if line.strip()]
    errors = [
        line
        for line in lines
        if (line.startswith("ERROR") or "error" in line.lower()) and _GENERIC not in line
    ]
    found = (errors or lines or ["failed"])[-1]
    if "conflicting dependencies" in found and "The conflict is caused by:" in every:
        start = every.index("The conflict is caused by:") + 1
        causes = [line for line in every[start:] if "requested" in line or " depends on " in line]
        found += f" ({'; '.join(causes)})" if causes else ""
    unreachable = next((m for line in every if (m := _UNREACHABLE.search(line))), None)
    if unreachable:
        found += f" [an index could not be reached: {(unreachable.group(1) or unreachable.group(0)).strip()}]"
    return found[:400]
