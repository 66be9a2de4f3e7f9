"""Rules about the NVIDIA driver: absent, too old for the torch build, or out of step with its module.

Facts read: nvidia, origin, packages, stated, system, torch (some through envdoctor.readers).
"""

from __future__ import annotations

from collections.abc import Iterator

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Manual, Severity
from envdoctor.knowledge import cuda as kb
from envdoctor.readers import capabilities, gpus, torch_build
from envdoctor.rules import rule
from envdoctor.rules.torch_install import describe_install, torch_install_action

MVC_DOC = "https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html"
RELEASE_NOTES = "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html"
FORWARD_COMPAT = "https://docs.nvidia.com/deploy/cuda-compatibility/forward-compatibility.html"
DRIVER_GUIDE = "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/index.html"
CONTAINER_TOOLKIT = (
    "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
)


def _cuda_variant(facts: Facts) -> str | None:
    build = torch_build(facts)
    return build.variant if build and build.variant and build.variant.startswith("cu") else None


@rule(
    "driver-missing",
    name="no NVIDIA driver / no GPU visible",
    severity=Severity.WARNING,
    area="nvidia",
    summary="NVML finds no NVIDIA driver, or the driver sees no GPU.",
    fix="Install the NVIDIA driver (in a container: run with --gpus all and the NVIDIA runtime).",
    sources=(CONTAINER_TOOLKIT, MVC_DOC),
)
def driver_missing(facts: Facts) -> Iterator[Finding]:
    """Detects a machine (or container) where no NVIDIA driver answers, or the driver lists no GPU.

    Why: a CUDA build of torch then silently runs on the CPU (``torch.cuda.is_available()`` is
    False). With a CPU build or no torch there is no sign a GPU is wanted, so this is only info.
    Severity: warning when torch is a CUDA build, info otherwise.
    Fix: install a driver at or above the floor of the wheel's CUDA (minor-version compatibility);
    inside a container, start it with ``--gpus all`` and the NVIDIA Container Toolkit.
    """
    nv = facts.nvidia
    if nv.error in ("driver-missing", "no-device"):
        kind = nv.error
    elif nv.error is None and nv.driver_version and nv.gpus == []:
        kind = "no-device"
    else:
        return
    variant = _cuda_variant(facts)
    severity = Severity.WARNING if variant else Severity.INFO
    evidence: dict[str, object] = {"nvidia.error": nv.error, "nvidia.error_detail": nv.error_detail}
    if kind == "no-device":
        evidence.update({"nvidia.driver_version": nv.driver_version, "nvidia.gpus": nv.gpus})
    floor = kb.min_driver_for_cuda(variant) if variant else None
    build = torch_build(facts)
    if variant and build:
        evidence.update(build.evidence)  # the facts the variant was read from
    need = f" (>= {floor} for this {variant} torch build)" if floor else ""
    if kind == "driver-missing":
        message = "No NVIDIA driver found (NVML cannot be loaded)" + (
            f"; torch is a {variant} build and will run on the CPU only." if variant else "."
        )
        step = f"Install the NVIDIA driver{need}; in a container, run with --gpus all (Container Toolkit)."
    else:
        message = "The NVIDIA driver is loaded but sees no GPU" + (
            f"; torch ({variant}) will run on the CPU only." if variant else "."
        )
        step = (
            "Make a GPU visible: check CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES, --gpus all, nvidia-smi."
        )
    yield driver_missing.finding(
        message, severity=severity, evidence=evidence, fix=step, actions=[Manual(step)] if variant else []
    )


@rule(
    "driver-too-old",
    name="driver too old for the torch CUDA build",
    severity=Severity.ERROR,
    area="nvidia",
    summary="The NVIDIA driver is below the minimum for the CUDA version torch was built with.",
    fix="Install the same torch from a CUDA index the driver can run, or upgrade the driver.",
    sources=(MVC_DOC, RELEASE_NOTES),
    verify=(
        'nvidia-smi --query-gpu=driver_version --format=csv,noheader; python -c "import torch; print(torch.version.cuda, torch.cuda.is_available())"'
    ),
)
def driver_too_old(facts: Facts) -> Iterator[Finding]:
    """Detects a driver below the minor-version-compatibility floor of the wheel's CUDA.

    Why: CUDA 11.x needs >= 450.80.02, 12.x >= 525.60.13, 13.x >= 580; below that the CUDA
    runtime refuses to start ("The NVIDIA driver on your system is too old"), so torch sees no GPU.
    The classic case: plain ``pip install torch`` >= 2.11 is a CUDA 13.0 build, on a 535/550/570 driver.
    Fix: reinstall the same torch version from the newest CUDA index this driver runs and whose
    arch list covers the GPUs (e.g. cu128 for 2.11 on 535), or upgrade the driver.
    """
    driver = facts.nvidia.driver_version
    variant = _cuda_variant(facts)
    build = torch_build(facts)
    if not driver or not variant or build is None:
        return
    floor = kb.min_driver_for_cuda(variant)
    if floor is None or kb.driver_at_least(driver, floor):
        return
    gpu_list = gpus(facts) or []
    caps = capabilities(gpu_list)
    evidence: dict[str, object] = {"nvidia.driver_version": driver, **build.evidence}
    if caps:
        evidence["gpus.capabilities"] = caps
    upgrade = Manual(f"Upgrade the NVIDIA driver to >= {floor} to keep torch {build.version}.")
    target = kb.choose_variant(build.version, driver, caps)
    actions: list = []
    if target:
        actions.append(torch_install_action(build.version, target))
        fix = f"{describe_install(actions[0])}  (or upgrade the driver to >= {floor})"
    else:
        fix = f"Upgrade the NVIDIA driver to >= {floor}."
    actions.append(upgrade)
    if facts.torch.cuda_available is True:
        # CUDA initialised, so this runs through CUDA forward compatibility (the cuda-compat package,
        # data-center GPUs only): it works, but only while that package matches.
        evidence["torch.cuda_available"] = True
        yield driver_too_old.finding(
            (
                f"NVIDIA driver {driver} is below the floor of torch {build.version} ({variant} needs "
                f">= {floor}), yet CUDA is available: it runs through CUDA forward compatibility (cuda-compat)."
            ),
            severity=Severity.WARNING,
            evidence=evidence,
            fix=fix,
            actions=actions,
            sources=[FORWARD_COMPAT, MVC_DOC],
            inferred=any(g.inferred for g in gpu_list),
        )
        return
    yield driver_too_old.finding(
        f"NVIDIA driver {driver} is too old for torch {build.version} ({variant} needs >= {floor}).",
        evidence=evidence,
        fix=fix,
        actions=actions,
        inferred=any(g.inferred for g in gpu_list),
    )


@rule(
    "driver-library-mismatch",
    name="driver/library version mismatch",
    severity=Severity.ERROR,
    area="nvidia",
    summary="The loaded NVIDIA kernel module and the user-space driver library differ in version.",
    fix="Reboot (or unload and reload the nvidia kernel modules) after a driver upgrade.",
    sources=(DRIVER_GUIDE, RELEASE_NOTES),
    verify="nvidia-smi; cat /proc/driver/nvidia/version",
)
def driver_library_mismatch(facts: Facts) -> Iterator[Finding]:
    """Detects NVML's "Driver/library version mismatch".

    Why: after a driver package upgrade the old kernel module stays loaded while libcuda /
    libnvidia-ml are already the new version; every CUDA program (and nvidia-smi) fails until the
    module matches.
    Fix: reboot, or stop every GPU process and reload the modules
    (``rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && modprobe nvidia``).
    """
    nv = facts.nvidia
    if nv.error != "driver-library-mismatch":
        return
    step = (
        "Reboot, or stop all GPU processes and reload the driver: "
        "sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia"
    )
    yield driver_library_mismatch.finding(
        "NVIDIA driver/library version mismatch: the loaded kernel module is not the installed one.",
        evidence={"nvidia.error": nv.error, "nvidia.error_detail": nv.error_detail},
        fix="Reboot (or reload the nvidia kernel modules) so the module matches the installed driver.",
        actions=[Manual(step)],
    )
