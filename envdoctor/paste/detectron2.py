"""Environment tables of detectron2 (``python -m detectron2.utils.collect_env``) and OpenMMLab (mmcv).

detectron2 separates key and value by spaces (``PyTorch   1.10.0+cu113 @/usr/lib/...``,
``GPU 0   NVIDIA GeForce RTX 3090 (arch=8.6)``); mmcv uses colons (``GPU 0,1: NVIDIA ...``,
``NVCC: Cuda compilation tools, release 11.3``). Both append torch's ``PyTorch built with:`` block
(``- CUDA Runtime 11.3``, ``- NVCC architecture flags: -gencode;arch=compute_86,code=sm_86``).
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import STATED, TOOL, Builder
from envdoctor.paste.text import is_unknown, key_values, short_version, truth, version_in

_SPACED = re.compile(r"^\s*(?P<key>[A-Za-z_][\w .,()/-]*?)\s{2,}(?P<value>\S.*?)\s*$")
_GPU_KEY = re.compile(r"^gpu (?P<idx>\d{1,3}(?:\s*,\s*\d{1,3})*)$")  # not a PCI bus id
_ARCH = re.compile(r"\(arch=(?P<cap>\d+\.\d+)\)")
_BUILT_CUDA = re.compile(r"^\s*-\s*CUDA Runtime (?P<v>\d+\.\d+)")
_BUILT_CUDNN = re.compile(r"^\s*-\s*Cu?DNN (?P<v>\d+\.\d+(?:\.\d+)?)", re.I)
_GENCODE = re.compile(r"code=((?:sm|compute)_\d+)")


def parse(lines: list[str], b: Builder) -> None:
    pairs = [(k, v) for _, k, v in key_values(lines)]
    for line in lines:
        m = _SPACED.match(line)
        if m and ":" not in m.group("key"):
            pairs.append((re.sub(r"\s+", " ", m.group("key")).lower(), m.group("value")))
    for key, value in pairs:
        _key(key, value, b)
    for line in lines:
        _built_with(line, b)


def _key(key: str, value: str, b: Builder) -> None:
    gpu = _GPU_KEY.match(key)
    if gpu:
        arch = _ARCH.search(value)
        for idx in re.split(r"\s*,\s*", gpu.group("idx")):
            b.gpu(int(idx), value, capability=arch.group("cap") if arch else None)
    elif key == "pytorch":
        b.put("torch.version", version_in(value.split("@")[0]), STATED)
    elif key in ("gpu available", "cuda available"):
        b.put("torch.cuda_available", truth(value.split(":")[0]), STATED)
    elif key == "driver version" and version_in(value):
        b.put("nvidia.driver_version", version_in(value), STATED)
    elif key == "cuda_home" and not is_unknown(value) and value.strip().startswith(("/", "\\")):
        b.put("cuda.cuda_home", value.strip(), STATED)
    elif key in ("nvcc", "cuda compiler") and not is_unknown(value):
        b.put("cuda.nvcc_version", short_version(value.split("release")[-1]), TOOL)
    elif key == "python" and version_in(value):
        b.put("python.version", short_version(value, 3), STATED)
    elif key in ("torchvision", "detectron2", "mmcv", "mmdetection", "mmengine", "numpy", "opencv", "cv2"):
        version = version_in(value.split("@")[0])
        if version:
            b.package({"cv2": "opencv-python"}.get(key, key), version, STATED)


def _built_with(line: str, b: Builder) -> None:
    """Lines of torch's build configuration (torch.__config__.show())."""
    m = _BUILT_CUDA.match(line)
    if m:
        b.torch_build(m.group("v"), STATED)
    m = _BUILT_CUDNN.match(line)
    if m:
        parts = [int(x) for x in m.group("v").split(".")] + [0]
        scale = 10000 if parts[0] >= 9 else 1000
        b.put("torch.cudnn_version", parts[0] * scale + parts[1] * 100 + parts[2], TOOL)
    if "architecture flags" in line.lower():
        arches = list(dict.fromkeys(_GENCODE.findall(line)))
        b.put("torch.arch_list", arches or None, STATED)
