"""Accumulates facts read from a pasted report, keeping the most authoritative value of each.

One paste often states the same fact several times (``collect_env`` and ``nvidia-smi`` both give the
driver; ``collect_env`` and ``pip list`` both give torch). Each parser reports what it saw with a
priority; the highest priority wins, the first one on a tie. :meth:`Builder.build` turns that into
:class:`envdoctor.facts.Facts` with ``origin = "report"``; what no line stated stays ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from envdoctor.facts import Distribution, Facts, Gpu, LibraryFile, Toolkit, is_cuda_wheel, is_fact_path

# Priorities: a line that states the fact about the running torch / driver beats a package listing;
# words a person wrote ("torch 2.0.1", "driver version 340") come last of all.
STATED, TOOL, LISTING, DERIVED, PROSE = 30, 20, 10, 5, 1

_LOCAL_CUDA = re.compile(r"\+cu(\d{2,3})$")
_LOCAL_ROCM = re.compile(r"\+rocm(\d+\.\d+)")
_SOURCE_BUILD = re.compile(r"\+(?:git)?[0-9a-f]{7,40}$")  # the commit of a source build


def cuda_from_tag(tag: str) -> str:
    """'121' -> '12.1', '118' -> '11.8', '92' -> '9.2' (the +cuXYZ local version of a wheel)."""
    return f"{tag[:-1]}.{tag[-1]}"


@dataclass
class _Gpu:
    name: str | None = None
    capability: str | None = None
    memory_mib: int | None = None
    mig: bool | None = None


@dataclass
class Builder:
    values: dict[str, tuple[int, Any]] = field(default_factory=dict)
    gpus: dict[int, _Gpu] = field(default_factory=dict)
    packages: dict[str, tuple[int, str]] = field(default_factory=dict)
    torch_installs: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, version) -> name
    libraries: dict[str, LibraryFile] = field(default_factory=dict)
    toolkits: dict[str, Toolkit] = field(default_factory=dict)  # path -> toolkit a listing names
    env: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # The torch build's CUDA version ("" = a CPU build), with its priority: stated lines beat the tag.
    torch_cuda: tuple[int, str] | None = None
    # Facts a person wrote (prose, a quoted command) rather than a tool printed: key -> (prio, words).
    said: dict[str, tuple[int, str]] = field(default_factory=dict)

    def put(self, key: str, value: Any, prio: int, said: str | None = None) -> None:
        """Record ``key`` (a dotted facts path) unless a value of higher priority is already known;
        ``said`` gives the words when a person stated it rather than a tool printed it."""
        if not is_fact_path(key):
            raise ValueError(f"{key!r} is not a fact (see envdoctor.facts.Facts)")
        if value is None or value == "":
            return
        old = self.values.get(key)
        if old is None or prio > old[0]:
            self.values[key] = (prio, value)
            self._said(key, prio, said)

    def torch_build(self, cuda: str | None, prio: int, said: str | None = None) -> None:
        """Record the CUDA version torch was built with; ``None`` means a CPU build (not unknown)."""
        if self.torch_cuda is None or prio > self.torch_cuda[0]:
            self.torch_cuda = (prio, cuda or "")
            self._said("torch.cuda", prio, said)

    def _said(self, key: str, prio: int, said: str | None) -> None:
        if said:
            self.said[key] = (prio, said)
        else:
            self.said.pop(key, None)

    def note_said(self, key: str, said: str) -> None:
        """Mark a fact recorded without ``put`` (a GPU named in prose) as stated by a person."""
        self.said[key] = (PROSE, said)

    def get(self, key: str) -> Any:
        item = self.values.get(key)
        return item[1] if item else None

    def gpu(
        self,
        index: int | None,
        name: str | None = None,
        capability: str | None = None,
        memory_mib: int | None = None,
        mig: bool | None = None,
    ) -> None:
        """Record what a line says about one GPU (an unknown index means the first GPU seen by name)."""
        given = name
        name = _clean_gpu_name(name) if name else None
        if given and name is None and not (capability or memory_mib or mig is not None):
            return  # "GPU 1: NVIDIA" in a paste cut mid-line states nothing
        if index is None:
            if name or capability is None:
                known = [i for i, g in self.gpus.items() if name and g.name and _same_gpu(g.name, name)]
            else:  # a capability alone ("Current capability: 70"): the GPU that has it, not one more
                known = [i for i, g in self.gpus.items() if _may_have(g, capability)]
            index = known[0] if known else (0 if not self.gpus else max(self.gpus) + 1)
        g = self.gpus.setdefault(index, _Gpu())
        # A full name beats a truncated one ("NVIDIA GeForce RTX 3080 ..." in nvidia-smi tables).
        if name and (g.name is None or (len(name) > len(g.name) and _same_gpu(g.name, name))):
            g.name = name
        g.capability = capability or g.capability
        g.memory_mib = memory_mib or g.memory_mib
        g.mig = mig if mig is not None else g.mig

    def package(
        self, name: str, version: str, prio: int = LISTING, source: str = "pip", said: str | None = None
    ) -> None:
        name = canonicalize_name(name)
        if name == "pytorch":  # the conda package name of torch
            name = "torch"
        old = self.packages.get(name)
        if old is None or prio > old[0]:
            self.packages[name] = (prio, version)
            self._said(f"packages.versions.{name}", prio, said)
        if name == "torch":
            if prio > PROSE:  # prose names a version, not an install location
                self.torch_installs.setdefault((source, version), name)
            self.put("torch.version", version, prio, said)

    def library(self, path: str) -> None:
        name = path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
        version = re.search(r"\.so\.(\d+(?:\.\d+)*)$", name)
        self.libraries.setdefault(
            path, LibraryFile(name, path, "report", version.group(1) if version else None)
        )

    def empty(self) -> bool:
        """Nothing but context: the OS named alone (a sentence saying "on Windows") is no report. A torch
        build without a version ("the CPU-only PyTorch is installed") is a fact."""
        values = any(key != "system.os" for key in self.values)
        torch_build = self.torch_cuda is not None
        return not (
            values or torch_build or self.gpus or self.packages or self.libraries or self.env or self.toolkits
        )

    def build(self) -> Facts:
        """The facts this paste states, plus what follows from them without any outside knowledge."""
        f = Facts(origin="report")
        self._finish_torch()
        for key, (_, value) in self.values.items():
            obj: Any = f
            *parents, last = key.split(".")
            for p in parents:
                obj = getattr(obj, p)
            setattr(obj, last, value)
        nvidia = {i: g for i, g in self.gpus.items() if not (g.name and _OTHER_VENDOR.search(g.name))}
        others = [g.name for i, g in sorted(self.gpus.items()) if i not in nvidia and g.name]
        f.system.other_gpus = others or None
        if nvidia:
            f.nvidia.gpus = [
                Gpu(
                    index=i,
                    name=g.name or "unknown GPU",
                    compute_capability=g.capability,
                    memory_total_mib=g.memory_mib,
                    mig_mode=g.mig,
                )
                for i, g in sorted(nvidia.items())
            ]
        if nvidia or f.nvidia.driver_version or f.nvidia.error:
            f.nvidia.source = "report"
        if self.packages:
            versions = {k: v for k, (_, v) in self.packages.items()}
            f.packages.versions = versions
            wheels = {k: v for k, v in versions.items() if is_cuda_wheel(k)}
            f.packages.nvidia_wheels = wheels or None
            if "numpy" in versions and f.torch.numpy_version is None:
                f.torch.numpy_version = versions["numpy"]
        if len(_distinct_builds(v for _, v in self.torch_installs)) > 1:
            f.packages.torch_installs = [
                Distribution(name="torch", version=v, location=src) for (src, v) in self.torch_installs
            ]
        if self.libraries:
            f.cuda.libraries = list(self.libraries.values())
        if self.toolkits:
            f.cuda.toolkits = sorted(self.toolkits.values(), key=lambda t: t.path)
        if self.env:
            f.system.env = dict(self.env)
        if self.warnings:
            f.torch.warnings = list(self.warnings)
        if self.torch_cuda is not None:
            f.torch.cuda = self.torch_cuda[1] or None
        f.stated = {key: words for key, (_, words) in sorted(self.said.items())}
        # Probes report a CPU build as status "ok" with cuda None: claim "ok" only when the build is known,
        # so that a paste without the build line never reads as a CPU build.
        if f.torch.version and (self.torch_cuda is not None or f.torch.hip):
            f.torch.status = "ok"
        if f.torch.status == "ok":
            f.packages.torch_build = {
                "version": f.torch.version,
                "cuda": f.torch.cuda,
                "hip": f.torch.hip,
                "git_version": None,
            }
        return f

    def _finish_torch(self) -> None:
        """Derive the torch build (CUDA / ROCm / CPU) from its local version tag when no line states it."""
        version = self.get("torch.version")
        if not version:
            return
        cu = _LOCAL_CUDA.search(version)
        rocm = _LOCAL_ROCM.search(version)
        said = self.said.get("torch.version", (0, None))[1]  # a build read off a stated version is stated
        if cu:
            self.torch_build(cuda_from_tag(cu.group(1)), DERIVED, said)
        elif rocm:
            self.put("torch.hip", rocm.group(1), DERIVED, said)
        elif version.endswith("+cpu"):
            self.torch_build(None, DERIVED, said)


# collect_env names the GPUs of a ROCm or XPU build on the same line as NVIDIA's ("AMD Instinct MI250X
# (gfx90a:sramecc+:xnack-)", "Intel(R) Data Center GPU Max 1550"): such a GPU is not a CUDA device.
_OTHER_VENDOR = re.compile(r"\b(?:AMD|Radeon|Instinct|gfx\d{3,4}|Intel)\b|Intel\(R\)", re.IGNORECASE)


def _clean_gpu_name(name: str) -> str | None:
    """The GPU name without UUID, arch or memory suffixes; a truncated name keeps its '...' (nvidia-smi
    tables cut long names: 'GeForce GTX 105...'), so that no capability is inferred from a prefix.
    A bare vendor name ('NVIDIA', a paste cut mid-line) names no GPU."""
    name = re.sub(r"\s*\((?:UUID|arch=|\d+\s*[GM]i?B\b).*$", "", name.strip())
    name = re.sub(r"\s+", " ", name).strip()
    truncated = name.endswith(("...", "\u2026"))
    name = name.rstrip(" .\u2026")
    if not name or name.upper() in ("NVIDIA", "NVIDIA CORPORATION", "AMD", "GPU"):
        return None
    return name + "..." if truncated else name


def _same_gpu(a: str, b: str) -> bool:
    """Whether two spellings name the same GPU ('GeForce RTX 3080' vs 'NVIDIA GeForce RTX 3080 Ti' is not);
    a truncated name ('GeForce GTX 108...') is the same GPU as any name it begins."""
    a, b = (x.removeprefix("NVIDIA ").lower() for x in (a, b))
    if a.endswith("...") or b.endswith("..."):
        a, b = a.removesuffix("..."), b.removesuffix("...")
        return a.startswith(b) or b.startswith(a)
    return a == b or a.startswith(b) or b.startswith(a)


def _may_have(g: _Gpu, capability: str) -> bool:
    """Whether a GPU already seen can be the one a message gives only the capability of: it has that
    capability, or none stated and a name that has it or is not in the table."""
    from envdoctor.knowledge.cuda import gpu_capability

    if g.capability is not None:
        return g.capability == capability
    return g.name is None or gpu_capability(g.name) in (None, capability)


def _distinct_builds(versions: Iterable[str]) -> set[str]:
    """Versions naming different torch builds: "1.9.0" (pip's record of a PyPI wheel) and
    "1.9.0+cu102" (what that wheel's ``torch.__version__`` says) are the same install, and so are
    two commits of one source build ("1.7.0a0+9ddd3df" and "1.7.0a0+a9603c7": a develop install
    rebuilt without refreshing pip's record)."""
    versions = {_SOURCE_BUILD.sub("", v) for v in versions}
    tagged = {v.split("+", 1)[0] for v in versions if "+" in v}
    return {v for v in versions if "+" in v or v not in tagged}
