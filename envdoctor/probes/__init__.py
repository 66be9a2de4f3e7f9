"""Probes: everything ``envdoctor check`` learns about an environment, gathered into :class:`Facts`.

Touches: runs the probes below in threads; through them, child processes (the target interpreter,
envdoctor's own for NVML, nvidia-smi, nvcc, gcc) and reads of files and the Docker socket. Writes nothing.

Each probe is isolated (its crash becomes one line in ``Facts.probe_errors``), bounded by a timeout
and run concurrently with the others. The torch child starts first because it is the slowest: the
whole check takes about one ``import torch``. Probes never decide anything; rules read the facts.

Probe threads are plain daemon threads, joined with a timeout, rather than a ThreadPoolExecutor:
the executor joins its workers at interpreter exit, so an NVML call stuck in a wedged driver would
hang envdoctor after the report was printed.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import envdoctor
from envdoctor.errors import EnvdoctorError
from envdoctor.facts import Facts, NvidiaError, NvidiaFacts, TorchFacts, TorchStatus
from envdoctor.probes import _process

# Seconds a probe may take (torch gets longer: a cold import from a network filesystem is slow).
# Overridable with ENVDOCTOR_PROBE_TIMEOUT / ENVDOCTOR_TORCH_TIMEOUT or collect()'s arguments.
PROBE_TIMEOUT = 10.0
TORCH_TIMEOUT = 20.0
# Extra time a probe thread gets beyond its own subprocess timeout before it is declared hung.
_GRACE = 2.0
_TIMED_OUT = "timed out after"
# Seconds between looks at the interruption flag while the probes run.
_POLL = 0.1


class ProbeTargetError(EnvdoctorError):
    """The ``--python`` target is not a runnable Python interpreter (the message is one line)."""


def collect(
    python: str | None = None,
    quick: bool = False,
    *,
    probe_timeout: float | None = None,
    torch_timeout: float | None = None,
    while_waiting: Callable[[], object] | None = None,
) -> Facts:
    """Probe the machine and the target interpreter (this one by default) into one snapshot.

    ``quick`` skips importing torch (its build is still read from torch/version.py).
    ``while_waiting`` runs in this thread once the probes are under way (``check`` loads its rules).
    Raises :class:`ProbeTargetError` when ``python`` is not a runnable Python 3.8+ interpreter.
    """
    target = resolve_target(python) if python is not None else sys.executable
    probe_timeout = probe_timeout or _env_seconds("ENVDOCTOR_PROBE_TIMEOUT", PROBE_TIMEOUT)
    torch_timeout = torch_timeout or _env_seconds("ENVDOCTOR_TORCH_TIMEOUT", TORCH_TIMEOUT)
    probes: dict[str, tuple[Callable[[], Any], float]] = {}
    with _process.ending_children_on_signal() as interrupted:
        if not quick:  # the child is spawned before anything else is imported: it is the critical path
            from envdoctor.probes import torch_runtime

            torch_done = torch_runtime.start(target)
            probes["torch"] = (lambda: torch_done(torch_timeout), torch_timeout + _GRACE)

        from envdoctor.probes import cuda, docker_engine, nvidia, system, toolchain
        from envdoctor.probes import target as target_probe

        facts = Facts(envdoctor_version=envdoctor.__version__, origin="probe")
        probes["target"] = (lambda: target_probe.probe(target, probe_timeout), probe_timeout + _GRACE)
        probes["system"] = (system.probe, probe_timeout)
        probes["nvidia"] = (lambda: nvidia.probe(probe_timeout), probe_timeout + _GRACE)
        probes["cuda"] = (lambda: cuda.probe(probe_timeout), probe_timeout + _GRACE)
        probes["docker"] = (lambda: docker_engine.probe(probe_timeout), probe_timeout + _GRACE)
        probes["toolchain"] = (lambda: toolchain.probe(probe_timeout), probe_timeout + _GRACE)

        results = _run_concurrently(probes, facts, while_waiting, interrupted)

    env = results.get("target")
    if isinstance(env, target_probe.TargetNotPython):
        raise ProbeTargetError(f"--python {target}: {env}")
    if isinstance(env, target_probe.TargetResult):
        facts.python, facts.packages = env.python, env.packages
        if isinstance(results.get("cuda"), type(facts.cuda)):
            results["cuda"].libraries = (results["cuda"].libraries or []) + cuda.wheel_libraries(
                env.nvidia_roots
            )
    for name in ("system", "nvidia", "cuda", "docker", "torch", "toolchain"):
        value = results.get(name)
        if value is not None and not isinstance(value, BaseException):
            setattr(facts, name, value)
    nvidia_error = facts.probe_errors.get("nvidia")
    if nvidia_error and facts.nvidia.error is None:  # NVML itself hung or crashed
        error: NvidiaError = "timeout" if _timed_out(nvidia_error) else "error"
        facts.nvidia = NvidiaFacts(error=error, error_detail=nvidia_error)
    torch_error = facts.probe_errors.get("torch")
    if quick:
        facts.torch = TorchFacts(status="skipped")
    elif torch_error and facts.torch.status == "unknown":
        status: TorchStatus = "timeout" if _timed_out(torch_error) else "unknown"
        facts.torch = TorchFacts(status=status, error=torch_error)
    return facts


def _timed_out(probe_error: str) -> bool:
    return probe_error.startswith(_TIMED_OUT)


def resolve_target(python: str) -> str:
    """The interpreter to probe: a path to python, or a venv/conda directory holding bin/python."""
    path = Path(python).expanduser()
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "bin" / "python3", path / "python.exe"):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise ProbeTargetError(f"--python {python}: a directory without bin/python")
    if not path.exists():
        raise ProbeTargetError(f"--python {python}: no such file")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ProbeTargetError(f"--python {python}: not an executable file")
    return str(path.absolute())


def _run_concurrently(
    probes: dict[str, tuple[Callable[[], Any], float]],
    facts: Facts,
    while_waiting: Callable[[], object] | None = None,
    interrupted: threading.Event | None = None,
) -> dict[str, Any]:
    """Run every probe in its own daemon thread; return name -> result or the exception it raised.

    Waiting stops early once ``interrupted`` is set (the caller then raises the interruption).

    A probe that raises or outlives its timeout is recorded in ``facts.probe_errors`` (one line)
    and ``facts.timings``; the target probe's ``TargetNotPython`` is returned for the caller to raise.
    """
    from envdoctor.probes.target import TargetNotPython

    threads: dict[str, threading.Thread] = {}
    outcomes: dict[str, tuple[Any, BaseException | None]] = {}
    started = time.monotonic()
    for name, (fn, _timeout) in probes.items():  # in order: torch first, it is the slowest
        threads[name] = threading.Thread(
            target=_complete, args=(outcomes, fn, name, facts), name=f"probe-{name}", daemon=True
        )
        threads[name].start()
    if while_waiting is not None:
        while_waiting()
    results: dict[str, Any] = {}
    stop = interrupted or threading.Event()
    for name, thread in threads.items():
        _timeout = probes[name][1]
        while thread.is_alive() and not stop.is_set() and time.monotonic() < started + _timeout:
            thread.join(min(started + _timeout - time.monotonic(), _POLL))  # a signal cannot end a join
        if stop.is_set():
            return results
        if name not in outcomes:  # still running: left behind, it cannot keep envdoctor from exiting
            facts.probe_errors[name] = f"{_TIMED_OUT} {_timeout:g}s"
            facts.timings[name] = round(time.monotonic() - started, 3)
            continue
        value, exc = outcomes[name]
        if exc is not None and not isinstance(exc, TargetNotPython):
            facts.probe_errors[name] = _one_line(exc)
        results[name] = exc if exc is not None else value
    return results


def running_probes() -> list[str]:
    """Names of the probes still running (their threads are named ``probe-<name>``), torch first."""
    return [
        t.name[len("probe-") :] for t in threading.enumerate() if t.name.startswith("probe-") and t.is_alive()
    ]


def _complete(
    outcomes: dict[str, tuple[Any, BaseException | None]], fn: Callable[[], Any], name: str, facts: Facts
) -> None:
    started = time.monotonic()
    try:
        outcome: tuple[Any, BaseException | None] = (fn(), None)
    except BaseException as exc:  # noqa: BLE001 - a probe's crash must not reach the user as a traceback
        outcome = (None, exc)
    facts.timings.setdefault(name, round(time.monotonic() - started, 3))
    outcomes[name] = outcome


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _env_seconds(name: str, default: float) -> float:
    """A positive, finite number of seconds from the environment, else ``default``.

    ``inf`` and ``nan`` count as unset: a probe without a bound could hang the whole check.
    """
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default
