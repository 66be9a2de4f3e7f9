"""CUDA library rules: system libraries shadowing torch's pip wheels, missing wheels, and an nvcc
that does not match torch's CUDA.

Facts read: cuda, packages, system, torch (some through envdoctor.readers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from envdoctor.facts import Facts, LibraryFile
from envdoctor.findings import Action, Finding, Manual, PipInstall, SetEnv, Severity
from envdoctor.knowledge.cuda import minor_of, parse_variant
from envdoctor.knowledge.ecosystem import cuda_library, wheel_version
from envdoctor.readers import (
    installed_torch,
    is_torch_cuda_dependency,
    requirement_spec,
    torch_cuda,
)
from envdoctor.rules import rule

SHADOW_SOURCES = (
    "https://github.com/pytorch/pytorch/issues/138460",
    "https://github.com/pytorch/pytorch/issues/145580",
    "https://github.com/pytorch/pytorch/blob/main/torch/__init__.py",
)
NVCC_SOURCE = "https://github.com/pytorch/pytorch/blob/main/torch/utils/cpp_extension.py"
# Directories of a CUDA toolkit or a conda env's lib folder on LD_LIBRARY_PATH.
TOOLKIT_DIR = re.compile(
    r"/cuda(?:-\d+(?:\.\d+)?)?/(?:lib64|lib|targets/[^/]+/lib)/?$|/(?:conda|envs)/.*/lib/?$"
)


def _pip_cuda_torch(facts: Facts) -> bool:
    """torch is a CUDA build whose libraries come from nvidia-* wheels (they are installed)."""
    variant = parse_variant(installed_torch(facts), torch_cuda(facts))
    return bool(variant and variant.startswith("cu") and facts.packages.nvidia_wheels)


def _shadowing(facts: Facts) -> list[tuple[LibraryFile, str]]:
    """Libraries on LD_LIBRARY_PATH that differ from the wheel torch uses, with the reason."""
    wheels = facts.packages.nvidia_wheels or {}
    found: list[tuple[LibraryFile, str]] = []
    for lib in facts.cuda.libraries or []:
        known = cuda_library(lib.name) if lib.origin == "LD_LIBRARY_PATH" else None
        wheel = wheel_version(known[0], wheels) if known else None
        if not known or not wheel:
            continue
        (_, major), (wheel_name, version) = known, wheel
        wheel_major = version.split(".", 1)[0]
        if str(major) != wheel_major:
            found.append((lib, f"{lib.name} (major {major}) vs {wheel_name} {version} (major {wheel_major})"))
        elif lib.version and lib.version.split(".")[:2] != version.split(".")[:2]:
            found.append((lib, f"{lib.name} {lib.version} shadows {wheel_name} {version} (same soname)"))
    return found


def _ld_path_without(facts: Facts, dirs: set[str]) -> SetEnv | None:
    """LD_LIBRARY_PATH with ``dirs`` removed (unset when nothing is left)."""
    value = (facts.system.env or {}).get("LD_LIBRARY_PATH")
    if value is None:
        return None
    norm = {os.path.normpath(d) for d in dirs}
    keep = [e for e in value.split(":") if e and os.path.normpath(e) not in norm]
    return SetEnv("LD_LIBRARY_PATH", ":".join(keep) or None)


@rule(
    "cuda-lib-conflict",
    name="CUDA libraries shadowed or missing",
    severity=Severity.WARNING,
    area="cuda",
    summary="LD_LIBRARY_PATH CUDA libraries differ from the nvidia-* wheels of torch, or those are missing.",
    fix="Remove CUDA toolkit/conda directories from LD_LIBRARY_PATH; install the nvidia-* wheels torch pins.",
    sources=SHADOW_SOURCES,
    verify='python -c "import torch; print(torch.backends.cudnn.version(), torch.cuda.is_available())"',
)
def cuda_lib_conflict(facts: Facts) -> Iterator[Finding]:
    """Detects CUDA libraries that reach a pip CUDA torch from elsewhere than its ``nvidia-*``
    wheels (through LD_LIBRARY_PATH), and wheels torch requires that are not installed.

    Why: torch's Linux CUDA wheels take cuDNN, cuBLAS, NCCL, nvJitLink... from ``nvidia-*`` pip
    wheels. Those wheels find each other through RUNPATH, which ``LD_LIBRARY_PATH`` overrides:
    a CUDA toolkit or conda ``lib`` directory there injects another libnvJitLink/libcudnn into
    the process ("undefined symbol: __nvJitLinkComplete_12_4, version libnvJitLink.so.12",
    cuDNN sub-library version mismatches; pytorch#138460, #145580).
    Severity:

    - WARNING: a library found through LD_LIBRARY_PATH has another soname major than the wheel
      torch pins (cuDNN 8 from /usr/local/cuda-11.8 next to torch's cuDNN 9), or the same
      soname with another version (it wins over the wheel).
    - INFO: a CUDA toolkit/conda lib directory is on LD_LIBRARY_PATH of a pip CUDA torch, but no
      differing library was seen in it.
    - ERROR: torch's metadata requires nvidia-* / cuda-toolkit wheels that are not installed
      (``pip install --no-deps``): ``import torch`` fails with "libcudnn.so.9: cannot open shared
      object file" or falls back to whatever the system has.

    Fix: set LD_LIBRARY_PATH without those directories (envdoctor writes it to the activation
    file) or install the exact wheels torch requires.
    """
    missing = [u for u in facts.packages.unmet or [] if is_torch_cuda_dependency(u)]
    if missing:
        specs = tuple(requirement_spec(u.requirement) for u in missing)
        yield cuda_lib_conflict.finding(
            (
                f"torch {installed_torch(facts)} needs {len(specs)} CUDA library wheel(s) that are not "
                f"installed or differ: {', '.join(specs)}"
            ),
            severity=Severity.ERROR,
            evidence={
                "packages.unmet": [u.requirement for u in missing],
                "torch.version": installed_torch(facts),
            },
            fix="pip install " + " ".join(f"'{s}'" for s in specs),
            actions=[PipInstall(specs)],
        )
    if not _pip_cuda_torch(facts):
        return
    shadowing = _shadowing(facts)
    env = (facts.system.env or {}).get("LD_LIBRARY_PATH", "")
    if shadowing:
        dirs = {os.path.dirname(lib.path) for lib, _ in shadowing}
        action = _ld_path_without(facts, dirs)
        actions: list[Action] = (
            [action] if action else [Manual(f"Remove {', '.join(sorted(dirs))} from LD_LIBRARY_PATH.")]
        )
        yield cuda_lib_conflict.finding(
            (
                "LD_LIBRARY_PATH injects CUDA libraries that differ from torch's wheels: "
                + "; ".join(why for _, why in shadowing)
            ),
            evidence={
                "system.env.LD_LIBRARY_PATH": env,
                "cuda.libraries": [
                    f"{lib.path} ({lib.version or 'version unknown'})" for lib, _ in shadowing
                ],
                "packages.nvidia_wheels": facts.packages.nvidia_wheels,
            },
            fix=f"Remove {', '.join(sorted(dirs))} from LD_LIBRARY_PATH.",
            actions=actions,
        )
        return
    toolkit_dirs = {e for e in env.split(":") if e and TOOLKIT_DIR.search(e)}
    if toolkit_dirs:
        action = _ld_path_without(facts, toolkit_dirs)
        yield cuda_lib_conflict.finding(
            (
                f"LD_LIBRARY_PATH contains {', '.join(sorted(toolkit_dirs))} while torch uses pip CUDA "
                "wheels: libraries there override the wheels' RUNPATH"
            ),
            severity=Severity.INFO,
            evidence={
                "system.env.LD_LIBRARY_PATH": env,
                "packages.nvidia_wheels": facts.packages.nvidia_wheels,
            },
            fix=f"Remove {', '.join(sorted(toolkit_dirs))} from LD_LIBRARY_PATH unless another tool needs it",
            actions=[action] if action else [],
        )


@rule(
    "nvcc-mismatch",
    name="nvcc's CUDA differs from torch's",
    severity=Severity.WARNING,
    area="cuda",
    summary="Building CUDA extensions fails when nvcc's CUDA major differs from torch.version.cuda.",
    fix="Point CUDA_HOME at a toolkit whose version matches torch.version.cuda.",
    sources=(NVCC_SOURCE,),
)
def nvcc_mismatch(facts: Facts) -> Iterator[Finding]:
    """Detects an nvcc (``$CUDA_HOME/bin/nvcc``) whose CUDA version differs from
    ``torch.version.cuda``. Nothing is reported for CPU-only torch or when nvcc is absent.

    Why: ``torch.utils.cpp_extension`` (used by flash-attn, apex, DeepSpeed ops, any ``setup.py``
    with CUDAExtension) runs ``$CUDA_HOME/bin/nvcc --version`` and compares it with
    ``torch.version.cuda``: a different major raises "The detected CUDA version (X) mismatches
    the version that was used to compile PyTorch (Y)"; a different minor only logs "has a minor
    version mismatch ... Most likely this shouldn't be a problem".
    Severity: warning for a major difference (builds fail), info for a minor one.
    Fix: set CUDA_HOME to a toolkit matching torch's CUDA (or install torch built for nvcc's
    CUDA); the runtime itself does not use nvcc.
    """
    nvcc, cuda = facts.cuda.nvcc_version, torch_cuda(facts)
    ours, theirs = (minor_of(nvcc) if nvcc else None), (minor_of(cuda) if cuda else None)
    if ours is None or theirs is None or ours == theirs:
        return
    major = ours.split(".")[0] != theirs.split(".")[0]
    want = theirs
    fix = f"Use a CUDA {want} toolkit for extension builds (CUDA_HOME=/usr/local/cuda-{want})."
    yield nvcc_mismatch.finding(
        (
            f"nvcc is CUDA {nvcc} but torch was built with CUDA {cuda}: "
            + ("building CUDA extensions fails" if major else "a minor mismatch, extension builds only warn")
        ),
        severity=Severity.WARNING if major else Severity.INFO,
        evidence={"cuda.nvcc_version": nvcc, "cuda.nvcc_path": facts.cuda.nvcc_path, "torch.cuda": cuda},
        fix=fix,
        actions=[Manual(fix)],
    )
