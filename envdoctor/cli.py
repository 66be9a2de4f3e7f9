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


def _json_option(parser: argparse.ArgumentParser, help: str = "Print JSON.") -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help=help)


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
    from envdoctor.probes import ProbeTargetError, collect

    try:
        return collect(python=str(python) if python else None, quick=quick, while_waiting=while_probing)
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
    _json_option(p, "Print {schema_version, facts, findings} only.")
    p.add_argument(
        "--format", dest="fmt", choices=("text", "markdown", "json"), default="text", help="Report format."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="Show every fact and probe timings.")
    p.add_argument(
        "--quick", action="store_true", help="Do not import torch: read its build from torch/version.py."
    )
    _smoke_options(p, "Then train the reference model with the same interpreter (one exit code for both).")
    p.add_argument("--timeout", type=float, help="--smoke: seconds before training is stopped (default 900).")


def check(args: argparse.Namespace) -> int:
    """Diagnose the environment: probes -> facts -> findings. Exit 1 if any finding is an error."""
    fmt = "json" if args.as_json else args.fmt
    if args.smoke and (args.facts is not None or args.from_report is not None):
        raise Fail("--smoke trains with a live interpreter: not with --facts or --from-report")
    smoke = _smoke_from_args(args) if args.smoke else None
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
    if smoke is not None:
        return _check_then_smoke(args, fmt, snapshot, findings, smoke)
    if fmt == "json":
        sys.stdout.write(report.render_json(snapshot, findings) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(report.render_markdown(snapshot, findings))
    else:
        report.print_text(snapshot, findings, verbose=args.verbose)
    return EXIT_PROBLEM if report.has_errors(findings) else EXIT_OK


def _check_then_smoke(args: argparse.Namespace, fmt: str, snapshot, findings, smoke) -> int:
    """check --smoke: the verdict, then a smoke-train of the same interpreter; exit 1 if either fails.

    JSON: the check's document with a ``smoke`` member (the smoke-train's verdict) and ``ok``.
    """
    import json

    from envdoctor import report

    python = str(args.python) if args.python else sys.executable
    if fmt == "json":
        doc = json.loads(report.render_json(snapshot, findings))
        proof = _run_smoke(python, smoke, quiet=True)
        doc["smoke"] = proof.to_dict()
        doc["ok"] = proof.ok and not report.has_errors(findings)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        if fmt == "markdown":
            sys.stdout.write(report.render_markdown(snapshot, findings))
        else:
            report.print_text(snapshot, findings, verbose=args.verbose)
        from envdoctor.proof import print_proof

        proof = _run_smoke(python, smoke, quiet=False)
        print_proof(proof)
    return EXIT_PROBLEM if report.has_errors(findings) or not proof.ok else EXIT_OK


def _preload_rules() -> None:
    from envdoctor.rules import preload

    preload()


def _rules(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "rules", rules)
    p.add_argument("--markdown", action="store_true", help="Print the findings table as markdown.")


def rules(args: argparse.Namespace) -> int:
    """List every finding id envdoctor can report, with its meaning and fix."""
    from envdoctor import report

    if args.markdown:
        sys.stdout.write(report.rules_markdown())
    else:
        report.print_rules()
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
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="How long to wait for another fix of the same environment to end (default 60).",
    )
    _smoke_options(p, "After --apply's re-check, prove the result by a smoke-train; roll back if it fails.")
    p.add_argument(
        "--timeout",
        type=float,
        help="Seconds allowed per pip command (default 1800) and for --smoke's training (default 900).",
    )


def fix(args: argparse.Namespace) -> int:
    """Plan fixes for the findings (or a recipe); --apply runs them, re-checks, rolls back on failure."""
    import contextlib
    import os

    from envdoctor import apply as executor
    from envdoctor.plan import Selection
    from envdoctor.rules import all_rules

    if args.facts is not None and (args.apply or args.rollback):
        raise Fail("--apply and --rollback change a live environment: use --python, not --facts")
    if args.smoke and not args.apply:
        raise Fail("--smoke proves an applied fix: add --apply (or use `check --smoke`)")
    smoke = _smoke_from_args(args) if args.smoke else None
    only = [i.strip() for value in args.only for i in value.split(",") if i.strip()]
    if args.recipe is not None and (only or args.include_warnings):
        raise Fail("--only and --include-warnings choose among findings; --recipe plans the recipe")
    unknown = sorted(set(only) - {r.id for r in all_rules()} - {"internal-error"})
    if unknown:
        raise Fail(f"--only: unknown finding id {', '.join(unknown)} (`envdoctor rules` lists them)")
    if not 0 <= args.wait < 1e9 or (args.timeout is not None and not 0 < args.timeout < 1e9):
        raise Fail("--wait must be >= 0 seconds and --timeout a positive number of seconds")
    selection = Selection(frozenset(only) if only else None, args.include_warnings)
    try:
        if not (args.apply or args.rollback):
            return _fix_plan(args, selection, None)
        # The lock comes before the facts: a run that waited plans from what the other one left.
        # absolute, not resolved: a venv's python is a symlink whose location decides sys.prefix
        python = os.path.abspath(args.python) if args.python else sys.executable
        target = executor.inspect_target(python)
        with executor.locked(target.prefix, args.wait, log=lambda m: print(m, file=sys.stderr)):
            if args.rollback:
                return _fix_rollback(args, target.prefix)
            return _fix_plan(args, selection, smoke)
    except executor.ApplyError as exc:
        raise Fail(str(exc)) from None
    except KeyboardInterrupt:  # before the transaction began or after it ended: nothing half-done
        with contextlib.suppress(OSError):
            print("envdoctor: interrupted; the environment was not changed by this run", file=sys.stderr)
        return 130


def _fix_rollback(args: argparse.Namespace, prefix: str) -> int:
    from envdoctor import apply as executor

    snap = executor.latest_snapshot(prefix)
    if snap is None:
        raise Fail(f"no snapshot under {executor.snapshot_dir(prefix)}")
    done = executor.rollback(snap, timeout=args.timeout or executor.PIP_TIMEOUT_S, log=print)
    if done.note:
        print(f"nothing to roll back: {done.note}; the environment is as it was before it")
    elif done.ok:
        print(f"rolled back to {snap.path}: environment restored exactly")
    else:
        print(f"rollback incomplete: {', '.join(done.remaining) or 'files'}; run `fix --rollback` again")
    return EXIT_OK if done.ok else EXIT_PROBLEM


def _fix_plan(args: argparse.Namespace, selection, smoke) -> int:
    """Plan (dry run), or plan and apply under the lock the caller holds."""
    import json

    from envdoctor import apply as executor
    from envdoctor.plan import build_plan, plan_for_recipe, render_plan
    from envdoctor.rules import evaluate

    chosen = _load_recipes(args.recipe) if args.recipe is not None else None
    snapshot = gather_facts(args.python, args.facts, quick=args.quick)
    findings = evaluate(snapshot)
    activation = executor.read_activation(snapshot.python.prefix) if args.facts is None else {}
    guards = (args.break_system, args.allow_conda)
    if chosen is not None:
        plan = plan_for_recipe(chosen, snapshot, activation, *guards)
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
        return _fix_nothing_to_do(args, plan, smoke)
    python = plan.python or sys.executable
    proofs = []

    def prove() -> str | None:
        proofs.append(_run_smoke(python, smoke, quiet=args.as_json))
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


def _fix_nothing_to_do(args: argparse.Namespace, plan, smoke) -> int:
    """No step to run; with --smoke the environment as it is still gets its proof."""
    import json

    if not args.as_json:
        print("nothing to do")
    proof = _run_smoke(plan.python or sys.executable, smoke, quiet=args.as_json) if smoke else None
    if args.as_json:
        doc = {"plan": plan.to_dict(), "ok": proof is None or proof.ok, "steps": []}
        doc["smoke"] = proof.to_dict() if proof else None
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif proof is not None:
        from envdoctor.proof import print_proof

        print_proof(proof)
    return EXIT_OK if proof is None or proof.ok else EXIT_PROBLEM


def _smoke_options(p: argparse.ArgumentParser, help: str) -> None:
    """--smoke and the smoke-train options that pass through (--timeout is the command's own)."""
    p.add_argument("--smoke", action="store_true", help=help)
    p.add_argument("--device", default="auto", help="--smoke: auto, cpu, cuda or cuda:N.")
    p.add_argument("--precision", default="fp32", help="--smoke: fp32, bf16, fp16, fp8 or all.")
    p.add_argument("--nproc", type=int, default=1, help="--smoke: processes (>1 runs under torchrun).")


def _smoke_from_args(args: argparse.Namespace):
    """The smoke options of a command line, checked before anything runs (exit 2 if unusable)."""
    from envdoctor.proof import SmokeOptions, validate
    from envdoctor.smoke import ConfigError

    options = SmokeOptions(args.device, args.precision, args.nproc, args.timeout or 900.0)
    try:
        validate(options)
    except ConfigError as exc:
        raise Fail(str(exc)) from None
    return options


def _run_smoke(python: str, options, quiet: bool):
    from envdoctor.proof import smoke

    if not quiet:
        print(
            f"smoke-train with {python} ({options.device}, {options.precision}, up to {options.timeout:g} s)"
        )
        sys.stdout.flush()
    return smoke(python, options)


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


def explain(args: argparse.Namespace) -> int:
    """Match an error message (and any report around it) to finding ids, best first. Exit 1 on an error."""
    import json

    from envdoctor.explain import explain_text, render_explanation

    text = args.text
    if text == "-" or Path(text).is_file():
        text = _read_input(Path(text))
    result = explain_text(text)
    if args.as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_explanation(result))
    errors = any(d.finding.severity.value == "error" for d in result.candidates)
    return EXIT_PROBLEM if errors else EXIT_OK


def _diff(commands: argparse._SubParsersAction) -> None:
    p = _command(commands, "diff", diff)
    p.add_argument("reference", type=Path, help="Facts of the reference node (`check --json` output).")
    p.add_argument("others", type=Path, nargs="+", help="Facts of one or more other nodes.")
    _json_option(p, "Print the differences as JSON.")


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
    if args.as_json:
        rows = [
            {"file": n, "breaking": differ.breaking(d), "differences": differ.to_dict(d)} for n, d in results
        ]
        sys.stdout.write(json.dumps({"reference": str(args.reference), "results": rows}, indent=2) + "\n")
    else:
        sys.stdout.write(differ.render(results, str(args.reference)))
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
    add("--out", type=Path, default=Path("envdoctor-smoke"), help="Folder for checkpoints and loss.svg.")
    add("--resume", action="store_true", help="Continue from the checkpoints in --out.")
    add("--ckpt-every", type=int, default=0, help="Also checkpoint every N steps.")
    add("--min-accuracy", type=float, default=0.95, help="Accuracy needed to pass.")
    add("--python", type=Path, help="Train with another interpreter (a venv) instead.")
    add("--timeout", type=float, default=900.0, help="Seconds before the run is stopped.")
    add("--inject-inf-at", type=int, help=argparse.SUPPRESS)  # plants an inf loss at this step (tests)
    _json_option(p, "Print only JSON on stdout.")


def smoke_train(args: argparse.Namespace) -> int:
    """Train the reference model briefly here and check loss, accuracy, precisions, ranks, checkpoints."""
    from envdoctor.smoke import ConfigError, Launch, SmokeConfig
    from envdoctor.smoke import smoke_train as run_smoke_train

    if args.nproc < 1 or args.timeout <= 0:
        raise Fail("--nproc must be >= 1 and --timeout positive")
    try:
        cfg = SmokeConfig(
            task=args.task, size=args.size, steps=args.steps, batch_size=args.batch_size,
            grad_accum=args.grad_accum, seq_len=args.seq_len, lr=args.lr, seed=args.seed,
            device=args.device, precision=args.precision, attention=args.attention, stages=args.stages,
            strategy=args.strategy, out_dir=str(args.out), resume=args.resume, ckpt_every=args.ckpt_every,
            min_accuracy=args.min_accuracy, inject_inf_at=args.inject_inf_at,
        )  # fmt: skip
    except ConfigError as exc:
        raise Fail(str(exc)) from None
    launch = Launch(
        python=str(args.python) if args.python else sys.executable, nproc=args.nproc, nnodes=args.nnodes,
        rdzv_endpoint=args.rdzv_endpoint, rdzv_id=args.rdzv_id, timeout_s=args.timeout,
    )  # fmt: skip
    return run_smoke_train(cfg, launch, as_json=args.as_json, plot=args.out / "loss.svg")


if __name__ == "__main__":
    sys.exit(main())
