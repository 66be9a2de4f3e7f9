"""The NVIDIA driver and GPUs, through NVML (``nvidia-ml-py``), with ``nvidia-smi`` as a fallback.

NVML is a library call (milliseconds, no subprocess). ``nvidia-smi`` is used only when NVML cannot
be loaded (no ``pynvml``, or no libnvidia-ml where the Python process looks) and it is on PATH;
it runs with a timeout because a wedged driver makes it hang. NVML init can hang too: the caller
runs this probe in a thread with a deadline.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time

from envdoctor.facts import Gpu, NvidiaFacts
from envdoctor.probes import _process

SMI_FIELDS = ("index", "name", "driver_version", "memory.total", "compute_cap", "mig.mode.current")


def probe(timeout: float) -> NvidiaFacts:
    """Driver version, the CUDA version it supports and every GPU; a mapped error when unavailable."""
    facts = probe_nvml()
    if facts.error in (None, "driver-library-mismatch", "no-device"):
        return facts
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return facts
    return probe_smi(smi, timeout)


def probe_nvml() -> NvidiaFacts:
    import ctypes

    try:  # the library pynvml loads: where it is absent, skip importing pynvml (tens of ms)
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as exc:
        return NvidiaFacts(
            source="nvml", error="driver-missing", error_detail=f"NVML library not found ({exc})"
        )
    try:
        import pynvml
    except ImportError as exc:
        return NvidiaFacts(
            source="nvml", error="error", error_detail=f"nvidia-ml-py is not installed ({exc})"
        )
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return NvidiaFacts(source="nvml", error=nvml_error_kind(exc), error_detail=str(exc))
    try:
        facts = NvidiaFacts(source="nvml", gpus=[])
        facts.driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
        facts.cuda_driver_version = cuda_version_string(pynvml.nvmlSystemGetCudaDriverVersion())
        count = pynvml.nvmlDeviceGetCount()
        for index in range(count):
            facts.gpus.append(_nvml_gpu(pynvml, index))
        if count == 0:
            facts.error, facts.error_detail = "no-device", "NVML sees no GPU"
        return facts
    except pynvml.NVMLError as exc:
        return NvidiaFacts(source="nvml", error=nvml_error_kind(exc), error_detail=str(exc))
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _nvml_gpu(pynvml, index: int) -> Gpu:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    gpu = Gpu(index=index, name=_text(pynvml.nvmlDeviceGetName(handle)))
    with contextlib.suppress(pynvml.NVMLError):
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        gpu.compute_capability = f"{major}.{minor}"
    with contextlib.suppress(pynvml.NVMLError):
        gpu.memory_total_mib = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
        gpu.mig_mode = bool(current)
    except pynvml.NVMLError_NotSupported:
        gpu.mig_mode = False
    except pynvml.NVMLError:
        pass
    return gpu


def nvml_error_kind(exc: Exception) -> str:
    """Map an NVML error to the facts' error vocabulary."""
    name = type(exc).__name__
    text = str(exc).lower()
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
    gpus = []
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
            memory = int(float(row["memory.total"])) if row.get("memory.total") else None
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


def smi_error_kind(text: str) -> str:
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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
