"""The most common complaint of all: the driver lists GPUs, torch is a CUDA build, and torch sees none.

Each cause this symptom can have is weighed against the other facts: a cause the facts prove is
*likely*, one they cannot judge is *possible*, one they contradict is *ruled out* (with the reason).
The finding lists them in that order, so the first line is what to look at first.

Facts read: error_lines, nvidia, origin, packages, stated, system, torch (some through envdoctor.readers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Manual, Severity
from envdoctor.knowledge import cuda as kb
from envdoctor.readers import torch_build
from envdoctor.rules import rule
from envdoctor.rules.runtime import visible_gpu_count

TORCH_CUDA_NOTES = "https://docs.pytorch.org/docs/stable/notes/cuda.html"
FABRIC_MANAGER = "https://docs.nvidia.com/datacenter/tesla/fabric-manager-user-guide/index.html"
MVC_DOC = "https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html"
# Words of torch's own "CUDA initialization: ..." warning that name a cause.
UNKNOWN_ERROR = "cuda unknown error"
NOT_INITIALIZED = "system not yet initialized"
# NVSwitch systems (HGX/DGX A100, H100, H200, B200) need nvidia-fabricmanager before CUDA can start.
NVSWITCH_GPUS = ("A100-SXM", "H100 80GB HBM3", "H100-SXM", "H200", "B200", "B100", "GB200")


@dataclass(frozen=True)
class Cause:
    verdict: str  # "likely", "possible" or "ruled out"
    text: str  # the cause, with the fact that decides it
    step: str  # what to do (or check) about it


ORDER = {"likely": 0, "possible": 1, "ruled out": 2}


def _torch_warnings(facts: Facts) -> list[str]:
    """torch's own CUDA initialization warnings (probe) and the report's lines that carry them."""
    lines = [*(facts.torch.warnings or []), *facts.error_lines]
    keys = ("cuda initialization", UNKNOWN_ERROR, "no cuda gpus are available", NOT_INITIALIZED)
    return list(dict.fromkeys(w for w in lines if any(k in w.lower() for k in keys)))


def causes(facts: Facts, variant: str | None) -> list[Cause]:
    """Every cause of "torch sees no GPU", judged from the facts, most likely first."""
    found = [
        *_visible_devices(facts),
        *_driver(facts, variant),
        _build(variant),
        *_device_state(facts),
        *_container(facts),
    ]
    return sorted(found, key=lambda c: ORDER[c.verdict])


def _visible_devices(facts: Facts) -> list[Cause]:
    # A pasted report names a few variables at most: a variable it does not name is unknown, not unset.
    env = facts.system.env if facts.origin != "report" else None
    if env is None:
        return [
            Cause(
                "possible",
                "CUDA_VISIBLE_DEVICES hides the GPUs (not in the facts)",
                "echo $CUDA_VISIBLE_DEVICES",
            )
        ]
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible_gpu_count(visible, len(facts.nvidia.gpus or [])) == 0:
        return [
            Cause("likely", f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU", "unset CUDA_VISIBLE_DEVICES")
        ]
    shown = "unset" if visible is None else f"{visible!r} lists a GPU"
    return [Cause("ruled out", f"CUDA_VISIBLE_DEVICES ({shown})", "")]


def _driver(facts: Facts, variant: str | None) -> list[Cause]:
    driver = facts.nvidia.driver_version
    floor = kb.min_driver_for_cuda(variant) if variant and variant.startswith("cu") else None
    found = []
    if driver and floor and not kb.driver_at_least(driver, floor):
        text = f"driver {driver} is below {floor}, the floor of {variant}"
        found.append(Cause("likely", text, f"upgrade the NVIDIA driver to >= {floor}"))
    elif driver and floor:
        found.append(Cause("ruled out", f"driver too old ({driver} >= {floor}, the floor of {variant})", ""))
    if facts.nvidia.error == "driver-library-mismatch":
        text = "the driver's kernel module and libraries differ (upgraded, not rebooted)"
        found.append(Cause("likely", text, "reboot"))
    return found


def _build(variant: str | None) -> Cause:
    if variant is None:
        text = "torch is a CPU build (its CUDA version is not in the facts)"
        return Cause("possible", text, "python -c 'import torch; print(torch.version.cuda)'")
    return Cause("ruled out", f"a CPU build of torch (torch is a {variant} build)", "")


def _device_state(facts: Facts) -> list[Cause]:
    """What torch's own warning says about CUDA's start: the fabric manager, nvidia_uvm, a hung GPU."""
    warning = " ".join(_torch_warnings(facts)).lower()
    gpus = facts.nvidia.gpus or []
    names = " ".join(g.name for g in gpus).lower()
    nvswitch = len(gpus) > 1 and any(n.lower() in names for n in NVSWITCH_GPUS)
    found = []
    fabric = "nvidia-fabricmanager is not running on this NVSwitch system (CUDA cannot initialise)"
    if NOT_INITIALIZED in warning or (nvswitch and UNKNOWN_ERROR in warning):
        found.append(Cause("likely", fabric, "sudo systemctl enable --now nvidia-fabricmanager"))
    elif nvswitch:
        found.append(Cause("possible", fabric, "systemctl status nvidia-fabricmanager"))
    hung = "the GPU or driver is in a bad state (nvidia_uvm not loaded, a hung GPU, after suspend)"
    fix = "sudo modprobe nvidia_uvm; if that does not help, reboot (or nvidia-smi -r on an idle GPU)"
    found.append(Cause("likely" if UNKNOWN_ERROR in warning else "possible", hung, fix))
    return found


def _container(facts: Facts) -> list[Cause]:
    if facts.system.in_container:
        text = "the container was started without its GPUs"
        return [Cause("possible", text, "restart it with --gpus all (CDI: --device nvidia.com/gpu=all)")]
    if facts.system.in_container is False:
        return [Cause("ruled out", "a container without GPUs (not in a container)", "")]
    return []


@rule(
    "torch-sees-no-gpu",
    name="torch sees none of the GPUs the driver lists",
    severity=Severity.ERROR,
    area="torch",
    summary="GPUs are present and torch is a CUDA build, but torch.cuda.is_available() is False.",
    fix="Follow the ranked causes: CUDA_VISIBLE_DEVICES, driver floor, fabric manager, nvidia_uvm, reboot.",
    sources=(TORCH_CUDA_NOTES, MVC_DOC, FABRIC_MANAGER),
    verify='python -c "import torch; print(torch.cuda.is_available(), torch.cuda.device_count())"',
)
def torch_sees_no_gpu(facts: Facts) -> Iterator[Finding]:
    """Detects GPUs listed by the driver (NVML, nvidia-smi, a report's GPU lines) that torch does not see:
    ``torch.cuda.is_available()`` is False or ``torch.cuda.device_count()`` is 0 while torch is not a
    CPU build (that case is ``torch-cpu-build``).

    Why (an error): everything then runs on the CPU, slowly, or fails at the first ``.cuda()`` with
    "No CUDA GPUs are available". torch says why only in a warning at ``is_available()`` ("CUDA
    initialization: CUDA unknown error ... Setting the available devices to be zero"), carried as
    evidence. The causes are ranked from the other facts (see :func:`causes`): what the facts rule
    out is said, with the reason, so that nobody reinstalls torch for a fabric manager that is down.
    Fix: the step of the most likely cause; the rest are listed in order.
    """
    listed = facts.nvidia.gpus
    t = facts.torch
    if not listed:
        return
    if t.cuda_available is not False and t.device_count != 0:
        return
    build = torch_build(facts)
    variant = build.variant if build else None
    if variant == "cpu" or (variant or "").startswith("rocm"):
        return
    ranked = causes(facts, variant)
    likely = [c for c in ranked if c.verdict != "ruled out"]
    seen = t.device_count if t.device_count is not None else 0
    names = ", ".join(sorted({g.name for g in listed}))
    top = likely[0] if likely else None
    message = f"torch sees {seen} of {len(listed)} GPU(s) the driver lists ({names})"
    if top is not None:
        message += f"; {top.verdict}: {top.text}"
    evidence: dict[str, object] = {"torch.cuda_available": t.cuda_available}
    if t.device_count is not None:
        evidence["torch.device_count"] = t.device_count
    evidence["nvidia.gpus"] = [g.name for g in listed]
    if facts.nvidia.driver_version:
        evidence["nvidia.driver_version"] = facts.nvidia.driver_version
    if build:
        evidence.update(build.evidence)
    warnings = _torch_warnings(facts)
    if warnings:
        evidence["torch warning"] = warnings[0]
    evidence["probable causes"] = [f"{c.verdict}: {c.text}" for c in likely]
    evidence["ruled out"] = [c.text for c in ranked if c.verdict == "ruled out"]
    steps = [f"{c.text}: {c.step}" for c in likely if c.step]
    yield torch_sees_no_gpu.finding(
        message + ".",
        evidence=evidence,
        fix=top.step if top is not None and top.step else "See the probable causes in the evidence.",
        actions=[Manual(s) for s in steps[:3]],
    )
