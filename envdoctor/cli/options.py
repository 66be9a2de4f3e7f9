"""What the commands share: the command classes, option aliases declared once, choices and completion.

Touches: nothing; the completion callbacks read the shipped recipes and rules.

An option used by several commands is one ``Annotated`` alias here, so its name, help and default
cannot drift between them. Choices are tuples of strings (shown in help, checked by click); the
completion callbacks import the recipe and rule tables only when a shell asks for completions.
"""

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from typer.core import TyperCommand, TyperGroup

from envdoctor.errors import UsageError

if TYPE_CHECKING:
    from envdoctor.redact import Redactor


class HelpFormatter(click.HelpFormatter):
    """Help and usage lines start with ``usage:``, as in the errors (``envdoctor check: error: ...``)."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, "usage: " if prefix is None else prefix)


class Context(click.Context):
    formatter_class = HelpFormatter


class Command(TyperCommand):
    """Every envdoctor command: its help is its function's docstring, defaults are shown."""

    context_class = Context


class Group(TyperGroup):
    context_class = Context


SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


def new_app() -> typer.Typer:
    """A command group with envdoctor's help format (plain text: rich would cost its import on --help)."""
    return typer.Typer(cls=Group, context_settings=SETTINGS, rich_markup_mode=None, add_completion=False)


def command(app: typer.Typer, name: str):
    """Register the decorated function as ``name`` of ``app``."""
    return app.command(name, cls=Command, context_settings=SETTINGS)


def seconds(value: str | float | None) -> float | None:
    """A positive, finite number of seconds (``inf`` or ``nan`` would never time out)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise typer.BadParameter(f"{value!r}: give a positive number of seconds")
    return number


def one_format(as_json: bool, fmt: str | None) -> str:
    """``--json`` and ``--format`` must agree; the format they choose (default text)."""
    if as_json and fmt not in (None, "json"):
        raise UsageError(f"--json and --format {fmt} contradict each other: choose one")
    return "json" if as_json else fmt or "text"


def complete_recipe(incomplete: str) -> list[str]:
    """Recipe names for shell completion."""
    from envdoctor.recipes import RecipeError, all_recipes

    try:
        return [r.name for r in all_recipes() if r.name.startswith(incomplete)]
    except RecipeError:
        return []


def complete_finding_id(incomplete: str) -> list[str]:
    """Finding ids for shell completion (``fix --only``)."""
    from envdoctor.rules import all_rules

    last = incomplete.rsplit(",", 1)
    head = f"{last[0]}," if len(last) == 2 else ""
    return [head + r.id for r in all_rules() if r.id.startswith(last[-1])]


def _choice(*values: str) -> click.Choice:
    return click.Choice(values)


class Shown(click.Choice):
    """Choices shown in help and offered by completion; the command checks the value itself.

    The modules that take these values (smoke.config, fit, build) say what is wrong in one line of
    their own (``unknown task 'sort' (choose local, recall, assoc, add)``), with the same exit code.
    """

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return value


TASKS = Shown(("local", "recall", "assoc", "add"))
SIZES = Shown(("tiny", "small", "base"))
SMOKE_PRECISIONS = Shown(("fp32", "bf16", "fp16", "fp8", "all"))
FIT_PRECISIONS = Shown(("fp32", "bf16", "fp8"))
STRATEGIES = Shown(("ddp", "fsdp", "deepspeed"))
ATTENTIONS = Shown(("pam", "full"))
NETWORKS = Shown(("host", "none"))

# --format and its short form --json: the one output option of every command (choices per command).
Json = Annotated[bool, typer.Option("--json", help="Print JSON. Same as --format json.", show_default=False)]
TextOrJson = Annotated[
    str | None, typer.Option("--format", click_type=_choice("text", "json"), help="Output format.")
]
TextJsonHtml = Annotated[
    str | None, typer.Option("--format", click_type=_choice("text", "json", "html"), help="Output format.")
]
TextMarkdownJson = Annotated[
    str | None,
    typer.Option("--format", click_type=_choice("text", "markdown", "json"), help="Output format."),
]
AllFormats = Annotated[
    str | None,
    typer.Option("--format", click_type=_choice("text", "markdown", "json", "html"), help="Output format."),
]

Python = Annotated[
    Path | None,
    typer.Option(
        "--python",
        metavar="PATH",
        help="Check another interpreter (a venv or conda env) instead of this one.",
    ),
]
Facts = Annotated[
    Path | None,
    typer.Option(
        "--facts",
        metavar="FILE",
        help="Load facts from a JSON file written by `check --json` instead of probing.",
    ),
]
KeepHostnames = Annotated[
    bool,
    typer.Option(
        "--keep-hostnames",
        help="Show host names (the home folder, user name and credentials are always redacted).",
    ),
]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Show more.")]
Timeout = Annotated[
    float | None, typer.Option("--timeout", parser=seconds, metavar="SECONDS", show_default=False)
]

# --smoke and the smoke-train options that pass through to it (check --smoke, fix --apply --smoke).
Device = Annotated[str, typer.Option("--device", help="--smoke: auto, cpu, cuda or cuda:N.")]
SmokePrecision = Annotated[
    str, typer.Option("--precision", click_type=SMOKE_PRECISIONS, help="--smoke: the precision(s) to train.")
]
Nproc = Annotated[int, typer.Option("--nproc", help="--smoke: processes (>1 runs under torchrun).")]


def redactor(keep_hostnames: bool, sample: str | None = None) -> "Redactor":
    """The redactor for output that gets pasted: home, user, credentials, and hosts unless kept."""
    from envdoctor.redact import Redactor

    return Redactor.for_this_machine(keep_hosts=keep_hostnames, sample=sample)
