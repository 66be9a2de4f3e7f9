"""PATH and LD_LIBRARY_PATH hygiene: which CUDA a shell, a build and the dynamic linker pick up.

Every finding names the exact entries, in the order the variable lists them. Toolkit versions come
from ``cuda.toolkits`` (the probe reads each toolkit's version.json) or from a ``cuda-X.Y`` folder name.

Facts read: cuda, packages, system, torch (some through envdoctor.readers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Manual, SetEnv, Severity
from envdoctor.readers import torch_cuda
from envdoctor.rules import rule
from envdoctor.versions import version_tuple

CPP_EXTENSION = "https://github.com/pytorch/pytorch/blob/main/torch/utils/cpp_extension.py"
POST_INSTALL = "https://docs.nvidia.com/cuda/cuda-installation-guide-linux/index.html#environment-setup"
LD_SO = "https://man7.org/linux/man-pages/man8/ld.so.8.html"
SHADOW_ISSUE = "https://github.com/pytorch/pytorch/issues/138460"

_CUDA_BIN = re.compile(r"/cuda(?:-(?P<v>\d+\.\d+))?/bin/?$")
_CUDA_LIB = re.compile(r"/cuda(?:-(?P<v>\d+\.\d+))?/(?:lib64|lib|targets/[^/]+/lib)/?$")
_CUDNN_LIB = re.compile(r"cudnn", re.IGNORECASE)
_WHEEL_LIB = re.compile(r"(?:site|dist)-packages/nvidia/[^/]+(?:/[^/]+)?/lib/?$")
_VERSION_IN_PATH = re.compile(r"cuda-(\d+\.\d+)")


def _entries(facts: Facts, var: str) -> list[str] | None:
    value = (facts.system.env or {}).get(var)
    return None if value is None else [e for e in value.split(":") if e]


def toolkit_version_of(facts: Facts, path: str) -> str | None:
    """The CUDA version of the toolkit a path lies in: the probed toolkit, else a cuda-X.Y folder name."""
    norm = os.path.normpath(path)
    for t in facts.cuda.toolkits or []:
        if t.version and (norm == t.path or norm.startswith(t.path.rstrip("/") + "/")):
            return t.version
    match = _VERSION_IN_PATH.search(path)
    return match.group(1) if match else None


def _listed(entries: list[tuple[int, str, str | None]]) -> str:
    return ", ".join(f"{e} ({v or 'version unknown'}, #{i + 1})" for i, e, v in entries)


@rule(
    "cuda-path-shadowing",
    name="an older CUDA shadows a newer one on PATH / LD_LIBRARY_PATH",
    severity=Severity.WARNING,
    area="cuda",
    summary="PATH or LD_LIBRARY_PATH lists several CUDA folders, or a system CUDA/cuDNN ahead of the wheels'.",
    fix="Keep one CUDA bin folder on PATH (the CUDA_HOME one); drop system CUDA/cuDNN from LD_LIBRARY_PATH.",
    sources=(POST_INSTALL, LD_SO, SHADOW_ISSUE),
    verify="which -a nvcc; echo $LD_LIBRARY_PATH | tr : '\\n'",
)
def cuda_path_shadowing(facts: Facts) -> Iterator[Finding]:
    """Detects CUDA folders that shadow each other, in search order.

    - PATH lists several CUDA ``bin`` folders: the first one's nvcc, cuda-gdb, ptxas win. Warning
      when an older CUDA comes before a newer one, info when the newest already comes first.
    - LD_LIBRARY_PATH lists a system CUDA or cuDNN ``lib`` folder ahead of the ``nvidia/*/lib``
      folders of torch's pip wheels: the dynamic linker takes the system copy first (warning).

    Why: what runs is then not what the user installed last: an old nvcc builds the extensions, an
    old libcudnn or libnvJitLink is loaded into torch's process in place of its wheel's copy.
    Fix: edit the shell profile so that PATH holds only ``$CUDA_HOME/bin``, and remove the system
    CUDA/cuDNN folders from LD_LIBRARY_PATH (the wheels find their libraries through RUNPATH).
    """
    path = _entries(facts, "PATH") or []
    bins = [(i, e, toolkit_version_of(facts, e)) for i, e in enumerate(path) if _CUDA_BIN.search(e)]
    real_bins = {os.path.normpath(e) for _, e, _ in bins}
    if len(real_bins) > 1:
        first = bins[0][2]
        newer = [b for b in bins[1:] if b[2] and first and version_tuple(b[2]) > version_tuple(first)]
        fix = f"Keep one CUDA bin folder on PATH ({facts.cuda.cuda_home or bins[-1][1]}/bin); remove the others."
        yield cuda_path_shadowing.finding(
            (
                f"PATH puts CUDA {first} ({bins[0][1]}) ahead of newer CUDA {newer[0][2]} ({newer[0][1]}): "
                "nvcc and ptxas come from the older toolkit"
                if newer
                else f"PATH lists {len(bins)} CUDA bin folders: {_listed(bins)}"
            ),
            severity=Severity.WARNING if newer else Severity.INFO,
            evidence={"system.env.PATH": [e for _, e, _ in bins], "cuda.nvcc_path": facts.cuda.nvcc_path},
            fix=fix,
            actions=[Manual(fix)],
            sources=[POST_INSTALL],
        )
    libs = _entries(facts, "LD_LIBRARY_PATH") or []
    wheel_at = next((i for i, e in enumerate(libs) if _WHEEL_LIB.search(e)), None)
    if wheel_at is None:
        return
    system = [
        (i, e)
        for i, e in enumerate(libs[:wheel_at])
        if (_CUDA_LIB.search(e) or _CUDNN_LIB.search(e)) and not _WHEEL_LIB.search(e)
    ]
    if system:
        keep = [e for e in libs if e not in {s for _, s in system}]
        yield cuda_path_shadowing.finding(
            (
                f"LD_LIBRARY_PATH puts {', '.join(f'{e} (#{i + 1})' for i, e in system)} ahead of the pip "
                f"wheel folder {libs[wheel_at]} (#{wheel_at + 1}): the system CUDA/cuDNN is loaded first"
            ),
            evidence={"system.env.LD_LIBRARY_PATH": libs},
            fix=f"Remove {', '.join(e for _, e in system)} from LD_LIBRARY_PATH.",
            actions=[SetEnv("LD_LIBRARY_PATH", ":".join(keep) or None)],
            sources=[LD_SO, SHADOW_ISSUE],
        )


@rule(
    "nvcc-path-mismatch",
    name="nvcc on PATH is not CUDA_HOME's",
    severity=Severity.WARNING,
    area="cuda",
    summary="The nvcc a shell runs and the one builds use ($CUDA_HOME/bin/nvcc) are different CUDA versions.",
    fix="Put $CUDA_HOME/bin first on PATH, or point CUDA_HOME at the toolkit you mean to build with.",
    sources=(CPP_EXTENSION, POST_INSTALL),
    verify='which nvcc; "$CUDA_HOME/bin/nvcc" --version | tail -1',
)
def nvcc_path_mismatch(facts: Facts) -> Iterator[Finding]:
    """Detects two different nvcc: the first on PATH, and ``$CUDA_HOME/bin/nvcc``.

    Why: ``torch.utils.cpp_extension`` and CMake builds take CUDA_HOME's nvcc, while ``nvcc
    --version`` in a shell (and Makefiles calling plain ``nvcc``) take PATH's: what the user checks is
    not what the build uses. Reported only when both versions are known and differ (a symlink such as
    /usr/local/cuda -> cuda-12.4 is the same toolkit).
    From a paste, the build's nvcc is ``$CUDA_HOME/bin/nvcc`` and its version that of its folder.
    Fix: make PATH start with ``$CUDA_HOME/bin``, or set CUDA_HOME to the toolkit on PATH.
    """
    on_path, used, home = facts.cuda.path_nvcc, facts.cuda.nvcc_path, facts.cuda.cuda_home
    if used:
        build_version = facts.cuda.nvcc_version or toolkit_version_of(facts, used)
    elif home:  # a paste: builds take $CUDA_HOME/bin/nvcc; its `nvcc --version` was PATH's nvcc
        used = f"{home.rstrip('/')}/bin/nvcc"
        build_version = toolkit_version_of(facts, used)
    else:
        return
    if not on_path or not build_version:
        return
    path_version = toolkit_version_of(facts, on_path)
    if not path_version or version_tuple(path_version)[:2] == version_tuple(build_version)[:2]:
        return
    fix = f"Put {os.path.dirname(used)} first on PATH, or set CUDA_HOME to {os.path.dirname(os.path.dirname(on_path))}."
    yield nvcc_path_mismatch.finding(
        f"`nvcc` on PATH is {on_path} (CUDA {path_version}) but builds use {used} (CUDA {build_version})",
        evidence={
            "cuda.path_nvcc": on_path,
            "build nvcc": used,
            "cuda.cuda_home": facts.cuda.cuda_home,
            "cuda.nvcc_version": facts.cuda.nvcc_version,
        },
        fix=fix,
        actions=[Manual(fix)],
    )


@rule(
    "cuda-toolkits-several",
    name="several CUDA toolkits installed",
    severity=Severity.INFO,
    area="cuda",
    summary="More than one CUDA toolkit version is installed; builds use only the CUDA_HOME one.",
    fix="Set CUDA_HOME (and PATH) explicitly to the toolkit you build with; remove the unused ones.",
    sources=(POST_INSTALL,),
    verify="ls -d /usr/local/cuda* /opt/cuda* 2>/dev/null",
)
def cuda_toolkits_several(facts: Facts) -> Iterator[Finding]:
    """Lists the toolkits when more than one CUDA version is installed, and which one builds use.

    Why: with several toolkits the one a build picks depends on CUDA_HOME, PATH and the
    /usr/local/cuda symlink; saying which is which saves a round of ``ls /usr/local``.
    Fix: none needed; remove the toolkits nothing uses, or set CUDA_HOME to the one builds should take.
    """
    toolkits = [t for t in facts.cuda.toolkits or [] if t.version]
    if len({t.version for t in toolkits}) < 2:
        return
    listed = ", ".join(f"{t.path} ({t.version})" for t in toolkits)
    used = facts.cuda.nvcc_path or facts.cuda.cuda_home
    yield cuda_toolkits_several.finding(
        f"{len(toolkits)} CUDA toolkits installed: {listed}; builds use {used or 'none (no nvcc found)'}",
        evidence={
            "cuda.toolkits": [t.path for t in toolkits],
            "cuda.cuda_home": facts.cuda.cuda_home,
            "cuda.nvcc_version": facts.cuda.nvcc_version,
        },
        fix="Set CUDA_HOME and PATH to the toolkit you build with; remove toolkits nothing uses.",
    )


@rule(
    "path-entries",
    name="missing or duplicate PATH / LD_LIBRARY_PATH entries",
    severity=Severity.INFO,
    area="system",
    summary="PATH or LD_LIBRARY_PATH holds folders that do not exist, or the same folder twice.",
    fix="Remove the missing and repeated entries from the shell profile that sets them.",
    sources=(LD_SO,),
    verify="echo $PATH | tr : '\\n'; echo $LD_LIBRARY_PATH | tr : '\\n'",
)
def path_entries(facts: Facts) -> Iterator[Finding]:
    """Lists entries of PATH / LD_LIBRARY_PATH that are not folders (probed on this machine only)
    and entries listed twice.

    Why: harmless alone, but a missing ``/usr/local/cuda-11.2/lib64`` is the trace of a removed
    toolkit that a profile still expects, and repeats hide which copy wins.
    Fix: remove those entries from the shell profile that sets them.
    """
    missing = [m for m in facts.system.missing_dirs or [] if m.startswith(("PATH:", "LD_LIBRARY_PATH:"))]
    repeats = []
    for var in ("PATH", "LD_LIBRARY_PATH"):
        entries = [os.path.normpath(e) for e in _entries(facts, var) or []]
        repeats += [f"{var}:{e}" for e in dict.fromkeys(e for e in entries if entries.count(e) > 1)]
    if not missing and not repeats:
        return
    parts = []
    if missing:
        parts.append(f"not a folder: {', '.join(missing)}")
    if repeats:
        parts.append(f"listed twice: {', '.join(repeats)}")
    yield path_entries.finding(
        "; ".join(parts),
        evidence={"system.missing_dirs": missing, "repeated": repeats},
        fix="Remove these entries from the shell profile (~/.bashrc, /etc/profile.d) that sets them.",
    )


@rule(
    "cuda-home-invalid",
    name="CUDA_HOME is not a toolkit folder",
    severity=Severity.WARNING,
    area="cuda",
    summary="CUDA_HOME (or CUDA_PATH) holds a list or a folder without bin/nvcc: every extension build fails.",
    fix="export CUDA_HOME=<the toolkit folder> (one folder, holding bin/nvcc; no ':' and no $PATH).",
    sources=(CPP_EXTENSION, POST_INSTALL),
    verify='ls -l "$CUDA_HOME/bin/nvcc"',
)
def cuda_home_invalid(facts: Facts) -> Iterator[Finding]:
    """Detects a CUDA_HOME / CUDA_PATH that cannot be a toolkit: it contains ':' (written like
    PATH, "export CUDA_HOME=/usr/local/cuda-9.0:$CUDA_HOME"), or (probed here) has no ``bin/nvcc``.

    Why: ``torch.utils.cpp_extension`` takes CUDA_HOME as is and runs ``$CUDA_HOME/bin/nvcc``: the
    build stops with "':/usr/local/cuda-9.0/bin/nvcc': No such file or directory" or "nvcc: not
    found", whatever nvcc PATH holds.
    Fix: set it to the toolkit folder itself; the one matching torch.version.cuda when installed.
    """
    env = facts.system.env or {}
    missing = set(facts.system.missing_dirs or [])
    for var in ("CUDA_HOME", "CUDA_PATH"):
        value = env.get(var) or (facts.cuda.cuda_home if var == "CUDA_HOME" else None)
        if not value or (":" not in value and f"{var}:{value}" not in missing):
            continue
        target = _toolkit_for_torch(facts)
        fix = (
            f"export {var}={target}"
            if target
            else f"Set {var} to one CUDA toolkit folder (holding bin/nvcc)."
        )
        why = "is a list, not one folder" if ":" in value else "has no bin/nvcc"
        yield cuda_home_invalid.finding(
            f"{var}={value} {why}: extension builds run {var}/bin/nvcc and fail",
            evidence={
                f"system.env.{var}": value,
                "cuda.toolkits": [t.path for t in facts.cuda.toolkits or []],
            },
            fix=fix,
            actions=[Manual(fix)],
        )


def _toolkit_for_torch(facts: Facts) -> str | None:
    """The installed toolkit to point CUDA_HOME at: the one of torch's CUDA, else the only or newest one."""
    toolkits = [t for t in facts.cuda.toolkits or [] if t.version]
    cuda = torch_cuda(facts)
    same = [t for t in toolkits if cuda and version_tuple(t.version or "")[:2] == version_tuple(cuda)[:2]]
    if same:
        return same[0].path
    return max(toolkits, key=lambda t: version_tuple(t.version or "0")).path if toolkits else None
