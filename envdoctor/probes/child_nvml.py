# Runs in a child of envdoctor's own interpreter as ``python -c <this file's text>``: NVML is native
# code that can crash (a broken libnvidia-ml) or hang (a wedged driver), and either must kill or stall
# only this child, never envdoctor. Prints one line: the payload mark followed by JSON with the driver,
# the CUDA version it supports and every GPU, or the NVML error (its class name and text).
# Touches: loads libnvidia-ml and makes read-only NVML queries; writes nothing, changes no GPU setting.
import contextlib
import json
import sys

MARK = "@@envdoctor-payload@@"

# `python -c` puts the current directory first on sys.path: never import from there.
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def failure(stage, exc):
    return {"stage": stage, "error_class": type(exc).__name__, "error": str(exc)}


def gpu(pynvml, index):
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    found = {"index": index, "name": text(pynvml.nvmlDeviceGetName(handle))}
    with contextlib.suppress(pynvml.NVMLError):
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        found["compute_capability"] = f"{major}.{minor}"
    with contextlib.suppress(pynvml.NVMLError):
        found["memory_total_mib"] = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
        found["mig_mode"] = bool(current)
    except pynvml.NVMLError_NotSupported:
        found["mig_mode"] = False
    except pynvml.NVMLError:
        pass
    return found


def probe():
    try:
        import pynvml
    except ImportError as exc:
        return {
            "stage": "import",
            "error_class": "ImportError",
            "error": f"nvidia-ml-py is not installed ({exc})",
        }
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return failure("init", exc)
    try:
        out = {"driver_version": text(pynvml.nvmlSystemGetDriverVersion())}
        try:  # older drivers lack it ("Function Not Found"): the rest is still worth reporting
            out["cuda_driver_version"] = pynvml.nvmlSystemGetCudaDriverVersion()
        except pynvml.NVMLError as exc:
            out["warning"] = f"nvmlSystemGetCudaDriverVersion: {exc}"
        count = pynvml.nvmlDeviceGetCount()
        out["gpus"] = [gpu(pynvml, index) for index in range(count)]
        return out
    except pynvml.NVMLError as exc:
        return failure("query", exc)
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


print(MARK + json.dumps(probe()), flush=True)
