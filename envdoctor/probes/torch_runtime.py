"""torch as the target interpreter really imports it, in a child process with a timeout.

Touches: one child process of the target interpreter that imports torch (and on a GPU runs a few tiny
kernels, see ``child_torch.py``). Writes nothing.

``import torch`` can raise, hang (a stuck driver, a network filesystem) or kill the process
(a segfault in a mismatched native library): each becomes a status, never envdoctor's own crash.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from envdoctor.facts import ScaledMmResult, TorchDevice, TorchFacts
from envdoctor.probes import _process

CHILD_SOURCE = Path(__file__).with_name("child_torch.py")


def start(python: str) -> Callable[[float], TorchFacts]:
    """Import torch in a child of ``python``, started now; return the call that waits for it.

    The returned call waits at most ``timeout`` seconds and reads what torch said about itself and the GPUs.

    ``check`` starts this before anything else: the import of torch is the whole check's critical path.
    """
    try:
        proc = _process.start(_process.python_argv(python, CHILD_SOURCE.read_text(encoding="utf-8")))
    except OSError as exc:
        failed = TorchFacts(status="import-error", error=f"cannot run {python}: {exc.strerror or exc}")
        return lambda _timeout: failed
    return lambda timeout: _read(_process.wait(proc, timeout), timeout)


def _read(done: _process.Completed, timeout: float) -> TorchFacts:
    if done.timed_out:
        return TorchFacts(status="timeout", error=f"import torch did not finish within {timeout:g}s")
    data = done.payload()
    if data is None:
        return TorchFacts(status="crashed", error=crash_message(done))
    return from_payload(data)


def crash_message(done: _process.Completed) -> str:
    """ "killed by SIGSEGV" (or the exit code) and the last line the process printed."""
    how = f"killed by {done.signal_name}" if done.signal_name else f"exited with code {done.returncode}"
    tail = done.stderr_tail()
    return f"{how}: {tail}" if tail else how


def from_payload(data: dict[str, Any]) -> TorchFacts:
    warnings = list(data.get("warnings") or [])
    warnings += [f"{key}: {text}" for key, text in (data.get("errors") or {}).items()]
    scaled = data.get("scaled_mm")
    return TorchFacts(
        status=data.get("status") or "unknown",
        error=data.get("error"),
        version=data.get("version"),
        cuda=data.get("cuda"),
        hip=data.get("hip"),
        cudnn_version=data.get("cudnn_version"),
        nccl_version=data.get("nccl_version"),
        cuda_available=data.get("cuda_available"),
        warnings=warnings if data.get("status") == "ok" or warnings else None,
        device_count=data.get("device_count"),
        arch_list=data.get("arch_list"),
        devices=[TorchDevice(**d) for d in data["devices"]] if data.get("devices") is not None else None,
        float8_dtypes=data.get("float8_dtypes"),
        scaled_mm=ScaledMmResult(ok=bool(scaled["ok"]), error=scaled.get("error")) if scaled else None,
        numpy_version=data.get("numpy_version"),
    )
