"""Subprocesses that can never hang a probe.

Touches: starts the processes it is given (own session, stdin closed, cwd /) and kills their whole
process group on timeout. Nothing else.

``subprocess.run(timeout=...)`` kills only the direct child: a shell script (a wrapper ``nvidia-smi``,
a ``python`` shim) that started a grandchild keeps the output pipe open and ``communicate()`` then
waits for the grandchild. Every probe subprocess therefore runs in its own session and the whole
process group is killed on timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

# The line prefix a child script puts before its JSON payload (anything else on stdout is noise).
PAYLOAD_MARK = "@@envdoctor-payload@@"

# Children started and not yet collected. They run in sessions of their own, so a terminal's Ctrl-C
# does not reach them: :func:`kill_all` ends them when envdoctor itself is interrupted.
_live: set[subprocess.Popen] = set()
# Re-entrant: :func:`ending_children_on_signal`'s handler runs in the main thread, possibly while
# that thread is inside :func:`start` or :func:`wait` holding the lock.
_live_lock = threading.RLock()
# Set once envdoctor is interrupted: a probe thread that starts a child afterwards kills it at once.
_stopping = threading.Event()


@dataclass
class Completed:
    returncode: int | None  # None when it timed out
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def signal_name(self) -> str | None:
        """The signal that killed the process ("SIGSEGV"), if it died of one."""
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def payload(self) -> dict[str, Any] | None:
        """The JSON object a child script printed after :data:`PAYLOAD_MARK`, if any."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(PAYLOAD_MARK):
                try:
                    data = json.loads(line[len(PAYLOAD_MARK) :])
                except ValueError:
                    return None
                return data if isinstance(data, dict) else None
        return None

    def stderr_tail(self) -> str:
        """The last non-empty line of stderr (where a traceback ends with the exception)."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def run(
    argv: list[str], timeout: float, cwd: str | None = "/", env: dict[str, str] | None = None
) -> Completed:
    """Run ``argv`` with a hard timeout that also kills its grandchildren; never raises on timeout.

    ``cwd`` defaults to ``/`` so that nothing in the user's current directory is read or imported.
    Raises OSError when the program cannot be started at all.
    """
    return wait(start(argv, cwd, env), timeout)


def start(argv: list[str], cwd: str | None = "/", env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``argv`` in its own session (so that :func:`wait` can kill the whole group); may raise OSError."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with _live_lock:
        _live.add(proc)
    if _stopping.is_set():
        _kill_group(proc)
    return proc


def wait(proc: subprocess.Popen, timeout: float) -> Completed:
    """Collect a started process's output; past ``timeout`` seconds kill its group and say so."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return Completed(None, _text(out), _text(err), timed_out=True)
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        with _live_lock:
            _live.discard(proc)
    return Completed(proc.returncode, _text(out), _text(err))


def kill_all() -> None:
    """Kill the process group of every child still running (envdoctor was interrupted while probing).

    Probe threads wait on their children; only the main thread sees Ctrl-C, so it ends them here
    rather than leaving a hung ``import torch`` or NVML call running after envdoctor has exited.
    """
    _stopping.set()
    with _live_lock:
        running = list(_live)
    for proc in running:
        _kill_group(proc)


@contextmanager
def ending_children_on_signal() -> Iterator[threading.Event]:
    """While the block runs, SIGINT and SIGTERM kill every child at once; the block then ends early.

    The event yielded is set on the signal: the block stops waiting when it is (probe threads end
    soon anyway, their children being dead). The interruption itself is raised when the block
    ends, as the handler in place before would have raised it. Python's way, raising from the
    handler, lands the exception wherever the main thread happens to be: inside a finalizer
    (importlib's module-lock callback) it is printed as "Exception ignored" and lost, and inside
    an ``exec`` of source text (dataclasses build their methods so) CPython marks it unhandled
    even once caught, and the process dies of SIGINT at exit instead of returning 130. Outside
    the main thread (where handlers cannot be installed) only an exception ending the block
    kills the children.
    """
    received: list[int] = []
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            sig: signal.getsignal(sig)
            for sig in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(sig) is not signal.SIG_IGN
        }

    def interrupted(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        kill_all()

    for sig in previous:
        signal.signal(sig, interrupted)
    try:
        yield stop
    except BaseException:  # whatever ends the block early: the children live in sessions of their own
        kill_all()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stopping.clear()
    if received:
        _interrupt_as_before(previous[received[0]], received[0])


def _interrupt_as_before(handler: Any, signum: int) -> None:
    """Do what the handler in place before :func:`ending_children_on_signal` would have done."""
    if callable(handler):
        handler(signum, None)
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt
    else:  # SIG_DFL for SIGTERM: end the process, as the default would, but unwinding
        raise SystemExit(128 + signum)


def run_python(python: str, source: str, timeout: float) -> Completed:
    """Run ``source`` with ``python -c`` from ``/`` (never the user's directory), output as text."""
    return run(python_argv(python, source), timeout=timeout)


def python_argv(python: str, source: str) -> list[str]:
    """``python -c source`` for a child that dies with envdoctor, SIGKILL included.

    The children run in sessions of their own, so nothing else would end a hung ``import torch``
    left by a killed envdoctor. On Linux the child asks for SIGKILL when the thread that started it
    ends (PR_SET_PDEATHSIG; probe threads outlive their children) and exits at once if envdoctor
    was already gone. Costs the child one ctypes import.
    """
    prologue = (
        "import sys as _sys\n"
        "if _sys.platform == 'linux':\n"
        "    try:\n"
        "        import ctypes as _ctypes, os as _os\n"
        "        _ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL\n"
        f"        if _os.getppid() != {os.getpid()}:\n"
        "            _os._exit(1)\n"
        "    except Exception:\n"
        "        pass\n"
    )
    return [python, "-c", prologue + source]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _text(data: bytes | None) -> str:
    return data.decode("utf-8", errors="replace") if data else ""
