"""Rules about the torch installation itself: missing, broken, wrong Python, several copies.

This module also holds the torch install action and its one-line description, which the driver and
GPU rules share; the facts they read (torch build, GPUs) come from :mod:`envdoctor.readers`.

Facts read: nvidia, origin, packages, python, stated, system, torch (some through envdoctor.readers).
"""

from __future__ import annotations

from collections.abc import Iterator

from envdoctor.facts import Facts
from envdoctor.findings import Action, Finding, Manual, PipInstall, PipUninstall, Severity
from envdoctor.knowledge import cuda as kb
from envdoctor.readers import TorchBuild, capabilities, gpus, torch_build
from envdoctor.rules import rule
from envdoctor.versions import public_version, version_tuple

PYTORCH_GET_STARTED = "https://pytorch.org/get-started/locally/"
PYTORCH_PREVIOUS = "https://pytorch.org/get-started/previous-versions/"
BROKEN_STATUSES = ("import-error", "crashed", "timeout")


# --- shared helpers ------------------------------------------------------------------------------


def torch_install_action(version: str, variant: str | None, reinstall: bool = True) -> PipInstall:
    """``pip install torch==X`` from the index of ``variant`` (None: plain PyPI)."""
    return PipInstall(
        (f"torch=={public_version(version)}",),
        index_url=kb.index_url(variant) if variant else None,
        reinstall=reinstall,
    )


def describe_install(action: PipInstall) -> str:
    """The shell line a PipInstall stands for (used in one-line fixes)."""
    parts = ["pip install"]
    if action.reinstall:
        parts.append("--force-reinstall")
    parts.extend(action.specs)
    if action.index_url:
        parts.append(f"--index-url {action.index_url}")
    return " ".join(parts)


def _index_of_installed(build: TorchBuild) -> str | None:
    """The index the installed build came from: its variant's index when the version has a local tag."""
    return build.variant if "+" in build.version and build.variant else None


# --- rules -------------------------------------------------------------------------------------


@rule(
    "torch-missing",
    name="torch not installed",
    severity=Severity.WARNING,
    area="torch",
    summary="torch is not installed in the checked interpreter.",
    fix="Install the newest torch release that supports this Python, from the index matching driver and GPU.",
    sources=(PYTORCH_GET_STARTED,),
)
def torch_missing(facts: Facts) -> Iterator[Finding]:
    """Detects an interpreter without torch (the import probe found no module).

    Why: envdoctor checks deep-learning environments; without torch nothing trains. A torch that
    is present but fails to import is ``torch-import-error``, not this.
    Fix: install the newest release with a wheel for this Python; with an NVIDIA GPU, from the
    CUDA index that the driver and every GPU can use; with a driver and no GPU, from the CPU index.
    """
    if facts.torch.status != "missing":
        return
    py = facts.python.version
    gpu_list = gpus(facts)
    driver = facts.nvidia.driver_version
    evidence: dict[str, object] = {"torch.status": "missing", "python.version": py}
    install: PipInstall | None = None
    candidates = [r for r in kb.torch_releases() if not py or kb.minor_of(py) in r.python]
    if gpu_list:
        caps = capabilities(gpu_list)
        evidence.update({"nvidia.driver_version": driver, "gpus.capabilities": caps})
        for release in reversed(candidates):
            variant = kb.choose_variant(release.minor, driver, caps)
            if variant and release.latest:
                install = torch_install_action(release.latest, variant, reinstall=False)
                break
    elif candidates and candidates[-1].latest:
        no_gpu = gpu_list == [] or facts.nvidia.error in ("driver-missing", "no-device")
        install = torch_install_action(candidates[-1].latest, "cpu" if no_gpu else None, reinstall=False)
    fix = describe_install(install) if install else "Install torch following " + PYTORCH_GET_STARTED
    yield torch_missing.finding(
        f"torch is not installed in this interpreter (Python {py or 'unknown'}).",
        evidence=evidence,
        fix=fix,
        actions=[install] if install else [],
    )


@rule(
    "torch-import-error",
    name="torch fails to import",
    severity=Severity.ERROR,
    area="torch",
    summary="torch is installed but `import torch` fails, crashes or hangs.",
    fix="Read the error; reinstall the same torch build (--force-reinstall) if files are damaged.",
    sources=("https://pytorch.org/get-started/locally/#linux-verification",),
    verify='python -c "import torch"',
)
def torch_import_error(facts: Facts) -> Iterator[Finding]:
    """Detects a torch that is installed but cannot be imported (error, crash, or timeout).

    Why: a torch that fails to import is not "not installed": reinstalling a different torch
    hides the cause (a broken download, a shadowing library, numpy ABI, a missing libcuda).
    The error text is carried as evidence so that more specific rules and the user can act on it.
    Fix: when the installed build is known, reinstall exactly that build from the index it came
    from; a timeout is an error too (nothing can train with a torch that never imports) with a
    manual step, since import hangs are rarely fixed by reinstalling.
    """
    status = facts.torch.status
    if status not in BROKEN_STATUSES:
        return
    build = torch_build(facts)
    error = facts.torch.error
    evidence: dict[str, object] = {"torch.status": status, "torch.error": error}
    if build:
        evidence.update(build.evidence)
    text = (error or "").strip()
    first_line = text.splitlines()[0] if text else "no error text"
    if status == "timeout":
        yield torch_import_error.finding(
            f"`import torch` did not finish in time ({first_line}).",
            evidence=evidence,
            fix="Run `python -X importtime -c 'import torch'` to see what hangs (network FS, CUDA init).",
            actions=[Manual("Find what `import torch` waits for: python -X importtime -c 'import torch'")],
            sources=["https://docs.python.org/3/using/cmdline.html#cmdoption-X"],
        )
        return
    install = torch_install_action(build.version, _index_of_installed(build)) if build else None
    yield torch_import_error.finding(
        (
            f"torch is installed but `import torch` {'crashed' if status == 'crashed' else 'failed'}: "
            f"{first_line}"
        ),
        evidence=evidence,
        fix=describe_install(install) if install else "Reinstall torch; see the error text.",
        actions=[install] if install else [],
    )


@rule(
    "python-unsupported",
    name="no torch wheel for this Python",
    severity=Severity.ERROR,
    area="torch",
    summary="The torch release has no wheel for this Python version (or no release supports it yet).",
    fix="Move to the nearest torch release that ships wheels for this Python, or use a supported Python.",
    sources=("https://pypi.org/project/torch/#files", PYTORCH_PREVIOUS),
    verify='python -c "import sys; print(sys.version)"; python -m pip index versions torch',
)
def python_unsupported(facts: Facts) -> Iterator[Finding]:
    """Detects a Python version for which the installed (or any) torch release ships no wheel.

    Why: pip then falls back to an older torch, a source build, or fails with "No matching
    distribution found". The table follows the wheels actually on PyPI: Python 3.13 is supported
    from torch 2.5, 3.14 from 2.9, and 3.15 only from 2.15 (which drops 3.10).
    Fix: the oldest newer release with a wheel for this Python (or, for a Python that is too old,
    the newest release that still has one); if no release supports it yet, use an older Python.
    """
    py = facts.python.version
    py_minor = kb.minor_of(py) if py else None
    if not py_minor:
        return
    build = torch_build(facts)
    releases = kb.torch_releases()
    supporting = [r for r in releases if py_minor in r.python]
    evidence: dict[str, object] = {"python.version": py}
    sources = [PYTORCH_PREVIOUS]
    if build is None:
        if facts.torch.status != "missing" or supporting:
            return
        newest = releases[-1]
        yield python_unsupported.finding(
            (
                f"No torch release ships wheels for Python {py_minor} yet "
                f"(newest torch {newest.minor} supports {', '.join(newest.python)})."
            ),
            severity=Severity.WARNING,
            evidence={**evidence, "torch.status": "missing"},
            fix=f"Use Python {newest.python[-1]} for torch {newest.minor}.",
            actions=[
                Manual(f"Create the environment with Python {newest.python[-1]} (torch {newest.minor}).")
            ],
            sources=[newest.source, *sources],
        )
        return
    release = kb.torch_release(build.version)
    if release is None or py_minor in release.python:
        return
    evidence.update(build.evidence)
    newer = [r for r in supporting if version_tuple(r.minor) > version_tuple(release.minor)]
    target = newer[0] if newer else (supporting[-1] if supporting else None)
    actions: list[Action] = []
    if target and target.latest:
        variant = build.variant if build.variant in target.cuda_variants or build.variant == "cpu" else None
        install = torch_install_action(target.latest, variant, reinstall=False)
        actions.append(install)
        fix = describe_install(install)
    else:
        fix = f"Use Python {release.python[-1]} (the newest that torch {release.minor} supports)."
        actions.append(Manual(f"Recreate the environment with Python {release.python[-1]}."))
    yield python_unsupported.finding(
        (
            f"torch {release.minor} has no wheel for Python {py_minor} "
            f"(it supports {', '.join(release.python)})."
        ),
        evidence=evidence,
        fix=fix,
        actions=actions,
        sources=[release.source, *sources],
    )


@rule(
    "mixed-torch-installs",
    name="more than one torch installed",
    severity=Severity.ERROR,
    area="torch",
    summary="Several distributions (or leftover dist-info directories) provide torch in one environment.",
    fix="Uninstall every torch distribution, then install the one build you want.",
    sources=("https://pip.pypa.io/en/stable/cli/pip_uninstall/",),
    verify="python -m pip list 2>/dev/null | grep -i torch",
)
def mixed_torch_installs(facts: Facts) -> Iterator[Finding]:
    """Detects more than one distribution providing the ``torch`` package in the environment.

    Why: two installs write into the same ``torch/`` directory; files of the old build survive
    (a CPU ``libtorch_cuda``-less tree mixed with a CUDA one, stale ``.so`` files), so what
    ``import torch`` loads is neither build. pip's metadata then lies about what is installed.
    Fix: ``pip uninstall`` each listed distribution (repeat until none is left), then install the
    wanted build once with ``--force-reinstall``.
    """
    installs = facts.packages.torch_installs
    if not installs or len(installs) < 2:
        return
    listed = [f"{d.name} {d.version}" + (f" ({d.location})" if d.location else "") for d in installs]
    names = tuple(dict.fromkeys(d.name for d in installs))
    build = torch_build(facts)
    keep = build.version if build else installs[0].version
    actions: list[Action] = [PipUninstall(names)]
    if len(names) < len(installs):
        actions.append(
            Manual(f"Run `pip uninstall -y {' '.join(names)}` until pip reports nothing to remove.")
        )
    reinstall = torch_install_action(keep, _index_of_installed(build) if build else None, reinstall=True)
    actions.append(reinstall)
    yield mixed_torch_installs.finding(
        f"{len(installs)} torch installs in one environment: {'; '.join(listed)}.",
        evidence={"packages.torch_installs": listed},
        fix=f"pip uninstall -y {' '.join(names)} (until none is left), then {describe_install(reinstall)}",
        actions=actions,
    )
