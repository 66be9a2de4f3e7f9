"""``ci init``: write a CI workflow (GitHub Actions or GitLab CI) that runs envdoctor on every push.

Touches: writes one workflow file (--output, else the CI system's default path; never replaced
without --force); --print only prints.

Parses options; the templates are envdoctor.ci.
"""

import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, UsageError


def register(app: typer.Typer) -> None:
    group = o.new_app()
    group.callback(invoke_without_command=True)(ci)
    o.command(group, "init")(ci_init)
    app.add_typer(group, name="ci")


def ci(ctx: typer.Context) -> None:
    """CI templates: `ci init --github|--gitlab` writes a workflow that runs envdoctor on every push."""
    if ctx.invoked_subcommand is None:
        raise UsageError("choose a subcommand: envdoctor ci init --github|--gitlab")


def ci_init(
    github: Annotated[bool, typer.Option("--github", help="GitHub Actions.")] = False,
    gitlab: Annotated[bool, typer.Option("--gitlab", help="GitLab CI.")] = False,
    gpu_runner: Annotated[
        str | None,
        typer.Option(
            metavar="LABELS", help="Also check and smoke-train on this runner (labels, comma-separated)."
        ),
    ] = None,
    python: Annotated[str, typer.Option(help="Python version of the check job's image.")] = "3.11",
    install: Annotated[
        str | None,
        typer.Option(
            help="Shell command that installs the project (default: requirements.txt or the project)."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write here instead of the CI system's default path.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    to_stdout: Annotated[
        bool, typer.Option("--print", help="Print the workflow instead of writing it.")
    ] = False,
) -> int:
    """Write a workflow: check --json, HTML/JSON artifacts, fail on error findings (optionally smoke-train on a GPU runner)."""
    from envdoctor import ci as templates

    if github == gitlab:  # a usage error: printed after the usage line, like click's own
        raise click.UsageError(
            "argument --gitlab: not allowed with argument --github"
            if github
            else "one of the arguments --github --gitlab is required"
        )
    kind = "github" if github else "gitlab"
    opts = templates.Options(
        python=python,
        install=install or templates.DEFAULT_INSTALL,
        gpu_runner=templates.parse_labels(gpu_runner) if gpu_runner else (),
    )
    if to_stdout:
        sys.stdout.write(templates.render(kind, opts))
        return EXIT_OK
    for path in templates.write(kind, opts, Path.cwd(), output, force):
        print(f"wrote {path}")
    return EXIT_OK
