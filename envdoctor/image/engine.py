"""The Docker engine: connecting with one-line errors, and whether containers can get a GPU.

Touches: the Docker engine: connects, and for the GPU probe creates, starts and removes one labelled
container (network none).

Connection failures are mapped to the few causes a user can act on (no engine, no permission on
the socket) instead of the SDK's nested ``('Connection aborted.', FileNotFoundError(...))`` text.

GPU passthrough is probed the only reliable way: a throwaway container with a GPU device request
(what ``docker run --gpus all`` sends). ``nvidia`` in the engine's runtimes or a CDI spec folder
say the NVIDIA Container Toolkit was configured, not that it works; the error text of the start
does (``could not select device driver "" with capabilities: [[gpu]]`` = no toolkit hook).
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from envdoctor.errors import EnvdoctorError
from envdoctor.findings import Finding, Manual, Severity

PROBE_LABEL = "io.envdoctor.probe"
PING_TIMEOUT = 10.0  # seconds for the engine to answer its first ping, in all
TOOLKIT_DOCS = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
CDI_DOCS = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/cdi-support.html"
GPU_SOURCES = (
    TOOLKIT_DOCS,
    CDI_DOCS,
    "https://github.com/NVIDIA/nvidia-docker/issues/1034",
    "https://github.com/NVIDIA/nvidia-container-toolkit/issues/154",
)

# Error text of a failed GPU container start -> status. Order matters: first match wins.
GPU_ERRORS: tuple[tuple[str, str], ...] = (
    ("could not select device driver", "no-toolkit"),
    ("unknown or invalid runtime name: nvidia", "no-runtime"),
    ("unknown runtime specified nvidia", "no-runtime"),
    ("libnvidia-ml.so", "no-driver"),
    ("nvidia-container-cli: initialization error", "no-driver"),
)


class EngineError(EnvdoctorError):
    """The engine cannot be used: one line saying why and what to do."""


def connect(timeout: int = 60) -> Any:
    """A ``docker.DockerClient`` for ``DOCKER_HOST`` (or the default socket), or :class:`EngineError`.

    The ping must answer within PING_TIMEOUT seconds in all: a socket that accepts and never answers
    (or trickles a byte at a time, which no read timeout catches) is an error, not a wait. After it,
    ``timeout`` bounds every socket read: builds pass a long one because a quiet ``pip install`` of
    a multi-GB wheel sends nothing for minutes.
    """
    try:
        import docker
    except ImportError:
        raise EngineError("the Python package 'docker' is missing: pip install 'docker>=7'") from None
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    outcome: list[Any] = []

    def ping() -> None:  # the client's constructor already asks the engine for its API version
        try:
            client = docker.from_env(timeout=2 * PING_TIMEOUT)  # the join below decides
            client.ping()
            outcome.append(client)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome.append(exc)

    waiter = threading.Thread(target=ping, name="docker-ping", daemon=True)  # left behind if stuck
    waiter.start()
    waiter.join(PING_TIMEOUT)
    if not outcome:
        raise EngineError(
            f"the Docker engine at {host} accepted the connection but did not answer within "
            f"{PING_TIMEOUT:g}s (a hung dockerd, or not a Docker socket)"
        )
    if isinstance(outcome[0], docker.errors.DockerException):
        raise EngineError(describe_connection_error(host, outcome[0])) from None
    if isinstance(outcome[0], BaseException):
        raise EngineError(f"cannot talk to the Docker engine at {host}: {outcome[0]}") from None
    client = outcome[0]
    client.api.timeout = timeout
    return client


def describe_connection_error(host: str, exc: BaseException) -> str:
    """The one-line cause of a failed connection, read from the exception chain's text."""
    text = str(exc)
    socket_path = host.removeprefix("unix://")
    if "FileNotFoundError" in text or "No such file or directory" in text:
        return (
            f"no Docker engine: {socket_path} does not exist "
            "(start dockerd, or point DOCKER_HOST at a running engine)"
        )
    if "PermissionError" in text or "Permission denied" in text:
        return (
            f"permission denied on {socket_path}: add your user to the 'docker' group "
            "(then log in again) or run as root"
        )
    if "Connection refused" in text:
        return f"no Docker engine listening at {host} (connection refused)"
    return f"cannot talk to the Docker engine at {host}: {text.splitlines()[0] if text else exc!r}"


@dataclass
class ContainerGpu:
    """What the engine says about GPUs in containers."""

    status: str  # "ok", "no-toolkit", "no-runtime", "no-driver", "error"
    detail: str = ""  # the engine's error text, verbatim (empty when ok)
    runtimes: list[str] = field(default_factory=list)
    cdi_spec_dirs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def gpu_device_request() -> Any:
    """The device request of ``docker run --gpus all``."""
    from docker.types import DeviceRequest

    return DeviceRequest(count=-1, capabilities=[["gpu"]])


def probe_container_gpu(client: Any, image: str, command: tuple[str, ...] = ("true",)) -> ContainerGpu:
    """Start a throwaway container of ``image`` with a GPU request and classify what happens.

    The container carries a unique label and every container with that label is removed at the
    end, including one whose start failed (those stay in Created state even with auto-remove).
    """
    import docker

    info = client.info()
    result = ContainerGpu(
        status="error",
        runtimes=sorted(info.get("Runtimes") or {}),
        cdi_spec_dirs=list(info.get("CDISpecDirs") or []),
    )
    label = {PROBE_LABEL: f"container-gpu-{uuid.uuid4().hex[:12]}"}
    try:
        container = client.containers.create(
            image,
            list(command),
            device_requests=[gpu_device_request()],
            network_mode="none",
            labels=label,
        )
        container.start()
        code = container.wait(timeout=60).get("StatusCode", -1)
        if code == 0:
            result.status = "ok"
        else:
            logs = container.logs().decode("utf-8", "replace").strip()
            result.detail = f"exit {code}: {logs.splitlines()[-1] if logs else 'no output'}"
    except docker.errors.APIError as exc:
        result.detail = str(exc.explanation or exc)
        lowered = result.detail.lower()
        result.status = next((status for text, status in GPU_ERRORS if text in lowered), "error")
    except Exception as exc:  # a timeout or a lost connection must not leave the container behind
        result.detail = f"{exc.__class__.__name__}: {exc}"
    finally:
        remove_labelled_containers(client, label)
    return result


def remove_labelled_containers(client: Any, labels: dict[str, str]) -> None:
    """Force-remove every container (running or not) that carries all of ``labels``."""
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    for container in client.containers.list(all=True, filters=filters):
        container.remove(force=True)


def container_gpu_finding(probe: ContainerGpu, needs_gpu: bool) -> Finding | None:
    """The ``container-gpu`` finding for a failed GPU probe (None when containers get GPUs).

    An error when the image needs a GPU (a CUDA recipe), info otherwise: a CPU image runs fine
    on an engine without the toolkit.
    """
    if probe.ok:
        return None
    severity = Severity.ERROR if needs_gpu else Severity.INFO
    evidence: dict[str, Any] = {
        "docker.runtimes": probe.runtimes,
        "docker.cdi_spec_dirs": probe.cdi_spec_dirs,
        "container_gpu.error": probe.detail,
    }
    if probe.status in ("no-toolkit", "no-runtime"):
        configured = "nvidia" in probe.runtimes or bool(probe.cdi_spec_dirs)
        message = (
            "containers cannot get a GPU: the NVIDIA Container Toolkit is "
            + ("configured but the engine was not restarted" if configured else "not set up for this engine")
            + f" ({probe.detail})"
        )
        fix = (
            "install the NVIDIA Container Toolkit, run `sudo nvidia-ctk runtime configure --runtime=docker` "
            "and restart the Docker engine"
        )
    elif probe.status == "no-driver":
        message = f"the NVIDIA Container Toolkit is set up but finds no NVIDIA driver ({probe.detail})"
        fix = "install the NVIDIA driver on the host (nvidia-smi must work there first)"
    else:
        message = f"a container with a GPU request did not run: {probe.detail}"
        fix = "run `docker run --rm --gpus all IMAGE nvidia-smi` and fix the error it prints"
    return Finding(
        id="container-gpu",
        severity=severity,
        message=message,
        evidence=evidence,
        fix=fix,
        actions=[Manual(fix)],
        sources=list(GPU_SOURCES),
    )
