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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
