"""Startup banners of applications that print the torch they run and the GPU they use.

Tool output, not prose: the application asked torch itself. Read here:

- ComfyUI's devices, in its startup log (``Device: cuda:0 NVIDIA GeForce RTX 5080 : cudaMallocAsync``)
  and its system information (``- **Name:** cuda:0 NVIDIA GeForce RTX 5070 Ti : cudaMallocAsync``), and
  the torch version when the settings panel is copied with each value under its label (``Pytorch
  Version`` / ``2.7.0.dev20250307+cu128``). Its ``pytorch version: 2.6.0+cu126`` and ``- **PyTorch
  Version:** ...`` lines are ``key: value`` lines that :mod:`envdoctor.paste.hf_env` reads;
- Unsloth's banner (``GPU: NVIDIA GeForce RTX 2060 SUPER. Max memory: ...``, ``Pytorch: 2.3.0. CUDA =
  7.5. CUDA Toolkit = 12.1.``; newer: ``Torch: 2.5.1+cu124. CUDA: 7.5. CUDA Toolkit: 12.4.``), whose
  "CUDA" is the GPU's compute capability and "CUDA Toolkit" the CUDA torch was built with;
- Ultralytics' (and YOLOv5's) device line, printed when a model is loaded and at the top of ``yolo
  checks`` (``Ultralytics 8.3.95 🚀 Python-3.10.12 torch-2.6.0+cu124 CUDA:0 (NVIDIA GeForce RTX 5090,
  32120MiB)``, ``YOLOv5  2022-4-22 torch 1.11.0+cpu CPU``; one ``CUDA:1 (...)`` line per further GPU).
  A log that holds several (an old run and a new one) is read at its last: that is the environment
  now. ``CPU`` names the device chosen (``device=cpu`` prints it too), so it says nothing of CUDA;
  under it, ``yolo checks`` lists each installed requirement (``numpy  ✅ 1.26.2>=1.22.2``) and torch's
  CUDA (``CUDA  12.1``);
- InvokeAI's "Python dependencies" (its About dialog, a JSON object: ``"torch": "2.4.1+cu124"``,
  ``"cuda": "12.4"`` (torch's CUDA), ``"python": "3.10.11"``, and the other packages' versions).
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import TOOL, Builder
from envdoctor.paste.text import VERSION, short_version, version_in

# "cuda:0 NVIDIA GeForce RTX 5080 : cudaMallocAsync" (the allocator after " : ").
_DEVICE = re.compile(r"(?:^|[\s:*])cuda:(?P<index>\d+) (?P<name>\S.*?) : (?:cudaMallocAsync|native)\s*$")
_UNSLOTH_GPU = re.compile(
    r"(?:/\|\s+(?:GPU: )?|\bGPU: )(?P<name>[A-Za-z][^.]*?)\. (?:Num GPUs = \d+\. )?Max memory"
)
_UNSLOTH_TORCH = re.compile(
    r"\b(?:Pytorch|Torch): (?P<torch>" + VERSION.pattern + r")\. CUDA ?[:=] ?(?P<cc>\d+\.\d)\. "
    r"CUDA Toolkit ?[:=] ?(?P<toolkit>\d+\.\d+|None)\b"
)

# "Ultralytics 8.3.95 🚀 Python-3.10.12 torch-2.6.0+cu124 CUDA:0 (NVIDIA GeForce RTX 5090, 32120MiB)",
# "Ultralytics YOLOv8.0.54 Python-3.10.6 torch-2.0.0+cpu CPU", "YOLOv5  2022-4-22 torch 1.11.0+cpu CPU",
# "YOLOv5 🚀 v7.0-388-g882c35fc Python-3.8.20 torch-2.4.1+cu121 CPU".
_YOLO = re.compile(
    r"\b(?:Ultralytics|YOLOv\d+)\b[^\n]{0,60}?(?:\bPython-(?P<python>\d+\.\d+\.\d+) )?"
    r"\btorch[- ](?P<torch>" + VERSION.pattern + r")\s+(?:CPU|MPS|cpu|mps|(?=CUDA:\d))"
)
# "CUDA:0 (NVIDIA GeForce RTX 5090, 32120MiB)"; YOLOv5 of 2021 wrote "4096.0MB".
_YOLO_GPU = re.compile(r"\bCUDA:(?P<index>\d+) \((?P<name>[^,()]+), (?P<mem>\d+)(?:\.\d+)?Mi?B\)")
# A requirement `yolo checks` found installed: "numpy               ✅ 1.26.2>=1.22.2", "psutil  ✅ 5.9.6".
_YOLO_CHECK = re.compile(
    r"^\s*(?P<name>[A-Za-z][\w.-]*)\s+\u2705 (?P<version>" + VERSION.pattern + r")(?:[<>=!~,].*)?$"
)
_YOLO_CUDA = re.compile(r"^CUDA\s{2,}(?P<cuda>\d+\.\d+)\s*$")
# InvokeAI's dependency list: '"torch": "2.4.1+cu124",' (padded: '"torch"       : "2.6.0+cu124" ,').
_JSON_VERSION = re.compile(
    r'^\s*"(?P<name>[A-Za-z][\w.-]*)"\s*:\s*"(?P<version>' + VERSION.pattern + r')"\s*,?\s*$'
)
# Keys of that list that are not Python distributions.
_INVOKE_NOT_PACKAGES = {"version", "cuda", "python", "schema_version"}


def parse(lines: list[str], b: Builder) -> None:
    _ultralytics(lines, b)
    _invokeai(lines, b)
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


def _ultralytics(lines: list[str], b: Builder) -> None:
    """The last Ultralytics / YOLOv5 device line of the paste, and the GPUs listed on and under it."""
    last = None
    for i, line in enumerate(lines):
        if "torch" in line and ("Ultralytics" in line or "YOLOv" in line):
            m = _YOLO.search(line)
            if m:
                last = (i, m)
    if last is None:
        return
    i, m = last
    b.package("torch", m.group("torch"), TOOL)
    if m.group("python"):
        b.put("python.version", short_version(m.group("python"), 3), TOOL)
    for line in [lines[i][m.end() :], *lines[i + 1 : i + 9]]:
        gpus = list(_YOLO_GPU.finditer(line))
        if not gpus and line is not lines[i]:
            break
        for g in gpus:
            b.gpu(int(g.group("index")), g.group("name"), memory_mib=int(g.group("mem")))
    for line in lines[i + 1 : i + 80]:  # `yolo checks` below its device line
        check = _YOLO_CHECK.match(line) if "\u2705" in line else None
        if check:
            b.package(check.group("name"), check.group("version"), TOOL)
        cuda = _YOLO_CUDA.match(line) if line.startswith("CUDA ") else None
        if cuda:
            b.torch_build(cuda.group("cuda"), TOOL)


def _invokeai(lines: list[str], b: Builder) -> None:
    """InvokeAI's dependency JSON: read only where the paste holds its ``"torch"`` and ``"dependencies"``
    or sits under the issue form's "Python dependencies" heading."""
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if line.strip() == "### Python dependencies" or '"dependencies"' in line
        ),
        None,
    )
    if start is None:
        return
    for line in lines[start + 1 : start + 80]:
        m = _JSON_VERSION.match(line)
        if not m:
            continue
        name, version = m.group("name").lower(), m.group("version")
        if name == "cuda":
            b.torch_build(short_version(version), TOOL)
        elif name == "python":
            b.put("python.version", short_version(version, 3), TOOL)
        elif name not in _INVOKE_NOT_PACKAGES:
            b.package(name, version, TOOL)
