"""One reader per fact: which torch, which GPUs, which package versions, what a requirement names.

Facts often say one thing in several places (the imported torch, ``torch/version.py``, the package
listing; torch's devices, the driver's GPUs, the GPU name table). Rules, the planner, recipes and
rendering all read them through these functions, so that findings and plans cannot disagree about
which torch or which GPUs they are looking at.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envdoctor.facts import Facts
from envdoctor.facts import Requirement as UnmetRequirement
from envdoctor.knowledge import cuda as kb
from envdoctor.versions import public_version

# --- torch ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchBuild:
    """The installed torch as far as the facts tell: version, build variant, and where they came from."""

    version: str  # "2.6.0+cu126"
    variant: str | None  # "cu126", "cpu", "rocm6.2" or None (unknown)
    evidence: dict[str, object]


PYPI_CPU_ONLY = (
    "PyPI's torch wheels for Windows and macOS are CPU builds; CUDA builds come from download.pytorch.org "
    "and carry a +cuXXX tag"
)


def os_family(facts: Facts) -> str | None:
    """'windows', 'macos' or 'linux' from the OS a report or probe names; None when unknown."""
    name = (facts.system.os or "").lower()
    for family, words in (
        ("windows", ("windows",)),
        ("macos", ("macos", "mac os", "darwin")),
        ("linux", ("linux", "ubuntu", "debian", "centos", "fedora", "rocky", "red hat", "suse", "alma")),
    ):
        if any(w in name for w in words):
            return family
    return None


def _pypi_build(facts: Facts, version: str, evidence: dict[str, object]) -> TorchBuild | None:
    """The build of a torch version without a local tag, from the platform: PyPI's wheel there.

    Windows and macOS: a CPU build. Linux x86_64: the release's default CUDA build (the
    ``pypi_default_cuda`` of the knowledge table). Inferred, so the evidence says so: conda's
    builds also lack the tag (their CUDA shows in conda's build string, read elsewhere), and a
    report's version may be retyped without it.
    """
    if "+" in version:
        return None
    family = os_family(facts)
    release = kb.torch_release(version)
    if family in ("windows", "macos"):
        inferred, variant = PYPI_CPU_ONLY, "cpu"
    elif (
        family == "linux" and facts.system.arch in (None, "x86_64") and release and release.pypi_default_cuda
    ):
        variant = release.pypi_default_cuda
        inferred = f"PyPI's Linux x86_64 wheel of torch {release.minor} is its {variant} build"
    else:
        return None
    return TorchBuild(
        version, variant, {**evidence, "system.os": facts.system.os, "inferred build": inferred}
    )


def torch_build(facts: Facts) -> TorchBuild | None:
    """The installed torch from the import probe, else from torch/version.py, else from the package list.

    A pasted report's version without a local tag and without torch's CUDA gets the build PyPI ships
    for the platform the report names (see _pypi_build), marked ``inferred build`` in the evidence.
    """
    t = facts.torch
    build = facts.packages.torch_build
    if t.version:
        variant = kb.parse_variant(t.version, t.cuda)
        if variant is None and t.status == "ok":
            variant = f"rocm{t.hip}" if t.hip else "cpu"  # imported fine, no CUDA: a CPU (or ROCm) build
        evidence: dict[str, object] = {"torch.version": t.version, "torch.cuda": t.cuda}
        if variant is None and t.hip is None and facts.origin == "report":
            return _pypi_build(facts, t.version, evidence) or TorchBuild(t.version, None, evidence)
        return TorchBuild(t.version, variant, evidence)
    if build and build.get("version"):
        version = str(build["version"])
        variant = kb.parse_variant(version, build.get("cuda"))
        if variant is None and "cuda" in build and build.get("hip") is None:
            variant = "cpu"  # version.py says cuda = None: built without CUDA
        evidence = {
            "packages.torch_build.version": version,
            "packages.torch_build.cuda": build.get("cuda"),
        }
        return TorchBuild(version, variant, evidence)
    versions = facts.packages.versions or {}
    if "torch" in versions:
        version = versions["torch"]
        evidence = {"packages.versions.torch": version}
        variant = kb.parse_variant(version, None)
        if variant is None and facts.origin == "report":
            return _pypi_build(facts, version, evidence) or TorchBuild(version, None, evidence)
        return TorchBuild(version, variant, evidence)
    if "torch.cuda" in facts.stated and t.cuda is None and t.hip is None:
        # A report that says "a CPU-only version of torch" without naming the version.
        return TorchBuild("", "cpu", {"torch.cuda": "none (a CPU build)"})
    if t.cuda and facts.origin == "report":
        # A report that names torch's CUDA but not its version ("CUDA version used by PyTorch (12.1)").
        return TorchBuild("", kb.variant_of_cuda(t.cuda), {"torch.cuda": t.cuda})
    return None


def torch_build_version(facts: Facts) -> str | None:
    """The torch version the build itself names (import probe, else ``torch/version.py``), None if none.

    Unlike :func:`installed_torch` this ignores the package listing: a listed torch that was neither
    imported nor read from its ``version.py`` says nothing about its build.
    """
    return facts.torch.version or (facts.packages.torch_build or {}).get("version")


def installed_torch(facts: Facts) -> str | None:
    """The torch version of the checked environment, with its local tag (``"2.6.0+cu126"``).

    The imported module wins, then ``torch/version.py``, then the distribution metadata.
    """
    return torch_build_version(facts) or (facts.packages.versions or {}).get("torch")


def listed_torch(facts: Facts) -> str | None:
    """The torch distribution pip lists (the one a pip command replaces), with the imported build's local
    tag (``+cu126``) when the import saw that same release; None when pip lists no torch."""
    listed = installed_versions(facts).get("torch")
    imported = facts.torch.version
    if listed is not None and imported and public_version(imported) == public_version(listed):
        return imported
    return listed


def torch_cuda(facts: Facts) -> str | None:
    """``torch.version.cuda`` from the import, else from ``torch/version.py``."""
    return facts.torch.cuda or (facts.packages.torch_build or {}).get("cuda")


def torch_hip(facts: Facts) -> str | None:
    """``torch.version.hip`` from the import, else from ``torch/version.py``."""
    return facts.torch.hip or (facts.packages.torch_build or {}).get("hip")


# --- GPUs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    name: str
    capability: str | None
    inferred: bool  # capability derived from the name via the knowledge table
    path: str  # fact path the capability was read from


def gpus(facts: Facts) -> list[GpuInfo] | None:
    """GPUs with their compute capability: torch's view first, then the driver's, then the name table.

    None when no probe saw the GPUs (unknown); an empty list when the driver reported none.
    """
    devices = facts.torch.devices
    if devices:
        return [
            GpuInfo(d.name, d.capability, False, f"torch.devices[{i}].capability")
            if d.capability
            else GpuInfo(d.name, kb.gpu_capability(d.name), True, f"torch.devices[{i}].name")
            for i, d in enumerate(devices)
        ]
    nv = facts.nvidia.gpus
    if nv is None:
        return None
    out = []
    for i, g in enumerate(nv):
        if g.compute_capability:
            out.append(GpuInfo(g.name, g.compute_capability, g.capability_inferred, f"nvidia.gpus[{i}]"))
        else:
            out.append(GpuInfo(g.name, kb.gpu_capability(g.name), True, f"nvidia.gpus[{i}].name"))
    return out


def capabilities(gpu_list: list[GpuInfo] | None) -> list[str]:
    """Distinct known compute capabilities, in order of first appearance."""
    return list(dict.fromkeys(g.capability for g in gpu_list or [] if g.capability))


def gpu_capabilities(facts: Facts) -> list[str]:
    """Distinct known compute capabilities of this machine's GPUs, read as :func:`gpus` reads them."""
    return capabilities(gpus(facts))


# --- packages and requirements -------------------------------------------------------------------


def package_version(facts: Facts, name: str) -> str | None:
    """The version of a tracked package, by its canonical or its listed name."""
    versions = facts.packages.versions or {}
    return versions.get(canonicalize_name(name)) or versions.get(name)


def numpy_version(facts: Facts) -> str | None:
    """The NumPy torch imports (seen from inside the torch process), else the listed distribution."""
    return facts.torch.numpy_version or package_version(facts, "numpy")


def installed_versions(facts: Facts) -> dict[str, str]:
    """Installed distributions by canonical name, from the full listing or the tracked packages."""
    listing = facts.packages.all or facts.packages.versions or {}
    return {canonicalize_name(k): v for k, v in listing.items()}


def requirement_spec(requirement: str) -> str:
    """A requirement string without its environment marker: ``"idna<4,>=2.5; ..."`` -> ``"idna<4,>=2.5"``."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return requirement.split(";", 1)[0].strip()
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def requirement_name(requirement: str) -> str:
    """The canonical project name a requirement string names (also for a string packaging rejects)."""
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return canonicalize_name(requirement.split(";", 1)[0].split()[0].rstrip("<>=!~,"))


def is_torch_cuda_dependency(unmet: UnmetRequirement) -> bool:
    """An unmet requirement of torch on one of its CUDA library wheels (nvidia-*, cuda-toolkit)."""
    name = requirement_name(unmet.requirement)
    return unmet.package.lower() == "torch" and (name.startswith("nvidia-") or name == "cuda-toolkit")
