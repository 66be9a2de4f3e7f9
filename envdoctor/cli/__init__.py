"""Command-line interface (typer): one module per command family; they parse options and render.

Touches: nothing itself; each command module's docstring says what its command may touch.

The work lives in plain modules that each command imports inside its body, so that ``check --quick``
loads typer, click and the check command's own modules, nothing else. ``main`` runs the command tree
and turns every error into an exit code once: ``EnvdoctorError`` and click's usage errors become one
``error:`` line and their code (2: bad usage or unreadable input), a command's return value is its code.
Exit codes: 0 fine, 1 a problem was found (error finding, failed check), 2 bad usage or unreadable input.
"""

import importlib
import os
import signal
import sys
import threading
from typing import Annotated

import click
import typer

from envdoctor import __version__
from envdoctor.cli.options import Group
from envdoctor.errors import EXIT_USAGE, EnvdoctorError

# Each command's family module; `envdoctor COMMAND` builds only that family (all of them: about 25 ms).
FAMILIES = {
    "check": "check", "rules": "check", "recipes": "recipes", "recommend": "recipes", "fix": "fix",
    "build": "build", "explain": "triage", "diff": "triage", "smoke-train": "smoke", "fleet": "fleet",
    "fit": "fit", "ci": "ci", "mcp": "mcp",
}  # fmt: skip


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The command tree; for ``envdoctor COMMAND ...`` only what COMMAND's family declares.

    Without a known command first (no arguments, --help, --version, shell completion, a typo) every
    family is there, so the command list, completion and "no such command" see them all.
    """
    app = typer.Typer(
        cls=Group,
        name="envdoctor",
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode=None,
        invoke_without_command=True,
    )
    app.callback()(_root)
    first = argv[0] if argv else None
    for family in [FAMILIES[first]] if first in FAMILIES else dict.fromkeys(FAMILIES.values()):
        importlib.import_module(f"envdoctor.cli.{family}").register(app)
    return app


def _version(value: bool) -> None:
    if value:
        print(f"envdoctor {__version__}")
        raise typer.Exit(0)


def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """The doctor for deep-learning environments."""
    if ctx.invoked_subcommand is None:  # no command: the command list, as a usage error
        print(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), run the command, return its exit code."""
    if sys.stdout is None:  # started with stdout closed (`>&-`): nowhere to say anything
        print("envdoctor: error: stdout is closed; redirect it to a file or /dev/null", file=sys.stderr)
        return EXIT_USAGE
    args = sys.argv[1:] if argv is None else argv
    _exit_on_sigterm()
    command = typer.main.get_command(build_app(args))
    try:
        code = command.main(args=args, prog_name="envdoctor", standalone_mode=False)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not as a traceback at exit
        return code if isinstance(code, int) else 0
    except EnvdoctorError as exc:
        print(f"envdoctor: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except click.UsageError as exc:  # as argparse said it: the usage line, then one error line
        if exc.ctx is not None:
            print(exc.ctx.get_usage(), file=sys.stderr)
        where = exc.ctx.command_path if exc.ctx is not None else "envdoctor"
        print(f"{where}: error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except click.Abort:  # end of input at a prompt
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C that reached here past typer's own handling (its teardown)
        return 130  # 128 + SIGINT, what a shell reports for Ctrl-C
    except OSError as exc:  # the output (or a file a command writes) cannot be written
        _drop_stdout()
        if isinstance(exc, BrokenPipeError):  # the reader went away (`| head`): nothing to say
            return EXIT_USAGE
        where = f" ({exc.filename})" if exc.filename else " (writing the output)"
        print(f"envdoctor: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE


def _exit_on_sigterm() -> None:
    """Let SIGTERM (``timeout``, a job scheduler) unwind like Ctrl-C, exit 143.

    Python's default is to die at once, which leaves the probe children (each in a session of its
    own, so that a timeout can kill its whole group) running; unwinding lets ``check`` end them.
    ``fix`` and ``smoke-train`` install their own handlers while they change or train.
    """
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
