"""Typed accessors over the CUDA-side knowledge tables (torch releases, drivers, arch lists, GPUs, FP8).

The tables are data with sources (``envdoctor/knowledge/*.yaml``); this module only answers
questions about them, so that rules never hard-code a version number. Every accessor returns
``None`` (or ``False``) for what the tables do not know: rules then stay silent instead of guessing.

Binary compatibility, as the arch rule applies it (NVIDIA CUDA C++ Programming Guide, "Binary
Compatibility" / "PTX Compatibility"): a cubin for ``sm_XY`` runs on a GPU of compute capability
``X.Z`` with ``Z >= Y`` (same major only); PTX for ``compute_XY`` is JIT-compiled by the driver for
any GPU of capability ``>= X.Y``, provided the driver is at least as new as the CUDA that produced
it. Architecture-specific targets (``sm_90a``) run only on exactly that capability.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from envdoctor.knowledge import load_table
from envdoctor.versions import version_tuple

INDEX_BASE = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class TorchRelease:
    """One torch minor release line: which Pythons and CUDA builds it ships."""

    minor: str  # "2.6"
    python: list[str]  # ["3.9", ..., "3.13"]
    cuda_variants: list[str]  # ["cu118", "cu124", "cu126"]
    pypi_default_cuda: str | None  # "cu124": the CUDA build that plain `pip install torch` gets
    source: str
    status: str
    latest: str | None = None  # newest patch release, "2.6.0"
    released: str | None = None  # date of x.y.0 on PyPI


@dataclass(frozen=True)
class ArchTarget:
    """One entry of an arch list: a cubin (``ptx=False``) or PTX for ``major.minor``."""

    major: int
    minor: int
    ptx: bool
    specific: bool = False  # "sm_90a": runs on exactly this capability only


def minor_of(version: str) -> str | None:
    """``"2.6.0+cu126"`` -> ``"2.6"``; ``"3.13.1"`` -> ``"3.13"``; None if not a version."""
    parts = version_tuple(version)
    return f"{parts[0]}.{parts[1]}" if len(parts) >= 2 else None


def cuda_of_variant(cuda: str) -> str | None:
    """``"cu126"`` / ``"12.6"`` / ``"12.6.3"`` -> ``"12.6"``; ``"cu130"`` -> ``"13.0"``."""
    cuda = cuda.strip().lower()
    m = re.fullmatch(r"cu(\d+)(\d)", cuda)
    if m:
        return f"{int(m.group(1))}.{m.group(2)}"
    return minor_of(cuda) if re.match(r"\d", cuda) else None


def variant_of_cuda(cuda: str) -> str | None:
    """``"12.6"`` -> ``"cu126"``; ``"13.0"`` -> ``"cu130"``."""
    parts = version_tuple(cuda)
    return f"cu{parts[0]}{parts[1]}" if len(parts) >= 2 else None


# --- torch releases --------------------------------------------------------------------------


@cache
def _releases() -> tuple[TorchRelease, ...]:
    rows = load_table("torch_releases")
    releases = [
        TorchRelease(
            minor=str(r["minor"]),
            python=[str(p) for p in r["python"]],
            cuda_variants=[str(v) for v in r["cuda_variants"]],
            pypi_default_cuda=r.get("pypi_default_cuda"),
            source=r["source"],
            status=r["status"],
            latest=r.get("latest"),
            released=r.get("released"),
        )
        for r in rows
    ]
    return tuple(sorted(releases, key=lambda rel: version_tuple(rel.minor)))


def torch_releases() -> list[TorchRelease]:
    """Every known torch release line, oldest first."""
    return list(_releases())


def torch_release(version: str) -> TorchRelease | None:
    """The release row for the minor of ``version`` (``"2.6.0+cu126"`` or ``"2.6"``)."""
    minor = minor_of(version)
    return next((r for r in _releases() if r.minor == minor), None)


def parse_variant(torch_version: str | None, torch_cuda: str | None) -> str | None:
    """The wheel's build variant: ``"cu126"``, ``"cpu"``, ``"rocm6.2"``, or None if unknown.

    The local version tag wins (``"2.6.0+cu126"``); a plain PyPI version (``"2.6.0"``) takes
    ``torch.version.cuda`` (``"12.4"`` -> ``"cu124"``). Without either, the build is unknown.
    """
    if torch_version and "+" in torch_version:
        local = torch_version.split("+", 1)[1].lower()
        if re.fullmatch(r"cu\d{3,}|cpu|rocm[\d.]+|xpu", local):
            return local
    if torch_cuda:
        return variant_of_cuda(torch_cuda)
    return None


def index_url(variant: str) -> str:
    """The PyTorch wheel index of a build variant: ``"cu128"`` -> ``.../whl/cu128``."""
    return f"{INDEX_BASE}/{variant}"


# --- drivers ---------------------------------------------------------------------------------


@cache
def _driver_rows() -> dict[str, dict]:
    return {str(r["cuda"]): r for r in load_table("cuda_drivers")}


def min_driver_for_cuda(cuda: str) -> str | None:
    """Lowest Linux driver that runs this CUDA's runtime under minor-version compatibility.

    ``"12.6"`` or ``"cu126"`` -> ``"525.60.13"``. Enough for precompiled cubins; JIT of PTX needs
    :func:`toolkit_driver_for_cuda`. CUDA 10.x and older predate that compatibility: their floor is
    the toolkit's own driver (``"cu102"`` -> ``"440.33"``).
    """
    version = cuda_of_variant(cuda)
    if version is None:
        return None
    if version_tuple(version)[:1] < (11,):  # no minor-version compatibility before CUDA 11
        return toolkit_driver_for_cuda(version)
    row = _driver_rows().get(version.split(".")[0])
    return str(row["min_driver"]) if row else None


def toolkit_driver_for_cuda(cuda: str) -> str | None:
    """The driver bundled with this CUDA toolkit (GA): the one that supports it fully, PTX JIT included."""
    version = cuda_of_variant(cuda)
    row = _driver_rows().get(version) if version else None
    return str(row["toolkit_driver"]) if row and row.get("toolkit_driver") else None


def driver_at_least(driver_version: str, required: str) -> bool:
    """Numeric comparison of driver versions (``"580.95.05" >= "580"``)."""
    return version_tuple(driver_version) >= version_tuple(required)


def driver_cuda_for_driver(driver_version: str) -> str | None:
    """Highest CUDA whose toolkit driver this driver reaches (what ``nvidia-smi`` calls "CUDA Version")."""
    reached = [
        cuda
        for cuda, row in _driver_rows().items()
        if "." in cuda
        and row.get("toolkit_driver")
        and driver_at_least(driver_version, row["toolkit_driver"])
    ]
    return max(reached, key=version_tuple, default=None)


# --- architectures ---------------------------------------------------------------------------


@cache
def _arch_rows() -> dict[tuple[str, str], tuple[str, ...]]:
    table: dict[tuple[str, str], tuple[str, ...]] = {}
    for r in load_table("arch_lists"):
        entries = tuple(a.strip() for a in str(r["arch_list"]).split(";") if a.strip())
        for minor in r["torch"]:
            for variant in r["variants"]:
                table[(str(minor), str(variant))] = entries
    return table


def arch_list(torch_version: str, variant: str) -> list[str] | None:
    """The wheel's arch list in table form (``["7.5", ..., "12.0+PTX"]``), None if not known."""
    minor = minor_of(torch_version)
    entries = _arch_rows().get((minor, variant.lower())) if minor else None
    return list(entries) if entries is not None else None


def toolkit_archs(cuda: str) -> tuple[str, str, str] | None:
    """(lowest sm, highest sm, source) that the CUDA toolkit ``cuda`` ("10.2", "cu126") compiles for."""
    wanted = cuda_of_variant(cuda) or cuda
    rows = [
        r for r in load_table("cuda_toolkit_archs") if version_tuple(str(r["cuda"])) <= version_tuple(wanted)
    ]
    if not rows or not version_tuple(wanted):
        return None
    row = max(rows, key=lambda r: version_tuple(str(r["cuda"])))
    return str(row["min"]), str(row["max"]), str(row["source"])


def arch_list_source(torch_version: str, variant: str) -> str | None:
    """The source URL of the arch-list row used for this version and variant."""
    minor = minor_of(torch_version)
    for r in load_table("arch_lists"):
        if minor in [str(m) for m in r["torch"]] and variant.lower() in r["variants"]:
            return str(r["source"])
    return None


def parse_arch(entry: str) -> list[ArchTarget]:
    """Targets of one arch-list entry: ``"9.0+PTX"`` (table) or ``"sm_90"`` / ``"compute_90"`` (torch)."""
    entry = entry.strip().lower()
    m = re.fullmatch(r"(\d+)\.(\d)([af]?)(\+ptx)?", entry)
    if m:
        major, minor, suffix, ptx = int(m.group(1)), int(m.group(2)), m.group(3), bool(m.group(4))
        targets = [ArchTarget(major, minor, False, suffix == "a")]
        if ptx:
            targets.append(ArchTarget(major, minor, True, suffix == "a"))
        return targets
    m = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", entry)
    if m:
        return [ArchTarget(int(m.group(2)), int(m.group(3)), m.group(1) == "compute", m.group(4) == "a")]
    return []


def _capability(cc: str) -> tuple[int, int] | None:
    parts = version_tuple(cc)
    return (parts[0], parts[1]) if len(parts) >= 2 else None


def _target_runs_on(target: ArchTarget, cap: tuple[int, int], ptx_ok: bool) -> bool:
    if target.specific:
        return (target.major, target.minor) == cap
    if target.ptx:
        return ptx_ok and cap >= (target.major, target.minor)
    return cap[0] == target.major and cap[1] >= target.minor


def arch_covers(
    capability: str,
    arch_list: list[str],
    driver_cuda: str | None = None,
    *,
    wheel_cuda: str | None = None,
) -> bool:
    """Whether a wheel with ``arch_list`` has code that runs on a GPU of ``capability``.

    Accepts table entries (``"8.6"``, ``"12.0+PTX"``) and ``torch.cuda.get_arch_list()`` entries
    (``"sm_86"``, ``"compute_120"``). PTX counts unless both ``driver_cuda`` (the highest CUDA the
    driver supports) and ``wheel_cuda`` are known and the driver is older than the wheel's CUDA.
    """
    ptx_ok = (
        driver_cuda is None
        or wheel_cuda is None
        or version_tuple(driver_cuda) >= version_tuple(cuda_of_variant(wheel_cuda) or wheel_cuda)
    )
    return _covers(capability, arch_list, ptx_ok)


def _covers(capability: str, arch_list: list[str], ptx_ok: bool) -> bool:
    cap = _capability(capability)
    if cap is None:
        return False
    return any(_target_runs_on(t, cap, ptx_ok) for entry in arch_list for t in parse_arch(entry))


def _variant_fits(
    release: TorchRelease, variant: str, driver_version: str | None, capabilities: list[str]
) -> bool:
    floor = min_driver_for_cuda(variant)
    if floor is None or (driver_version is not None and not driver_at_least(driver_version, floor)):
        return False
    if not capabilities:
        return True
    entries = arch_list(release.minor, variant)
    if entries is None:
        return False  # cannot confirm the GPU is covered
    # Below the toolkit's own driver, PTX of this CUDA cannot be JIT-compiled: only cubins count.
    toolkit = toolkit_driver_for_cuda(variant)
    ptx_ok = driver_version is None or toolkit is None or driver_at_least(driver_version, toolkit)
    return all(_covers(cc, entries, ptx_ok) for cc in capabilities)


def choose_variant(torch_version: str, driver_version: str | None, capabilities: list[str]) -> str | None:
    """The CUDA build of this torch release to install for this driver and these GPUs.

    Candidates are the release's CUDA variants whose minor-version-compatibility driver floor the
    driver meets (any, if the driver is unknown) and whose arch list covers every capability.
    Among them the newest one whose own toolkit driver the installed driver also reaches wins
    (fully supported, PTX JIT included); failing that, the newest candidate. None if none fits.
    """
    release = torch_release(torch_version)
    if release is None:
        return None
    candidates = [v for v in release.cuda_variants if _variant_fits(release, v, driver_version, capabilities)]
    if not candidates:
        return None
    candidates.sort(key=lambda v: version_tuple(cuda_of_variant(v) or "0"))
    if driver_version is not None:
        full = [
            v
            for v in candidates
            if (td := toolkit_driver_for_cuda(v)) is not None and driver_at_least(driver_version, td)
        ]
        if full:
            return full[-1]
    return candidates[-1]


def release_with_variant(
    after: str | None,
    driver_version: str | None,
    capabilities: list[str],
    python: str | None = None,
) -> tuple[TorchRelease, str] | None:
    """The oldest release newer than ``after`` (or any, if None) with a fitting variant.

    A fitting variant is what :func:`choose_variant` picks; when ``python`` is given the release
    must also ship wheels for it. Used to move a user forward by the smallest step (an RTX 5090
    on torch 2.6 -> 2.7 with cu128), never to a nightly.
    """
    start = version_tuple(after) if after else ()
    py_minor = minor_of(python) if python else None
    for release in _releases():
        if start and version_tuple(release.minor) <= start[:2]:
            continue
        if py_minor and py_minor not in release.python:
            continue
        variant = choose_variant(release.minor, driver_version, capabilities)
        if variant is not None:
            return release, variant
    return None


# --- GPUs ------------------------------------------------------------------------------------


@cache
def _gpu_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(str(r["match"]), re.IGNORECASE), str(r["cc"])) for r in load_table("gpus"))


def gpu_capability(name: str) -> str | None:
    """Compute capability from a GPU name as the driver prints it; None for names not in the table."""
    normalized = re.sub(r"\s+", " ", name.replace("_", " ")).strip().upper()
    for pattern, cc in _gpu_patterns():
        if pattern.search(normalized):
            return cc
    return None


@dataclass(frozen=True)
class GpuArch:
    """An architecture and the first driver that drives it (``gpu_drivers.yaml``)."""

    name: str  # "Ada Lovelace"
    min_driver: str  # "520.61.05"
    branch: str  # "R520"
    first_cuda: str  # "11.8"
    source: str


def gpu_arch(capability: str) -> GpuArch | None:
    """The architecture of a compute capability ("8.9" -> Ada Lovelace, R520), None if not in the table."""
    for r in load_table("gpu_drivers"):
        if capability in [str(c) for c in r["capabilities"]]:
            return GpuArch(
                str(r["arch"]), str(r["min_driver"]), str(r["branch"]), str(r["first_cuda"]), str(r["source"])
            )
    return None


# --- host compilers --------------------------------------------------------------------------


def max_gcc_for_cuda(cuda: str) -> tuple[int, str] | None:
    """The newest GCC major nvcc of this CUDA accepts, with the row's source; None if not known.

    A row holds from its CUDA up to the next row; a toolkit newer than the last row is unknown.
    """
    version = version_tuple(cuda_of_variant(cuda) or "")[:2]
    rows = sorted(load_table("host_compilers"), key=lambda r: version_tuple(str(r["cuda"])))
    below = [r for r in rows if version_tuple(str(r["cuda"])) <= version]
    if not version or not below:
        return None
    row = below[-1]
    if row is rows[-1] and version_tuple(str(row["cuda"])) != version:
        return None
    return int(row["max_gcc"]), str(row["source"])


def min_cuda_for_gcc(gcc_major: int) -> str | None:
    """The oldest CUDA toolkit whose nvcc accepts this GCC major as host compiler; None if none known."""
    rows = sorted(load_table("host_compilers"), key=lambda r: version_tuple(str(r["cuda"])))
    return next((str(r["cuda"]) for r in rows if int(r["max_gcc"]) >= gcc_major), None)


# --- FP8 -------------------------------------------------------------------------------------


def _fp8_value(key: str) -> str:
    return next(str(r["value"]) for r in load_table("fp8") if r["key"] == key)


def fp8_min_capability() -> str:
    """Lowest compute capability with FP8 tensor cores (Ada, 8.9)."""
    return _fp8_value("min_capability")


def fp8_supported(capability: str) -> bool:
    """Whether a GPU of this compute capability has FP8 tensor cores (>= 8.9)."""
    cap = _capability(capability)
    return cap is not None and cap >= _capability(fp8_min_capability())  # type: ignore[operator]


def fp8_min_cuda(capability: str) -> str | None:
    """CUDA the torch build needs for FP8 on this GPU: 12.1 on Ada (8.9), None otherwise."""
    return _fp8_value("min_cuda_ada") if _capability(capability) == (8, 9) else None


def fp8_libraries() -> list[str]:
    """Distributions whose presence means FP8 is wanted (transformer-engine, torchao)."""
    return [str(r["value"]) for r in load_table("fp8") if r["key"] == "library"]


def source_of(table: str, **match: str) -> str | None:
    """Source URL of the first row of ``table`` whose fields equal ``match`` (for findings' sources)."""
    for r in load_table(table):
        if all(str(r.get(k)) == v for k, v in match.items()):
            return str(r["source"])
    return None
