"""Rules about the probes themselves: a probe that crashed, hung or failed is a finding, never a pass.

A check whose NVML call hung or whose interpreter never answered knows nothing about that part of
the environment; reporting it as healthy would be a wrong green. These rules turn the probe's
failure (kept in the facts as ``nvidia.error`` / ``nvidia.nvml_error`` / ``probe_errors``) into a
finding that carries the failure as evidence.

Facts read: nvidia, probe_errors.
"""

from __future__ import annotations

from collections.abc import Iterator

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Manual, Severity
from envdoctor.rules import rule

XID_DOC = "https://docs.nvidia.com/deploy/xid-errors/index.html"
NVML_DOC = "https://docs.nvidia.com/deploy/nvml-api/group__nvmlInitializationAndCleanup.html"
PYTHON_STARTUP_DOC = "https://docs.python.org/3/library/site.html"
# Failures of the driver stack as the NVIDIA probe records them (the others are facts: no driver,
# no GPU, a version mismatch, each with a rule of its own).
NVIDIA_PROBE_FAILURES = ("timeout", "crashed", "error")
# Probes whose failure another rule already reports from their facts (torch-import-error, the rule above).
REPORTED_ELSEWHERE = ("torch", "nvidia")


@rule(
    "nvidia-probe-failed",
    name="the NVIDIA driver did not answer",
    severity=Severity.WARNING,
    area="nvidia",
    summary="NVML or nvidia-smi crashed, hung or failed, so the driver and GPUs are not known.",
    fix="Run nvidia-smi by hand; look for Xid errors in dmesg; reload the driver or reboot.",
    sources=(NVML_DOC, XID_DOC),
)
def nvidia_probe_failed(facts: Facts) -> Iterator[Finding]:
    """Detects an NVIDIA probe that crashed (a broken libnvidia-ml), hung (a wedged driver) or failed
    ("Function Not Found" from an NVML older than the binding, an unknown error).

    Why: every GPU fact is then unknown, and a hung or crashing NVML is itself the sign of a sick
    driver (a lost GPU, a stuck kernel module, a half-installed driver). Reporting the area as
    healthy would hide exactly the machines that need a look.
    Severity: warning: the failure is reported, the cause needs a human.
    Fix: run ``nvidia-smi`` by hand (does it hang too?), read ``dmesg`` for NVRM Xid lines, then
    reload the driver modules or reboot; reinstall the driver when its library is broken.
    """
    nv = facts.nvidia
    if nv.error in NVIDIA_PROBE_FAILURES:
        what = {"timeout": "did not answer in time", "crashed": "crashed"}.get(nv.error, "failed")
        message = f"{nv.source or 'The NVIDIA probe'} {what}: {nv.error_detail or nv.error}"
    elif nv.nvml_error:
        message = f"NVML failed ({nv.nvml_error}); the GPU facts come from {nv.source or 'elsewhere'}"
    else:
        return
    step = "Run nvidia-smi by hand, check `sudo dmesg | grep -i xid`, then reload the driver or reboot."
    yield nvidia_probe_failed.finding(
        message,
        evidence={
            "nvidia.source": nv.source,
            "nvidia.error": nv.error,
            "nvidia.error_detail": nv.error_detail,
            "nvidia.nvml_error": nv.nvml_error,
        },
        fix=step,
        actions=[Manual(step)],
    )


@rule(
    "probe-failed",
    name="a probe crashed or timed out",
    severity=Severity.WARNING,
    area="system",
    summary="A probe crashed or did not finish in time, so part of the environment is unknown.",
    fix="Rerun with -v to see which probe and how long it took; a target Python that hangs is broken.",
    sources=(PYTHON_STARTUP_DOC,),
)
def probe_failed(facts: Facts) -> Iterator[Finding]:
    """Detects a probe (the target interpreter, the system, CUDA, Docker) that crashed or timed out.

    Why: the facts it would have produced are unknown, so rules about them stay silent; the report
    must say so instead of looking healthy.
    Severity: error when the target interpreter itself did not answer (it cannot start in time, or
    died: nothing about the environment could be read, and any program run with it would stall the
    same way); warning for any other probe.
    Fix: rerun with ``-v`` to see the probe and its timing; for a target that hangs, run
    ``python -X importtime -c pass`` with it to find what its startup (site, .pth files) waits for.
    """
    for probe, error in sorted(facts.probe_errors.items()):
        if probe in REPORTED_ELSEWHERE:
            continue
        target = probe == "target"
        step = (
            "Find what the interpreter's startup waits for: PYTHON -X importtime -c pass"
            if target
            else "Rerun with -v to see the probe's timing; raise ENVDOCTOR_PROBE_TIMEOUT if it is only slow."
        )
        yield probe_failed.finding(
            f"The {probe} probe failed: {error}",
            severity=Severity.ERROR if target else Severity.WARNING,
            evidence={"probe": probe, "probe_error": error},
            fix=step,
            actions=[Manual(step)],
        )
