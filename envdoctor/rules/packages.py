"""Package rules: NumPy ABI, compiled companions built for another torch, unmet requirements,
transformers releases that need a newer torch.

Facts read: packages, system, torch (some through envdoctor.readers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from packaging.utils import canonicalize_name

from envdoctor.facts import Facts, Requirement
from envdoctor.findings import Action, Finding, Manual, PipInstall, Severity
from envdoctor.knowledge.cuda import index_url, parse_variant
from envdoctor.knowledge.ecosystem import (
    companion_for_torch,
    companion_packages,
    companion_pin,
    last_release_before_floor,
    spec_contains,
    torch_floor,
)
from envdoctor.readers import (
    installed_torch,
    is_torch_cuda_dependency,
    numpy_version,
    os_family,
    package_version,
    requirement_name,
    requirement_spec,
    torch_cuda,
)
from envdoctor.rules import rule
from envdoctor.versions import parse_version, public_version

NUMPY_SOURCES = (
    "https://github.com/pytorch/pytorch/issues/107302",
    "https://github.com/pytorch/pytorch/issues/132179",
)
# Text that torch <= 2.2 prints when it meets NumPy 2 (warning at import, error on use).
NUMPY_ABI_SIGNALS = ("compiled using NumPy 1.x", "_ARRAY_API not found")
COMPANION_SOURCES = (
    "https://github.com/pytorch/vision#installation",
    "https://docs.pytorch.org/audio/2.11.0/installation.html",
    "https://github.com/facebookresearch/xformers#installing-xformers",
)
TRANSFORMERS_SOURCES = (
    "https://pypi.org/project/transformers/",
    "https://github.com/huggingface/transformers/blob/main/src/transformers/utils/import_utils.py",
)
PIP_CHECK_SOURCE = "https://pip.pypa.io/en/stable/cli/pip_check/"


# --- numpy-abi ---------------------------------------------------------------------------------


@rule(
    "numpy-abi",
    name="NumPy 2 with a torch built for NumPy 1",
    severity=Severity.ERROR,
    area="packages",
    summary="torch <= 2.2 was compiled against NumPy 1.x; with NumPy 2 every tensor<->array call fails.",
    fix="pip install 'numpy<2' (or upgrade torch to >= 2.3).",
    sources=NUMPY_SOURCES,
    verify='python -c "import torch, numpy; print(numpy.__version__); torch.zeros(1).numpy()"',
)
def numpy_abi(facts: Facts) -> Iterator[Finding]:
    """Detects NumPy 2 next to a torch built against NumPy 1.x: numpy >= 2 with torch < 2.3 (the
    torch_floors table), or NumPy's warning about it seen when torch was imported.

    Why: torch releases up to 2.2 were built against NumPy 1.x; torch 2.3.0 is the first that
    supports NumPy 2.0. torch declares no numpy dependency, so pip happily installs NumPy 2 next
    to an old torch. ``import torch`` then warns "A module that was compiled using NumPy 1.x cannot
    be run in NumPy 2.x" and ``tensor.numpy()`` / ``torch.from_numpy`` / DataLoader collation fail
    ("_ARRAY_API not found", "Numpy is not available").
    Fix: ``pip install 'numpy<2'``; upgrading torch to >= 2.3 also works but changes much more.
    """
    torch_version = installed_torch(facts)
    numpy = numpy_version(facts)
    signals = [w for w in facts.torch.warnings or [] if any(s in w for s in NUMPY_ABI_SIGNALS)]
    floor = torch_floor("numpy", numpy) if numpy else None
    too_old = bool(floor and torch_version and not spec_contains(floor.torch, torch_version))
    if not (too_old or signals):
        return
    # Cite the fact the version was read from: a facts file may hold it only as torch saw it.
    listed = package_version(facts, "numpy") == numpy
    numpy_path = "packages.versions.numpy" if listed else "torch.numpy_version"
    evidence: dict[str, object] = {numpy_path: numpy, "torch.version": torch_version}
    if signals:
        evidence["torch.warnings"] = signals
    detail = f"torch {torch_version} needs torch{floor.torch} for NumPy {numpy}" if floor and too_old else ""
    seen = "import torch reported the NumPy 1.x/2.x ABI break" if signals else ""
    yield numpy_abi.finding(
        "NumPy 2 with a torch built for NumPy 1: " + "; ".join(p for p in (detail, seen) if p),
        evidence=evidence,
        fix="pip install 'numpy<2' (or upgrade torch to >= 2.3).",
        actions=[PipInstall(("numpy<2",))],
        sources=[*NUMPY_SOURCES, *([floor.source] if floor else [])],
    )


# --- ext-abi-mismatch --------------------------------------------------------------------------


def _cuda_major(variant: str | None) -> str | None:
    """``"cu126"`` -> ``"12"``; None for cpu/rocm/unknown."""
    if variant and variant.startswith("cu") and variant[2:].isdigit() and len(variant) >= 5:
        return variant[2:-1]
    return None


def _local_tag(version: str) -> str | None:
    return version.split("+", 1)[1].lower() if "+" in version else None


def companion_mismatch(facts: Facts, package: str) -> str | None:
    """Why ``package`` does not fit the installed torch, or None if it fits or facts are unknown."""
    torch_version, version = installed_torch(facts), package_version(facts, package)
    if not torch_version or not version:
        return None
    pin = companion_pin(package, version)
    if pin and not spec_contains(pin.torch, torch_version):
        return f"{package} {version} was built for torch{pin.torch}, installed torch is {torch_version}"
    torch_tag, tag = _local_tag(torch_version), _local_tag(version)
    if torch_tag and tag and torch_tag != tag and torch_tag.startswith("cu"):
        return f"{package} {version} is a {tag} build, torch {torch_version} is a {torch_tag} build"
    return None


def _companion_fix(facts: Facts, package: str) -> tuple[str, list[Action]]:
    torch_version = installed_torch(facts) or ""
    want = companion_for_torch(package, torch_version)
    if want is None:
        text = f"Install the {package} release built for torch {torch_version} (none is in the table)."
        return text, [Manual(text)]
    variant = parse_variant(torch_version, torch_cuda(facts))
    from_index = _local_tag(torch_version) is not None and variant is not None
    spec = f"{package}=={want.version}"
    if from_index and package != "xformers":  # PyTorch-index torchvision/torchaudio carry +cuXYZ
        spec += f"+{variant}"
    index = index_url(variant) if from_index and variant else None
    where = f" --index-url {index}" if index else ""
    return f"pip install '{spec}'{where}", [PipInstall((spec,), index_url=index)]


def ext_abi_severity(facts: Facts, package: str) -> Severity:
    """ERROR unless only the CUDA minor of the local tags differs (``+cu124`` vs ``+cu126``)."""
    torch_version, version = installed_torch(facts) or "", package_version(facts, package) or ""
    pin = companion_pin(package, version)
    if pin and not spec_contains(pin.torch, torch_version):
        return Severity.ERROR
    torch_major, major = _cuda_major(_local_tag(torch_version)), _cuda_major(_local_tag(version))
    return Severity.WARNING if torch_major and torch_major == major else Severity.ERROR


@rule(
    "ext-abi-mismatch",
    name="Compiled companion built for another torch",
    severity=Severity.ERROR,
    area="packages",
    summary="torchvision/torchaudio/xformers wheels are linked against one torch release and CUDA build.",
    fix="Install the companion release paired with the installed torch, from the same wheel index.",
    sources=COMPANION_SOURCES,
    verify='python -c "import torch, torchvision; print(torch.__version__, torchvision.__version__)"',
)
def ext_abi_mismatch(facts: Facts) -> Iterator[Finding]:
    """Detects torchvision, torchaudio (before 2.11) or xformers built for another torch release
    or another CUDA build than the installed torch.

    Why: these ship C++/CUDA extensions linked against exactly one torch release: torchvision
    0.21.0 pins ``torch==2.6.0``, 0.26.0 pins 2.11.0, xformers 0.0.29.post3 pins 2.6.0 (the
    torch_companions table, read from each wheel's metadata). With another torch, importing them
    fails with ``undefined symbol`` errors or ``operator torchvision::nms does not exist``.
    torchaudio 2.11 uses torch's stable ABI and accepts any torch >= 2.11. The CUDA build must
    match too: a ``+cu121`` torchvision next to a ``+cu126`` torch is flagged.
    Severity: an error for another torch release or across CUDA majors (torchvision refuses at
    import: "compiled with different CUDA major versions"); a warning when only the CUDA minor differs.
    Fix: install the paired release; for a torch from the PyTorch index (``+cu126``) it must come
    from that index.
    """
    for package in companion_packages():
        why = companion_mismatch(facts, package)
        if why is None:
            continue
        fix, actions = _companion_fix(facts, package)
        yield ext_abi_mismatch.finding(
            why,
            severity=ext_abi_severity(facts, package),
            evidence={
                "packages.versions.torch": installed_torch(facts),
                f"packages.versions.{package}": package_version(facts, package),
            },
            fix=fix,
            actions=actions,
        )
    yield from _native_build_missing(facts)


# A package whose native library is a binary per platform: its PyPI wheels name the platforms it was
# built for (mined listings). bitsandbytes up to 0.42 ships one py3-none-any wheel with Linux x86_64
# binaries inside; its first win_amd64 wheel is 0.43.0, its first manylinux_aarch64 wheel 0.46.0.
NATIVE_PER_PLATFORM = {"bitsandbytes": "python -m bitsandbytes"}  # package -> the report that checks it


def _platform(facts: Facts) -> tuple[str, str] | None:
    """(the platform in words, the wheel-tag suffix built for it) where a Linux x86_64 build cannot
    run: Windows, or Linux on aarch64."""
    if os_family(facts) == "windows":
        return "Windows", "_amd64"
    if (facts.system.arch or "").lower() in ("aarch64", "arm64") and os_family(facts) != "macos":
        return "Linux aarch64", "_aarch64"
    return None


def _native_build_missing(facts: Facts) -> Iterator[Finding]:
    """The installed release of such a package has no wheel for this platform: what pip installed is a
    build for another one (bitsandbytes 0.41 on Windows loads no GPU library). A warning from the
    facts: a source build or a third-party wheel of the same version may carry the binary."""
    from envdoctor.knowledge import mined  # the listings load only for a package and platform that need them

    target = _platform(facts)
    for package, verify in NATIVE_PER_PLATFORM.items():
        version = package_version(facts, package)
        platforms = mined.wheel_platforms(package, version) if version and target else None
        if target is None or not platforms or any(p.endswith(target[1]) for p in platforms):
            continue
        first = mined.first_release_with_platform(package, target[1])
        newer = f"; {package} {first} is the first release built for it" if first else ""
        finding = ext_abi_mismatch.finding(
            f"{package} {version} has no build for {target[0]} on PyPI (its wheels: "
            f"{', '.join(sorted(platforms))}){newer}",
            severity=Severity.WARNING,
            evidence={f"packages.versions.{package}": version, "platform": target[0]},
            fix=f"pip install -U '{package}>={first}'"
            if first
            else f"Build {package} from source for this platform.",
            actions=[PipInstall((f"{package}>={first}",))] if first else [],
            sources=[f"https://pypi.org/project/{package}/#files"],
        )
        yield dataclasses.replace(finding, verify=verify)


# --- requirement-conflict ----------------------------------------------------------------------


def _explained_elsewhere(facts: Facts, unmet: Requirement) -> bool:
    """Unmet pins that a more specific rule reports with a better fix."""

    package, required = canonicalize_name(unmet.package), requirement_name(unmet.requirement)
    if package in companion_packages() and required == "torch":
        return companion_mismatch(facts, package) is not None
    return is_torch_cuda_dependency(unmet)


@rule(
    "requirement-conflict",
    name="Unmet package requirement",
    severity=Severity.ERROR,
    area="packages",
    summary="An installed package's Requires-Dist is not satisfied (what `pip check` reports).",
    fix="Install a version that satisfies the requirement, or the dependent package's matching release.",
    sources=(PIP_CHECK_SOURCE,),
    verify="python -m pip check",
)
def requirement_conflict(facts: Facts) -> Iterator[Finding]:
    """Detects every ``Requires-Dist`` of an installed distribution that the environment does
    not satisfy: a missing project or a version outside the specifier (``pip check``'s view, read
    from metadata without importing anything).

    Why: pip installs with ``--no-deps``, later installs that downgrade a shared dependency, and
    conda/pip mixing leave these behind; the failure shows up later as ImportError/AttributeError
    deep inside the dependent package. Always an error: a tool that exits 0 on a broken
    environment hides exactly this. Unmet torch pins of torchvision/torchaudio/xformers and missing
    nvidia-* wheels of torch are reported by ``ext-abi-mismatch`` and ``cuda-lib-conflict`` instead.
    Fix: install what the requirement asks for (for torch itself: pick a torch release
    deliberately, not implicitly).
    """
    for unmet in facts.packages.unmet or []:
        if _explained_elsewhere(facts, unmet):
            continue
        have = f"{unmet.installed} is installed" if unmet.installed else "it is not installed"
        spec = requirement_spec(unmet.requirement)
        if requirement_name(unmet.requirement) == "torch":
            fix = f"Pick a torch build that satisfies {spec}, or a {unmet.package} release for your torch."
            actions: list[Action] = [Manual(fix)]
        else:
            fix = f"pip install '{spec}'"
            actions = [PipInstall((spec,))]
        yield requirement_conflict.finding(
            f"{unmet.package} {unmet.package_version} requires {spec}, but {have}",
            evidence={
                "packages.unmet": {
                    "package": unmet.package,
                    "package_version": unmet.package_version,
                    "requirement": unmet.requirement,
                    "installed": unmet.installed,
                }
            },
            fix=fix,
            actions=actions,
        )


# --- transformers-torch-incompat ---------------------------------------------------------------


@rule(
    "transformers-torch-incompat",
    name="transformers needs a newer torch",
    severity=Severity.ERROR,
    area="packages",
    summary="transformers disables torch at import when torch is older than its floor (5.20+: 2.6).",
    fix="Install a transformers release that supports the installed torch, or upgrade torch.",
    sources=TRANSFORMERS_SOURCES,
    verify=(
        'python -c "import transformers, torch; print(transformers.__version__, torch.__version__); from transformers import AutoModel"'
    ),
)
def transformers_torch_incompat(facts: Facts) -> Iterator[Finding]:
    """Detects a transformers release whose torch floor the installed torch is below.

    Why: transformers keeps torch in an extra, so pip never checks it; at import it compares
    torch's version with its floor and, below it, logs "Disabling PyTorch because PyTorch >= X is
    required but found Y" and exposes no model classes (``AutoModel...`` raise, Trainer imports
    fail). Floors per release line (torch_floors table, from wheel metadata): 4.48-4.51 need
    torch 2.0, 4.52-4.55 2.1, 4.56-5.0 2.2, 5.1-5.14 2.4, 5.15-5.19 2.5, 5.20+ 2.6. The comparison
    is PEP 440 like transformers' own: a pre-release build such as NGC's ``2.1.0a0+nv`` is older
    than 2.1.
    Fix: ``pip install 'transformers<N'`` where N is the first line that needs a newer torch
    (keeps torch untouched), or upgrade torch.
    """
    version, torch_version = package_version(facts, "transformers"), installed_torch(facts)
    if not version or not torch_version or parse_version(torch_version) is None:
        return
    floor = torch_floor("transformers", version)
    if floor is None or spec_contains(floor.torch, torch_version):
        return
    below = last_release_before_floor("transformers", torch_version)
    if below:
        spec = f"transformers<{below}"
        fix = f"pip install '{spec}' (or upgrade torch to {floor.torch.lstrip('>=')} or newer)"
        actions: list[Action] = [PipInstall((spec,))]
    else:
        fix = f"Upgrade torch to {floor.torch.lstrip('>=')} or newer."
        actions = [Manual(fix)]
    yield transformers_torch_incompat.finding(
        (
            f"transformers {version} needs torch{floor.torch} but torch is {public_version(torch_version)}: "
            "it disables PyTorch at import"
        ),
        evidence={"packages.versions.transformers": version, "torch.version": torch_version},
        fix=fix,
        actions=actions,
        sources=[floor.source, *TRANSFORMERS_SOURCES],
    )
