"""Validate a built image from the inside: ``envdoctor check --json`` (and ``smoke-train``) in a container.

Touches: the Docker engine: creates, runs and removes containers of the image (network none).
Writes nothing on the host.

The container runs with the flags of the ``docker run`` line envdoctor recommends (``--ipc=host``,
unlimited memlock, a 64 MiB stack; a GPU request when the engine can serve one), so the check sees
what a training run in that image will see. Every container is removed afterwards.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from envdoctor.facts import Facts, FactsError
from envdoctor.findings import Finding
from envdoctor.image.engine import PROBE_LABEL, gpu_device_request, remove_labelled_containers

STACK_BYTES = 67108864  # 64 MiB, NVIDIA's recommendation for PyTorch containers
RUN_FLAGS = ("--ipc=host", "--ulimit memlock=-1", f"--ulimit stack={STACK_BYTES}")


@dataclass
class ContainerRun:
    exit_code: int | None  # None when it timed out or did not start
    stdout: str
    stderr: str
    error: str | None = None  # why it did not run to the end


@dataclass
class Validation:
    """What ``envdoctor check --json`` reported from inside the image."""

    run: ContainerRun
    facts: Facts | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # why there are no facts (the check crashed, printed no JSON)
    ulimits_refused: str | None = None  # the engine's error when it refused the recommended ulimits

    @property
    def ok(self) -> bool:
        return self.facts is not None


def run_in_container(
    client: Any, image: str, command: list[str], gpu: bool = False, timeout: int = 300, ulimits: bool = True
) -> ContainerRun:
    """Run ``command`` in a fresh container of ``image`` with the recommended flags; always removed.

    ``ulimits=False`` leaves out ``memlock``/``stack``: engines that run without CAP_SYS_RESOURCE
    (rootless, some sandboxes) refuse them at start with ``error setting rlimit``.
    """
    import docker
    from docker.types import Ulimit

    labels = {PROBE_LABEL: f"validate-{uuid.uuid4().hex[:12]}"}
    try:
        container = client.containers.create(
            image,
            command,
            network_mode="none",
            ipc_mode="host",
            ulimits=[
                Ulimit(name="memlock", soft=-1, hard=-1),
                Ulimit(name="stack", soft=STACK_BYTES, hard=STACK_BYTES),
            ]
            if ulimits
            else None,
            device_requests=[gpu_device_request()] if gpu else None,
            labels=labels,
        )
        container.start()
        try:
            code = container.wait(timeout=timeout).get("StatusCode")
        except Exception as exc:  # requests' ReadTimeout: the command hung
            container.kill()
            return ContainerRun(
                None,
                _logs(container, True),
                _logs(container, False),
                f"timed out after {timeout} s ({exc.__class__.__name__})",
            )
        return ContainerRun(code, _logs(container, True), _logs(container, False))
    except docker.errors.APIError as exc:
        return ContainerRun(None, "", "", str(exc.explanation or exc))
    finally:
        remove_labelled_containers(client, labels)


def _logs(container: Any, stdout: bool) -> str:
    return container.logs(stdout=stdout, stderr=not stdout).decode("utf-8", "replace")


def validate_image(client: Any, image: str, gpu: bool = False, timeout: int = 300) -> Validation:
    """Run ``envdoctor check --json`` inside ``image`` and read its facts and findings.

    ``check`` exits 1 when it finds an error: that is a result, not a failed validation; only a
    crash or output that is not the JSON document is.
    """
    command = ["envdoctor", "check", "--json"]
    run = run_in_container(client, image, command, gpu=gpu, timeout=timeout)
    refused = None
    if run.error is not None and "rlimit" in run.error:
        refused = run.error
        run = run_in_container(client, image, command, gpu=gpu, timeout=timeout, ulimits=False)
    validation = Validation(run=run, ulimits_refused=refused)
    if run.error is not None:
        validation.error = run.error
        return validation
    try:
        data = json.loads(run.stdout)
        validation.facts = Facts.from_dict(data["facts"])
        validation.findings = [Finding.from_dict(f) for f in data.get("findings", [])]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, FactsError) as exc:
        last = next(reversed((run.stderr or run.stdout).strip().splitlines()), "no output")
        validation.error = (
            f"`envdoctor check --json` exited {run.exit_code} without a facts document "
            f"({exc.__class__.__name__}): {last}"
        )
    return validation


@dataclass
class SmokeRun:
    """What ``envdoctor smoke-train --json`` reported from inside the image."""

    run: ContainerRun
    payload: dict[str, Any] | None = None  # the JSON document: ok, checks, result (or finding, detail)
    error: str | None = None  # why there is no document

    @property
    def ok(self) -> bool:
        return self.payload is not None and self.payload.get("ok") is True


def smoke_in_image(
    client: Any, image: str, gpu: bool = False, ulimits: bool = True, timeout: int = 1800
) -> SmokeRun:
    """Train the reference model inside ``image`` (smoke-train's defaults) and read its verdict."""
    run = run_in_container(
        client, image, ["envdoctor", "smoke-train", "--json"], gpu=gpu, timeout=timeout, ulimits=ulimits
    )
    if run.error is not None:
        return SmokeRun(run, error=run.error)
    last = next(reversed(run.stdout.strip().splitlines()), "")
    try:
        payload = json.loads(last)
    except json.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict) or "ok" not in payload:
        tail = next(reversed((run.stderr or run.stdout).strip().splitlines()), "no output")
        return SmokeRun(run, error=f"`envdoctor smoke-train --json` exited {run.exit_code}: {tail}")
    return SmokeRun(run, payload=payload)


def docker_run_line(tag: str, gpu: bool, ulimits: bool = True) -> str:
    """The ``docker run`` line for training in the image: GPUs, shared memory, locked memory, stack."""
    parts = ["docker run --rm -it"]
    if gpu:
        parts.append("--gpus all")
    parts += [*(RUN_FLAGS if ulimits else RUN_FLAGS[:1]), '-v "$PWD":/work -w /work', tag]
    return " ".join(parts)
