"""``envdoctor build``: options in, :mod:`envdoctor.image.pipeline` does the work, its outcome rendered.

Touches: what the pipeline touches: the Docker engine (one image under the tag, short-lived containers
of it) and the recipe, certificate and wheel files named; ``--print-dockerfile`` only prints.
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, EXIT_PROBLEM


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

    from envdoctor.image import pipeline, render
    from envdoctor.image.engine import connect

    prepared = pipeline.prepare(
        recipe,
        tag=tag,
        base_image=base_image,
        ca_certs=ca_cert,
        host_ca_certs=host_ca_certs,
        install_torch=not no_torch,
        wheels=wheels,
        network=network,
    )
    if print_dockerfile:
        sys.stdout.write(prepared.dockerfile)
        return EXIT_OK
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    client = connect(timeout=3600)
    if gpu_check:
        finding = pipeline.gpu_check(client, prepared.tag)
        if finding is None:
            out.print(f"[green]✓[/] containers of {prepared.tag} get a GPU", highlight=False)
        else:
            render.print_findings(out, [finding])
        return EXIT_OK if finding is None else EXIT_PROBLEM
    render.print_start(err, prepared)
    try:
        outcome = pipeline.build(client, prepared, render.BuildProgress(err, verbose=verbose), smoke=smoke)
    except KeyboardInterrupt:  # the pipeline has removed its containers and an unfinished build's layers
        err.print("[red]✗[/] interrupted: no container and no layer of an unfinished build is left behind")
        return 130  # 128 + SIGINT, what a shell reports for Ctrl-C
    render.print_outcome(out, err, outcome)
    return EXIT_OK if outcome.ok else EXIT_PROBLEM
