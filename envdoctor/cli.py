"""Command-line interface. Only parses arguments and renders: the work lives in plain modules.

argparse (standard library) rather than a CLI framework: ``check --quick`` must finish in a small
fraction of a second, and a framework's import alone costs tens of milliseconds of it. Every command
imports its implementation lazily, inside its handler, for the same reason.
Exit codes: 0 fine, 1 a problem was found (error finding, failed check), 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from envdoctor import __version__

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


class Fail(Exception):
    """Bad usage or unreadable input: printed as one ``envdoctor: error:`` line, then exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), run the command, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.handler is None:
        parser.print_help()
        return EXIT_USAGE
    if sys.stdout is None:  # started with stdout closed (`>&-`): nowhere to say anything
        print("envdoctor: error: stdout is closed; redirect it to a file or /dev/null", file=sys.stderr)
        return EXIT_USAGE
    try:
        _one_format(args)
        code = args.handler(args)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not as a traceback at exit
        return code
    except Fail as exc:
        print(f"envdoctor: error: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:  # the output (or a file a command writes) cannot be written
        _drop_stdout()
        if isinstance(exc, BrokenPipeError):  # the reader went away (`| head`): nothing to say
            return EXIT_USAGE
        where = f" ({exc.filename})" if exc.filename else " (writing the output)"
        print(f"envdoctor: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (cheap to build: a few hundred microseconds)."""
    parser = argparse.ArgumentParser(
        prog="envdoctor", description="The doctor for deep-learning environments."
    )
    parser.add_argument("--version", action="version", version=f"envdoctor {__version__}")
    parser.set_defaults(handler=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (_check, _rules, _recipes, _recommend, _fix, _build, _explain, _diff, _smoke_train, _fleet):
        add(commands)
    _fit(commands)
    _ci(commands)
    _mcp(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """A subcommand whose help is its handler's docstring (first line in the command list)."""
    doc = (handler.__doc__ or "").strip()
    sub = commands.add_parser(
        name,
        help=doc.splitlines()[0] if doc else None,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(handler=handler)
    return sub


def seconds(value: str) -> float:
    """An argparse type: a positive, finite number of seconds (``inf`` or ``nan`` would never time out)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: give a positive number of seconds")
    return number


def _source_options(parser: argparse.ArgumentParser) -> None:
    """--python / --facts: where the facts come from (live probes of another interpreter, or a file)."""
    parser.add_argument(
        "--python",
        type=Path,
        metavar="PATH",
        help="Check another interpreter (a venv or conda env) instead of this one.",
    )
    parser.add_argument(
        "--facts",
        type=Path,
        metavar="FILE",
        help="Load facts from a JSON file written by `check --json` instead of probing.",
    )


def _json_option(
    parser: argparse.ArgumentParser, help: str = "Print JSON.", formats=("text", "json")
) -> None:
    """``--format`` (the one output option of every command) and ``--json``, its short form."""
    parser.add_argument("--json", dest="as_json", action="store_true", help=f"{help} Same as --format json.")
    parser.add_argument("--format", dest="fmt", choices=formats, default=None, help="Output format.")


def _one_format(args: argparse.Namespace) -> None:
    """Reconcile --json with --format: they must agree; afterwards both say the same."""
    fmt = getattr(args, "fmt", None)
    if getattr(args, "as_json", False) and fmt not in (None, "json"):
        raise Fail(f"--json and --format {fmt} contradict each other: choose one")
    if hasattr(args, "as_json"):
        args.as_json = args.as_json or fmt == "json"
        args.fmt = "json" if args.as_json else fmt or "text"


def gather_facts(
    python: Path | None,
    facts_file: Path | None,
    quick: bool = False,
    report: str | None = None,
    while_probing: Callable[[], object] | None = None,
):
    """Facts from exactly one source: a facts file, a pasted report, or live probes.

    ``while_probing`` runs once the probes are under way (work that would otherwise wait for them).
    """
    sources = [s for s in (python, facts_file, report) if s is not None]
    if len(sources) > 1:
        raise Fail("--python, --facts and --from-report are mutually exclusive")
    if facts_file is not None:
        from envdoctor.facts import FactsError, load_facts

        try:
            return load_facts(facts_file)
        except FactsError as exc:
            raise Fail(str(exc)) from None
    if report is not None:
        from envdoctor.reports import ReportError, facts_from_report

        try:
            return facts_from_report(report)
        except ReportError as exc:
            raise Fail(str(exc)) from None
    from envdoctor.probes import ProbeTargetError, collect, running_probes
    from envdoctor.waiting import Spinner

    try:
        with Spinner(sys.stderr, running_probes):
            return collect(python=str(python) if python else None, quick=quick, while_waiting=while_probing)
    except ProbeTargetError as exc:
        raise Fail(str(exc)) from None


def _target_python(python: Path | None) -> str:
    """--python as an interpreter path: a venv or conda directory means its bin/python, as in check."""
    if python is None:
        return sys.executable
    from envdoctor.probes import ProbeTargetError, resolve_target

    try:
        return resolve_target(str(python))
    except ProbeTargetError as exc:
        raise Fail(str(exc)) from None


def _read_input(path: Path) -> str:
    """Read a text input (a file, or stdin for '-'), with one-line errors for unreadable input."""
    from envdoctor.reports import ReportError, read_report_text

    try:
        return read_report_text(str(path))
    except ReportError as exc:
        raise Fail(str(exc)) from None


def _check(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "check", check)
    _source_options(p)
    p.add_argument(
        "--from-report",
        type=Path,
        metavar="FILE",
        help="Diagnose a pasted environment report (a file, or - for stdin).",
    )
    _json_option(
        p, "Print {schema_version, facts, findings} only.", formats=("text", "markdown", "json", "html")
    )
    p.add_argument("-v", "--verbose", action="store_true", help="Show every fact and probe timings.")
    p.add_argument(
        "--quick", action="store_true", help="Do not import torch: read its build from torch/version.py."
    )
    _node_options(p)
    _redaction_option(p)


def _node_options(p: argparse.ArgumentParser) -> None:
    """check's options for running on every node of a cluster (docs/fleet.md)."""
    p.add_argument(
        "--write",
        metavar="PATH",
        help="Also write the JSON result to PATH ({host} becomes this node's name); "
        "with --json, print only the path written.",
    )
    p.add_argument(
        "--health",
        action="store_true",
        help="Print one line 'envdoctor: <id>: <message>' for Slurm's HealthCheckProgram; "
        "exit 0 healthy, 1 broken, 2 unknown.",
    )


def _redaction_option(parser: argparse.ArgumentParser) -> None:
    """--keep-hostnames: output is redacted for sharing (home, user, hosts, credentials); hosts may stay."""
    parser.add_argument(
        "--keep-hostnames",
        action="store_true",
        help="Show host names (the home folder, user name and credentials are always redacted).",
    )


def _redactor(args: argparse.Namespace, sample: str | None = None):
    from envdoctor.redact import Redactor

    return Redactor.for_this_machine(keep_hosts=args.keep_hostnames, sample=sample)


def check(args: argparse.Namespace) -> int:
    """Diagnose the environment: probes -> facts -> findings. Exit 1 if any finding is an error."""
    fmt = args.fmt
    if args.python is not None and "{host}" in str(args.python):
        from envdoctor.fleet.node import expand_path

        args.python = expand_path(args.python)  # a node-local interpreter: /local/{host}/venv
    try:
        report_text = _read_input(args.from_report) if args.from_report is not None else None
        # The torch child starts first; rules and tables then load while the probes run.
        snapshot = gather_facts(
            args.python, args.facts, quick=args.quick, report=report_text, while_probing=_preload_rules
        )
    except Fail as exc:
        return _node_failed(args, exc)
    from envdoctor import report
    from envdoctor.rules import evaluate

    if report_text is not None:
        from envdoctor.explain import diagnose

        findings = diagnose(snapshot)  # rule findings ranked with the report's error messages
    else:
        findings = evaluate(snapshot)
    if args.write is not None or args.health:
        from envdoctor.fleet import node

        if args.write is not None:
            written = _write_node_file(args.write, node.result_document(snapshot, findings))
            if fmt == "json" and not args.health:
                print(f"{node.host_name()}: wrote {written}")
                return EXIT_PROBLEM if report.has_errors(findings) else EXIT_OK
        if args.health:
            code, line = node.health(snapshot, findings)
            print(line)
            return code
    from envdoctor.redact import redact_check

    shown, shown_findings = redact_check(snapshot, findings, _redactor(args, report_text))
    if fmt == "json":
        sys.stdout.write(report.render_json(shown, shown_findings) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(report.render_markdown(shown, shown_findings, _advice(args, snapshot, findings)))
    elif fmt == "html":
        from envdoctor.report_html import render_check

        sys.stdout.write(render_check(shown, shown_findings))
    else:
        report.print_text(
            shown, shown_findings, verbose=args.verbose, advice=_advice(args, snapshot, findings)
        )
    return EXIT_PROBLEM if report.has_errors(findings) else EXIT_OK


def _advice(args: argparse.Namespace, snapshot, findings):
    """check's fix lines from the planner, and the `envdoctor fix` line that reaches the same target."""
    import shlex

    from envdoctor.advice import advise

    fix_command = None if args.from_report is not None else "envdoctor fix"
    for option, value in (("--python", args.python), ("--facts", args.facts)):
        if value is not None and fix_command:
            fix_command += f" {option} {shlex.quote(str(value))}"
    return advise(snapshot, findings, fix_command)


def _node_failed(args: argparse.Namespace, exc: Fail) -> int:
    """A check that could not run still leaves a trace for the fleet: a file with the error, or the
    health line of an unknown node."""
    if args.write is not None:
        from envdoctor.fleet import node

        _write_node_file(args.write, node.error_document(str(exc)))
    if args.health:
        print(f"envdoctor: unknown: {exc}")
        return EXIT_USAGE
    raise exc


def _write_node_file(template: str, document: dict) -> Path:
    from envdoctor.fleet import node

    try:
        return node.write_document(template, document)
    except OSError as exc:
        raise Fail(f"--write {node.expand_path(template)}: {exc.strerror or exc}") from None


def _preload_rules() -> None:
    from envdoctor.rules import preload

    preload()


def _rules(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "rules", rules)
    _json_option(p, "Print the rules as JSON.", formats=("text", "markdown", "json"))
    p.add_argument("--markdown", action="store_true", help="Same as --format markdown.")


def rules(args: argparse.Namespace) -> int:
    """List every finding id envdoctor can report, with its meaning and fix."""
    from envdoctor import report

    if args.markdown and args.fmt not in ("text", "markdown"):
        raise Fail(f"--markdown and --format {args.fmt} contradict each other: choose one")
    fmt = "markdown" if args.markdown else args.fmt
    if fmt == "markdown":
        sys.stdout.write(report.rules_markdown())
    elif fmt == "json":
        sys.stdout.write(report.rules_json() + "\n")
    else:
        sys.stdout.write(report.rules_text())
    return EXIT_OK


def _recipes(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "recipes", recipes)
    _json_option(p)
    show = p.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    s = _command(show, "show", recipes_show)
    s.add_argument("name", help="Recipe name or path to a recipe YAML.")
    _json_option(s)


def _load_recipes(name: str | None = None):
    """Every recipe (or the one named), with a one-line error and exit 2 for a broken one."""
    from envdoctor.recipes import RecipeError, all_recipes, load_recipe

    try:
        return load_recipe(name) if name is not None else all_recipes()
    except RecipeError as exc:
        raise Fail(str(exc)) from None


def recipes(args: argparse.Namespace) -> int:
    """Known-good stacks (base image, Python, torch build, pins, env): list them, or `show` one."""
    import json

    from envdoctor.recipes import recipe_hash

    found = _load_recipes()
    if args.as_json:
        rows = [dict(r.to_dict(), hash=recipe_hash(r)) for r in found]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    for r in found:
        hw = f"driver >= {r.hardware.driver_min}" if r.hardware.gpu else "no GPU needed"
        build = f"torch {r.torch.version}+{r.torch.variant}"
        print(f"{r.name:<16} {build:<20} py{r.python:<5} {hw:<22} {r.description}")
    return EXIT_OK


def recipes_show(args: argparse.Namespace) -> int:
    """Print one recipe in full (with its hash)."""
    import json

    from envdoctor.recipes import recipe_hash, render_recipe

    r = _load_recipes(args.name)
    if args.as_json:
        sys.stdout.write(json.dumps(dict(r.to_dict(), hash=recipe_hash(r)), indent=2) + "\n")
    else:
        sys.stdout.write(render_recipe(r))
    return EXIT_OK


def _recommend(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "recommend", recommend)
    _source_options(p)
    _json_option(p)


def recommend(args: argparse.Namespace) -> int:
    """Pick the newest recipe this machine's driver and GPUs can run, and say why others do not fit."""
    import json

    from envdoctor.recipes import recommend as rank

    found = _load_recipes()
    verdicts = rank(gather_facts(args.python, args.facts, quick=True), found)
    if args.as_json:
        rows = [
            {"recipe": v.recipe.name, "fits": v.fits, "reasons": v.reasons, "notes": v.notes}
            for v in verdicts
        ]
        pick = verdicts[0].recipe.name if verdicts and verdicts[0].fits else None
        sys.stdout.write(json.dumps({"recommended": pick, "recipes": rows}, indent=2) + "\n")
    for v in verdicts if not args.as_json else []:
        mark = "recommended" if v is verdicts[0] and v.fits else ("fits" if v.fits else "rejected")
        detail = "; ".join(v.reasons or v.notes)
        print(f"{mark:<12} {v.recipe.name:<16} {detail}".rstrip())
    return EXIT_OK if verdicts and verdicts[0].fits else EXIT_PROBLEM


def _fix(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "fix", fix)
    _source_options(p)
    p.add_argument("--recipe", help="Make the env match this recipe.")
    p.add_argument(
        "--force", action="store_true", help="Plan a --recipe that does not fit this machine anyway."
    )
    p.add_argument("--apply", "--yes", action="store_true", help="Run the plan (default: print it).")
    p.add_argument("--rollback", action="store_true", help="Restore the last fix snapshot.")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="ID[,ID...]",
        help="Plan only the steps of these finding ids, whatever their severity; repeatable.",
    )
    p.add_argument(
        "--include-warnings",
        action="store_true",
        help="Also run the automatic steps of warnings (default: errors only).",
    )
    _json_option(p)
    p.add_argument(
        "--break-system-packages",
        dest="break_system",
        action="store_true",
        help="Allow changing an externally-managed Python.",
    )
    p.add_argument("--allow-conda", action="store_true", help="Allow pip over conda's torch.")
    p.add_argument("--quick", action="store_true", help="Do not import torch while checking.")
    p.add_argument("--timeout", type=seconds, default=1800.0, help="Seconds allowed per pip command.")


def fix(args: argparse.Namespace) -> int:
    """Plan fixes for the findings (or a recipe); --apply runs them, re-checks, rolls back on failure."""
    import json

    from envdoctor import apply as executor
    from envdoctor.plan import Selection, build_plan, plan_for_recipe, render_plan
    from envdoctor.recipes import guard_recipe_plan
    from envdoctor.rules import all_rules, evaluate

    if args.facts is not None and (args.apply or args.rollback):
        raise Fail("--apply and --rollback change a live environment: use --python, not --facts")
    only = [i.strip() for value in args.only for i in value.split(",") if i.strip()]
    if args.recipe is not None and (only or args.include_warnings):
        raise Fail("--only and --include-warnings choose among findings; --recipe plans the recipe")
    unknown = sorted(set(only) - {r.id for r in all_rules()} - {"internal-error"})
    if unknown:
        raise Fail(f"--only: unknown finding id {', '.join(unknown)} (`envdoctor rules` lists them)")
    selection = Selection(frozenset(only) if only else None, args.include_warnings)
    if args.rollback:
        target = executor.inspect_target(_target_python(args.python))
        snap = executor.latest_snapshot(target.prefix)
        if snap is None:
            raise Fail(f"no snapshot under {executor.snapshot_dir(target.prefix)}")
        done = executor.rollback(snap, timeout=args.timeout, log=print)
        print(
            f"rolled back to {snap.path}" if done.ok else f"rollback incomplete: {', '.join(done.remaining)}"
        )
        return EXIT_OK if done.ok else EXIT_PROBLEM
    chosen = _load_recipes(args.recipe) if args.recipe is not None else None
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
        print("nothing to do")
        return EXIT_OK
    try:
        result = executor.apply_plan(
            plan,
            lambda: evaluate(gather_facts(args.python, None, quick=args.quick)),
            executor.count_errors(findings),
            allow_system=args.break_system,
            allow_conda=args.allow_conda,
            timeout=args.timeout,
            log=print if not args.as_json else lambda _m: None,
        )
    except executor.ApplyError as exc:
        raise Fail(str(exc)) from None
    if args.as_json:
        sys.stdout.write(json.dumps(executor.result_dict(plan, result), indent=2) + "\n")
    else:
        sys.stdout.write(executor.render_result(result))
    return EXIT_OK if result.ok and not result.errors_after else EXIT_PROBLEM


def _build(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "build", build)
    p.add_argument("--recipe", help="Recipe name or YAML file (default: recommended here, else CUDA 13).")
    p.add_argument("--tag", help="Image tag (envdoctor/<recipe>:<hash>).")
    p.add_argument("--base-image", help="Build FROM this image instead of the recipe's.")
    p.add_argument(
        "--print-dockerfile", action="store_true", help="Print the Dockerfile and stop (no engine needed)."
    )
    p.add_argument(
        "--ca-cert",
        type=Path,
        action="append",
        default=[],
        help="Extra CA certificate (PEM) to trust in the image; repeatable.",
    )
    p.add_argument(
        "--host-ca-certs",
        action="store_true",
        help="Trust this host's /usr/local/share/ca-certificates/*.crt.",
    )
    p.add_argument(
        "--no-torch", action="store_true", help="Leave out torch and the recipe's packages (small image)."
    )
    p.add_argument(
        "--wheels", type=Path, help="Install from the *.whl files of DIR too (torch offline if one fits)."
    )
    p.add_argument("--smoke", action="store_true", help="Also run `envdoctor smoke-train` inside.")
    p.add_argument(
        "--gpu-check",
        action="store_true",
        help="Only check that containers of the image get a GPU; no build.",
    )
    p.add_argument("--network", default="host", help="Network for the build: host or none.")
    p.add_argument("-v", "--verbose", action="store_true", help="Show every line of the build.")


def build(args: argparse.Namespace) -> int:
    """Build the recipe's Docker image via the Docker SDK, then validate it from the inside.

    Exit 1 if a step fails, the check inside finds an error, or --smoke fails.
    """
    from rich.console import Console

    from envdoctor.build import render
    from envdoctor.build.choose import choose_recipe
    from envdoctor.build.context import (
        ContextError,
        InstalledWheel,
        find_wheels,
        make_context,
        own_source,
        read_ca_certs,
    )
    from envdoctor.build.context import host_ca_certs as host_certs
    from envdoctor.build.dockerfile import default_tag, local_torch_wheel, render_dockerfile
    from envdoctor.build.engine import EngineError, connect, container_gpu_finding, probe_container_gpu
    from envdoctor.build.stream import build_image
    from envdoctor.build.validate import docker_run_line, smoke_in_image, validate_image
    from envdoctor.findings import Severity
    from envdoctor.recipes import RecipeError

    if args.network not in ("host", "none"):
        raise Fail(
            f"--network {args.network!r}: choose host or none (envdoctor never creates a bridge network)"
        )
    try:
        chosen, why = choose_recipe(args.recipe)
        certs = read_ca_certs([*args.ca_cert, *(host_certs() if args.host_ca_certs else [])])
        wheel_files = find_wheels(args.wheels) if args.wheels is not None else []
        own = own_source()
    except (RecipeError, ContextError) as exc:
        raise Fail(str(exc)) from None
    wheel_names = [w.name for w in wheel_files]
    install_torch = not args.no_torch
    own_wheel = own.name if isinstance(own, InstalledWheel) else None
    dockerfile = render_dockerfile(
        chosen, ca_certs=sorted(certs), install_torch=install_torch, wheels=wheel_names, own_wheel=own_wheel
    )
    if args.print_dockerfile:
        sys.stdout.write(dockerfile)
        return EXIT_OK
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    tag = args.tag or default_tag(chosen, install_torch=install_torch)
    try:
        client = connect(timeout=3600)
    except EngineError as exc:
        raise Fail(str(exc)) from None
    if args.gpu_check:
        _require_local_image(client, tag)
        finding = container_gpu_finding(probe_container_gpu(client, tag), needs_gpu=True)
        if finding is None:
            out.print(f"[green]✓[/] containers of {tag} get a GPU", highlight=False)
        else:
            render.print_findings(out, [finding])
        return EXIT_OK if finding is None else EXIT_PROBLEM

    try:
        context = make_context(dockerfile, own, certs, wheels=wheel_files)
    except ContextError as exc:
        raise Fail(str(exc)) from None
    base = args.base_image or chosen.base_image
    err.print(
        f"Building {tag} from recipe {chosen.name} ({why}) on {base}, network {args.network}", highlight=False
    )
    if wheel_files:
        local_torch = local_torch_wheel(chosen, wheel_names)
        torch_from = f"torch from {local_torch}" if local_torch else f"torch from {chosen.torch.index_url}"
        err.print(f"{len(wheel_files)} local wheels from {args.wheels}; {torch_from}", highlight=False)
    with context, render.BuildProgress(err, verbose=args.verbose) as progress:
        result = build_image(
            client,
            context,
            tag,
            buildargs={"BASE_IMAGE": args.base_image} if args.base_image else None,
            network_mode=args.network,
            on_event=progress.event,
        )
        if result.failure is not None and result.failure.kind == "step-failed":
            progress.fail(result.failure)
    failure = result.failure
    if failure is not None:
        if failure.kind == "rejected":
            raise Fail(f"the engine rejected the Dockerfile: {failure.message}")
        if failure.kind == "base-image":
            raise Fail(f"base image {base} is not available locally and cannot be pulled: {failure.message}")
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
    if args.smoke:
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
        raise Fail(f"image {tag} not found locally: build it first or name one with --tag") from None


def _explain(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "explain", explain)
    p.add_argument("text", nargs="?", help="An error message, or a file holding one (- for stdin).")
    p.add_argument("--file", type=Path, metavar="FILE", help="Read the error message from FILE.")
    _json_option(p, "Print the ranked candidates as JSON.")
    _redaction_option(p)


def explain(args: argparse.Namespace) -> int:
    """Match an error message (and any report around it) to finding ids, best first. Exit 1 on an error."""
    import json

    from envdoctor.explain import explain_text, render_explanation

    text = _explain_input(args.text, args.file)
    result = explain_text(text)
    redactor = _redactor(args, text)
    if args.as_json:
        sys.stdout.write(json.dumps(redactor.data(result.to_dict()), indent=2) + "\n")
    else:
        sys.stdout.write(redactor.text(render_explanation(result)))
    return EXIT_PROBLEM if result.has_errors else EXIT_OK


def _explain_input(text: str | None, file: Path | None) -> str:
    """The text to explain: ``--file``, stdin for ``-``, a path-like single word, or the text itself.

    Only a single word without whitespace is ever looked up as a file, so a long error message is
    never handed to stat() (which fails on names over 255 bytes). A word that starts like a path
    ('/', './', '../', '~') must be a readable file.
    """
    if (text is None) == (file is None):
        raise Fail("explain: give an error message, - for stdin, or --file FILE (one of them)")
    if file is not None:
        return _read_input(file)
    assert text is not None
    if not text.strip():
        raise Fail("explain: the error message is empty")
    if text == "-" or text.startswith(("/", "./", "../", "~")) and not any(c.isspace() for c in text):
        return _read_input(Path(text).expanduser())
    if not any(c.isspace() for c in text) and len(os.fsencode(text)) < 256:
        try:
            if Path(text).is_file():
                return _read_input(Path(text))
        except (OSError, ValueError):
            pass
    return text


def _diff(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "diff", diff)
    p.add_argument("reference", type=Path, help="Facts of the reference node (`check --json` output).")
    p.add_argument("others", type=Path, nargs="+", help="Facts of one or more other nodes.")
    _json_option(p, "Print the differences as JSON.", formats=("text", "json", "html"))
    _redaction_option(p)
    p.add_argument("-v", "--verbose", action="store_true", help="Also list package version differences.")


def diff(args: argparse.Namespace) -> int:
    """Compare facts snapshots; exit 1 if they differ in a way that breaks multi-node training."""
    import json

    from envdoctor import diff as differ
    from envdoctor.facts import FactsError, load_facts

    try:
        ref = load_facts(args.reference)
        results = [(str(p), differ.compare(ref, load_facts(p))) for p in args.others]
    except FactsError as exc:
        raise Fail(str(exc)) from None
    redactor = _redactor(args)  # facts files are untrusted text, and diffs get pasted too
    if args.fmt == "html":
        from envdoctor.report_html import render_diff

        sys.stdout.write(redactor.text(render_diff(results, str(args.reference))))
    elif args.as_json:
        rows = [
            {"file": n, "breaking": differ.breaking(d), "differences": differ.to_dict(d)} for n, d in results
        ]
        payload = {"reference": str(args.reference), "results": rows}
        sys.stdout.write(json.dumps(redactor.data(payload), indent=2) + "\n")
    else:
        sys.stdout.write(redactor.text(differ.render(results, str(args.reference), verbose=args.verbose)))
    return EXIT_PROBLEM if any(differ.breaking(d) for _, d in results) else EXIT_OK


def _smoke_train(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "smoke-train", smoke_train)
    add = p.add_argument
    add("--task", default="local", help="local (short range), recall (long range) or add (2-digit).")
    add("--size", default="tiny", help="Model size: tiny, small or base.")
    add("--steps", type=int, default=300, help="Optimizer steps.")
    add("--batch-size", type=int, default=64, help="Examples per micro-batch and rank.")
    add("--grad-accum", type=int, default=1, help="Micro-batches per step.")
    add("--seq-len", type=int, default=32, help="Sequence length (recall, local).")
    add("--lr", type=float, default=3e-3, help="Peak learning rate.")
    add("--seed", type=int, default=0, help="Seed of weights and data.")
    add("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    add("--precision", default="fp32", help="fp32, bf16, fp16, fp8 or all (a measured table).")
    add("--attention", default="pam", help="pam (progressive attention) or full.")
    add("--stages", type=int, default=3, help="PAM stages: 3 or 5.")
    add("--nproc", type=int, default=1, help="Processes per node; >1 runs under torchrun.")
    add("--nnodes", default="1", help="torchrun --nnodes (multi-node needs --rdzv-endpoint).")
    add("--rdzv-endpoint", help="torchrun host:port.")
    add("--rdzv-id", default="envdoctor-smoke", help="torchrun rendezvous id.")
    add("--strategy", default="ddp", help="ddp, fsdp (FSDP2, ZeRO-3) or deepspeed.")
    add(
        "--out",
        type=Path,
        help="Folder for checkpoints and loss.svg (default: ~/.cache/envdoctor/smoke-train).",
    )
    add("--resume", action="store_true", help="Continue from the checkpoints in --out.")
    add("--ckpt-every", type=int, default=0, help="Also checkpoint every N steps.")
    add("--min-accuracy", type=float, default=0.95, help="Accuracy needed to pass.")
    add("--python", type=Path, help="Train with another interpreter (a venv) instead.")
    add("--timeout", type=seconds, help="Seconds before the run is stopped (default: scaled to the work).")
    add("--inject-inf-at", type=int, help=argparse.SUPPRESS)  # plants an inf loss at this step (tests)
    _json_option(p, "Print only JSON on stdout.")


def smoke_train(args: argparse.Namespace) -> int:
    """Train the reference model briefly here and check loss, accuracy, precisions, ranks, checkpoints."""
    from envdoctor.smoke import ConfigError, Launch, SmokeConfig
    from envdoctor.smoke import smoke_train as run_smoke_train

    if args.nproc < 1 or (args.timeout is not None and args.timeout <= 0):
        raise Fail("--nproc must be >= 1 and --timeout positive")
    try:
        cfg = SmokeConfig(
            task=args.task, size=args.size, steps=args.steps, batch_size=args.batch_size,
            grad_accum=args.grad_accum, seq_len=args.seq_len, lr=args.lr, seed=args.seed,
            device=args.device, precision=args.precision, attention=args.attention, stages=args.stages,
            strategy=args.strategy, out_dir=str(args.out or ""), resume=args.resume, ckpt_every=args.ckpt_every,
            min_accuracy=args.min_accuracy, inject_inf_at=args.inject_inf_at,
        )  # fmt: skip
    except ConfigError as exc:
        raise Fail(str(exc)) from None
    launch = Launch(
        python=_target_python(args.python), nproc=args.nproc, nnodes=args.nnodes,
        rdzv_endpoint=args.rdzv_endpoint, rdzv_id=args.rdzv_id,
        timeout_s=args.timeout or cfg.default_timeout(args.nproc),
    )  # fmt: skip
    return run_smoke_train(cfg, launch, as_json=args.as_json, plot=Path(cfg.out_dir) / "loss.svg")


def _fit(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "fit", fit)
    add = p.add_argument
    add("--model", required=True, help="A named size (125M, 1B, 3B, 7B, 8B, 13B, 70B) or a count (350M).")
    add("--precision", default="bf16", help="fp32, bf16 or fp8.")
    add("--optimizer", default="adamw", help="adamw or adamw8bit (bitsandbytes).")
    add("--zero", type=int, default=0, help="ZeRO stage 0 (DDP), 1, 2 or 3.")
    add("--fsdp", action="store_true", help="PyTorch FSDP full shard instead of ZeRO.")
    add("--gpus", type=int, default=1, help="GPUs in the run (all nodes).")
    add("--seq-len", type=int, default=2048, help="Tokens per sequence.")
    add("--micro-batch", type=int, default=1, help="Sequences per GPU and micro-batch.")
    add("--grad-accum", type=int, default=1, help="Micro-batches per optimizer step.")
    add("--checkpointing", action="store_true", help="Full activation checkpointing.")
    add(
        "--gpu",
        help="Judge against this GPU model (H100, A100 40GB, RTX 4090, ...) instead of this machine's.",
    )
    add("--memory-gib", type=float, help="Judge against this much memory per GPU.")
    add("--facts", type=Path, metavar="FILE", help="Judge against the GPUs of a `check --json` file.")
    _json_option(p)


def fit(args: argparse.Namespace) -> int:
    """Will a training run fit: memory per GPU, the verdict, and the smallest change that fits.

    Exit 1 when it does not fit the GPU (this machine's, --facts, --gpu or --memory-gib).
    """
    import json

    from envdoctor import fit as estimator

    try:
        run = estimator.Run(
            estimator.shape_for(args.model), precision=args.precision, optimizer=args.optimizer,
            zero=args.zero, fsdp=args.fsdp, gpus=args.gpus, seq_len=args.seq_len,
            micro_batch=args.micro_batch, grad_accum=args.grad_accum, checkpointing=args.checkpointing,
        )  # fmt: skip
        if args.memory_gib is not None:
            if not 0 < args.memory_gib < 1e9:  # NaN compares false
                raise estimator.FitError("--memory-gib must be a positive number of GiB")
            capacity = estimator.Capacity(
                f"{args.memory_gib:g} GiB GPU", int(args.memory_gib * 2**30), "--memory-gib"
            )
        elif args.gpu is not None:
            capacity = estimator.named_gpu(args.gpu)
        else:
            capacity = estimator.capacity_from_facts(gather_facts(None, args.facts, quick=True))
    except estimator.FitError as exc:
        raise Fail(str(exc)) from None
    est = estimator.estimate(run)
    verdict = estimator.verdict(est, capacity) if capacity else "unknown"
    change = estimator.smallest_change(run, capacity) if verdict in ("tight", "does-not-fit") else None
    if args.as_json:
        sys.stdout.write(json.dumps(estimator.to_dict(run, est, capacity, change), indent=2) + "\n")
    else:
        sys.stdout.write(estimator.render(run, est, capacity, change))
    return EXIT_PROBLEM if verdict == "does-not-fit" else EXIT_OK


def _ci(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "ci", ci)
    sub = p.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    init = _command(sub, "init", ci_init)
    where = init.add_mutually_exclusive_group(required=True)
    where.add_argument("--github", dest="kind", action="store_const", const="github", help="GitHub Actions.")
    where.add_argument("--gitlab", dest="kind", action="store_const", const="gitlab", help="GitLab CI.")
    add = init.add_argument
    add(
        "--gpu-runner",
        metavar="LABELS",
        help="Also check and smoke-train on this runner (labels, comma-separated).",
    )
    add("--python", default="3.11", help="Python version of the check job's image.")
    add(
        "--install",
        help="Shell command that installs the project (default: requirements.txt or the project).",
    )
    add("--output", type=Path, help="Write here instead of the CI system's default path.")
    add("--force", action="store_true", help="Replace an existing file.")
    add("--print", dest="to_stdout", action="store_true", help="Print the workflow instead of writing it.")


def ci(args: argparse.Namespace) -> int:
    """CI templates: `ci init --github|--gitlab` writes a workflow that runs envdoctor on every push."""
    raise Fail("choose a subcommand: envdoctor ci init --github|--gitlab")


def ci_init(args: argparse.Namespace) -> int:
    """Write a workflow: check --json, HTML/JSON artifacts, fail on error findings (optionally smoke-train on a GPU runner)."""
    from envdoctor import ci as templates

    try:
        opts = templates.Options(
            python=args.python,
            install=args.install or templates.DEFAULT_INSTALL,
            gpu_runner=templates.parse_labels(args.gpu_runner) if args.gpu_runner else (),
        )
        if args.to_stdout:
            sys.stdout.write(templates.render(args.kind, opts))
            return EXIT_OK
        paths = templates.write(args.kind, opts, Path.cwd(), args.output, args.force)
    except templates.CIError as exc:
        raise Fail(str(exc)) from None
    for path in paths:
        print(f"wrote {path}")
    return EXIT_OK


def _mcp(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "mcp", mcp)
    p.add_argument(
        "--allow-apply",
        action="store_true",
        help="Also offer fix_apply and fix_rollback (they change environments, with a snapshot first).",
    )


def mcp(args: argparse.Namespace) -> int:
    """Serve envdoctor's tools to coding agents: a Model Context Protocol server over stdio.

    Needs the optional SDK: pip install 'envdoctor[mcp]'. Read-only unless --allow-apply.
    """
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        raise Fail("the MCP server needs the mcp SDK: pip install 'envdoctor[mcp]'")
    from envdoctor.mcp_server import serve

    try:
        serve(allow_apply=args.allow_apply)
    except KeyboardInterrupt:  # Ctrl-C in a terminal: stop quietly, as the shell expects
        return 130
    return EXIT_OK


def _fleet(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "fleet", fleet)
    sub = p.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    r = _command(sub, "report", fleet_report)
    r.add_argument("source", type=Path, help="Folder of {host}.json check results, or a log of the k8s Job.")
    _verdict_options(r)
    run = _command(sub, "run", fleet_run)
    _slurm_options(run)
    run.add_argument("--out", type=Path, required=True, help="Shared folder for the {host}.json results.")
    run.add_argument("--quick", action="store_true", help="check --quick on every node (no torch import).")
    run.add_argument("--python", help="Interpreter to check on each node ({host} becomes the node's name).")
    _verdict_options(run, expect=False)
    sm = _command(sub, "smoke", fleet_smoke)
    _slurm_options(sm)
    sm.add_argument("--out", type=Path, required=True, help="Shared folder for each node's verdict.")
    sm.add_argument("--nproc", type=int, default=1, help="Processes (GPUs) per node.")
    sm.add_argument("--port", type=int, default=29500, help="Rendezvous port on the first node.")
    sm.add_argument("--slow-factor", type=float, default=1.5, help="Flag nodes slower than this x median.")
    sm.add_argument("--train-args", default="", help="More smoke-train options, e.g. '--steps 100'.")
    _json_option(sm, "Print the verdict as JSON.")
    _command(sub, "health-script", fleet_health_script)
    m = _command(sub, "manifest", fleet_manifest)
    m.add_argument("--k8s", action="store_true", required=True, help="A Kubernetes Indexed Job.")
    m.add_argument("-N", "--nodes", type=int, required=True, help="Number of nodes (one pod each).")
    m.add_argument("--image", required=True, help="An image with envdoctor and the stack to check.")
    m.add_argument("--gpus-per-node", type=int, default=1, help="nvidia.com/gpu per pod (0: none).")
    m.add_argument("--name", default="envdoctor-fleet", help="Job name.")
    m.add_argument("--namespace", help="Namespace.")
    m.add_argument("--quick", action="store_true", help="check --quick (no torch import).")
    m.add_argument("--results-pvc", metavar="CLAIM", help="Also write <node>.json into this shared claim.")
    m.add_argument("--node-selector", action="append", default=[], metavar="KEY=VALUE", help="Repeatable.")


def _verdict_options(p: argparse.ArgumentParser, expect: bool = True) -> None:
    if expect:
        p.add_argument("--expect", metavar="N|HOSTLIST", help="Nodes expected: a count or a Slurm host list.")
    p.add_argument("--group-by", metavar="KEY", help="Judge each group of a mixed fleet on its own.")
    _json_option(p, "Print the verdict as JSON.", formats=("text", "json", "html"))


def _slurm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slurm", action="store_true", required=True, help="Run through Slurm (srun/sbatch).")
    p.add_argument("-N", "--nodes", type=int, required=True, help="Number of nodes.")
    p.add_argument("-p", "--partition", help="Slurm partition.")
    p.add_argument("-t", "--time", dest="time_limit", help="Slurm time limit (--time).")
    p.add_argument("--timeout", type=float, default=1800.0, help="Seconds before envdoctor stops the job.")
    p.add_argument("--dry-run", action="store_true", help="Print the Slurm command, run nothing.")


def fleet(args: argparse.Namespace) -> int:
    """Check a whole cluster: run a check on every node, find the odd node (docs/fleet.md)."""
    raise Fail("choose a subcommand: envdoctor fleet report|run|smoke|manifest|health-script (see --help)")


def _expected(value: str | None) -> int | list[str] | None:
    from envdoctor.fleet.hostlist import expand

    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        return expand(value)
    except ValueError as exc:
        raise Fail(f"--expect: {exc}") from None


def fleet_report(args: argparse.Namespace) -> int:
    """The fleet verdict from one `check --json` file per node: majority baseline, odd nodes, findings.

    Exit 0 all nodes consistent and healthy, 1 odd, broken, unknown or missing nodes, 2 unreadable input.
    """
    return _fleet_verdict(args.source, _expected(args.expect), args.group_by, _report_format(args))


def _report_format(args: argparse.Namespace) -> str:
    if args.as_json and args.fmt not in ("text", "json"):
        raise Fail(f"--json and --format {args.fmt}: choose one")
    return "json" if args.as_json else args.fmt


def _fleet_verdict(source: Path, expected: int | list[str] | None, group_by: str | None, fmt: str) -> int:
    import json

    from envdoctor.fleet import report as fleet_verdict

    keys = fleet_verdict.group_keys()
    if group_by is not None and group_by not in keys:
        raise Fail(f"--group-by {group_by!r}: choose one of {', '.join(keys)}")
    try:
        nodes = fleet_verdict.read_nodes(source)
    except fleet_verdict.FleetInputError as exc:
        raise Fail(str(exc)) from None
    if not nodes:
        raise Fail(f"{source}: no *.json node results in this folder")
    verdict = fleet_verdict.build(nodes, expected, keys.get(group_by) if group_by else None)
    if fmt == "json":
        sys.stdout.write(json.dumps(fleet_verdict.to_dict(verdict), indent=2) + "\n")
    elif fmt == "html":
        from envdoctor.fleet.html import render_html

        sys.stdout.write(render_html(verdict))
    else:
        sys.stdout.write(fleet_verdict.render_text(verdict))
    return EXIT_OK if verdict.ok else EXIT_PROBLEM


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Fail(f"--out {path}: {exc.strerror or exc}") from None


def fleet_run(args: argparse.Namespace) -> int:
    """Run `check --json` on N nodes through srun, then give the fleet verdict of what they wrote.

    Prints the srun command first. Exit as `fleet report`: 0 consistent and healthy, 1 not, 2 bad usage.
    """
    from envdoctor.fleet import slurm

    if args.nodes < 1:
        raise Fail("-N must be >= 1")
    if args.out.is_dir() and any(args.out.glob("*.json")):
        raise Fail(f"{args.out} already holds node results: choose a new --out folder")
    fmt = _report_format(args)
    alloc = slurm.Allocation(args.nodes, args.partition, args.time_limit)
    cmd = slurm.check_command(alloc, args.out, quick=args.quick, python=args.python)
    print(f"+ {slurm.shown(cmd)}", file=sys.stderr, flush=True)
    if args.dry_run:
        return EXIT_OK
    _make_folder(args.out)
    log = args.out / "srun.log"
    try:
        _code, stopped = slurm.run(cmd, args.timeout, log)
    except (slurm.SlurmError, OSError) as exc:
        raise Fail(str(exc)) from None
    if stopped:
        print(f"envdoctor: srun {stopped}", file=sys.stderr)
    print(f"srun's output: {log}", file=sys.stderr)
    return _fleet_verdict(args.out, args.nodes, args.group_by, fmt)


def fleet_smoke(args: argparse.Namespace) -> int:
    """Train on N nodes at once through sbatch and torchrun; every node's verdict, slow nodes flagged.

    One smoke-train per node meets at a c10d rendezvous on the job's first node (--rdzv-id is the job
    id). Reports each node's verdict, the all-reduce bus bandwidth and each node's step time.
    Exit 0 every node passed, agrees and none is slow, 1 otherwise, 2 bad usage.
    """
    import json
    import shlex

    from envdoctor.fleet import slurm, smoke

    if args.nodes < 1 or args.nproc < 1 or args.slow_factor <= 1:
        raise Fail("-N and --nproc must be >= 1, --slow-factor > 1")
    if args.out.is_dir() and any(args.out.glob("*.json")):
        raise Fail(f"{args.out} already holds node results: choose a new --out folder")
    try:
        train_args = shlex.split(args.train_args)
    except ValueError as exc:
        raise Fail(f"--train-args: {exc}") from None
    alloc = slurm.Allocation(args.nodes, args.partition, args.time_limit)
    script = smoke.sbatch_script(
        alloc, args.out, args.nproc, slurm.envdoctor_command(), train_args, args.port
    )
    if args.dry_run:
        sys.stdout.write(script)
        return EXIT_OK
    path = args.out / "envdoctor-smoke.sbatch"
    _make_folder(args.out)
    try:
        path.write_text(script)
    except OSError as exc:
        raise Fail(f"{path}: {exc.strerror or exc}") from None
    print(f"+ sbatch --parsable --wait {path}", file=sys.stderr, flush=True)
    try:
        code, job, stopped = slurm.submit_and_wait(path, args.timeout)
    except slurm.SlurmError as exc:
        raise Fail(str(exc)) from None
    if stopped:
        print(f"envdoctor: job {job} {stopped}; cancelled", file=sys.stderr)
    verdict = smoke.gather(args.out, args.nodes, args.slow_factor)
    if args.as_json:
        sys.stdout.write(json.dumps({"job": job, **smoke.to_dict(verdict)}, indent=2) + "\n")
    else:
        sys.stdout.write(f"job {job} exited with status {code}\n" + smoke.render_text(verdict))
    return EXIT_OK if verdict.ok else EXIT_PROBLEM


def fleet_manifest(args: argparse.Namespace) -> int:
    """Print a Kubernetes Indexed Job that runs `envdoctor check` on N nodes, one pod per node.

    Apply it with kubectl; its `kubectl logs` are what `fleet report` reads (docs/fleet.md).
    """
    from envdoctor.fleet.k8s import JobSpec, render

    if args.nodes < 1 or args.gpus_per_node < 0:
        raise Fail("-N must be >= 1 and --gpus-per-node >= 0")
    selector = dict(item.partition("=")[::2] for item in args.node_selector)
    if any(not k or not v for k, v in selector.items()):
        raise Fail("--node-selector takes KEY=VALUE")
    spec = JobSpec(
        args.nodes, args.image, args.name, args.namespace, args.gpus_per_node, args.quick,
        args.results_pvc, selector,
    )  # fmt: skip
    sys.stdout.write(render(spec))
    return EXIT_OK


def fleet_health_script(args: argparse.Namespace) -> int:
    """Print the Slurm HealthCheckProgram wrapper (drains a broken node with the finding as reason).

    envdoctor fleet health-script > /usr/local/sbin/envdoctor-health (docs/fleet.md has the slurm.conf).
    """
    from importlib.resources import files

    sys.stdout.write(files("envdoctor.fleet").joinpath("envdoctor-health.sh").read_text(encoding="utf-8"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
