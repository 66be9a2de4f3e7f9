"""Facts people write instead of pasting tool output: "torch 2.0.1", "Python 3.13.5", "driver version 340",
"RTX 3090", ``conda install pytorch ... cpuonly``, "installs a CPU-only version of torch",
"cuda.is_available() returns false", a ``lib/python3.10/site-packages`` path.

Each is recorded with the lowest priority (any tool output stating the same fact wins) and marked as
stated (``Facts.stated``: the words that said it), so that a rule resting on nothing else reports a
warning that says so. Lines that request versions rather than describe the environment (``pip install
torch==2.1``, requirement specifiers, pip's "from versions" lists) are not read for versions; neither
is ``--index-url .../cu118`` (threads quote the command that fixed the problem as often as the one
that caused it).
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import PROSE, Builder

_PACKAGES = (
    r"transformers|accelerate|peft|diffusers|numpy|xformers|flash[-_]attn|vllm|sglang|huggingface[-_]hub|"
    r"torchvision|torchaudio|bitsandbytes|triton|deepspeed|llamafactory|unsloth"
)
_VERSION = r"(?P<v>\d+\.\d+(?:\.\d+)?(?:\.post\d+|\.dev\d+)?)"
# "torch 2.0.1", "Pytorch2.2.0+cu121", "pytorch2.5.1+cuda12.1", "torch: 2.3.0", "torch==2.0.1",
# "torch 2.6 cu124", "PyTorch 2.8.0 + cu129", "pytorch(2.2 + cu118)"; a name in Markdown code or bold
# ("- `torch` 2.6.0", "**torch**: 2.6.0") the same.
# torch's releases are 0.x to 2.x: a larger number after "PyTorch:" is another version about torch
# ("CUDA version required by PyTorch: 11.7", Colossal-AI's report).
_TORCH_VERSION = r"(?P<v>(?<!\d)[0-3]\.\d+(?:\.\d+)?(?:\.post\d+|\.dev\d+)?)"
_TORCH = re.compile(
    r"\b(?:py)?torch[`*]{0,2}(?:[\s_-]*version)?\s*(?:[:=]=?|\bis\b|\bv)?\s*[`(]?"
    + _TORCH_VERSION
    + r"(?!\.?\d)"
    r"(?:\s?\+\s?(?P<tag>cu\d{2,3}|cpu|rocm\d+(?:\.\d+)?)\b|\s*\+?\s*cuda\s*(?P<cuda>\d+\.\d+)|\s+(?P<cu>cu\d{2,3})\b)?",
    re.IGNORECASE,
)
# The CUDA torch was built with, said without torch's version: "CUDA version used by PyTorch ...
# (12.1)" (a dependency checker's line), "torch's CUDA version: 12.4", "CUDA used to build PyTorch: 11.8".
_TORCH_CUDA = re.compile(
    r"\bCUDA(?:\s+version)?\s+(?:used\s+(?:by|to\s+build)|of)\s+(?:py)?torch\b[^\d\n]{0,40}?(?P<cuda>\d{2}\.\d)\b"
    r"|\b(?:py)?torch'?s\s+CUDA(?:\s+version)?\s*[:=]?\s*(?P<cuda2>\d{2}\.\d)\b",
    re.IGNORECASE,
)
# A name inside another's is not that package ("vllm-flash-attn 2.6.1" is vLLM's fork, not flash-attn).
_PACKAGE = re.compile(
    r"(?<![\w.-])(?P<pkg>"
    + _PACKAGES
    + r")[`*]{0,2}(?:\s*version)?\s*(?:[:=]=?|\bv)?\s*`?"
    + _VERSION
    + r"(?!\.?\d)",
    re.IGNORECASE,
)
_PYTHON = re.compile(
    r"\bpython(?:\s*version)?\s*[:=]?\s*v?(?P<v>3\.\d{1,2}(?:\.\d+)?)(?!\.?\d)", re.IGNORECASE
)
_PYTHON_PATH = re.compile(r"[/\\]python(?P<v>3\.\d{1,2})[/\\](?:site|dist)-packages")
_DRIVER = re.compile(
    r"\bdriver(?:\s+version)?(?:\s+is)?(?:\s+version)?\s*[:=]?\s*[`*]*(?P<v>\d{3}(?:\.\d{1,3}){0,2})(?!\.?\d)",
    re.IGNORECASE,
)
# ASCII word edges, not \b: in Chinese or Japanese text a name sits between ideographs, which \w
# also matches ("使用v100在运行").
_GPU = re.compile(
    r"(?<![0-9A-Za-z_])(?:(?:NVIDIA|GeForce|Tesla|Quadro)\s+)*(?:RTX|GTX)\s?(?:PRO\s)?\d{3,4}"
    r"(?:\s?(?:Ti|SUPER|D)(?![0-9A-Za-z_]))*"
    r"|(?<![0-9A-Za-z_.])(?:[1-5]0[5-9]0|16[56]0)(?:\s?Ti)?(?=\s?(?:GPU|card|graphics)\b(?!\s?(?:hours?|days?)\b))"
    r"|(?<![0-9A-Za-z_])Jetson(?:\s+(?:AGX|Orin|Nano|NX|Xavier|TX[12]|Thor))+"
    r"|(?<![0-9A-Za-z_])(?:(?:NVIDIA|Tesla)\s+)?(?:GB200|[BH]200|[AHVP]100|A10G?|A30|A40|A800|H800|H20|L40S?|L4|T4|K80)"
    r"(?![0-9A-Za-z_])",
    re.IGNORECASE,
)
_CONDA_CPUONLY = re.compile(
    r"\bconda install\b.*\bpytorch\b.*\bcpuonly\b|\bconda install\b.*\bcpuonly\b.*\bpytorch\b"
)
_CPU_ONLY = re.compile(
    r"\b(?:cpu[- ]?only|cpu version|cpu build|cpu wheel)\b[^.\n]{0,30}\b(?:py)?torch\b"
    r"|\b(?:py)?torch\b[^.\n]{0,40}\b(?:cpu[- ]?only|cpu version|cpu build)\b",
    re.IGNORECASE,
)
_NOT_AVAILABLE = re.compile(
    r"is_available\(\)\s*(?:returns?|->|=+|:|is|gives|prints?)?\s*[`'\"]?false\b", re.IGNORECASE
)
# A cluster's GPU nodes, where an environment made on a login node runs ("later be used on a GPU
# node", "on the GPU compute nodes", "nodes with GPUs"): the machine the report is about has a GPU.
_GPU_NODE = re.compile(
    r"\bGPU (?:compute )?nodes?\b|\bnodes? with (?:an? )?(?:NVIDIA )?GPUs?\b", re.IGNORECASE
)
_AARCH64 = re.compile(r"\baarch64\b|\bJetson\b", re.IGNORECASE)
_WINDOWS = re.compile(r"\bwindows\b|(?:^|[\s\"'(])[A-Za-z]:\\\w", re.IGNORECASE)
# macOS by name, or a Mac or Apple silicon chip named ("on my Mac", "MacBook Pro M3", "Chipset Model:
# Apple M2", system_profiler's GPU line).
_MACOS = re.compile(
    r"\bmac ?os\b|\bdarwin\b|\bmacbook\b|\bmac (?:mini|studio|pro)\b|\bon (?:my |a |the )?mac\b"
    r"|\bapple (?:m[1-9]\b|silicon\b)",
    re.IGNORECASE,
)
_LINUX = re.compile(r"\b(?:ubuntu|debian|centos|fedora|rocky linux)\b", re.IGNORECASE)
# A compute capability as torch.cuda.get_device_capability() prints it, under a label people give it:
# "GPU 架构: (12, 0)", "compute capability: (8, 6)", "get_device_capability() -> (7, 5)".
_CAPABILITY_TUPLE = re.compile(
    r"(?:capabilit\w*|get_device_capability\(\)|\barch\w*|架构)[^()\n]{0,20}\((?P<major>\d{1,2}), ?(?P<minor>\d)\)",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
PROSE_LINE = 500  # characters of a line read for prose facts
PROSE_LINES = 1000  # lines read for prose facts: the first and last halves
# Each OS pattern with the lower-case substrings one of which a matching line must hold.
_SYSTEMS = (
    (_WINDOWS, "Windows", ("windows", ":\\")),
    (_MACOS, "macOS", ("mac", "darwin", "apple")),
    (_LINUX, "Linux", ("ubuntu", "debian", "centos", "fedora", "rocky")),
)
# Lines that name versions someone asks for, not ones installed.
_REQUEST = re.compile(
    r"\b(?:pip3?|uv pip|conda|mamba) install\b|requirement|from versions|No matching distribution|"
    r"[<>~!]=|\brequires?\b|\bneeds?\b|\bbuilt for\b|\bwas built\b|\(you have ",
    re.IGNORECASE,
)


def parse(lines: list[str], b: Builder) -> None:
    gpus: list[tuple[str, str]] = []
    systems: list[tuple[str, str]] = []
    capabilities: list[tuple[str, str]] = []
    gpu_node: str | None = None
    if len(lines) > PROSE_LINES:  # what people write is at the top of a paste (or its very end)
        lines = lines[: PROSE_LINES // 2] + lines[-PROSE_LINES // 2 :]
    for full in dict.fromkeys(lines):  # a line repeated in a log states nothing new
        # A sentence that states a version is short; the cap and the substring gates below keep a
        # multi-megabyte paste of long lines (a log, a minified blob) linear and cheap.
        line = full[:PROSE_LINE]
        low = line.lower()
        digits = _DIGIT.search(line) is not None
        words = line.strip()[:200]
        if digits and not _REQUEST.search(line):
            _versions(line, low, words, b)
            if "python" in low:
                for stated in _PYTHON.finditer(line):
                    b.put("python.version", stated.group("v"), PROSE, words)
        m = _PYTHON_PATH.search(line) if digits and "python" in low else None
        if m:
            b.put("python.version", m.group("v"), PROSE, words)
        m = _DRIVER.search(line) if digits and "driver" in low else None
        if m and "cuda driver version" not in low:
            b.put("nvidia.driver_version", m.group("v"), PROSE, words)
        if digits or "jetson" in low:
            gpus += [(m.group(0), words) for m in _GPU.finditer(line)]
        if digits and "(" in line:
            capabilities += [(f"{m['major']}.{m['minor']}", words) for m in _CAPABILITY_TUPLE.finditer(line)]
        if "cpu" in low and (_CONDA_CPUONLY.search(line) or _CPU_ONLY.search(line)):
            b.torch_build(None, PROSE, words)
        if gpu_node is None and "node" in low and _GPU_NODE.search(line):
            gpu_node = words
        if "is_available" in low and _NOT_AVAILABLE.search(line):
            b.put("torch.cuda_available", False, PROSE, words)
        if ("aarch64" in low or "jetson" in low) and _AARCH64.search(line):
            b.put("system.arch", "aarch64", PROSE, words)
        for pattern, os_name, hints in _SYSTEMS:
            if any(h in low for h in hints) and pattern.search(line):
                systems.append((os_name, words))
    if not b.gpus:  # a GPU list printed by a tool is never extended from prose
        _gpus(gpus, b)
        _capability(capabilities, b)
    if not b.gpus and gpu_node:  # a GPU node, its model unsaid
        b.gpu(None)
        b.note_said("nvidia.gpus", gpu_node)
    if systems:  # context for other facts and error lines; named alone it is no report (Builder.empty)
        b.put("system.os", systems[0][0], PROSE, systems[0][1])


def _versions(line: str, low: str, words: str, b: Builder) -> None:
    for m in _TORCH.finditer(line) if "torch" in low else ():
        version = m.group("v") + (f"+{m.group('tag')}" if m.group("tag") else "")
        b.package("torch", version, PROSE, said=words)
        cuda = m.group("cuda") or (m.group("cu") or "")[2:]
        if cuda:
            b.torch_build(cuda if "." in cuda else f"{cuda[:-1]}.{cuda[-1]}", PROSE, words)
    for m in _PACKAGE.finditer(line):
        b.package(m.group("pkg"), m.group("v"), PROSE, said=words)
    for m in _TORCH_CUDA.finditer(line) if "torch" in low else ():
        b.torch_build(m.group("cuda") or m.group("cuda2"), PROSE, words)


def _gpus(found: list[tuple[str, str]], b: Builder) -> None:
    """GPU names that the knowledge table knows (so "A10" in a model name is not a GPU)."""
    from envdoctor.knowledge.cuda import gpu_capability

    seen: set[str] = set()
    for raw, words in found:
        name = _gpu_name(raw)
        if name.upper() in seen or gpu_capability(name) is None:
            continue
        seen.add(name.upper())
        b.gpu(None, name)
        b.note_said("nvidia.gpus", words)


def _capability(found: list[tuple[str, str]], b: Builder) -> None:
    """One stated capability belongs to the one GPU named in prose, or stands for an unnamed GPU."""
    if len({cap for cap, _ in found}) != 1 or len(b.gpus) > 1:
        return
    capability, words = found[0]
    b.gpu(0, capability=capability)
    b.note_said("nvidia.gpus", words)


def _gpu_name(raw: str) -> str:
    """'rtx3090' -> 'NVIDIA GeForce RTX 3090'; 'Tesla T4' stays; 'A100' -> 'NVIDIA A100'; 'RTX PRO 6000'
    -> 'NVIDIA RTX PRO 6000'; a GeForce
    named by its number alone ("a 2060 GPU") takes its series: GTX up to the 16 series, RTX from 20."""
    name = re.sub(r"\s+", " ", raw.strip())
    if name[:1].isdigit():
        name = f"{'GTX' if name[:2] in ('10', '16') else 'RTX'} {name}"
    name = re.sub(r"(?i)\b(RTX|GTX)\s?(\d)", lambda m: f"{m.group(1).upper()} {m.group(2)}", name)
    if re.match(r"(?i)(?:NVIDIA\s+)?RTX PRO ", name):  # a workstation card, not a GeForce
        name = "NVIDIA RTX PRO " + name.split()[-1]
    elif re.match(r"(?i)(RTX|GTX) ", name):
        name = f"NVIDIA GeForce {name}"
    elif not re.match(r"(?i)(NVIDIA|Tesla|Jetson|GeForce|Quadro)\b", name):
        name = f"NVIDIA {name.upper()}"
    return name
