"""Container rules: no GPU inside a container, Docker without the NVIDIA runtime, a tiny /dev/shm.

Facts read: docker, nvidia, packages, system, torch (some through envdoctor.readers).
"""

from __future__ import annotations

from collections.abc import Iterator

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Manual, Severity
from envdoctor.knowledge.cuda import parse_variant
from envdoctor.readers import installed_torch, torch_cuda
from envdoctor.rules import rule

TOOLKIT_SOURCES = (
    "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html",
    "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/cdi-support.html",
)
SHM_SOURCES = (
    "https://github.com/pytorch/pytorch#docker-image",
    "https://docs.docker.com/reference/cli/docker/container/run/#ipc",
)
SHM_MIN_MIB = 1024
NO_GPU_ERRORS = ("driver-missing", "no-device")


def _cuda_torch(facts: Facts) -> bool:
    variant = parse_variant(installed_torch(facts), torch_cuda(facts))
    return bool(variant and variant.startswith("cu"))


@rule(
    "container-gpu",
    name="No GPU reaches the container",
    severity=Severity.WARNING,
    area="container",
    summary="A CUDA torch in a container that sees no GPU, or Docker that cannot hand GPUs to containers.",
    fix="Run the container with --gpus all (CDI: --device nvidia.com/gpu=all); set up the Container Toolkit.",
    sources=TOOLKIT_SOURCES,
)
def container_gpu(facts: Facts) -> Iterator[Finding]:
    """Detects a container that no GPU reaches, or a Docker engine that cannot hand GPUs to
    containers:

    - in a container, torch is a CUDA build, and NVML reports no driver / no device (or lists no GPU);
    - the Docker engine is reachable on a host whose driver sees GPUs, but it has no ``nvidia``
      runtime and no CDI spec directory.

    Why: inside a container the GPU and the driver's user-space libraries are injected by the
    NVIDIA Container Toolkit only when asked for (``docker run --gpus all``, CDI ``--device
    nvidia.com/gpu=all``, Kubernetes ``nvidia.com/gpu`` limits). Without that, a CUDA build of
    torch reports ``cuda.is_available() == False`` ("Found no NVIDIA driver on your system")
    although the host has GPUs; and without the toolkit's hook ``docker run --gpus`` fails with
    'could not select device driver "" with capabilities: [[gpu]]'.
    Fix: restart the container with ``--gpus all`` (CDI: ``--device nvidia.com/gpu=all``); on the
    host, ``sudo nvidia-ctk runtime configure --runtime=docker`` and restart dockerd.
    """
    nv = facts.nvidia
    no_gpu = nv.error in NO_GPU_ERRORS or (nv.gpus is not None and not nv.gpus and nv.error is None)
    if facts.system.in_container and _cuda_torch(facts) and no_gpu:
        fix = "Restart the container with --gpus all (or --device nvidia.com/gpu=all with CDI)."
        yield container_gpu.finding(
            (
                f"Running in a {facts.system.container_kind or 'container'} with CUDA torch "
                f"{installed_torch(facts)} but no GPU is visible ({nv.error or 'NVML lists no GPU'})"
            ),
            evidence={
                "system.in_container": True,
                "system.container_kind": facts.system.container_kind,
                "nvidia.error": nv.error,
                "nvidia.gpus": [g.name for g in nv.gpus] if nv.gpus is not None else None,
                "torch.version": installed_torch(facts),
            },
            fix=fix,
            actions=[Manual(fix)],
        )
    docker = facts.docker
    if docker.status != "ok" or docker.runtimes is None or not nv.gpus:
        return
    if "nvidia" in docker.runtimes or docker.cdi_spec_dirs:
        return
    fix = "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
    yield container_gpu.finding(
        (
            f"Docker{' ' + docker.server_version if docker.server_version else ''} has no nvidia runtime "
            f"({', '.join(docker.runtimes) or 'none'}) and no CDI spec directory, "
            f"but this host has {len(nv.gpus)} GPU(s)"
        ),
        evidence={
            "docker.runtimes": docker.runtimes,
            "docker.cdi_spec_dirs": docker.cdi_spec_dirs,
            "nvidia.gpus": [g.name for g in nv.gpus],
        },
        fix=fix,
        actions=[Manual(fix)],
    )


@rule(
    "shm-too-small",
    name="Container /dev/shm too small",
    severity=Severity.WARNING,
    area="container",
    summary="/dev/shm below 1 GiB in a container (Docker default: 64 MB): DataLoader workers and NCCL die.",
    fix="docker run --ipc=host (or --shm-size=16g).",
    sources=SHM_SOURCES,
)
def shm_too_small(facts: Facts) -> Iterator[Finding]:
    """Detects a container whose /dev/shm is under 1 GiB.

    Why: PyTorch passes tensors between DataLoader worker processes through shared memory, and
    NCCL uses /dev/shm for intra-node transport. Docker gives a container 64 MB of /dev/shm
    unless told otherwise, so training with ``num_workers > 0`` dies with "ERROR: Unexpected bus
    error encountered in worker. This might be caused by insufficient shared memory (shm)" or
    "unable to write to file </torch_...>", and NCCL with "Error while creating shared memory
    segment".
    Fix (on the host, envdoctor cannot change it from inside): ``docker run --ipc=host`` or
    ``--shm-size=16g``; on Kubernetes mount an ``emptyDir`` with ``medium: Memory`` at /dev/shm.
    """
    size = facts.system.shm_size_mib
    if not facts.system.in_container or size is None or size >= SHM_MIN_MIB:
        return
    fix = (
        "Restart the container with --ipc=host or --shm-size=16g (Kubernetes: a Memory emptyDir on /dev/shm)."
    )
    yield shm_too_small.finding(
        f"/dev/shm is {size} MiB in this container: DataLoader workers and NCCL need more (>= 1 GiB)",
        evidence={
            "system.shm_size_mib": size,
            "system.in_container": True,
            "system.container_kind": facts.system.container_kind,
        },
        fix=fix,
        actions=[Manual(fix)],
    )
