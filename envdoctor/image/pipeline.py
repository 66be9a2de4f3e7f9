"""The ``build`` workflow: recipe -> Dockerfile -> build on the engine -> validation (and smoke) inside.

Touches: reads the recipe, CA certificate and wheel files named; talks to the Docker engine (builds
one image under the given tag, removes the layers of a failed build and the image the tag named
before, runs and removes short-lived containers of the image). Writes nothing on the host but a
temporary build context. Prints nothing: :func:`prepare` says what will be built, :func:`build` and
:func:`gpu_check` return what happened, and :mod:`envdoctor.image.render` shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from envdoctor.errors import UsageError
from envdoctor.findings import Finding, Severity

if TYPE_CHECKING:
    from envdoctor.image.context import InstalledWheel
    from envdoctor.image.stream import BuildEvent, BuildFailure, BuildResult
    from envdoctor.image.validate import SmokeRun, Validation
    from envdoctor.recipes import Recipe

NETWORKS = ("host", "none")  # envdoctor never creates a bridge network


@dataclass(frozen=True)
class Prepared:
    """What will be built, worked out before the engine is asked: recipe, Dockerfile, context parts."""

    recipe: Recipe
    why: str  # why this recipe: named, recommended here, or the default
    dockerfile: str
    tag: str
    base_image: str | None  # --base-image, passed to the build as BASE_IMAGE; None: the recipe's
    network: str  # the build's network mode: one of NETWORKS
    own: Path | InstalledWheel  # where the image's envdoctor comes from
    certs: dict[str, bytes] = field(default_factory=dict)  # extra CA certificates by file name
    wheels_dir: Path | None = None  # --wheels: the folder of local wheels
    wheels: list[Path] = field(default_factory=list)  # its *.whl files, sent in the context
    local_torch: str | None = None  # the wheel among ``wheels`` that provides torch, if any

    @property
    def base(self) -> str:
        """The image the build starts FROM."""
        return self.base_image or self.recipe.base_image


class Progress(Protocol):
    """What the build reports while it runs (a context manager around the build; see render.BuildProgress)."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...

    def event(self, event: BuildEvent) -> None: ...

    def fail(self, failure: BuildFailure) -> None: ...


@dataclass
class BuildOutcome:
    """What :func:`build` did: the build itself, then (when it succeeded) what the image reported."""

    prepared: Prepared
    result: BuildResult
    gpu_finding: Finding | None = None  # container-gpu: containers of the image do not get a GPU
    validation: Validation | None = None  # ``envdoctor check --json`` inside; None when the build failed
    smoke: SmokeRun | None = None  # ``envdoctor smoke-train --json`` inside, when asked for

    @property
    def findings(self) -> list[Finding]:
        """Every finding about the image: GPU passthrough first, then the check's."""
        inside = self.validation.findings if self.validation is not None else []
        return [self.gpu_finding, *inside] if self.gpu_finding is not None else list(inside)

    @property
    def ok(self) -> bool:
        """Built, validated, no error among the findings, and smoke-train passed when it ran."""
        return (
            self.result.ok
            and self.validation is not None
            and self.validation.ok
            and not any(f.severity is Severity.ERROR for f in self.findings)
            and (self.smoke is None or self.smoke.ok)
        )


def prepare(
    recipe: str | None,
    *,
    tag: str | None = None,
    base_image: str | None = None,
    ca_certs: list[Path] | None = None,
    host_ca_certs: bool = False,
    install_torch: bool = True,
    wheels: Path | None = None,
    network: str = "host",
) -> Prepared:
    """Choose the recipe, read certificates and wheels, render the Dockerfile; no engine needed.

    Bad input (an unknown or broken recipe, an unreadable certificate, a folder without wheels)
    raises its one-line EnvdoctorError.
    """
    from envdoctor.image.choose import choose_recipe
    from envdoctor.image.context import InstalledWheel, find_wheels, own_source, read_ca_certs
    from envdoctor.image.context import host_ca_certs as host_certs
    from envdoctor.image.dockerfile import default_tag, local_torch_wheel, render_dockerfile

    if network not in NETWORKS:
        raise UsageError(
            f"--network {network!r}: choose host or none (envdoctor never creates a bridge network)"
        )
    chosen, why = choose_recipe(recipe)
    certs = read_ca_certs([*(ca_certs or []), *(host_certs() if host_ca_certs else [])])
    wheel_files = find_wheels(wheels) if wheels is not None else []
    own = own_source()  # the source tree of a checkout, or a wheel rebuilt from the installed files
    wheel_names = [w.name for w in wheel_files]
    dockerfile = render_dockerfile(
        chosen,
        ca_certs=sorted(certs),
        install_torch=install_torch,
        wheels=wheel_names,
        own_wheel=own.name if isinstance(own, InstalledWheel) else None,
    )
    return Prepared(
        recipe=chosen,
        why=why,
        dockerfile=dockerfile,
        tag=tag or default_tag(chosen, install_torch=install_torch),
        base_image=base_image,
        network=network,
        own=own,
        certs=certs,
        wheels_dir=wheels,
        wheels=wheel_files,
        local_torch=local_torch_wheel(chosen, wheel_names) if wheel_files else None,
    )


def build(client: Any, prepared: Prepared, progress: Progress, smoke: bool = False) -> BuildOutcome:
    """Build ``prepared`` on the engine, then validate the image from the inside (and smoke-train it).

    A step that fails is reported to ``progress`` and returned in the outcome; a Dockerfile the
    engine rejects or a base image it cannot get raise UsageError (exit 2: the input is wrong).
    """
    from envdoctor.image.context import make_context
    from envdoctor.image.engine import container_gpu_finding, probe_container_gpu
    from envdoctor.image.stream import build_image
    from envdoctor.image.validate import smoke_in_image, validate_image

    context = make_context(prepared.dockerfile, prepared.own, prepared.certs, wheels=prepared.wheels)
    with context, progress:
        result = build_image(
            client,
            context,
            prepared.tag,
            buildargs={"BASE_IMAGE": prepared.base_image} if prepared.base_image else None,
            network_mode=prepared.network,
            on_event=progress.event,
        )
        if result.failure is not None and result.failure.kind == "step-failed":
            progress.fail(result.failure)
    failure = result.failure
    if failure is not None and failure.kind == "rejected":
        raise UsageError(f"the engine rejected the Dockerfile: {failure.message}")
    if failure is not None and failure.kind == "base-image":
        raise UsageError(
            f"base image {prepared.base} is not available locally and cannot be pulled: {failure.message}"
        )
    outcome = BuildOutcome(prepared, result)
    if failure is not None:
        return outcome
    gpu = probe_container_gpu(client, prepared.tag)
    outcome.gpu_finding = container_gpu_finding(gpu, needs_gpu=prepared.recipe.hardware.gpu)
    outcome.validation = validate_image(client, prepared.tag, gpu=gpu.ok)
    if smoke:
        ulimits = not outcome.validation.ulimits_refused
        outcome.smoke = smoke_in_image(client, prepared.tag, gpu=gpu.ok, ulimits=ulimits)
    return outcome


def gpu_check(client: Any, tag: str) -> Finding | None:
    """Whether containers of the local image ``tag`` get a GPU: None if they do, else the finding."""
    import docker

    from envdoctor.image.engine import container_gpu_finding, probe_container_gpu

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise UsageError(f"image {tag} not found locally: build it first or name one with --tag") from None
    return container_gpu_finding(probe_container_gpu(client, tag), needs_gpu=True)
