"""Rules about torch and the GPUs: CPU wheel on a GPU box, missing kernels, FP8 and bf16 support.

Facts read: cuda, nvidia, origin, packages, python, stated, system, torch (some through envdoctor.readers).
"""

from __future__ import annotations

from collections.abc import Iterator

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Manual, PipInstall, Severity
from envdoctor.knowledge import cuda as kb
from envdoctor.knowledge import ecosystem as eco
from envdoctor.readers import GpuInfo, TorchBuild, capabilities, gpus, torch_build
from envdoctor.rules import rule
from envdoctor.rules.torch_install import describe_install, torch_install_action
from envdoctor.versions import version_tuple

CUDA_COMPAT = "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#binary-compatibility"
NVIDIA_GPUS = "https://developer.nvidia.com/cuda-gpus"
PYTORCH_LOCAL = "https://pytorch.org/get-started/locally/"
TE_QUANT = (
    "https://github.com/NVIDIA/TransformerEngine/blob/d0067d0/transformer_engine/pytorch/quantization.py"
)
NO_WHEEL = "No official torch wheel covers this GPU with this driver: upgrade the driver or build torch."
AMP_DOC = "https://pytorch.org/docs/stable/amp.html"
CPP_EXTENSION = "https://pytorch.org/docs/stable/cpp_extension.html"


def _gpu_evidence(gpu_list: list[GpuInfo]) -> dict[str, object]:
    return {g.path: f"{g.name} (CC {g.capability or 'unknown'})" for g in gpu_list}


def _move_forward(
    build_version: str, driver: str | None, caps: list[str], python: str | None
) -> PipInstall | None:
    """Same torch version from a fitting CUDA index, else the oldest newer release that fits."""
    variant = kb.choose_variant(build_version, driver, caps)
    if variant:
        return torch_install_action(build_version, variant)
    found = kb.release_with_variant(build_version, driver, caps, python)
    if found and found[0].latest:
        return torch_install_action(found[0].latest, found[1], reinstall=False)
    return None


@rule(
    "torch-cpu-build",
    name="CPU-only torch on a machine with an NVIDIA GPU",
    severity=Severity.ERROR,
    area="torch",
    summary="torch is a CPU build (+cpu / no CUDA) although an NVIDIA GPU is present.",
    fix="Reinstall the same torch version from the CUDA index that fits the driver and the GPUs.",
    sources=(PYTORCH_LOCAL,),
    verify=(
        'python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())"'
    ),
)
def torch_cpu_build(facts: Facts) -> Iterator[Finding]:
    """Detects a CPU-only torch wheel (``+cpu``, or ``torch.version.cuda`` None) next to an NVIDIA GPU.

    Why (an error): ``torch.cuda.is_available()`` is False and everything runs on the CPU, typically after
    ``pip install torch --index-url .../cpu`` or a dependency resolver pulling the CPU wheel.
    Fix: force-reinstall the same version from the newest CUDA index whose driver floor the
    installed driver meets and whose arch list covers every GPU (see ``choose_variant``).
    """
    build = torch_build(facts)
    gpu_list = gpus(facts)
    if build is None or build.variant != "cpu" or not gpu_list:
        return
    caps = capabilities(gpu_list)
    driver = facts.nvidia.driver_version
    action = _move_forward(build.version, driver, caps, facts.python.version) if build.version else None
    actions: list = [action] if action else [Manual(f"Install a CUDA build of torch: {PYTORCH_LOCAL}")]
    inferred = " (inferred: no +cuXXX tag on " + str(facts.system.os) + ")"
    yield torch_cpu_build.finding(
        (
            f"torch {build.version or '(version not stated)'} is a CPU-only build"
            + (inferred if "inferred build" in build.evidence else "")
            + f" but {len(gpu_list)} NVIDIA GPU(s) are present "
            f"({', '.join(sorted({g.name for g in gpu_list}))})."
        ),
        evidence={**build.evidence, "nvidia.driver_version": driver, **_gpu_evidence(gpu_list)},
        fix=describe_install(action) if action else f"Install a CUDA build of torch: {PYTORCH_LOCAL}",
        actions=actions,
        inferred=any(g.inferred for g in gpu_list),
    )


@rule(
    "arch-not-in-wheel",
    name="GPU architecture not compiled into the torch wheel",
    severity=Severity.ERROR,
    area="torch",
    summary="The torch wheel has no kernels (cubin or usable PTX) for this GPU's compute capability.",
    fix="Install a torch build whose arch list covers the GPU (e.g. cu128+ for Blackwell, cu126 for Volta).",
    sources=(CUDA_COMPAT, NVIDIA_GPUS),
    verify='python -c "import torch; print(torch.cuda.get_arch_list(), torch.cuda.get_device_capability())"',
)
def arch_not_in_wheel(facts: Facts) -> Iterator[Finding]:
    """Detects a GPU whose compute capability the wheel's arch list does not cover.

    Why: kernels fail with "no kernel image is available for execution on the device" /
    "sm_120 is not compatible with the current PyTorch installation". A cubin for sm_XY runs on
    X.Z with Z >= Y (so an RTX 4090, 8.9, is fine on a list with 8.6); PTX of the last arch is
    JIT-compiled for newer GPUs only with a driver at least as new as the wheel's CUDA.
    The arch list is the one torch reported (``torch.arch_list``) when the import probe ran,
    otherwise the knowledge table for the version and CUDA variant (evidence says which).
    Fix: the same torch version from a CUDA index whose arch list covers every GPU (V100 on
    2.11+cu128 -> cu126); if that release has none, the oldest newer stable release that does
    (RTX 5090 on 2.6+cu126 -> 2.7.1 from cu128). Never a nightly.
    A CUDA package whose published kernels start above a GPU's compute capability (vLLM on a
    P100, FlashInfer 0.1.x on a T4) fails the same way while torch runs: a warning, since a package
    can be installed and not used.
    """
    torch_findings = list(_torch_without_kernels(facts))
    yield from torch_findings or _packages_without_kernels(facts)


def _torch_without_kernels(facts: Facts) -> Iterator[Finding]:
    build = torch_build(facts)
    gpu_list = gpus(facts)
    if build is not None and build.variant is None and gpu_list:
        yield from _no_build_covers(build, gpu_list, facts)
        return
    if build is None or not gpu_list or not (build.variant or "").startswith("cu"):
        return
    variant = build.variant or ""
    probed = facts.torch.arch_list
    arch_evidence: dict[str, object]
    if probed:
        entries, arch_evidence = probed, {"torch.arch_list": probed}
        source = None
    else:
        table = kb.arch_list(build.version, variant) if build.version else None
        if table is None:
            yield from _outside_toolkit(build, gpu_list, variant)
            return
        key = f"knowledge.arch_lists[{kb.minor_of(build.version)}/{variant}]"
        entries, arch_evidence, source = (
            table,
            {key: ";".join(table)},
            kb.arch_list_source(build.version, variant),
        )
    driver_cuda = facts.nvidia.cuda_driver_version
    wheel_cuda = facts.torch.cuda or variant
    uncovered = [
        g
        for g in gpu_list
        if g.capability and not kb.arch_covers(g.capability, entries, driver_cuda, wheel_cuda=wheel_cuda)
    ]
    if not uncovered:
        return
    caps = capabilities(gpu_list)
    driver = facts.nvidia.driver_version
    action = _move_forward(build.version, driver, caps, facts.python.version)
    names = ", ".join(sorted({f"{g.name} (sm_{(g.capability or '').replace('.', '')})" for g in uncovered}))
    evidence = {**build.evidence, **arch_evidence, **_gpu_evidence(uncovered)}
    if driver_cuda:
        evidence["nvidia.cuda_driver_version"] = driver_cuda
    yield arch_not_in_wheel.finding(
        f"torch {build.version} has no kernels for {names}; its arch list is {';'.join(entries)}.",
        evidence=evidence,
        fix=describe_install(action) if action else NO_WHEEL,
        actions=[action] if action else [Manual(NO_WHEEL)],
        sources=[s for s in (CUDA_COMPAT, source) if s],
        inferred=any(g.inferred for g in uncovered),
    )


def _packages_without_kernels(facts: Facts) -> Iterator[Finding]:
    """Installed CUDA packages (the kernel-floor table) with no kernels for some GPU: one finding."""
    gpu_list = gpus(facts) or []
    versions = facts.packages.versions or {}
    parts: list[str] = []
    fixes: list[str] = []
    evidence: dict[str, object] = {}
    sources: list[str] = []
    uncovered: dict[str, GpuInfo] = {}
    for package in eco.kernel_floor_packages():
        version = versions.get(package)
        floor = eco.kernel_floor(package, version) if version and gpu_list else None
        if floor is None or version is None:
            continue
        below = [
            g
            for g in gpu_list
            if g.capability and version_tuple(g.capability) < version_tuple(floor.min_capability)
        ]
        if not below:
            continue
        names = ", ".join(sorted({f"{g.name} (sm_{(g.capability or '').replace('.', '')})" for g in below}))
        parts.append(
            f"{package} {version} publishes kernels for compute capability {floor.min_capability} "
            f"and newer only: none for {names}"
        )
        lowest = min((g.capability or "" for g in below), key=version_tuple)
        newer = eco.kernel_release_for(package, lowest)
        fixes.append(
            f"install {package}{newer.versions} (kernels from compute capability {newer.min_capability})"
            if newer
            else f"run {package} on a GPU of compute capability {floor.min_capability} or newer, or build "
            f"it from source for sm_{lowest.replace('.', '')}"
        )
        evidence[f"packages.versions.{package}"] = version
        evidence[f"knowledge.kernel_floors[{package}{floor.versions}]"] = floor.min_capability
        sources.append(floor.source)
        uncovered.update({g.path: g for g in below})
    if not parts:
        return
    fix = "; ".join(fixes)
    fix = fix[0].upper() + fix[1:] + "."
    yield arch_not_in_wheel.finding(
        "; ".join(parts) + ".",
        severity=Severity.WARNING,
        evidence={**evidence, **_gpu_evidence(list(uncovered.values()))},
        fix=fix,
        actions=[Manual(fix)],
        sources=[*sources, NVIDIA_GPUS],
        inferred=any(g.inferred for g in uncovered.values()),
    )


def _no_build_covers(build: TorchBuild, gpu_list: list[GpuInfo], facts: Facts) -> Iterator[Finding]:
    """With the build unknown (a pasted version without its +cuXXX), a GPU that no published CUDA build
    of the release has kernels for cannot run this torch whichever build it is (a CPU build uses no GPU)."""
    release = kb.torch_release(build.version)
    if release is None or not release.cuda_variants:
        return
    tables = {v: kb.arch_list(release.minor, v) for v in release.cuda_variants}
    if any(entries is None for entries in tables.values()):
        return  # a build whose arch list is not known might cover it
    uncovered = [
        g
        for g in gpu_list
        if g.capability and not any(kb.arch_covers(g.capability, list(e or [])) for e in tables.values())
    ]
    if not uncovered:
        return
    caps = capabilities(gpu_list)
    action = _move_forward(build.version, facts.nvidia.driver_version, caps, facts.python.version)
    names = ", ".join(sorted({f"{g.name} (sm_{(g.capability or '').replace('.', '')})" for g in uncovered}))
    yield arch_not_in_wheel.finding(
        f"no CUDA build of torch {release.minor} ({', '.join(release.cuda_variants)}) has kernels for "
        f"{names}, so whichever build torch {build.version} is, it cannot use that GPU.",
        evidence={
            **build.evidence,
            **{f"knowledge.arch_lists[{release.minor}/{v}]": ";".join(e or []) for v, e in tables.items()},
            **_gpu_evidence(uncovered),
        },
        fix=describe_install(action) if action else NO_WHEEL,
        actions=[action] if action else [Manual(NO_WHEEL)],
        sources=[CUDA_COMPAT, release.source],
        inferred=any(g.inferred for g in uncovered),
    )


def _outside_toolkit(build: TorchBuild, gpu_list: list[GpuInfo], variant: str) -> Iterator[Finding]:
    """Without the wheel's arch list, the CUDA toolkit it was built with still bounds it: no cubin
    below or above the range that toolkit's nvcc compiles for (below it, nothing can run at all)."""
    span = kb.toolkit_archs(variant)
    if span is None:
        return
    low, high, source = span
    below = [g for g in gpu_list if g.capability and version_tuple(g.capability) < version_tuple(low)]
    above = [g for g in gpu_list if g.capability and version_tuple(g.capability) > version_tuple(high)]
    if not below and not above:
        return
    uncovered = below or above
    names = ", ".join(sorted({f"{g.name} (sm_{(g.capability or '').replace('.', '')})" for g in uncovered}))
    cuda = kb.cuda_of_variant(variant)
    which = f"torch {build.version}" if build.version else "this torch (version not stated)"
    message = (
        f"{which} was built with CUDA {cuda}, which compiles for sm_{low.replace('.', '')} .. "
        f"sm_{high.replace('.', '')}: no kernels for {names}"
    )
    if not below:
        message += " (only PTX, if the wheel ships it, could be JIT-compiled)"
    yield arch_not_in_wheel.finding(
        message + ".",
        severity=Severity.ERROR if below else Severity.WARNING,
        evidence={
            **build.evidence,
            f"knowledge.cuda_toolkit_archs[{cuda}]": f"{low}..{high}",
            **_gpu_evidence(uncovered),
        },
        fix=f"Install a torch build whose CUDA compiles for the GPU ({PYTORCH_LOCAL}).",
        actions=[Manual(f"Install a torch build whose CUDA compiles for the GPU: {PYTORCH_LOCAL}")],
        sources=[source, CUDA_COMPAT],
        inferred=any(g.inferred for g in uncovered),
    )


@rule(
    "fp8-unsupported",
    name="FP8 wanted on a GPU without FP8 support",
    severity=Severity.WARNING,
    area="torch",
    summary="An FP8 library is installed but no GPU has FP8 tensor cores (CC < 8.9), or FP8 matmul fails.",
    fix="Use bf16 on this GPU (A100: bf16 autocast), or run FP8 recipes on Ada/Hopper/Blackwell (CC >= 8.9).",
    sources=("https://github.com/pytorch/pytorch/blob/main/test/test_scaled_matmul_cuda.py", TE_QUANT),
)
def fp8_unsupported(facts: Facts) -> Iterator[Finding]:
    """Detects FP8 asked of hardware (or a torch build) that cannot do it.

    Why: FP8 tensor cores start at compute capability 8.9 (Ada; Hopper 9.0; Blackwell). An A100
    (8.0) has none: Transformer Engine raises "Device compute capability 8.9 or higher required
    for FP8 execution", torchao float8 refuses. On Ada, FP8 also needs a CUDA >= 12.1 build.
    When FP8 counts as asked: transformer-engine is installed (warning; its purpose is FP8),
    only torchao is installed (info: torchao also does int8/int4, which do not need FP8), or the
    runtime probe ran ``torch._scaled_mm`` and it failed on a GPU that should support it (error,
    with the error text).
    Fix: bf16 training on this GPU, or an FP8-capable GPU; on Ada, a torch build with CUDA >= 12.1.
    """
    gpu_list = gpus(facts)
    if not gpu_list:
        return
    scaled = facts.torch.scaled_mm
    capable = [g for g in gpu_list if g.capability and kb.fp8_supported(g.capability)]
    if scaled is not None and not scaled.ok and capable:
        yield fp8_unsupported.finding(
            f"FP8 matmul (torch._scaled_mm) failed on {capable[0].name}: {scaled.error or 'no error text'}",
            severity=Severity.ERROR,
            evidence={
                "torch.scaled_mm.ok": False,
                "torch.scaled_mm.error": scaled.error,
                **_gpu_evidence(capable),
            },
            fix="The GPU has FP8 tensor cores: check the torch CUDA build (Ada needs >= 12.1) and the error.",
            actions=[Manual("Install a torch CUDA build with FP8 support for this GPU; rerun the check.")],
        )
        return
    installed = facts.packages.versions or {}
    libs = [lib for lib in kb.fp8_libraries() if lib in installed]
    if not libs:
        return
    known = [g for g in gpu_list if g.capability]
    evidence: dict[str, object] = {f"packages.versions.{lib}": installed[lib] for lib in libs}
    if known and not capable:
        only_torchao = libs == ["torchao"]
        yield fp8_unsupported.finding(
            (
                f"{', '.join(libs)} installed, but no GPU supports FP8 "
                f"({', '.join(sorted({f'{g.name} CC {g.capability}' for g in known}))}; FP8 needs CC >= "
                f"{kb.fp8_min_capability()})."
            ),
            severity=Severity.INFO if only_torchao else Severity.WARNING,
            evidence={**evidence, **_gpu_evidence(known)},
            fix="Train in bf16 on this GPU (FP8 recipes need Ada/Hopper/Blackwell).",
            actions=[Manual("Switch the FP8 recipe to bf16 autocast, or run it on a GPU with CC >= 8.9.")],
            inferred=any(g.inferred for g in known),
        )
        return
    torch_cuda = facts.torch.cuda or (facts.packages.torch_build or {}).get("cuda")
    ada = [g for g in capable if kb.fp8_min_cuda(g.capability or "")]
    if ada and torch_cuda and len(capable) == len(ada):
        need = kb.fp8_min_cuda(ada[0].capability or "") or ""
        if version_tuple(torch_cuda) < version_tuple(need):
            yield fp8_unsupported.finding(
                (
                    f"FP8 on Ada ({ada[0].name}) needs a CUDA >= {need} build; "
                    f"torch is built with CUDA {torch_cuda}."
                ),
                evidence={**evidence, "torch.cuda": torch_cuda, **_gpu_evidence(ada)},
                fix=f"Install a torch build with CUDA >= {need}.",
                actions=[Manual(f"Install a torch build with CUDA >= {need} (any cu12x/cu13x index).")],
            )


@rule(
    "bf16-unsupported",
    name="GPU without bfloat16 tensor cores",
    severity=Severity.WARNING,
    area="torch",
    summary="A GPU below compute capability 8.0 (V100, T4) has no bf16 tensor cores (emulated or failing).",
    fix="Use float16 autocast with a GradScaler on this GPU, or a GPU with CC >= 8.0 for bf16 recipes.",
    sources=(AMP_DOC, NVIDIA_GPUS),
)
def bf16_unsupported(facts: Facts) -> Iterator[Finding]:
    """Detects GPUs without native bfloat16 (compute capability < 8.0: Volta, Turing, older).

    Why: bf16 recipes (the default in many trainers) either fail ("Bf16 requires Ampere") or run
    emulated and slow; ``torch.cuda.is_bf16_supported()`` may still say True because it counts
    emulation. Severity: warning when the runtime probe reported ``bf16_supported`` False, info
    when only the compute capability says so.
    Fix: ``torch.autocast(device_type="cuda", dtype=torch.float16)`` with ``torch.amp.GradScaler``.
    """
    devices = facts.torch.devices or []
    refused = [d for d in devices if d.bf16_supported is False]
    gpu_list = gpus(facts) or []
    old = [g for g in gpu_list if g.capability and version_tuple(g.capability) < (8, 0)]
    if not refused and not old:
        return
    step = "Use float16 autocast with torch.amp.GradScaler instead of bf16 on this GPU."
    if refused:
        yield bf16_unsupported.finding(
            f"torch reports no bfloat16 support on {', '.join(sorted({d.name for d in refused}))}.",
            evidence={f"torch.devices[{devices.index(d)}].bf16_supported": False for d in refused},
            fix=step,
            actions=[Manual(step)],
        )
        return
    yield bf16_unsupported.finding(
        (
            "No bf16 tensor cores on "
            f"{', '.join(sorted({f'{g.name} (CC {g.capability})' for g in old}))}: bf16 runs emulated (slow); "
            "prefer float16 with a GradScaler."
        ),
        severity=Severity.INFO,
        evidence=_gpu_evidence(old),
        fix=step,
        actions=[Manual(step)],
        inferred=any(g.inferred for g in old),
    )


@rule(
    "torch-cuda-variant-mismatch",
    name="torch CUDA build differs from the system CUDA toolkit",
    severity=Severity.INFO,
    area="cuda",
    summary="torch ships its own CUDA libraries; the system/base-image CUDA toolkit is a different version.",
    fix="If you build CUDA extensions, install torch from the index matching the toolkit (cu118 on 11.8).",
    sources=(CPP_EXTENSION, "https://pypi.org/project/torch/"),
)
def torch_cuda_variant_mismatch(facts: Facts) -> Iterator[Finding]:
    """Detects a torch CUDA build that differs from the CUDA toolkit of the base image (CUDA_VERSION).

    Why: wheels bundle their CUDA runtime, so the system toolkit goes unused by torch itself: plain
    PyPI ``torch==2.0.1`` is the cu117 build even on an ``nvidia/cuda:11.8`` image. It matters when
    compiling CUDA extensions (flash-attn, apex, deepspeed ops): ``torch.utils.cpp_extension``
    refuses a different CUDA major and warns on a different minor.
    Severity: warning for a different major (extension builds fail), info for a different minor.
    Fix: reinstall the same torch version from the index of the toolkit's CUDA when that release
    has one (2.0.1 on CUDA 11.8 -> cu118).
    """
    build = torch_build(facts)
    if build is None or not (build.variant or "").startswith("cu"):
        return
    # With nvcc on the machine, `nvcc-mismatch` says this (and more); this rule covers images whose
    # toolkit is known from CUDA_VERSION alone (the nvidia/cuda runtime images ship no nvcc).
    system_cuda = (facts.system.env or {}).get("CUDA_VERSION")
    if facts.cuda.nvcc_version or not system_cuda:
        return
    path = "system.env.CUDA_VERSION"
    system_variant = kb.variant_of_cuda(system_cuda)
    variant = build.variant or ""
    if system_variant is None or system_variant == variant:
        return
    torch_cuda = kb.cuda_of_variant(variant) or variant
    major_differs = version_tuple(torch_cuda)[:1] != version_tuple(system_cuda)[:1]
    release = kb.torch_release(build.version)
    actions: list = []
    if release and system_variant in release.cuda_variants:
        actions.append(torch_install_action(build.version, system_variant))
    origin = "the plain PyPI wheel" if "+" not in build.version else "this wheel"
    yield torch_cuda_variant_mismatch.finding(
        (
            f"torch {build.version} is {origin} built for CUDA {torch_cuda} but the system CUDA "
            f"toolkit is {system_cuda}; torch uses its own CUDA libraries, extensions built here use "
            f"{system_cuda}."
        ),
        severity=Severity.WARNING if major_differs else Severity.INFO,
        evidence={**build.evidence, path: system_cuda},
        fix=describe_install(actions[0]) if actions else f"Build extensions with CUDA {torch_cuda}.",
        actions=actions,
        sources=[CPP_EXTENSION, release.source if release else "https://pypi.org/project/torch/"],
    )
