"""The environment summaries of two libraries that ask for them in their issue forms.

Tool output: the library's own code asked torch, nvidia-smi and the package metadata.

MinkowskiEngine's ``ME.print_diagnostics()`` (and its ``diagnostics.py``) prints banner sections, the
value on the lines below each banner::

    ==========Pytorch==========
    1.8.0+cu111
    torch.cuda.is_available(): True
    ==========NVIDIA-SMI==========
    /usr/bin/nvidia-smi
    Driver Version 510.60.02
    CUDA Version 11.6
    ==========MinkowskiEngine==========
    0.5.4

(its NVCC section is ``nvcc --version``, read by the toolchain parser).

stable-baselines3's ``sb3.get_system_info()`` prints ``- Key: value`` lines, read only next to its
``- Stable-Baselines3:`` line; ``GPU Enabled`` is ``torch.cuda.is_available()``::

    - Stable-Baselines3: 2.3.0
    - PyTorch: 1.13.1+cu116
    - GPU Enabled: True
    - Numpy: 1.22.0
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import TOOL, Builder
from envdoctor.paste.text import VERSION, key_values, truth, version_in

# "==========NVIDIA-SMI==========": the name is bounded, and '=' cannot occur in it.
_BANNER = re.compile(r"^\s*={3,}(?P<name>[A-Za-z][A-Za-z0-9 +_-]{0,40})={3,}\s*$")
_NVIDIA_SMI = re.compile(r"^\s*(?P<key>Driver|CUDA) Version\s+(?P<v>\d+(?:\.\d+)+)\s*$")
_AVAILABLE = re.compile(r"^\s*torch\.cuda\.is_available\(\):\s*(?P<v>True|False)\s*$")
_SB3_KEYS = {"pytorch": "torch", "numpy": "numpy", "stable-baselines3": "stable-baselines3"}


def parse(lines: list[str], b: Builder) -> None:
    _minkowski(lines, b)
    _sb3(lines, b)


def _minkowski(lines: list[str], b: Builder) -> None:
    section = None
    for line in lines:
        if line.lstrip().startswith("==="):
            m = _BANNER.match(line)
            section = m.group("name").strip().lower() if m else None
            continue
        if section == "pytorch":
            available = _AVAILABLE.match(line)
            if available:
                b.put("torch.cuda_available", truth(available.group("v")), TOOL)
            elif VERSION.fullmatch(line.strip()):
                b.package("torch", line.strip(), TOOL)
        elif section == "nvidia-smi":
            m = _NVIDIA_SMI.match(line)
            if m:
                key = "nvidia.driver_version" if m.group("key") == "Driver" else "nvidia.cuda_driver_version"
                b.put(key, m.group("v"), TOOL)
        elif section == "minkowskiengine" and VERSION.fullmatch(line.strip()):
            b.package("MinkowskiEngine", line.strip(), TOOL)


def _sb3(lines: list[str], b: Builder) -> None:
    if not any("Stable-Baselines3:" in line for line in lines):
        return
    for _, key, value in key_values(lines):
        version = version_in(value)
        if key in _SB3_KEYS and version:
            b.package(_SB3_KEYS[key], version, TOOL)
        elif key == "gpu enabled" and truth(value) is not None:
            b.put("torch.cuda_available", truth(value), TOOL)
