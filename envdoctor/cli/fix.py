"""``fix``: plan fixes for the findings (or a recipe); --apply runs them under a lock, --rollback undoes.

Parses options and renders; the work is envdoctor.plan (the plan) and envdoctor.apply (the transaction).
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, EXIT_PROBLEM, UsageError


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

    from envdoctor import apply as executor
    from envdoctor.cli.smoke import smoke_options
    from envdoctor.plan import Selection
    from envdoctor.rules import all_rules
    from envdoctor.sources import target_python

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
    run = _Run(python, facts, recipe, force, apply, as_json, break_system, allow_conda, quick, timeout)
    selection = Selection(frozenset(ids) if ids else None, include_warnings)
    try:
        if not (apply or rollback):
            return _fix_plan(run, selection, None)
        # The lock comes before the facts: a run that waited plans from what the other one left.
        # absolute, not resolved (a venv's python is a symlink whose location decides sys.prefix)
        target = executor.inspect_target(target_python(python))
        with executor.locked(target.prefix, wait, log=lambda m: print(m, file=sys.stderr)):
            if rollback:
                return _fix_rollback(target.prefix, timeout)
            return _fix_plan(run, selection, smoke_with)
    except KeyboardInterrupt:  # before the transaction began or after it ended: nothing half-done
        with contextlib.suppress(OSError):
            print("envdoctor: interrupted; the environment was not changed by this run", file=sys.stderr)
        return 130


@dataclass(frozen=True)
class _Run:
    """The options a plan and its application read."""

    python: Path | None
    facts: Path | None
    recipe: str | None
    force: bool
    apply: bool
    as_json: bool
    break_system: bool
    allow_conda: bool
    quick: bool
    timeout: float | None


def _fix_rollback(prefix: str, timeout: float | None) -> int:
    from envdoctor import apply as executor

    snap = executor.latest_snapshot(prefix)
    if snap is None:
        raise UsageError(f"no snapshot under {executor.snapshot_dir(prefix)}")
    done = executor.rollback(snap, timeout=timeout or executor.PIP_TIMEOUT_S, log=print)
    if done.note:
        print(f"nothing to roll back: {done.note}; the environment is as it was before it")
    elif done.ok:
        print(f"rolled back to {snap.path}: environment restored exactly")
    else:
        print(f"rollback incomplete: {', '.join(done.remaining) or 'files'}; run `fix --rollback` again")
    return EXIT_OK if done.ok else EXIT_PROBLEM


def _fix_plan(args: _Run, selection, smoke) -> int:
    """Plan (dry run), or plan and apply under the lock the caller holds."""
    import json

    from envdoctor import apply as executor
    from envdoctor.cli.smoke import run_smoke
    from envdoctor.plan import build_plan, plan_for_recipe, render_plan
    from envdoctor.recipes import guard_recipe_plan, load_recipe
    from envdoctor.rules import evaluate
    from envdoctor.sources import gather_facts

    chosen = load_recipe(args.recipe) if args.recipe is not None else None
    snapshot = gather_facts(args.python, args.facts, quick=args.quick)
    findings = evaluate(snapshot)
    activation = executor.read_activation(snapshot.python.prefix) if args.facts is None else {}
    guards = (args.break_system, args.allow_conda)
    if chosen is not None:
        plan = plan_for_recipe(chosen, snapshot, activation, *guards)
        guard_recipe_plan(plan, chosen, snapshot, args.force)
    else:
        plan = build_plan(findings, snapshot, activation, *guards, selection=selection)
    if args.as_json and not args.apply:
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2) + "\n")
    elif not args.as_json:
        sys.stdout.write(render_plan(plan))
    if not args.apply:
        return EXIT_PROBLEM if plan.steps or plan.refusals else EXIT_OK
    if plan.refusals:
        return EXIT_PROBLEM
    if not plan.automatic_steps:
        return _fix_nothing_to_do(args.as_json, plan, smoke)
    python = plan.python or sys.executable
    proofs = []

    def prove() -> str | None:
        proofs.append(run_smoke(python, smoke, quiet=args.as_json))
        if not args.as_json:
            from envdoctor.proof import print_proof

            print_proof(proofs[-1])  # before the rollback it may cause
        return None if proofs[-1].ok else proofs[-1].reason()

    result = executor.apply_plan(
        plan,
        lambda: evaluate(gather_facts(args.python, None, quick=args.quick)),
        executor.count_errors(findings),
        allow_system=args.break_system,
        allow_conda=args.allow_conda,
        timeout=args.timeout or executor.PIP_TIMEOUT_S,
        log=print if not args.as_json else lambda _m: None,
        prove=prove if smoke is not None else None,
    )
    proof = proofs[-1] if proofs else None
    if args.as_json:
        doc = executor.result_dict(plan, result)
        doc["smoke"] = proof.to_dict() if proof else None
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(executor.render_result(result))
    if result.interrupted:
        import signal

        return 128 + signal.Signals[result.interrupted].value
    return EXIT_OK if result.ok and not result.errors_after else EXIT_PROBLEM


def _fix_nothing_to_do(as_json: bool, plan, smoke) -> int:
    """No step to run; with --smoke the environment as it is still gets its proof."""
    import json

    from envdoctor.cli.smoke import run_smoke

    if not as_json:
        print("nothing to do")
    proof = run_smoke(plan.python or sys.executable, smoke, quiet=as_json) if smoke else None
    if as_json:
        doc = {"plan": plan.to_dict(), "ok": proof is None or proof.ok, "steps": []}
        doc["smoke"] = proof.to_dict() if proof else None
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif proof is not None:
        from envdoctor.proof import print_proof

        print_proof(proof)
    return EXIT_OK if proof is None or proof.ok else EXIT_PROBLEM
