"""Rules about what builds and runs CUDA code beside torch: the toolkit (nvcc) against the driver, the
GPU against the driver, and the host compiler and build tools against the toolkit.

Facts read: cuda, nvidia, packages, system, toolchain, torch (some through envdoctor.readers).
"""

from __future__ import annotations

from collections.abc import Iterator

from envdoctor.facts import Facts
from envdoctor.findings import Action, Finding, Manual, PipInstall, Severity
from envdoctor.knowledge import cuda as kb
from envdoctor.readers import gpus, torch_cuda
from envdoctor.rules import rule
from envdoctor.versions import version_tuple

MVC_DOC = "https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html"
RELEASE_NOTES = "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html"
INSTALL_GUIDE = (
    "https://docs.nvidia.com/cuda/cuda-installation-guide-linux/index.html#host-compiler-support-policy"
)
CPP_EXTENSION = "https://github.com/pytorch/pytorch/blob/main/torch/utils/cpp_extension.py"
DRIVER_DOWNLOADS = "https://www.nvidia.com/en-us/drivers/unix/"
# Variables that choose nvcc's host compiler instead of the gcc on PATH (torch's cpp_extension passes
# $CC to nvcc as -ccbin).
HOST_COMPILER_VARS = ("NVCC_CCBIN", "CUDAHOSTCXX", "CC")


def driver_cuda(facts: Facts) -> str | None:
    """The newest CUDA the driver fully supports: nvidia-smi's "CUDA Version", else from the driver table."""
    nv = facts.nvidia
    if nv.cuda_driver_version:
        return nv.cuda_driver_version
    return kb.driver_cuda_for_driver(nv.driver_version) if nv.driver_version else None


def _toolkit_to_use(facts: Facts, limit: str | None) -> str:
    """The toolkit to build with instead: an installed one the driver supports, else the CUDA to install."""
    if limit is None:
        return "a CUDA toolkit this driver supports"
    fits = [
        t for t in facts.cuda.toolkits or [] if t.version and version_tuple(t.version) <= version_tuple(limit)
    ]
    if fits:
        best = max(fits, key=lambda t: version_tuple(t.version or "0"))
        return f"the installed CUDA {best.version} toolkit (CUDA_HOME={best.path})"
    return f"a CUDA toolkit <= {limit}"


@rule(
    "toolkit-newer-than-driver",
    name="CUDA toolkit newer than the driver",
    severity=Severity.ERROR,
    area="cuda",
    summary="nvcc (CUDA_HOME) is a newer CUDA than the driver runs: what it builds fails to load or to JIT.",
    fix="Build with a toolkit the driver supports (CUDA_HOME), or upgrade the driver to the toolkit's floor.",
    sources=(MVC_DOC, RELEASE_NOTES),
    verify="nvidia-smi --query-gpu=driver_version --format=csv,noheader; nvcc --version | tail -2",
)
def toolkit_newer_than_driver(facts: Facts) -> Iterator[Finding]:
    """Detects a CUDA toolkit (the nvcc that extension builds use) that the driver cannot fully run.

    Why: code that nvcc builds links that toolkit's runtime. Below the minor-version-compatibility
    floor of the toolkit's major (11.x: 450.80.02, 12.x: 525.60.13, 13.x: 580) nothing it builds
    starts ("CUDA driver version is insufficient for CUDA runtime version"). Above the floor but below
    the toolkit's own driver, cubins run but its PTX cannot be JIT-compiled ("the provided PTX was
    compiled with an unsupported toolchain"), and so do kernels compiled at run time.
    Severity: error below the floor (a warning when CUDA initialised anyway: forward compatibility is in
    use); info between the floor and the toolkit's driver (supported by
    minor-version compatibility, with its limits).
    Fix: point CUDA_HOME at a toolkit no newer than the driver's CUDA (nvidia-smi's "CUDA Version"),
    or upgrade the driver.
    """
    nvcc, driver = facts.cuda.nvcc_version, facts.nvidia.driver_version
    if not nvcc or not driver or facts.nvidia.gpus == []:  # a driver that sees no GPU runs nothing anyway
        return
    floor, full = kb.min_driver_for_cuda(nvcc), kb.toolkit_driver_for_cuda(nvcc)
    limit = driver_cuda(facts)
    evidence: dict[str, object] = {
        "cuda.nvcc_version": nvcc,
        "cuda.nvcc_path": facts.cuda.nvcc_path,
        "nvidia.driver_version": driver,
        "driver supports CUDA": limit,
    }
    use = _toolkit_to_use(facts, limit)
    if floor and not kb.driver_at_least(driver, floor):
        fix = f"Build with {use}, or upgrade the NVIDIA driver to >= {full or floor}."
        message = (
            f"nvcc is CUDA {nvcc} but driver {driver} runs CUDA <= {limit or 'unknown'} "
            f"(CUDA {nvcc.split('.')[0]}.x needs >= {floor}): extensions built with it cannot run"
        )
        # CUDA initialised below the floor: CUDA forward compatibility (cuda-compat, data-center GPUs)
        # is in use, and it runs what this toolkit builds too, while the package matches.
        torch_cuda = facts.torch.cuda
        torch_floor = kb.min_driver_for_cuda(torch_cuda) if torch_cuda else None
        forward = (
            facts.torch.cuda_available is True
            and torch_floor is not None
            and not kb.driver_at_least(driver, torch_floor)
        )
        if forward:
            evidence["torch.cuda_available"] = True
            message = message.replace(
                "cannot run", "run only through CUDA forward compatibility (cuda-compat)"
            )
        yield toolkit_newer_than_driver.finding(
            message,
            severity=Severity.WARNING if forward else Severity.ERROR,
            evidence=evidence,
            fix=fix,
            actions=[Manual(fix)],
        )
    elif full and not kb.driver_at_least(driver, full):
        fix = f"Build with {use}, or upgrade the NVIDIA driver to >= {full}; or build without +PTX."
        yield toolkit_newer_than_driver.finding(
            (
                f"nvcc is CUDA {nvcc} but driver {driver} runs CUDA <= {limit or 'unknown'}: its builds run "
                f"only by minor-version compatibility; PTX from it cannot be JIT-compiled (needs >= {full})"
            ),
            severity=Severity.INFO,
            evidence=evidence,
            fix=fix,
            actions=[Manual(fix)],
        )


@rule(
    "gpu-newer-than-driver",
    name="GPU newer than the driver",
    severity=Severity.ERROR,
    area="nvidia",
    summary="The driver branch predates the GPU's architecture: it cannot drive that GPU at all.",
    fix="Upgrade the NVIDIA driver to the first branch that supports the architecture, or newer.",
    sources=(RELEASE_NOTES, DRIVER_DOWNLOADS),
    verify="nvidia-smi --query-gpu=name,driver_version --format=csv",
)
def gpu_newer_than_driver(facts: Facts) -> Iterator[Finding]:
    """Detects a GPU whose architecture is newer than the driver (an RTX 4090, Ada, on a 470 driver).

    Why: a driver only initialises the GPUs it knows; NVIDIA adds an architecture in the branch
    released with the first CUDA toolkit that targets it (Ada and Hopper: R520, Blackwell: R570).
    Below it ``nvidia-smi`` says "No devices were found" and no CUDA program, whatever its build,
    sees the GPU. The floor comes from ``knowledge/gpu_drivers.yaml`` (per architecture; a later
    model can need a later branch).
    Fix: install a driver at or above the architecture's branch; only then choose the torch build.
    """
    driver = facts.nvidia.driver_version
    if not driver:
        return
    behind = []
    for g in gpus(facts) or []:
        arch = kb.gpu_arch(g.capability) if g.capability else None
        if arch and not kb.driver_at_least(driver, arch.min_driver):
            behind.append((g, arch))
    if not behind:
        return
    need = max((a for _, a in behind), key=lambda a: version_tuple(a.min_driver))
    names = sorted({f"{g.name} ({a.name}, sm {g.capability})" for g, a in behind})
    fix = f"Upgrade the NVIDIA driver to >= {need.min_driver} ({need.branch} or a newer branch)."
    yield gpu_newer_than_driver.finding(
        (
            f"Driver {driver} predates {', '.join(names)}: the first driver for {need.name} is "
            f"{need.branch} (>= {need.min_driver})"
        ),
        evidence={
            "nvidia.driver_version": driver,
            "gpus": {g.name: g.capability for g, _ in behind},
            "first driver": {a.name: a.min_driver for _, a in behind},
        },
        fix=fix,
        actions=[Manual(fix)],
        sources=[need.source, RELEASE_NOTES],
        inferred=any(g.inferred for g, _ in behind),
    )


def _major(version: str | None) -> int | None:
    parts = version_tuple(version) if version else ()
    return parts[0] if parts else None


@rule(
    "host-compiler-unsupported",
    name="gcc newer than nvcc supports",
    severity=Severity.WARNING,
    area="cuda",
    summary="The gcc on PATH is newer than the toolkit's nvcc accepts: every CUDA extension build fails.",
    fix="Build with an older gcc (CC/CXX/NVCC_CCBIN=gcc-N), or use a CUDA toolkit that supports this gcc.",
    sources=(INSTALL_GUIDE, CPP_EXTENSION),
    verify="gcc -dumpfullversion; nvcc --version | tail -2",
)
def host_compiler_unsupported(facts: Facts) -> Iterator[Finding]:
    """Detects a host gcc newer than the toolkit's nvcc allows (``knowledge/host_compilers.yaml``).

    Why: nvcc's ``crt/host_config.h`` stops with "#error -- unsupported GNU version! gcc versions
    later than N are not supported!" for any newer GCC, so flash-attn, xformers, apex, DeepSpeed ops
    or any ``CUDAExtension`` cannot build (the torch runtime itself is unaffected: a warning).
    Nothing is reported when NVCC_CCBIN, CUDAHOSTCXX or CC choose another compiler.
    Fix: install the newest supported gcc/g++ and build with ``CC=gcc-N CXX=g++-N NVCC_CCBIN=gcc-N``,
    or use a toolkit whose nvcc supports this gcc.
    """
    nvcc = facts.cuda.nvcc_version
    compiler = facts.toolchain.gcc or facts.toolchain.gxx
    env = facts.system.env or {}
    major = _major(compiler)
    if not nvcc or major is None or any(env.get(v) for v in HOST_COMPILER_VARS):
        return
    known = kb.max_gcc_for_cuda(nvcc)
    if known is None or major <= known[0]:
        return
    limit, source = known
    newer = kb.min_cuda_for_gcc(major)
    fix = f"Build with gcc-{limit}: CC=gcc-{limit} CXX=g++-{limit} NVCC_CCBIN=gcc-{limit}" + (
        f" (or use a CUDA >= {newer} toolkit)." if newer else "."
    )
    yield host_compiler_unsupported.finding(
        (
            f"gcc {compiler} is newer than CUDA {nvcc}'s nvcc accepts (gcc <= {limit}): CUDA extension "
            "builds stop with 'unsupported GNU version'"
        ),
        evidence={
            "toolchain.gcc": facts.toolchain.gcc,
            "toolchain.gxx": facts.toolchain.gxx,
            "cuda.nvcc_version": nvcc,
            "cuda.nvcc_path": facts.cuda.nvcc_path,
        },
        fix=fix,
        actions=[Manual(fix)],
        sources=[source, INSTALL_GUIDE],
    )


@rule(
    "build-tools-missing",
    name="extension build tools missing",
    severity=Severity.WARNING,
    area="cuda",
    summary="A CUDA toolkit and a CUDA torch are there (extension builds likely) but ninja, g++ or cmake is not.",
    fix="pip install ninja (and cmake); install g++ (build-essential) for any extension build.",
    sources=(CPP_EXTENSION,),
    verify="ninja --version; g++ --version | head -1; cmake --version | head -1",
)
def build_tools_missing(facts: Facts) -> Iterator[Finding]:
    """Detects missing build tools where a CUDA extension build is likely: nvcc and a CUDA build of
    torch are both present (flash-attn, xformers, apex, DeepSpeed ops compile from source there).

    Why: ``torch.utils.cpp_extension.load()`` refuses to run without ninja ("Ninja is required to
    load C++ extensions"), and ``setup.py`` builds without it compile one file at a time (flash-attn
    then takes hours); without g++ nothing builds; vLLM, bitsandbytes and others build with cmake.
    Severity: warning for ninja or g++, info for cmake alone.
    Fix: ``pip install ninja cmake`` into the environment; g++ from the system packages.
    """
    missing = facts.toolchain.missing
    if not missing or not (facts.cuda.nvcc_version or facts.cuda.nvcc_path) or not torch_cuda(facts):
        return
    wanted = [t for t in ("ninja", "g++", "gcc", "cmake") if t in missing]
    if not wanted:
        return
    pip = tuple(t for t in wanted if t in ("ninja", "cmake"))
    actions: list[Action] = [PipInstall(pip)] if pip else []
    system = [t for t in wanted if t in ("gcc", "g++")]
    if system:
        actions.append(
            Manual(f"Install {' and '.join(system)} (Debian/Ubuntu: apt install build-essential).")
        )
    severity = Severity.WARNING if set(wanted) - {"cmake"} else Severity.INFO
    yield build_tools_missing.finding(
        (
            f"{', '.join(wanted)} not found on PATH, though nvcc and a CUDA torch are here: CUDA extension "
            "builds (flash-attn, xformers, torch.utils.cpp_extension) fail or crawl"
        ),
        severity=severity,
        evidence={
            "toolchain.missing": missing,
            "cuda.nvcc_version": facts.cuda.nvcc_version,
            "torch.cuda": torch_cuda(facts),
        },
        fix=("pip install " + " ".join(pip) if pip else "")
        + ("; " if pip and system else "")
        + ("apt install build-essential" if system else ""),
        actions=actions,
    )
