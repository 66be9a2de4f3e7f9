"""Command-line interface. Only parses arguments and renders: the work lives in plain modules.

Every command imports its implementation lazily so that ``envdoctor --help`` stays fast.
Exit codes: 0 fine, 1 a problem was found (error finding, failed check), 2 bad usage or unreadable input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="The doctor for deep-learning environments.",
)

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2

PythonOpt = Annotated[
    Path | None,
    typer.Option("--python", help="Check another interpreter (a venv or conda env) instead of this one."),
]
FactsOpt = Annotated[
    Path | None,
    typer.Option("--facts", help="Load facts from a JSON file written by `check --json` instead of probing."),
]


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"envdoctor: error: {message}", err=True)
    return typer.Exit(code)


def gather_facts(python: Path | None, facts_file: Path | None, quick: bool = False, report: str | None = None):
    """Facts from exactly one source: a facts file, a pasted report, or live probes."""
    sources = [s for s in (python, facts_file, report) if s is not None]
    if len(sources) > 1:
        raise fail("--python, --facts and --from-report are mutually exclusive")
    if facts_file is not None:
        from envdoctor.facts import FactsError, load_facts

        try:
            return load_facts(facts_file)
        except FactsError as exc:
            raise fail(str(exc)) from None
    if report is not None:
        from envdoctor.reports import ReportError, facts_from_report

        try:
            return facts_from_report(report)
        except ReportError as exc:
            raise fail(str(exc)) from None
    from envdoctor.probes import ProbeTargetError, collect

    try:
        return collect(python=str(python) if python else None, quick=quick)
    except ProbeTargetError as exc:
        raise fail(str(exc)) from None


@app.command()
def check(
    python: PythonOpt = None,
    facts: FactsOpt = None,
    from_report: Annotated[
        Path | None,
        typer.Option("--from-report", help="Diagnose a pasted environment report (a file, or - for stdin)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {schema_version, facts, findings} only.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="text, markdown or json.")] = "text",
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show every fact and probe timings.")] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Do not import torch: read its build from torch/version.py.")
    ] = False,
) -> None:
    """Diagnose the environment: probes -> facts -> findings. Exit 1 if any finding is an error."""
    from envdoctor import report
    from envdoctor.rules import evaluate

    if as_json:
        fmt = "json"
    if fmt not in ("text", "markdown", "json"):
        raise fail(f"unknown --format {fmt!r} (choose text, markdown or json)")
    report_text = None
    if from_report is not None:
        report_text = _read_input(from_report)
    snapshot = gather_facts(python, facts, quick=quick, report=report_text)
    findings = evaluate(snapshot)
    if fmt == "json":
        sys.stdout.write(report.render_json(snapshot, findings) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(report.render_markdown(snapshot, findings))
    else:
        report.print_text(snapshot, findings, verbose=verbose)
    raise typer.Exit(EXIT_PROBLEM if report.has_errors(findings) else EXIT_OK)


def _read_input(path: Path) -> str:
    """Read a text input (a file, or stdin for '-'), with one-line errors for unreadable input."""
    from envdoctor.reports import ReportError, read_report_text

    try:
        return read_report_text(str(path))
    except ReportError as exc:
        raise fail(str(exc)) from None


@app.command()
def rules(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the findings table as markdown.")] = False,
) -> None:
    """List every finding id envdoctor can report, with its meaning and fix."""
    from envdoctor import report

    if markdown:
        sys.stdout.write(report.rules_markdown())
    else:
        report.print_rules()


recipes_app = typer.Typer(
    help="Known-good stacks (base image, Python, torch build, pins, env): list them or show one.",
    no_args_is_help=False,
)
app.add_typer(recipes_app, name="recipes")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _load_recipes(name: str | None = None):
    """Every recipe (or the one named), with a one-line error and exit 2 for a broken one."""
    from envdoctor.recipes import RecipeError, all_recipes, load_recipe

    try:
        return load_recipe(name) if name is not None else all_recipes()
    except RecipeError as exc:
        raise fail(str(exc)) from None


@recipes_app.callback(invoke_without_command=True)
def recipes(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the shipped recipes: name, torch build, hardware floor."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from envdoctor.recipes import recipe_hash

    found = _load_recipes()
    if as_json:
        rows = [dict(r.to_dict(), hash=recipe_hash(r)) for r in found]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    for r in found:
        hw = f"driver >= {r.hardware.driver_min}" if r.hardware.gpu else "no GPU needed"
        build = f"torch {r.torch.version}+{r.torch.variant}"
        typer.echo(f"{r.name:<16} {build:<20} py{r.python:<5} {hw:<22} {r.description}")


@recipes_app.command("show")
def recipes_show(
    name: Annotated[str, typer.Argument(help="Recipe name or path to a recipe YAML.")],
    as_json: JsonOpt = False,
) -> None:
    """Print one recipe in full (with its hash)."""
    import json

    from envdoctor.recipes import recipe_hash, render_recipe

    r = _load_recipes(name)
    if as_json:
        sys.stdout.write(json.dumps(dict(r.to_dict(), hash=recipe_hash(r)), indent=2) + "\n")
    else:
        sys.stdout.write(render_recipe(r))


@app.command()
def recommend(python: PythonOpt = None, facts: FactsOpt = None, as_json: JsonOpt = False) -> None:
    """Pick the newest recipe this machine's driver and GPUs can run, and say why others do not fit."""
    import json

    from envdoctor.recipes import recommend as rank

    found = _load_recipes()
    verdicts = rank(gather_facts(python, facts, quick=True), found)
    if as_json:
        rows = [
            {"recipe": v.recipe.name, "fits": v.fits, "reasons": v.reasons, "notes": v.notes}
            for v in verdicts
        ]
        pick = verdicts[0].recipe.name if verdicts and verdicts[0].fits else None
        sys.stdout.write(json.dumps({"recommended": pick, "recipes": rows}, indent=2) + "\n")
    for v in verdicts if not as_json else []:
        mark = "recommended" if v is verdicts[0] and v.fits else ("fits" if v.fits else "rejected")
        detail = "; ".join(v.reasons or v.notes)
        typer.echo(f"{mark:<12} {v.recipe.name:<16} {detail}".rstrip())
    raise typer.Exit(EXIT_OK if verdicts and verdicts[0].fits else EXIT_PROBLEM)


@app.command()
def fix(
    python: PythonOpt = None,
    facts: FactsOpt = None,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Make the env match this recipe.")] = None,
    apply: Annotated[bool, typer.Option("--apply", "--yes", help="Run the plan (default: print it).")] = False,
    rollback: Annotated[bool, typer.Option("--rollback", help="Restore the last fix snapshot.")] = False,
    as_json: JsonOpt = False,
    break_system: Annotated[
        bool, typer.Option("--break-system-packages", help="Allow changing an externally-managed Python.")
    ] = False,
    allow_conda: Annotated[bool, typer.Option("--allow-conda", help="Allow pip over conda's torch.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Do not import torch while checking.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds allowed per pip command.")] = 1800.0,
) -> None:
    """Plan fixes for the findings (or a recipe); --apply runs them, re-checks, rolls back on failure."""
    import json

    from envdoctor import apply as executor
    from envdoctor.plan import build_plan, plan_for_recipe, render_plan
    from envdoctor.rules import evaluate

    if facts is not None and (apply or rollback):
        raise fail("--apply and --rollback change a live environment: use --python, not --facts")
    if rollback:
        target = executor.inspect_target(str(python) if python else sys.executable)
        snap = executor.latest_snapshot(target.prefix)
        if snap is None:
            raise fail(f"no snapshot under {executor.snapshot_dir(target.prefix)}")
        done = executor.rollback(snap, timeout=timeout, log=typer.echo)
        state = f"rolled back to {snap.path}" if done.ok else f"rollback incomplete: {', '.join(done.remaining)}"
        typer.echo(state)
        raise typer.Exit(EXIT_OK if done.ok else EXIT_PROBLEM)
    chosen = _load_recipes(recipe) if recipe is not None else None
    snapshot = gather_facts(python, facts, quick=quick)
    findings = evaluate(snapshot)
    activation = executor.read_activation(snapshot.python.prefix) if facts is None else {}
    if chosen is not None:
        plan = plan_for_recipe(chosen, snapshot, activation, break_system, allow_conda)
    else:
        plan = build_plan(findings, snapshot, activation, break_system, allow_conda)
    if as_json and not apply:
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2) + "\n")
    elif not as_json:
        sys.stdout.write(render_plan(plan))
    if not apply:
        raise typer.Exit(EXIT_PROBLEM if plan.steps or plan.refusals else EXIT_OK)
    if plan.refusals:
        raise typer.Exit(EXIT_PROBLEM)
    if not plan.automatic_steps:
        typer.echo("nothing to do")
        raise typer.Exit(EXIT_OK)

    def recheck():
        return evaluate(gather_facts(python, None, quick=quick))

    try:
        result = executor.apply_plan(
            plan,
            recheck,
            executor.count_errors(findings),
            allow_system=break_system,
            allow_conda=allow_conda,
            timeout=timeout,
            log=typer.echo if not as_json else lambda _m: None,
        )
    except executor.ApplyError as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(executor.result_dict(plan, result), indent=2) + "\n")
    else:
        sys.stdout.write(executor.render_result(result))
    raise typer.Exit(EXIT_OK if result.ok and not result.errors_after else EXIT_PROBLEM)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
