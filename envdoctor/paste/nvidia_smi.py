"""``nvidia-smi`` (the table), ``nvidia-smi -q`` and ``nvidia-smi -L`` output.

The table's header holds the driver and the highest CUDA it supports; each GPU row holds the index and
a name that older releases truncate (``GeForce GTX 108...``); the next row holds the memory.
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import LISTING, TOOL, Builder
from envdoctor.paste.text import key_values

_DRIVER = re.compile(r"Driver Version\s*:\s*(?P<v>\d{2,3}\.\d+(?:\.\d+)?)", re.I)
# A driver named in prose or a hand-written list: "CUDA Version: 12.8 (Driver 570.181)".
_DRIVER_INLINE = re.compile(r"\bDriver[ :]+(?:Version[ :]+)?(?P<v>\d{3}\.\d{1,3}(?:\.\d{1,3})?)\b", re.I)
_CUDA = re.compile(r"CUDA Version\s*:\s*(?P<v>\d+\.\d+)", re.I)
_ROW = re.compile(
    r"^\|\s*(?P<idx>\d+)\s+(?P<name>\S.*?)\s+(?:On|Off|WDDM|TCC)\s*\|\s*[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:"
)
_MEMORY = re.compile(r"(?P<used>\d+)\s*MiB\s*/\s*(?P<total>\d+)\s*MiB")
_Q_MEMORY = re.compile(r"^\s*Total\s*:\s*(?P<v>\d+)\s*MiB")


def parse(lines: list[str], b: Builder) -> None:
    for i, line in enumerate(lines):
        low = line.lower()  # literal tests before the case-blind patterns: a paste may be 5 MB
        m = _DRIVER.search(line) if "driver" in low else None
        if m:
            b.put("nvidia.driver_version", m.group("v"), TOOL)
        else:
            m = _DRIVER_INLINE.search(line) if "driver" in low else None
            if m:
                b.put("nvidia.driver_version", m.group("v"), LISTING)
        m = _CUDA.search(line) if "cuda version" in low else None
        # "CUDA Version" alone is ambiguous (issue templates use it for the toolkit): trust it only on the
        # nvidia-smi header line or in the padded `nvidia-smi -q` layout.
        if m and ("Driver Version" in line or re.match(r"^\s*CUDA Version\s{4,}:", line)):
            b.put("nvidia.cuda_driver_version", m.group("v"), TOOL)
        m = _ROW.match(line)
        if m:
            memory = _MEMORY.search(lines[i + 1]) if i + 1 < len(lines) else None
            tail = " ".join(lines[i + 1 : i + 3])
            mig = True if re.search(r"\bEnabled\s*\|\s*$", tail, re.M) else None
            b.gpu(
                int(m.group("idx")),
                m.group("name"),
                memory_mib=int(memory.group("total")) if memory else None,
                mig=mig,
            )
    _query(lines, b)


def _query(lines: list[str], b: Builder) -> None:
    """`nvidia-smi -q`: one 'Product Name' per GPU, in index order, and 'FB Memory Usage / Total'."""
    index = -1
    in_fb = False
    for i, key, value in key_values(lines):
        if key == "product name":
            index += 1
            b.gpu(index, value)
            in_fb = False
        elif key == "fb memory usage":
            in_fb = True
        elif in_fb and key == "total" and index >= 0:
            m = _Q_MEMORY.match(lines[i])
            if m:
                b.gpu(index, memory_mib=int(m.group("v")))
            in_fb = False
