"""Typed accessors for the ecosystem tables: companion pins, torch floors, CUDA library wheels.

* ``torch_companions.yaml``: the torch release each torchvision / torchaudio / xformers release
  was built for (their wheels carry compiled code linked against one torch ABI).
* ``torch_floors.yaml``: the oldest torch a package release works with where pip does not enforce
  it (transformers keeps torch in an extra and disables torch at import; numpy 2 breaks old torch).
* ``kernel_floors.yaml``: the oldest GPU architecture a CUDA package's published binaries have kernels
  for (vLLM, FlashInfer), below which the package fails although torch runs.
* ``cuda_libraries.yaml``: which ``nvidia-*`` wheel ships which shared library, so that a library
  found on ``LD_LIBRARY_PATH`` can be compared with the one torch's wheels install.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from envdoctor.knowledge import load_table
from envdoctor.versions import parse_version, public_version


def spec_contains(spec: str, version: str) -> bool:
    """Whether ``version`` (local tag ignored) satisfies the specifier set ``spec``.

    PEP 440 ordering applies: NGC's ``2.3.0a0+ebedce2`` is older than ``2.3.0``, exactly as
    transformers' own version check sees it. An unparsable version or spec never matches.
    """
    parsed = parse_version(public_version(version))
    if parsed is None:
        return False
    try:
        return SpecifierSet(spec).contains(parsed, prereleases=True)
    except InvalidSpecifier:
        return False


# --- companions (torchvision, torchaudio, xformers) ---------------------------------------------


@dataclass(frozen=True)
class CompanionPin:
    """One release of a compiled companion package and the torch it requires."""

    package: str  # "torchvision"
    version: str  # "0.21.0"
    torch: str  # specifier set the release's wheel metadata pins: "==2.6.0", ">=2.11"
    source: str
    status: str


@cache
def _companions() -> tuple[CompanionPin, ...]:
    return tuple(
        CompanionPin(
            package=canonicalize_name(row["package"]),
            version=str(row["version"]),
            torch=str(row["torch"]),
            source=row["source"],
            status=row["status"],
        )
        for row in load_table("torch_companions")
    )


def companion_packages() -> tuple[str, ...]:
    """Packages the companion table knows, in table order."""
    return tuple(dict.fromkeys(pin.package for pin in _companions()))


def companion_pin(package: str, version: str) -> CompanionPin | None:
    """The row of exactly this release (local tag ignored), or None if the table lacks it."""
    name, release = canonicalize_name(package), parse_version(public_version(version))
    if release is None:
        return None
    for pin in _companions():
        if pin.package == name and parse_version(pin.version) == release:
            return pin
    return None


def companion_for_torch(package: str, torch_version: str) -> CompanionPin | None:
    """The newest release of ``package`` whose torch pin accepts ``torch_version``."""
    name = canonicalize_name(package)
    fits = [p for p in _companions() if p.package == name and spec_contains(p.torch, torch_version)]
    return max(fits, key=lambda p: Version(p.version), default=None)


# --- torch floors (transformers, numpy) --------------------------------------------------------


@dataclass(frozen=True)
class TorchFloor:
    """Releases ``versions`` of ``package`` need torch ``torch`` (a specifier, e.g. ``>=2.6``)."""

    package: str
    versions: str  # ">=5.20"
    torch: str  # ">=2.6"
    source: str
    status: str


@cache
def _floors() -> tuple[TorchFloor, ...]:
    return tuple(
        TorchFloor(
            package=canonicalize_name(row["package"]),
            versions=str(row["versions"]),
            torch=str(row["torch"]),
            source=row["source"],
            status=row["status"],
        )
        for row in load_table("torch_floors")
    )


def torch_floor(package: str, version: str) -> TorchFloor | None:
    """The floor row covering this release of ``package``, or None if the table has none."""
    name = canonicalize_name(package)
    for floor in _floors():
        if floor.package == name and spec_contains(floor.versions, version):
            return floor
    return None


def last_release_before_floor(package: str, torch_version: str) -> str | None:
    """The lower bound of the first release line that needs a newer torch than ``torch_version``.

    ``transformers`` on torch 2.1 -> ``"4.56"`` (4.56 needs torch >= 2.2), so ``transformers<4.56``
    keeps a release that still imports torch. None if every known line accepts this torch.
    """
    name = canonicalize_name(package)
    bounds: list[Version] = []
    for floor in _floors():
        if floor.package != name or spec_contains(floor.torch, torch_version):
            continue
        bounds.extend(Version(s.version) for s in SpecifierSet(floor.versions) if s.operator == ">=")
    return str(min(bounds)) if bounds else None


# --- CUDA libraries shipped as nvidia-* wheels -------------------------------------------------


@dataclass(frozen=True)
class CudaLibrary:
    """A CUDA library family: its sonames and the pip wheel that ships it."""

    family: str  # "cudnn" (the folder under site-packages/nvidia/)
    soname: re.Pattern[str]  # matches "libcudnn.so.9", "libcudnn_ops.so.9"; group 1 = major
    wheel: str  # "nvidia-cudnn": matches nvidia-cudnn, nvidia-cudnn-cu12, nvidia-cudnn-cu13
    source: str
    status: str


@cache
def _cuda_libraries() -> tuple[CudaLibrary, ...]:
    return tuple(
        CudaLibrary(
            family=row["family"],
            soname=re.compile(row["soname"]),
            wheel=canonicalize_name(row["wheel"]),
            source=row["source"],
            status=row["status"],
        )
        for row in load_table("cuda_libraries")
    )


def cuda_library(soname: str) -> tuple[CudaLibrary, int] | None:
    """The family of a shared library file name and its soname major: ``libcudnn.so.8`` -> (cudnn, 8)."""
    for lib in _cuda_libraries():
        match = lib.soname.match(soname)
        if match:
            return lib, int(match.group(1))
    return None


def wheel_version(library: CudaLibrary, nvidia_wheels: dict[str, str]) -> tuple[str, str] | None:
    """The installed wheel (name, version) that ships ``library``, from ``packages.nvidia_wheels``."""
    pattern = re.compile(rf"{re.escape(library.wheel)}(-cu\d+)?")
    for name, version in sorted(nvidia_wheels.items()):
        if pattern.fullmatch(canonicalize_name(name)):
            return name, version
    return None


# --- kernel floors (vllm, flashinfer) ------------------------------------------------------------


@dataclass(frozen=True)
class KernelFloor:
    """Releases ``versions`` of ``package`` publish kernels for compute capability ``min_capability`` up."""

    package: str
    versions: str  # "<0.1.6"
    min_capability: str  # "8.0"
    source: str
    status: str


@cache
def _kernel_floors() -> tuple[KernelFloor, ...]:
    return tuple(
        KernelFloor(
            package=canonicalize_name(row["package"]),
            versions=str(row["versions"]),
            min_capability=str(row["min_capability"]),
            source=row["source"],
            status=row["status"],
        )
        for row in load_table("kernel_floors")
    )


def kernel_floor_packages() -> tuple[str, ...]:
    """Packages the kernel-floor table knows, in table order."""
    return tuple(dict.fromkeys(floor.package for floor in _kernel_floors()))


def kernel_floor(package: str, version: str) -> KernelFloor | None:
    """The row covering this release of ``package``, or None if the table does not judge it."""
    name = canonicalize_name(package)
    return next(
        (f for f in _kernel_floors() if f.package == name and spec_contains(f.versions, version)), None
    )


def kernel_release_for(package: str, capability: str) -> KernelFloor | None:
    """The first row of ``package`` with a lower bound (``>=X``) whose kernels cover ``capability``:
    the releases to move to. None if no published release does."""
    name, cap = canonicalize_name(package), parse_version(capability)
    for floor in _kernel_floors():
        floor_cap = parse_version(floor.min_capability)
        if floor.package != name or cap is None or floor_cap is None or cap < floor_cap:
            continue
        if any(s.operator == ">=" and s.version != "0" for s in SpecifierSet(floor.versions)):
            return floor
    return None
