"""The NVIDIA driver and GPUs, through NVML (``nvidia-ml-py``), with ``nvidia-smi`` as a fallback.

Touches: one child process of envdoctor's interpreter that loads NVML (read-only queries), else
``nvidia-smi``. Writes nothing; changes no GPU setting.

NVML is queried in a child process (``child_nvml.py``) with a timeout: it is native code, and a
broken ``libnvidia-ml`` can crash the process that loads it while a wedged driver makes it hang.
Either then costs this probe only (the status ``crashed`` / ``timeout`` and a finding), never
envdoctor. Where the library cannot be found no child is started, so machines without a GPU pay
nothing. ``nvidia-smi`` is used when NVML cannot answer and it is on PATH; it runs with a timeout too.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from envdoctor.facts import Gpu, NvidiaError, NvidiaFacts
from envdoctor.probes import _process
from envdoctor.probes.torch_runtime import crash_message

SMI_FIELDS = ("index", "name", "driver_version", "memory.total", "compute_cap", "mig.mode.current")
CHILD_SOURCE = Path(__file__).with_name("child_nvml.py")
NVML_LIBRARY = "libnvidia-ml.so.1"
DEFAULT_LIBRARY_DIRS = (
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/wsl/lib",
)
# NVML failures that are not facts about the machine (no driver, no GPU) but a broken probe.
NVML_BROKEN = ("crashed", "timeout", "error")


def probe(timeout: float) -> NvidiaFacts:
    """Driver version, the CUDA version it supports and every GPU; a mapped error when unavailable.

    When NVML failed and ``nvidia-smi`` answered instead, the NVML failure is kept in ``nvml_error``:
    the facts are good, but the driver stack is not healthy.
    """
    deadline = time.monotonic() + timeout
    facts = probe_nvml(timeout)
    if facts.error in (None, "driver-library-mismatch", "no-device"):
        return facts
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return facts
    fallback = probe_smi(smi, max(deadline - time.monotonic(), 1.0))
    if facts.error in NVML_BROKEN:
        fallback.nvml_error = f"{facts.error}: {facts.error_detail}"
    return fallback


def probe_nvml(timeout: float) -> NvidiaFacts:
    """NVML queried in a child process, so that a crashing or hanging libnvidia-ml costs one fact."""
    if not nvml_library_present():
        return NvidiaFacts(source="nvml", error="driver-missing", error_detail="NVML library not found")
    try:
        done = _process.run_python(sys.executable, CHILD_SOURCE.read_text(encoding="utf-8"), timeout)
    except OSError as exc:
        return NvidiaFacts(source="nvml", error="error", error_detail=f"cannot start the NVML probe: {exc}")
    if done.timed_out:
        detail = f"NVML did not answer within {timeout:g}s (a hung driver?)"
        return NvidiaFacts(source="nvml", error="timeout", error_detail=detail)
    data = done.payload()
    if data is None:
        return NvidiaFacts(source="nvml", error="crashed", error_detail=f"NVML {crash_message(done)}")
    return from_payload(data)


def from_payload(data: dict[str, Any]) -> NvidiaFacts:
    """Facts from the NVML child's payload (its error class mapped to the facts' vocabulary)."""
    if data.get("error_class"):
        detail = f"{data.get('stage')}: {data.get('error')}"
        return NvidiaFacts(
            source="nvml", error=error_kind(str(data["error_class"]), detail), error_detail=detail
        )
    version = data.get("cuda_driver_version")
    gpus = [Gpu(**g) for g in data.get("gpus") or []]
    facts = NvidiaFacts(
        source="nvml",
        driver_version=data.get("driver_version"),
        cuda_driver_version=cuda_version_string(version) if isinstance(version, int) else None,
        gpus=gpus,
    )
    if data.get("warning"):
        facts.nvml_error = f"error: {data['warning']}"
    if not gpus:
        facts.error, facts.error_detail = "no-device", "NVML sees no GPU"
    return facts


def nvml_library_present() -> bool:
    """Whether the dynamic loader could find libnvidia-ml.so.1, decided without loading it.

    Loading runs the library's code in this process: only the child does that. The search follows
    the loader's order: LD_LIBRARY_PATH, the ld.so cache, then the default directories.
    """
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    if any(os.path.exists(os.path.join(d, NVML_LIBRARY)) for d in dirs):
        return True
    try:
        with open("/etc/ld.so.cache", "rb") as cache:
            if NVML_LIBRARY.encode() in cache.read():
                return True
    except OSError:
        pass
    return any(os.path.exists(os.path.join(d, NVML_LIBRARY)) for d in DEFAULT_LIBRARY_DIRS)


def nvml_error_kind(exc: Exception) -> str:
    """Map an NVML error to the facts' error vocabulary."""
    return error_kind(type(exc).__name__, str(exc))


def error_kind(name: str, text: str) -> NvidiaError:
    """Map an NVML error class name ("NVMLError_DriverNotLoaded") and its text to the vocabulary."""
    text = text.lower()
    if name == "NVMLError_LibRmVersionMismatch" or "version mismatch" in text:
        return "driver-library-mismatch"
    if name in ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded"):
        return "driver-missing"
    if name in ("NVMLError_GpuNotFound", "NVMLError_NotFound"):
        return "no-device"
    if name == "NVMLError_Timeout":
        return "timeout"
    return "error"


def cuda_version_string(value: int) -> str:
    """NVML's integer CUDA version (12040) as "12.4"."""
    return f"{value // 1000}.{value % 1000 // 10}"


def probe_smi(smi: str, timeout: float) -> NvidiaFacts:
    """GPUs from ``nvidia-smi --query-gpu`` (and the supported CUDA version from its banner)."""
    deadline = time.monotonic() + timeout
    fields = list(SMI_FIELDS)
    while True:
        done = _run_smi(smi, [f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"], deadline)
        if isinstance(done, NvidiaFacts):
            return done
        text = done.stdout + done.stderr
        if done.returncode != 0 and "compute_cap" in fields and "not a valid field" in text:
            fields.remove("compute_cap")  # drivers before 510 cannot report it
            continue
        break
    if done.returncode != 0:
        return NvidiaFacts(source="nvidia-smi", error=smi_error_kind(text), error_detail=_first_line(text))
    driver, gpus = parse_smi_csv(done.stdout, fields)
    facts = NvidiaFacts(source="nvidia-smi", driver_version=driver, gpus=gpus)
    banner = _run_smi(smi, [], deadline)
    if isinstance(banner, NvidiaFacts):
        return banner
    match = re.search(r"CUDA Version:\s*([0-9]+\.[0-9]+)", banner.stdout)
    facts.cuda_driver_version = match.group(1) if match else None
    if not facts.gpus:
        facts.error, facts.error_detail = "no-device", "nvidia-smi lists no GPU"
    return facts


def _run_smi(smi: str, args: list[str], deadline: float) -> _process.Completed | NvidiaFacts:
    left = max(deadline - time.monotonic(), 0.1)
    try:
        done = _process.run([smi, *args], timeout=left)
    except OSError as exc:
        return NvidiaFacts(source="nvidia-smi", error="error", error_detail=f"cannot run {smi}: {exc}")
    if done.timed_out:
        detail = f"{smi} did not answer within {left:.1f}s (a hung driver?)"
        return NvidiaFacts(source="nvidia-smi", error="timeout", error_detail=detail)
    return done


def parse_smi_csv(text: str, fields: list[str]) -> tuple[str | None, list[Gpu]]:
    """The driver version and GPUs in ``--format=csv,noheader,nounits`` rows ("[N/A]" -> unknown)."""
    driver = None
    gpus: list[Gpu] = []
    for line in text.splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(fields):
            continue
        row = {
            k: (None if v.startswith("[") or v in ("", "N/A") else v)
            for k, v in zip(fields, values, strict=True)
        }
        try:
            index = int(row["index"] or len(gpus))
            total = row.get("memory.total")
            memory = int(float(total)) if total else None
        except ValueError:
            continue
        mig = row.get("mig.mode.current")
        driver = driver or row.get("driver_version")
        gpus.append(
            Gpu(
                index=index,
                name=row["name"] or "unknown",
                compute_capability=row.get("compute_cap"),
                memory_total_mib=memory,
                mig_mode=None if mig is None else mig.lower() == "enabled",
            )
        )
    return driver, gpus


def smi_error_kind(text: str) -> NvidiaError:
    low = text.lower()
    if "version mismatch" in low:
        return "driver-library-mismatch"
    if "couldn't communicate with the nvidia driver" in low or "nvml shared library not found" in low:
        return "driver-missing"
    if "no devices were found" in low:
        return "no-device"
    return "error"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")
