"""Startup banners of applications that print the torch they run and the GPU they use.

Tool output, not prose: the application asked torch itself. Read here:

- ComfyUI's devices, in its startup log (``Device: cuda:0 NVIDIA GeForce RTX 5080 : cudaMallocAsync``)
  and its system information (``- **Name:** cuda:0 NVIDIA GeForce RTX 5070 Ti : cudaMallocAsync``), and
  the torch version when the settings panel is copied with each value under its label (``Pytorch
  Version`` / ``2.7.0.dev20250307+cu128``). Its ``pytorch version: 2.6.0+cu126`` and ``- **PyTorch
  Version:** ...`` lines are ``key: value`` lines that :mod:`envdoctor.paste.hf_env` reads;
- Unsloth's banner (``GPU: NVIDIA GeForce RTX 2060 SUPER. Max memory: ...``, ``Pytorch: 2.3.0. CUDA =
  7.5. CUDA Toolkit = 12.1.``; newer: ``Torch: 2.5.1+cu124. CUDA: 7.5. CUDA Toolkit: 12.4.``), whose
  "CUDA" is the GPU's compute capability and "CUDA Toolkit" the CUDA torch was built with.
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import TOOL, Builder
from envdoctor.paste.text import VERSION, version_in

# "cuda:0 NVIDIA GeForce RTX 5080 : cudaMallocAsync" (the allocator after " : ").
_DEVICE = re.compile(r"(?:^|[\s:*])cuda:(?P<index>\d+) (?P<name>\S.*?) : (?:cudaMallocAsync|native)\s*$")
_UNSLOTH_GPU = re.compile(
    r"(?:/\|\s+(?:GPU: )?|\bGPU: )(?P<name>[A-Za-z][^.]*?)\. (?:Num GPUs = \d+\. )?Max memory"
)
_UNSLOTH_TORCH = re.compile(
    r"\b(?:Pytorch|Torch): (?P<torch>" + VERSION.pattern + r")\. CUDA ?[:=] ?(?P<cc>\d+\.\d)\. "
    r"CUDA Toolkit ?[:=] ?(?P<toolkit>\d+\.\d+|None)\b"
)


def parse(lines: list[str], b: Builder) -> None:
    for i, line in enumerate(lines):
        if "cuda:" in line:
            m = _DEVICE.search(line)
            if m:
                b.gpu(int(m.group("index")), m.group("name"))
        if line.strip().lower() == "pytorch version" and i + 1 < len(lines):  # label, value under it
            version = version_in(lines[i + 1].strip())
            if version and version == lines[i + 1].strip():
                b.package("torch", version, TOOL)
        if "Max memory" in line:
            m = _UNSLOTH_GPU.search(line)
            if m:
                b.gpu(None, m.group("name"))
        if "CUDA Toolkit" in line:
            m = _UNSLOTH_TORCH.search(line)
            if m:
                _unsloth_torch(m, b)


def _unsloth_torch(m: re.Match[str], b: Builder) -> None:
    b.package("torch", m.group("torch"), TOOL)
    toolkit = m.group("toolkit")
    b.torch_build(None if toolkit == "None" else toolkit, TOOL)
    if b.gpus:
        b.gpu(min(b.gpus), capability=m.group("cc"))
