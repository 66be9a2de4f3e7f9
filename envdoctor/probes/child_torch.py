# Runs inside the TARGET interpreter as ``python -c <this file's text>``: Python 3.8+ syntax.
# Imports torch (only here, never in envdoctor's own process) and prints one line: the payload mark
# followed by JSON with what torch reports about itself and the GPUs. Every step is guarded so that
# one failing call is recorded and the rest still runs; a crash in native code kills only this child.
# Touches: imports torch; on a GPU, tiny kernels (a 16x16 float8 matmul on GPU 0); writes nothing.
import json
import os
import sys
import warnings

MARK = "@@envdoctor-payload@@"
FLOAT8 = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")

# `python -c` puts the current directory first on sys.path: never import from there.
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

result = {"warnings": []}  # type: dict
real_stdout = sys.stdout
sys.stdout = sys.stderr  # whatever torch prints must not mix with the payload line


def describe(exc):
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return type(exc).__name__ + (": " + lines[-1].strip() if lines else "")


def record(caught):
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message).strip()}"
        if text not in result["warnings"]:
            result["warnings"].append(text)


def guarded(key, fn):
    try:
        result[key] = fn()
    except Exception as exc:  # noqa: BLE001 - any failure of torch is a fact to report
        result.setdefault("errors", {})[key] = describe(exc)


def scaled_mm(torch):
    """A 16x16 float8 e4m3 matmul on GPU 0 (mat2 column-major, fp32 scales), as FP8 training does."""
    try:
        a = torch.randn(16, 16, device="cuda").to(torch.float8_e4m3fn)
        b = torch.randn(16, 16, device="cuda").to(torch.float8_e4m3fn).t()
        one = torch.tensor(1.0, device="cuda", dtype=torch.float32)
        torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        torch.cuda.synchronize()
        return {"ok": True, "error": None}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": describe(exc)}


def devices(torch):
    found = []
    for index in range(result.get("device_count") or 0):
        props = torch.cuda.get_device_properties(index)
        device = {
            "index": index,
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "total_memory_mib": int(props.total_memory) // (1024 * 1024),
            "bf16_supported": None,
        }
        try:
            with torch.cuda.device(index):
                device["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
        except Exception as exc:  # noqa: BLE001
            result.setdefault("errors", {})["bf16_supported"] = describe(exc)
        found.append(device)
    return found


def nccl_version(torch):
    version = torch.cuda.nccl.version()
    return ".".join(str(part) for part in version) if isinstance(version, tuple) else str(version)


def main():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import torch
        except ModuleNotFoundError as exc:
            record(caught)
            result["status"] = "missing" if exc.name == "torch" else "import-error"
            result["error"] = describe(exc)
            return
        except BaseException as exc:  # noqa: BLE001 - SystemExit or an OSError from a missing .so
            record(caught)
            result["status"] = "import-error"
            result["error"] = describe(exc)
            return
        result["status"] = "ok"
        result["version"] = getattr(torch, "__version__", None)
        version = getattr(torch, "version", None)
        result["cuda"] = getattr(version, "cuda", None)
        result["hip"] = getattr(version, "hip", None)
        result["float8_dtypes"] = [name for name in FLOAT8 if hasattr(torch, name)]
        guarded("cudnn_version", lambda: torch.backends.cudnn.version())
        if result["cuda"]:
            guarded("nccl_version", lambda: nccl_version(torch))
        guarded("cuda_available", lambda: bool(torch.cuda.is_available()))
        guarded("device_count", lambda: int(torch.cuda.device_count()))
        guarded("arch_list", lambda: list(torch.cuda.get_arch_list()))
        guarded("devices", lambda: devices(torch) if result.get("cuda_available") else [])
        if result.get("devices"):
            first = (result.get("devices") or [{}])[0]
            if first.get("capability") and tuple(map(int, first["capability"].split("."))) >= (8, 9):
                result["scaled_mm"] = scaled_mm(torch)
        numpy = sys.modules.get("numpy")
        if numpy is None:
            try:
                import numpy
            except ModuleNotFoundError as exc:
                if exc.name != "numpy":
                    result.setdefault("errors", {})["numpy_version"] = describe(exc)
            except Exception as exc:  # noqa: BLE001 - a numpy that fails to load is worth reporting
                result.setdefault("errors", {})["numpy_version"] = describe(exc)
        result["numpy_version"] = getattr(numpy, "__version__", None)
        record(caught)


main()
real_stdout.write(MARK + json.dumps(result) + "\n")
real_stdout.flush()
sys.stderr.flush()
# Nothing is left to do: skip the interpreter's teardown, which for torch takes about a fifth of
# the import's own time (modules, CUDA context and allocator caches are released with the process).
os._exit(0)
