"""Lightning's environment table (``requirements/collect_env_details.py``, asked for by its issue form).

Tool output: torch itself answered. Sections start with ``* Name:``, entries with ``- key: value``
(tab-indented); a list value follows its key one level deeper::

    * CUDA:
        - GPU:
            - NVIDIA A100-SXM4-80GB
        - available:         True
        - version:           12.1
    * Lightning:
        - torch:             2.1.0

``GPU: None`` means torch sees no GPU; ``version`` is ``torch.version.cuda`` (``None``: a CPU build).
The torch version is a ``torch:`` entry (``pyTorch_version:`` in 1.x releases).
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import TOOL, Builder
from envdoctor.paste.text import truth, version_in

_SECTION = re.compile(r"^\s*\*\s*(?P<name>[A-Za-z][\w ]*):\s*$")
_ENTRY = re.compile(r"^(?P<indent>\s*)-\s+(?P<key>[^:]+):\s*(?P<value>.*?)\s*$")
_ITEM = re.compile(r"^(?P<indent>\s*)-\s+(?P<value>[^:]+?)\s*$")
_TORCH_KEYS = ("torch", "pytorch_version")


def parse(lines: list[str], b: Builder) -> None:
    section = None
    in_gpu_list = False
    gpus = 0  # GPUs listed so far: eight identical names are eight GPUs
    for line in lines:
        head = _SECTION.match(line)
        if head:
            section = head.group("name").strip().lower()
            in_gpu_list = False
            continue
        if section is None:
            continue
        entry = _ENTRY.match(line)
        if entry is None:
            item = _ITEM.match(line)
            if in_gpu_list and item:
                b.gpu(gpus, item.group("value"))
                gpus += 1
            elif line.strip():
                section, in_gpu_list = None, False  # the table ended
            continue
        key, value = entry.group("key").strip().lower(), entry.group("value")
        in_gpu_list = section == "cuda" and key == "gpu" and not value
        if section == "cuda":
            _cuda_entry(key, value, b)
        elif section in ("lightning", "packages") and key in _TORCH_KEYS:
            version = version_in(value)
            if version:
                b.package("torch", version, TOOL)


def _cuda_entry(key: str, value: str, b: Builder) -> None:
    if key == "available" and truth(value) is not None:
        b.put("torch.cuda_available", truth(value), TOOL)
    elif key == "version":
        cuda = version_in(value)
        if cuda or value.strip().lower() == "none":
            b.torch_build(cuda, TOOL)
    elif key == "gpu" and value and value.strip().lower() != "none":
        b.gpu(None, value)  # a single GPU printed inline
