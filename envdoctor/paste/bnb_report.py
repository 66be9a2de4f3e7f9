"""``python -m bitsandbytes``: the report bitsandbytes' own warnings and issue form ask for.

Tool output: bitsandbytes asked torch (and, before 0.39, the CUDA runtime it found). Up to 0.42 it
prints ``CUDA SETUP:`` lines and an ``OTHER`` block::

    bin /opt/conda/lib/python3.10/site-packages/bitsandbytes-0.38.1-py3.10.egg/bitsandbytes/libbitsandbytes_cuda121.so
    CUDA SETUP: Highest compute capability among GPUs detected: 7.5
    CUDA SETUP: PyTorch settings found: CUDA_VERSION=121, Highest Compute Capability: 8.6.
    COMPUTE_CAPABILITIES_PER_GPU = ['8.6']

and from 0.43 the CUDA specs it took from torch::

    CUDA specs: CUDASpecs(highest_compute_capability=(8, 6), cuda_version_string='121', cuda_version_tuple=(12, 1))
    PyTorch settings found: CUDA_VERSION=121, Highest Compute Capability: (8, 6).
    Torch says CUDA is not available. Possible reasons:

``CUDA_VERSION`` there is torch.version.cuda (121 = 12.1). The highest capability stands for the GPU
only when the report names at most one. The ``Detected CUDA version`` of releases before 0.39 is the
runtime library it found, not necessarily torch's, and is not read.
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import TOOL, Builder

_CAPABILITY = re.compile(
    r"Highest compute capability among GPUs detected: (?P<cap>\d+\.\d+)"
    r"|Highest Compute Capability: \(?(?P<major>\d+)[.,] ?(?P<minor>\d+)\)?"
    r"|highest_compute_capability=\((?P<smajor>\d+), ?(?P<sminor>\d+)\)"
)
_TORCH_CUDA = re.compile(
    r"PyTorch settings found: CUDA_VERSION=(?P<v>\d{2,3})\b|cuda_version_string='(?P<s>\d{2,3})'"
)
_PER_GPU = re.compile(r"COMPUTE_CAPABILITIES_PER_GPU = \[(?P<caps>[^\]]*)\]")
_NO_CUDA = re.compile(r"\bTorch says CUDA is not available\b")
# An egg or source path names the release: .../bitsandbytes-0.38.1-py3.10.egg/bitsandbytes/...
_EGG = re.compile(r"[\\/]bitsandbytes-(?P<v>\d+\.\d+\.\d+(?:\.post\d+)?)-py\d")


def parse(lines: list[str], b: Builder) -> None:
    if not any("bitsandbytes" in line or "CUDA SETUP" in line or "CUDASpecs" in line for line in lines):
        return
    capabilities: set[str] = set()
    for line in lines:
        m = _CAPABILITY.search(line)
        if m:
            capabilities.add(
                m.group("cap")
                or f"{m.group('major') or m.group('smajor')}.{m.group('minor') or m.group('sminor')}"
            )
        per_gpu = _PER_GPU.search(line)
        if per_gpu:
            capabilities.update(re.findall(r"\d+\.\d+", per_gpu.group("caps")))
        cuda = _TORCH_CUDA.search(line)
        if cuda:
            digits = cuda.group("v") or cuda.group("s")
            b.torch_build(f"{digits[:-1]}.{digits[-1]}", TOOL)
        if _NO_CUDA.search(line):
            b.put("torch.cuda_available", False, TOOL)
        egg = _EGG.search(line)
        if egg:
            b.package("bitsandbytes", egg.group("v"), TOOL)
    # The highest capability is the GPU's only where the report knows of one GPU at most.
    if len(capabilities) == 1 and len(b.gpus) <= 1:
        b.gpu(0, capability=capabilities.pop())
