"""``python3 -m sglang.check_env``: the report SGLang's issue form asks for.

Tool output: torch itself answered. ``name: value`` lines, settings first, then one line per
package (``Module Not Found`` when it is absent), then the ``nvidia-smi topo`` matrix::

    Python: 3.10.12 (main, Feb  4 2025, 14:57:36) [GCC 11.4.0]
    GPU 0,1: NVIDIA A10
    GPU 0,1 Compute Capability: 8.6
    ...
    PyTorch: 2.6.0+cu124
    sglang: 0.4.6.post1
    ...
    NVIDIA Topology:

The GPU names are read by the collect_env reader (same ``GPU 0,1: name`` lines). Early releases
print the driver once per GPU, the repeats on lines of their own. The block is the run of lines
from ``Python:`` up to the topology matrix around an ``sglang: X`` line.
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import TOOL, Builder
from envdoctor.paste.text import truth, version_in

_SGLANG = re.compile(r"^\s*sglang: \d")
_START = re.compile(r"^\s*Python: \d")
_END = ("NVIDIA Topology", "AMD Topology", "Hypervisor vendor", "ulimit")
_ENTRY = re.compile(r"^\s*(?P<key>[A-Za-z][\w.-]*(?: [A-Za-z][\w.-]*)*): (?P<value>\S.*?)\s*$")
_CAPABILITY = re.compile(r"^\s*GPU (?P<idx>\d+(?:\s*,\s*\d+)*) Compute Capability: (?P<cc>\d+\.\d+)\s*$")
_PACKAGE_VERSION = re.compile(r"^\d+(?:\.\d+)+(?:[.+-]?\w+)*$")
# Keys that are settings, not package names.
_SETTINGS = frozenset(
    ("Python", "CUDA available", "CUDA_HOME", "NVCC", "CUDA Driver Version", "PyTorch", "ROCM Driver Version")
)
_BLOCK_LINES = 120  # check_env prints about 40 lines before the topology matrix


def parse(lines: list[str], b: Builder) -> None:
    for start, end in _blocks(lines):
        for line in lines[start:end]:
            cap = _CAPABILITY.match(line)
            if cap:
                for idx in re.split(r"\s*,\s*", cap.group("idx")):
                    b.gpu(int(idx), None, cap.group("cc"))
                continue
            entry = _ENTRY.match(line)
            if entry:
                _entry(entry.group("key"), entry.group("value"), b)


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each check_env output: from the ``Python:`` line before an ``sglang:`` line."""
    blocks: list[tuple[int, int]] = []
    for i, line in enumerate(lines):
        if not _SGLANG.match(line):
            continue
        start = next((j for j in range(i, max(i - 40, -1), -1) if _START.match(lines[j])), None)
        if start is None or (blocks and start < blocks[-1][1]):
            continue
        end = next(
            (j for j in range(i, min(i + _BLOCK_LINES, len(lines))) if lines[j].lstrip().startswith(_END)),
            min(i + _BLOCK_LINES, len(lines)),
        )
        blocks.append((start, end))
    return blocks


def _entry(key: str, value: str, b: Builder) -> None:
    if key == "PyTorch":
        version = version_in(value)
        if version:
            b.package("torch", version, TOOL)
    elif key == "CUDA available":
        b.put("torch.cuda_available", truth(value), TOOL)
    elif key == "CUDA Driver Version":
        driver = version_in(value)
        if driver:
            b.put("nvidia.driver_version", driver, TOOL)
    elif key not in _SETTINGS and " " not in key and _PACKAGE_VERSION.match(value):
        b.package(key, value, TOOL)
