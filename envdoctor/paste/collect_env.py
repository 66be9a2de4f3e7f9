"""PyTorch's ``python -m torch.utils.collect_env`` and vLLM's ``vllm collect-env`` (old and new layouts).

Both print ``Key: value`` lines (vLLM pads them: ``PyTorch version   : 2.7.0``), GPUs on continuation
lines (``GPU 0: NVIDIA H100 80GB HBM3``), cuDNN library paths under ``Probably one of the following``
and the ``[pip3] torch==2.1.0`` / ``[conda] pytorch 2.0.1 py3.10_cuda11.8_cudnn8.7.0_0 pytorch`` lines.
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import LISTING, STATED, TOOL, Builder
from envdoctor.paste.text import is_unknown, key_values, short_version, truth, version_in

# An index of at most three digits: 'GPU 00000000:07:00.0' in `nvidia-smi -q` is a PCI bus id.
_GPU_LINE = re.compile(r"^\s*GPU\s+(?P<idx>\d{1,3}(?:\s*,\s*\d{1,3})*)\s*:\s*(?P<name>\S.*?)\s*$")
_PIP_LINE = re.compile(r"^\s*\[(?:pip\d?|conda)\]\s+(?P<rest>\S.*)$")
_LIB_PATH = re.compile(r"^\s*(?P<path>(?:/|[A-Za-z]:\\)\S*(?:libcudnn|cudnn)\S*)\s*$")
# Keys of hand-written environment lists ("- GPU: ...", "- Driver: 535.104.05").
_GPU_KEYS = {"gpu", "gpus", "gpu model", "gpu models", "gpu name", "graphics card"}
_DRIVER_KEYS = {"driver", "driver version", "nvidia driver", "gpu driver", "nvidia driver version"}
_DRIVER = re.compile(r"\d{3}\.\d{1,3}(?:\.\d{1,3})?")
# Old collect_env layouts and pastes without the colon: "PyTorch version 1.5.0".
_TORCH_NO_COLON = re.compile(r"^\s*PyTorch version\s+(?P<v>\d+\.\d+\S*)\s*$", re.I)
_OS = re.compile(r"^(?P<os>(?:.*\S)?)\s*\((?P<arch>x86_64|aarch64|arm64|ppc64le|AMD64|i386|s390x)\)\s*$")


def parse(lines: list[str], b: Builder) -> None:
    """Read collect_env / collect-env lines into the builder."""
    for i, key, value in key_values(lines):
        _key(key, value, b)
        if key == "cudnn version":
            _cudnn_paths([value, *lines[i + 1 : i + 40]], b)
    for line in lines:
        m = _TORCH_NO_COLON.match(line)
        if m:
            b.put("torch.version", m.group("v"), STATED)
        m = _PIP_LINE.match(line)
        if m:
            _pip_conda(m.group("rest"), line.lstrip().startswith("[conda]"), b)
        gpu_row(line, b)


def _key(key: str, value: str, b: Builder) -> None:
    if key in ("pytorch version", "torch version", "pytorch", "torch"):
        b.put("torch.version", version_in(value.split("@")[0]), STATED)
    elif key == "cuda used to build pytorch":
        if value.strip().lower() == "none":
            b.torch_build(None, STATED)
        elif value.strip().lower() == "could not collect":
            # collect_env prints None as "Could not collect": torch imported and torch.version.cuda is
            # None, i.e. a CPU (or ROCm) build; a torch that fails to import prints "N/A" instead.
            b.torch_build(None, LISTING)
        elif not is_unknown(value):
            b.torch_build(short_version(value), STATED)
    elif key == "rocm used to build pytorch":
        b.put("torch.hip", short_version(value), STATED)
    elif key == "is cuda available":
        b.put("torch.cuda_available", truth(value), STATED)
    elif key == "cuda runtime version":
        # collect_env runs `nvcc --version` for this line: it is the toolkit, not torch's runtime.
        b.put("cuda.nvcc_version", short_version(value), TOOL)
    elif key == "gpu models and configuration":
        if not gpu_row(value, b) and not is_unknown(value):
            b.gpu(None, value)  # old layout with one GPU: the bare name
    elif key == "nvidia driver version":
        b.put("nvidia.driver_version", version_in(value), STATED)
    elif key in _GPU_KEYS and not is_unknown(value):
        b.gpu(None, value)  # hand-written lists: "- **GPU**: NVIDIA GeForce RTX 5090 (32GB GDDR7)"
    elif key in _DRIVER_KEYS and _DRIVER.fullmatch(value.strip()):
        b.put("nvidia.driver_version", value.strip(), LISTING)
    elif key == "python version":
        b.put("python.version", short_version(value, 3), STATED)
    elif key == "python platform":
        platform(value, b)
    elif key == "os":
        m = _OS.match(value)
        b.put("system.os", (m.group("os") if m else value.strip()) or None, STATED)
        b.put("system.arch", m.group("arch") if m else None, STATED)
    elif key == "libc version":
        b.put("system.glibc", short_version(value.replace("glibc-", "")), STATED)
    elif key in ("vllm version", "vllm"):
        if vllm := version_in(value):
            b.package("vllm", vllm, STATED)
    elif key == "cuda_module_loading set to":
        b.env.setdefault("CUDA_MODULE_LOADING", value.strip())
    elif key in ("architecture",) and value.strip() in ("x86_64", "aarch64", "ppc64le", "arm64"):
        b.put("system.arch", value.strip(), TOOL)
    elif key in ("cpu(s)",) and value.strip().isdigit():
        b.put("system.cpu_count", int(value), TOOL)
    elif key == "model name":
        b.put("system.cpu", value.strip(), TOOL)


def gpu_row(line: str, b: Builder) -> bool:
    """'GPU 0: NVIDIA H100 80GB HBM3' or 'GPU 0,1: Tesla V100' (nvidia-smi -L adds '(UUID: ...)')."""
    m = _GPU_LINE.match(line)
    if m:
        for idx in re.split(r"\s*,\s*", m.group("idx")):
            b.gpu(int(idx), m.group("name"))
    return m is not None


def platform(value: str, b: Builder) -> None:
    """'Linux-5.15.0-88-generic-x86_64-with-glibc2.35' -> kernel, arch and glibc."""
    m = re.match(
        r"Linux-(?P<kernel>.+?)-(?P<arch>x86_64|aarch64|ppc64le)(?:-with-glibc(?P<glibc>[\d.]+))?", value
    )
    if m:
        b.put("system.kernel", m.group("kernel"), TOOL)
        b.put("system.arch", m.group("arch"), TOOL)
        b.put("system.glibc", m.group("glibc"), TOOL)
        b.put("system.os", "Linux", 1)
    elif value.strip().startswith(("Windows", "macOS", "Darwin")):
        b.put("system.os", value.strip(), 1)


def _cudnn_paths(candidates: list[str], b: Builder) -> None:
    """The cuDNN library paths on the key line and the lines under 'Probably one of the following:'."""
    for n, line in enumerate(candidates):
        m = _LIB_PATH.match(line)
        if m:
            b.library(m.group("path"))
        elif n > 0 and line.strip():
            break


def _pip_conda(rest: str, conda: bool, b: Builder) -> None:
    """'torch==2.1.0+cu121' or 'pytorch 2.0.1 py3.10_cuda11.8_cudnn8.7.0_0 pytorch'."""
    if "==" in rest:
        name, _, version = rest.partition("==")
        if name.strip() and version.split():  # "[pip3] torch==" in a paste cut mid-line states nothing
            b.package(name.strip(), version.split()[0], LISTING, "pip")
        return
    parts = rest.split()
    if len(parts) < 2 or not version_in(parts[1]):
        return
    name, version = parts[0], parts[1]
    channel = parts[3] if len(parts) > 3 else ""
    b.package(name, version, LISTING, "pip" if channel == "pypi" else "conda")
    if name == "pytorch" and len(parts) > 2:
        conda_build(parts[2], b)


def conda_build(build: str, b: Builder) -> None:
    """The conda build string of pytorch: 'py3.10_cuda11.8_cudnn8.7.0_0' or 'py3.9_cpu_0'."""
    m = re.search(r"cuda(\d+\.\d+)", build)
    if m:
        b.torch_build(m.group(1), LISTING)
    elif re.search(r"(?:^|_)cpu(?:_|$)", build):
        b.torch_build(None, LISTING)
    m = re.search(r"cudnn(\d+)\.(\d+)\.(\d+)", build)
    if m:
        major, minor, patch = (int(x) for x in m.groups())
        cudnn = major * 1000 + minor * 100 + patch if major < 9 else major * 10000 + minor * 100 + patch
        b.put("torch.cudnn_version", cudnn, LISTING)
