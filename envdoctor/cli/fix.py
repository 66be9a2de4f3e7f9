"""``fix``: plan fixes for the findings (or a recipe); --apply runs them under a lock, --rollback undoes.

Touches: nothing without --apply or --rollback (it probes the target, or reads a facts file); with
them, the target environment (pip, its activation file) under the prefix's lock, after a snapshot
it can roll back to (through :mod:`envdoctor.fix`).

Parses options, calls :func:`envdoctor.fix.run.run_fix` (or ``undo_last``) and renders the outcome.
"""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import UsageError
from envdoctor.fix.progress import Progress

if TYPE_CHECKING:
    from envdoctor.fix.model import Plan
    from envdoctor.fix.run import FixOutcome
    from envdoctor.proof import Proof, SmokeOptions


def register(app: typer.Typer) -> None:
    o.command(app, "fix")(fix)


def fix(
    python: o.Python = None,
    facts: o.Facts = None,
    recipe: Annotated[
        str | None, typer.Option(help="Make the env match this recipe.", autocompletion=o.complete_recipe)
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Plan a --recipe that does not fit this machine anyway.")
    ] = False,
    apply: Annotated[
        bool, typer.Option("--apply", "--yes", help="Run the plan (default: print it).")
    ] = False,
    rollback: Annotated[bool, typer.Option("--rollback", help="Restore the last fix snapshot.")] = False,
    only: Annotated[
        list[str],
        typer.Option(
            metavar="ID[,ID...]",
            help="Plan only the steps of these finding ids, whatever their severity; repeatable.",
            autocompletion=o.complete_finding_id,
            show_default=False,
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    include_warnings: Annotated[
        bool,
        typer.Option(
            "--include-warnings", help="Also run the automatic steps of warnings (default: errors only)."
        ),
    ] = False,
    as_json: o.Json = False,
    fmt: o.TextOrJson = None,
    break_system: Annotated[
        bool, typer.Option("--break-system-packages", help="Allow changing an externally-managed Python.")
    ] = False,
    allow_conda: Annotated[bool, typer.Option("--allow-conda", help="Allow pip over conda's torch.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Do not import torch while checking.")] = False,
    wait: Annotated[
        float,
        typer.Option(
            metavar="SECONDS", help="How long to wait for another fix of the same environment to end."
        ),
    ] = 60.0,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="After --apply's re-check, prove the result by a smoke-train; roll back if it fails.",
        ),
    ] = False,
    device: o.Device = "auto",
    precision: o.SmokePrecision = "fp32",
    nproc: o.Nproc = 1,
    timeout: Annotated[
        float | None,
        typer.Option(
            parser=o.seconds,
            metavar="SECONDS",
            help="Seconds allowed per pip command (default 1800) and for --smoke's training (default 900).",
        ),
    ] = None,
) -> int:
    """Plan fixes for the findings (or a recipe); --apply runs them, re-checks, rolls back on failure."""
    import contextlib

    from envdoctor.cli.smoke import smoke_options
    from envdoctor.fix.model import Selection
    from envdoctor.fix.run import FixRequest, run_fix, undo_last
    from envdoctor.rules import all_rules

    as_json = o.one_format(as_json, fmt) == "json"
    if facts is not None and (apply or rollback):
        raise UsageError("--apply and --rollback change a live environment: use --python, not --facts")
    if smoke and not apply:
        raise UsageError("--smoke proves an applied fix: add --apply (or use `check --smoke`)")
    smoke_with = smoke_options(device, precision, nproc, timeout) if smoke else None
    ids = [i.strip() for value in only for i in value.split(",") if i.strip()]
    if recipe is not None and (ids or include_warnings):
        raise UsageError("--only and --include-warnings choose among findings; --recipe plans the recipe")
    unknown = sorted(set(ids) - {r.id for r in all_rules()} - {"internal-error"})
    if unknown:
        raise UsageError(f"--only: unknown finding id {', '.join(unknown)} (`envdoctor rules` lists them)")
    if not 0 <= wait < 1e9 or (timeout is not None and not 0 < timeout < 1e9):
        raise UsageError("--wait must be >= 0 seconds and --timeout a positive number of seconds")
    request = FixRequest(
        python,
        facts,
        recipe,
        force,
        apply,
        Selection(frozenset(ids) if ids else None, include_warnings),
        allow_system=break_system,
        allow_conda=allow_conda,
        quick=quick,
        timeout=timeout,
        wait=wait,
        smoke=smoke_with,
    )
    try:
        if rollback:
            from envdoctor.fix.render import render_undone

            undone = undo_last(python, wait, timeout, _Text())
            sys.stdout.write(render_undone(undone))
            return undone.exit_code
        outcome = run_fix(request, _Json() if as_json else _Text())
    except KeyboardInterrupt:  # before the transaction began or after it ended: nothing half-done
        with contextlib.suppress(OSError):
            print("envdoctor: interrupted; the environment was not changed by this run", file=sys.stderr)
        return 130
    _render(outcome, as_json)
    return outcome.exit_code


def _render(outcome: "FixOutcome", as_json: bool) -> None:
    """The outcome after the run (text mode has already shown the plan, the steps and any proof)."""
    import json

    from envdoctor.fix.render import outcome_dict, render_result

    if as_json:
        sys.stdout.write(json.dumps(outcome_dict(outcome), indent=2) + "\n")
    elif outcome.result is not None:
        sys.stdout.write(render_result(outcome.result))


class _Json(Progress):
    """--json: only a wait for another fix's lock is said, on stderr."""

    def waiting(self, message: str) -> None:
        print(message, file=sys.stderr)


class _Text(_Json):
    """The plan, each step of the transaction and the smoke-train as they happen."""

    def planned(self, plan: "Plan") -> None:
        from envdoctor.fix.render import render_plan

        sys.stdout.write(render_plan(plan))

    def log(self, message: str) -> None:
        print(message)

    def proving(self, python: str, options: "SmokeOptions") -> None:
        from envdoctor.cli.smoke import announce_smoke

        announce_smoke(python, options)

    def proved(self, proof: "Proof") -> None:
        from envdoctor.proof import print_proof

        print_proof(proof)
