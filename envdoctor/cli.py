"""Command-line interface. Only parses arguments and renders: the work lives in plain modules.

argparse (standard library) rather than a CLI framework: ``check --quick`` must finish in a small
fraction of a second, and a framework's import alone costs tens of milliseconds of it. Every command
imports its implementation lazily, inside its handler, for the same reason.
Exit codes: 0 fine, 1 a problem was found (error finding, failed check), 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
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
    try:
        _one_format(args)
        return args.handler(args)
    except Fail as exc:
        print(f"envdoctor: error: {exc}", file=sys.stderr)
        return exc.code


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (cheap to build: a few hundred microseconds)."""
    parser = argparse.ArgumentParser(
        prog="envdoctor", description="The doctor for deep-learning environments."
    )
    parser.add_argument("--version", action="version", version=f"envdoctor {__version__}")
    parser.set_defaults(handler=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (_check, _rules, _recipes, _recommend, _fix, _build, _explain, _diff, _smoke_train):
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
    _redaction_option(p)


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
    report_text = _read_input(args.from_report) if args.from_report is not None else None
    # The torch child starts first; rules and tables then load while the probes run.
    snapshot = gather_facts(
        args.python, args.facts, quick=args.quick, report=report_text, while_probing=_preload_rules
    )
    from envdoctor import report
    from envdoctor.rules import evaluate

    if report_text is not None:
        from envdoctor.explain import diagnose

        findings = diagnose(snapshot)  # rule findings ranked with the report's error messages
    else:
        findings = evaluate(snapshot)
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
    p.add_argument("--timeout", type=float, default=1800.0, help="Seconds allowed per pip command.")


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
    from envdoctor.build.context import ContextError, find_wheels, make_context, read_ca_certs, source_root
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
    except (RecipeError, ContextError) as exc:
        raise Fail(str(exc)) from None
    wheel_names = [w.name for w in wheel_files]
    install_torch = not args.no_torch
    dockerfile = render_dockerfile(
        chosen, ca_certs=sorted(certs), install_torch=install_torch, wheels=wheel_names
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
        context = make_context(dockerfile, source_root(), certs, wheels=wheel_files)
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
    p.add_argument("text", help="An error message, or a file holding one (- for stdin).")
    _json_option(p, "Print the ranked candidates as JSON.")
    _redaction_option(p)


def explain(args: argparse.Namespace) -> int:
    """Match an error message (and any report around it) to finding ids, best first. Exit 1 on an error."""
    import json

    from envdoctor.explain import explain_text, render_explanation

    text = args.text
    if text == "-" or Path(text).is_file():
        text = _read_input(Path(text))
    result = explain_text(text)
    redactor = _redactor(args, text)
    if args.as_json:
        sys.stdout.write(json.dumps(redactor.data(result.to_dict()), indent=2) + "\n")
    else:
        sys.stdout.write(redactor.text(render_explanation(result)))
    return EXIT_PROBLEM if result.has_errors else EXIT_OK


def _diff(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "diff", diff)
    p.add_argument("reference", type=Path, help="Facts of the reference node (`check --json` output).")
    p.add_argument("others", type=Path, nargs="+", help="Facts of one or more other nodes.")
    _json_option(p, "Print the differences as JSON.", formats=("text", "json", "html"))
    _redaction_option(p)


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
        sys.stdout.write(redactor.text(differ.render(results, str(args.reference))))
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
    add("--timeout", type=float, help="Seconds before the run is stopped (default: scaled to the work).")
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


if __name__ == "__main__":
    sys.exit(main())
