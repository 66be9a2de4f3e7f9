"""``check`` (diagnose: probes -> facts -> findings, also on every node of a cluster) and ``rules``.

Touches: starts the probes (child processes, see envdoctor.probes), writes the knowledge-table cache in
~/.cache/envdoctor and, when asked, --write's file; --smoke also trains (see cli/smoke.py). No network.

Parses options and renders; the work is envdoctor.sources, envdoctor.rules and envdoctor.render.
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EnvdoctorError, UsageError


def register(app: typer.Typer) -> None:
    o.command(app, "check")(check)
    o.command(app, "rules")(rules)


def check(
    python: o.Python = None,
    facts: o.Facts = None,
    from_report: Annotated[
        Path | None,
        typer.Option(
            "--from-report",
            metavar="FILE",
            help="Diagnose a pasted environment report (a file, or - for stdin).",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print {schema_version, facts, findings} only. Same as --format json."),
    ] = False,
    fmt: o.AllFormats = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show every fact and probe timings.")
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Do not import torch: read its build from torch/version.py.")
    ] = False,
    write: Annotated[
        str | None,
        typer.Option(
            "--write",
            metavar="PATH",
            help="Also write the JSON result to PATH ({host} becomes this node's name); "
            "with --json, print only the path written.",
        ),
    ] = None,
    health: Annotated[
        bool,
        typer.Option(
            "--health",
            help="Print one line 'envdoctor: <id>: <message>' for Slurm's HealthCheckProgram; "
            "exit 0 healthy, 1 broken, 2 unknown.",
        ),
    ] = False,
    keep_hostnames: o.KeepHostnames = False,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="Then train the reference model with the same interpreter (one exit code for both).",
        ),
    ] = False,
    device: o.Device = "auto",
    precision: o.SmokePrecision = "fp32",
    nproc: o.Nproc = 1,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            parser=o.seconds,
            metavar="SECONDS",
            help="--smoke: seconds before training is stopped (default 900).",
        ),
    ] = None,
) -> int:
    """Diagnose the environment: probes -> facts -> findings. Exit 1 if any finding is an error."""
    from envdoctor.sources import gather_facts, read_input

    fmt = o.one_format(as_json, fmt)
    if smoke and (facts is not None or from_report is not None):
        raise UsageError("--smoke trains with a live interpreter: not with --facts or --from-report")
    from envdoctor.cli.smoke import smoke_options

    smoke_with = smoke_options(device, precision, nproc, timeout) if smoke else None
    if python is not None and "{host}" in str(python):
        from envdoctor.fleet.node import expand_path

        python = expand_path(python)  # a node-local interpreter: /local/{host}/venv
    try:
        report_text = read_input(from_report) if from_report is not None else None
        # The torch child starts first; rules and tables then load while the probes run.
        snapshot = gather_facts(python, facts, quick=quick, report=report_text, while_probing=_preload_rules)
    except EnvdoctorError as exc:
        return _node_failed(write, health, exc)
    from envdoctor import render
    from envdoctor.rules import evaluate

    if report_text is not None:
        from envdoctor.explain import diagnose

        findings = diagnose(snapshot)  # rule findings ranked with the report's error messages
    else:
        findings = evaluate(snapshot)
    if write is not None or health:
        from envdoctor.fleet import node

        if write is not None:
            written = _write_node_file(write, node.result_document(snapshot, findings))
            if fmt == "json" and not health:
                print(f"{node.host_name()}: wrote {written}")
                return EXIT_PROBLEM if render.has_errors(findings) else EXIT_OK
        if health:
            code, line = node.health(snapshot, findings)
            print(line)
            return code
    from envdoctor.redact import redact_check

    shown, shown_findings = redact_check(snapshot, findings, o.redactor(keep_hostnames, report_text))
    if smoke_with is not None:
        return _check_then_smoke(python, fmt, verbose, shown, shown_findings, smoke_with)
    settle = None
    if report_text is not None:
        from envdoctor.explain import unsettled

        settle = unsettled(shown, shown_findings)  # what was read, and the report that would settle it
    if fmt == "json":
        sys.stdout.write(render.render_json(shown, shown_findings, settle) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(
            render.render_markdown(
                shown, shown_findings, _advice(from_report, python, facts, snapshot, findings), settle
            )
        )
    elif fmt == "html":
        from envdoctor.render_html import render_check

        sys.stdout.write(render_check(shown, shown_findings))
    else:
        advice = _advice(from_report, python, facts, snapshot, findings)
        render.print_text(shown, shown_findings, verbose=verbose, advice=advice, settle=settle)
    return EXIT_PROBLEM if render.has_errors(findings) else EXIT_OK


def _advice(from_report: Path | None, python: Path | None, facts: Path | None, snapshot, findings):
    """check's fix lines from the planner, and the `envdoctor fix` line that reaches the same target."""
    import shlex

    from envdoctor.advice import advise

    fix_command = None if from_report is not None else "envdoctor fix"
    for option, value in (("--python", python), ("--facts", facts)):
        if value is not None and fix_command:
            fix_command += f" {option} {shlex.quote(str(value))}"
    return advise(snapshot, findings, fix_command)


def _node_failed(write: str | None, health: bool, exc: EnvdoctorError) -> int:
    """A check that could not run still leaves a trace for the fleet: a file with the error, or the
    health line of an unknown node."""
    if write is not None:
        from envdoctor.fleet import node

        _write_node_file(write, node.error_document(str(exc)))
    if health:
        print(f"envdoctor: unknown: {exc}")
        return EXIT_USAGE
    raise exc


def _write_node_file(template: str, document: dict) -> Path:
    from envdoctor.fleet import node

    try:
        return node.write_document(template, document)
    except OSError as exc:
        raise UsageError(f"--write {node.expand_path(template)}: {exc.strerror or exc}") from None


def _check_then_smoke(python: Path | None, fmt: str, verbose: bool, snapshot, findings, smoke) -> int:
    """check --smoke: the verdict, then a smoke-train of the same interpreter; exit 1 if either fails.

    JSON: the check's document with a ``smoke`` member (the smoke-train's verdict) and ``ok``.
    """
    import json

    from envdoctor import render
    from envdoctor.cli.smoke import run_smoke

    interpreter = str(python) if python else sys.executable
    if fmt == "json":
        doc = json.loads(render.render_json(snapshot, findings))
        proof = run_smoke(interpreter, smoke, quiet=True)
        doc["smoke"] = proof.to_dict()
        doc["ok"] = proof.ok and not render.has_errors(findings)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        if fmt == "markdown":
            sys.stdout.write(render.render_markdown(snapshot, findings))
        else:
            render.print_text(snapshot, findings, verbose=verbose)
        from envdoctor.proof import print_proof

        proof = run_smoke(interpreter, smoke, quiet=False)
        print_proof(proof)
    return EXIT_PROBLEM if render.has_errors(findings) or not proof.ok else EXIT_OK


def _preload_rules() -> None:
    from envdoctor.rules import preload

    preload()


def rules(
    rule_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[ID]",
            help="Show this rule's whole documentation: what it detects, why it matters, the fix.",
            autocompletion=o.complete_finding_id,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the rules as JSON. Same as --format json.")
    ] = False,
    fmt: o.TextMarkdownJson = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Same as --format markdown.")] = False,
) -> int:
    """List every finding id envdoctor can report, with its meaning and fix; with ID, print that rule's
    whole documentation (what it detects, why it matters, the fix, how to verify, sources)."""
    from envdoctor import render

    fmt = o.one_format(as_json, fmt)
    if markdown and fmt not in ("text", "markdown"):
        raise UsageError(f"--markdown and --format {fmt} contradict each other: choose one")
    fmt = "markdown" if markdown else fmt
    if rule_id is not None:
        try:
            sys.stdout.write(render.rule_page(rule_id, fmt))
        except KeyError:
            from difflib import get_close_matches

            from envdoctor.rules import all_rules

            close = get_close_matches(rule_id, [r.id for r in all_rules()], n=1)
            hint = f"did you mean {close[0]}?" if close else "`envdoctor rules` lists them"
            raise UsageError(f"no rule {rule_id!r} ({hint})") from None
    elif fmt == "markdown":
        sys.stdout.write(render.rules_markdown())
    elif fmt == "json":
        sys.stdout.write(render.rules_json() + "\n")
    else:
        sys.stdout.write(render.rules_text())
    return EXIT_OK
