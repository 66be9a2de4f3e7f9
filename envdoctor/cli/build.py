"""``build``: the recipe's Docker image, built through the Docker SDK and validated from the inside.

Parses options and renders; the work is envdoctor.image (Dockerfile, context, engine, validation).
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, EXIT_PROBLEM, UsageError


def register(app: typer.Typer) -> None:
    o.command(app, "build")(build)


def build(
    recipe: Annotated[
        str | None,
        typer.Option(
            help="Recipe name or YAML file (default: recommended here, else CUDA 13).",
            autocompletion=o.complete_recipe,
        ),
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Image tag (envdoctor/<recipe>:<hash>).")] = None,
    base_image: Annotated[
        str | None, typer.Option(help="Build FROM this image instead of the recipe's.")
    ] = None,
    print_dockerfile: Annotated[
        bool, typer.Option("--print-dockerfile", help="Print the Dockerfile and stop (no engine needed).")
    ] = False,
    ca_cert: Annotated[
        list[Path],
        typer.Option(
            help="Extra CA certificate (PEM) to trust in the image; repeatable.", show_default=False
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    host_ca_certs: Annotated[
        bool,
        typer.Option("--host-ca-certs", help="Trust this host's /usr/local/share/ca-certificates/*.crt."),
    ] = False,
    no_torch: Annotated[
        bool, typer.Option("--no-torch", help="Leave out torch and the recipe's packages (small image).")
    ] = False,
    wheels: Annotated[
        Path | None, typer.Option(help="Install from the *.whl files of DIR too (torch offline if one fits).")
    ] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Also run `envdoctor smoke-train` inside.")] = False,
    gpu_check: Annotated[
        bool, typer.Option("--gpu-check", help="Only check that containers of the image get a GPU; no build.")
    ] = False,
    network: Annotated[
        str,
        typer.Option(click_type=o.NETWORKS, help="Network for the build."),
    ] = "host",
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show every line of the build.")] = False,
) -> int:
    """Build the recipe's Docker image via the Docker SDK, then validate it from the inside.

    Exit 1 if a step fails, the check inside finds an error, or --smoke fails.
    """
    from rich.console import Console

    from envdoctor.findings import Severity
    from envdoctor.image import render
    from envdoctor.image.choose import choose_recipe
    from envdoctor.image.context import InstalledWheel, find_wheels, make_context, own_source, read_ca_certs
    from envdoctor.image.context import host_ca_certs as host_certs
    from envdoctor.image.dockerfile import default_tag, local_torch_wheel, render_dockerfile
    from envdoctor.image.engine import connect, container_gpu_finding, probe_container_gpu
    from envdoctor.image.stream import build_image
    from envdoctor.image.validate import docker_run_line, smoke_in_image, validate_image

    if network not in ("host", "none"):
        raise UsageError(
            f"--network {network!r}: choose host or none (envdoctor never creates a bridge network)"
        )
    chosen, why = choose_recipe(recipe)
    certs = read_ca_certs([*ca_cert, *(host_certs() if host_ca_certs else [])])
    wheel_files = find_wheels(wheels) if wheels is not None else []
    own = own_source()  # the source tree of a checkout, or a wheel rebuilt from the installed files
    wheel_names = [w.name for w in wheel_files]
    install_torch = not no_torch
    own_wheel = own.name if isinstance(own, InstalledWheel) else None
    dockerfile = render_dockerfile(
        chosen, ca_certs=sorted(certs), install_torch=install_torch, wheels=wheel_names, own_wheel=own_wheel
    )
    if print_dockerfile:
        sys.stdout.write(dockerfile)
        return EXIT_OK
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    tag = tag or default_tag(chosen, install_torch=install_torch)
    client = connect(timeout=3600)
    if gpu_check:
        _require_local_image(client, tag)
        finding = container_gpu_finding(probe_container_gpu(client, tag), needs_gpu=True)
        if finding is None:
            out.print(f"[green]✓[/] containers of {tag} get a GPU", highlight=False)
        else:
            render.print_findings(out, [finding])
        return EXIT_OK if finding is None else EXIT_PROBLEM

    context = make_context(dockerfile, own, certs, wheels=wheel_files)
    base = base_image or chosen.base_image
    err.print(
        f"Building {tag} from recipe {chosen.name} ({why}) on {base}, network {network}", highlight=False
    )
    if wheel_files:
        local_torch = local_torch_wheel(chosen, wheel_names)
        torch_from = f"torch from {local_torch}" if local_torch else f"torch from {chosen.torch.index_url}"
        err.print(f"{len(wheel_files)} local wheels from {wheels}; {torch_from}", highlight=False)
    with context, render.BuildProgress(err, verbose=verbose) as progress:
        result = build_image(
            client,
            context,
            tag,
            buildargs={"BASE_IMAGE": base_image} if base_image else None,
            network_mode=network,
            on_event=progress.event,
        )
        if result.failure is not None and result.failure.kind == "step-failed":
            progress.fail(result.failure)
    failure = result.failure
    if failure is not None:
        if failure.kind == "rejected":
            raise UsageError(f"the engine rejected the Dockerfile: {failure.message}")
        if failure.kind == "base-image":
            raise UsageError(
                f"base image {base} is not available locally and cannot be pulled: {failure.message}"
            )
        if failure.kind != "step-failed":
            err.print(f"[red]✗[/] build failed at step {failure.step}: {failure.message}", highlight=False)
        return EXIT_PROBLEM
    out.print(f"[green]✓[/] built {tag} ({(result.image_id or '')[:19]})", highlight=False)

    gpu = probe_container_gpu(client, tag)
    gpu_finding = container_gpu_finding(gpu, needs_gpu=chosen.hardware.gpu)
    validation = validate_image(client, tag, gpu=gpu.ok)
    if gpu_finding is not None:
        validation.findings.insert(0, gpu_finding)
    render.print_validation(out, validation)
    problems = not validation.ok or any(f.severity is Severity.ERROR for f in validation.findings)
    if smoke:
        smoke_run = smoke_in_image(client, tag, gpu=gpu.ok, ulimits=not validation.ulimits_refused)
        render.print_smoke(out, smoke_run)
        problems = problems or not smoke_run.ok
    if validation.ulimits_refused:
        out.print(f"[yellow]![/] this engine refuses the memlock/stack ulimits: {validation.ulimits_refused}")
    out.print("Run it with:", highlight=False)
    run_line = docker_run_line(tag, gpu=chosen.hardware.gpu, ulimits=not validation.ulimits_refused)
    out.print(f"  {run_line}", highlight=False)
    return EXIT_PROBLEM if problems else EXIT_OK


def _require_local_image(client, tag: str) -> None:
    """Fail with a one-line error when ``tag`` is not an image of the engine."""
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise UsageError(f"image {tag} not found locally: build it first or name one with --tag") from None
