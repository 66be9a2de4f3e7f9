"""``transformers env``, ``accelerate env``, ``diffusers-cli env`` and similar bullet lists.

Lines look like ``- `transformers` version: 4.36.2`` and ``- PyTorch version (GPU?): 2.1.2+cu121 (True)``
(newer: ``(accelerator?): 2.5.1+cu124 (CUDA)``); ``- GPU type: NVIDIA A100-SXM4-80GB``; ``trl env``'s
``- CUDA device(s): NVIDIA GeForce RTX 4070 Laptop GPU`` (one name per GPU, comma-separated).
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import STATED, Builder
from envdoctor.paste.collect_env import platform
from envdoctor.paste.text import key_values, truth, version_in

_PKG_KEY = re.compile(r"^(?P<name>[a-z][\w.-]*) version(?: \((?P<what>[^)]*)\))?$")
_AVAILABLE = re.compile(r"\((?P<flag>[^)]*)\)\s*$")
# "<name> version" keys that are not Python distributions.
_NOT_PACKAGES = {"python", "gcc", "clang", "cmake", "libc", "cudnn", "cuda", "os", "driver", "nccl", "jax"}
_DEVICE_KEYS = ("cuda device(s)", "cuda device")
_NO_DEVICE = {"not available", "none", "n/a", "na", "cpu"}


def parse(lines: list[str], b: Builder) -> None:
    for _, key, value in key_values(lines):
        m = _PKG_KEY.match(key)
        if m and m.group("name") not in _NOT_PACKAGES:
            name = {"pytorch": "torch", "huggingface_hub": "huggingface-hub"}.get(
                m.group("name"), m.group("name")
            )
            version = version_in(value)
            if version:
                b.package(name, version, STATED)
            flag = _AVAILABLE.search(value)
            if name == "torch" and flag and m.group("what"):
                # "(True)" / "(False)" from older releases, "(CUDA)" / "(NA)" from newer ones.
                available = True if flag.group("flag").upper() == "CUDA" else truth(flag.group("flag"))
                b.put("torch.cuda_available", available, STATED)
        elif key == "gpu type" and value.strip():
            b.gpu(None, value)
        elif key in _DEVICE_KEYS:
            # trl env: "- CUDA device(s): NVIDIA H100 80GB HBM3, NVIDIA H100 80GB HBM3" (one per GPU)
            names = [n.strip() for n in value.split(",")]
            for index, name in enumerate(n for n in names if n and n.lower() not in _NO_DEVICE):
                b.gpu(index, name)
        elif key == "platform":
            platform(value, b)
