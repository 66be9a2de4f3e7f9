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


def gather_facts(
    python: Path | None, facts_file: Path | None, quick: bool = False, report: str | None = None
):
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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {schema_version, facts, findings} only.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="text, markdown or json.")] = "text",
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show every fact and probe timings.")
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Do not import torch: read its build from torch/version.py.")
    ] = False,
) -> None:
    """Diagnose the environment: probes -> facts -> findings. Exit 1 if any finding is an error."""
    from envdoctor import report
    from envdoctor.rules import evaluate, preload

    preload()  # rules and tables load while the probes wait on their child processes
    if as_json:
        fmt = "json"
    if fmt not in ("text", "markdown", "json"):
        raise fail(f"unknown --format {fmt!r} (choose text, markdown or json)")
    report_text = None
    if from_report is not None:
        report_text = _read_input(from_report)
    snapshot = gather_facts(python, facts, quick=quick, report=report_text)
    if report_text is not None:
        from envdoctor.explain import diagnose

        findings = diagnose(snapshot)  # rule findings ranked with the report's error messages
    else:
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
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the findings table as markdown.")
    ] = False,
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
    apply: Annotated[
        bool, typer.Option("--apply", "--yes", help="Run the plan (default: print it).")
    ] = False,
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
        state = (
            f"rolled back to {snap.path}" if done.ok else f"rollback incomplete: {', '.join(done.remaining)}"
        )
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


@app.command()
def build(
    recipe: Annotated[
        str | None,
        typer.Option("--recipe", help="Recipe name or YAML file (default: recommended here, else CUDA 13)."),
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Image tag (envdoctor/<recipe>:<hash>).")] = None,
    base_image: Annotated[
        str | None, typer.Option("--base-image", help="Build FROM this image instead of the recipe's.")
    ] = None,
    print_dockerfile: Annotated[
        bool, typer.Option("--print-dockerfile", help="Print the Dockerfile and stop (no engine needed).")
    ] = False,
    ca_cert: Annotated[
        list[Path] | None,
        typer.Option("--ca-cert", help="Extra CA certificate (PEM) to trust in the image; repeatable."),
    ] = None,
    host_ca_certs: Annotated[
        bool,
        typer.Option("--host-ca-certs", help="Trust this host's /usr/local/share/ca-certificates/*.crt."),
    ] = False,
    no_torch: Annotated[
        bool, typer.Option("--no-torch", help="Leave out torch and the recipe's packages (small image).")
    ] = False,
    wheels: Annotated[
        Path | None,
        typer.Option("--wheels", help="Install from the *.whl files of DIR too (torch offline if one fits)."),
    ] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Also run `envdoctor smoke-train` inside.")] = False,
    gpu_check: Annotated[
        bool, typer.Option("--gpu-check", help="Only check that containers of the image get a GPU; no build.")
    ] = False,
    network: Annotated[str, typer.Option("--network", help="Network for the build: host or none.")] = "host",
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show every line of the build.")] = False,
) -> None:
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

    if network not in ("host", "none"):
        raise fail(f"--network {network!r}: choose host or none (envdoctor never creates a bridge network)")
    try:
        chosen, why = choose_recipe(recipe)
        certs = read_ca_certs([*(ca_cert or []), *(host_certs() if host_ca_certs else [])])
        wheel_files = find_wheels(wheels) if wheels is not None else []
    except (RecipeError, ContextError) as exc:
        raise fail(str(exc)) from None
    wheel_names = [w.name for w in wheel_files]
    dockerfile = render_dockerfile(
        chosen, ca_certs=sorted(certs), install_torch=not no_torch, wheels=wheel_names
    )
    if print_dockerfile:
        sys.stdout.write(dockerfile)
        raise typer.Exit(EXIT_OK)
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    tag = tag or default_tag(chosen, install_torch=not no_torch)
    try:
        client = connect(timeout=3600)
    except EngineError as exc:
        raise fail(str(exc)) from None
    if gpu_check:
        _require_local_image(client, tag)
        finding = container_gpu_finding(probe_container_gpu(client, tag), needs_gpu=True)
        if finding is None:
            out.print(f"[green]✓[/] containers of {tag} get a GPU", highlight=False)
        else:
            render.print_findings(out, [finding])
        raise typer.Exit(EXIT_OK if finding is None else EXIT_PROBLEM)

    try:
        context = make_context(dockerfile, source_root(), certs, wheels=wheel_files)
    except ContextError as exc:
        raise fail(str(exc)) from None
    base = base_image or chosen.base_image
    err.print(
        f"Building {tag} from recipe {chosen.name} ({why}) on {base}, network {network}", highlight=False
    )
    if wheel_files:
        local_torch = local_torch_wheel(chosen, wheel_names)
        torch_from = f"torch from {local_torch}" if local_torch else f"torch from {chosen.torch.index_url}"
        err.print(f"{len(wheel_files)} local wheels from {wheels}; {torch_from}", highlight=False)
    with context, render.BuildProgress(err, verbose=verbose) as progress:
        result = build_image(
            client,
            context,
            tag,
            buildargs={"BASE_IMAGE": base_image} if base_image else None,
            network_mode=network,
            on_event=progress.event,
        )
        if result.failure is not None and result.failure.kind == "step-failed":
            progress.fail(result.failure)
    failure = result.failure
    if failure is not None:
        if failure.kind == "rejected":
            raise fail(f"the engine rejected the Dockerfile: {failure.message}")
        if failure.kind == "base-image":
            raise fail(f"base image {base} is not available locally and cannot be pulled: {failure.message}")
        if failure.kind != "step-failed":
            err.print(f"[red]✗[/] build failed at step {failure.step}: {failure.message}", highlight=False)
        raise typer.Exit(EXIT_PROBLEM)
    out.print(f"[green]✓[/] built {tag} ({(result.image_id or '')[:19]})", highlight=False)

    gpu = probe_container_gpu(client, tag)
    gpu_finding = container_gpu_finding(gpu, needs_gpu=chosen.hardware.gpu)
    validation = validate_image(client, tag, gpu=gpu.ok)
    if gpu_finding is not None:
        validation.findings.insert(0, gpu_finding)
    render.print_validation(out, validation)
    problems = not validation.ok or any(f.severity is Severity.ERROR for f in validation.findings)
    if smoke:
        smoke_run = smoke_in_image(client, tag, gpu=gpu.ok, ulimits=not validation.ulimits_refused)
        render.print_smoke(out, smoke_run)
        problems = problems or not smoke_run.ok
    if validation.ulimits_refused:
        out.print(f"[yellow]![/] this engine refuses the memlock/stack ulimits: {validation.ulimits_refused}")
    out.print("Run it with:", highlight=False)
    run_line = docker_run_line(tag, gpu=chosen.hardware.gpu, ulimits=not validation.ulimits_refused)
    out.print(f"  {run_line}", highlight=False)
    raise typer.Exit(EXIT_PROBLEM if problems else EXIT_OK)


def _require_local_image(client, tag: str) -> None:
    """Fail with a one-line error when ``tag`` is not an image of the engine."""
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise fail(f"image {tag} not found locally: build it first or name one with --tag") from None


@app.command()
def explain(
    text: Annotated[str, typer.Argument(help="An error message, or a file holding one (- for stdin).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the ranked candidates as JSON.")] = False,
) -> None:
    """Match an error message (and any report around it) to finding ids, best first. Exit 1 on an error."""
    import json

    from envdoctor.explain import explain_text, render_explanation

    if text == "-" or Path(text).is_file():
        text = _read_input(Path(text))
    result = explain_text(text)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_explanation(result))
    errors = any(d.finding.severity.value == "error" for d in result.candidates)
    raise typer.Exit(EXIT_PROBLEM if errors else EXIT_OK)


@app.command()
def diff(
    reference: Annotated[Path, typer.Argument(help="Facts of the reference node (`check --json` output).")],
    others: Annotated[list[Path], typer.Argument(help="Facts of one or more other nodes.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the differences as JSON.")] = False,
) -> None:
    """Compare facts snapshots; exit 1 if they differ in a way that breaks multi-node training."""
    import json

    from envdoctor import diff as differ
    from envdoctor.facts import FactsError, load_facts

    try:
        ref = load_facts(reference)
        results = [(str(p), differ.compare(ref, load_facts(p))) for p in others]
    except FactsError as exc:
        raise fail(str(exc)) from None
    if as_json:
        rows = [
            {"file": n, "breaking": differ.breaking(d), "differences": differ.to_dict(d)} for n, d in results
        ]
        payload = {"reference": str(reference), "results": rows}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(differ.render(results, str(reference)))
    raise typer.Exit(EXIT_PROBLEM if any(differ.breaking(d) for _, d in results) else EXIT_OK)


@app.command("smoke-train")
def smoke_train(
    task: Annotated[
        str, typer.Option(help="local (short range), recall (long range) or add (2-digit).")
    ] = "local",
    size: Annotated[str, typer.Option(help="Model size: tiny, small or base.")] = "tiny",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 300,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per micro-batch and rank.")] = 64,
    grad_accum: Annotated[int, typer.Option("--grad-accum", help="Micro-batches per step.")] = 1,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Sequence length (recall, local).")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Seed of weights and data.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, bf16, fp16, fp8 or all (a measured table).")] = "fp32",
    attention: Annotated[str, typer.Option(help="pam (progressive attention) or full.")] = "pam",
    stages: Annotated[int, typer.Option(help="PAM stages: 3 or 5.")] = 3,
    nproc: Annotated[int, typer.Option(help="Processes per node; >1 runs under torchrun.")] = 1,
    nnodes: Annotated[str, typer.Option(help="torchrun --nnodes (multi-node needs --rdzv-endpoint).")] = "1",
    rdzv_endpoint: Annotated[str | None, typer.Option("--rdzv-endpoint", help="torchrun host:port.")] = None,
    rdzv_id: Annotated[str, typer.Option("--rdzv-id", help="torchrun rendezvous id.")] = "envdoctor-smoke",
    strategy: Annotated[str, typer.Option(help="ddp, fsdp (FSDP2, ZeRO-3) or deepspeed.")] = "ddp",
    out: Annotated[Path, typer.Option(help="Folder for checkpoints and loss.svg.")] = Path("envdoctor-smoke"),
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoints in --out.")] = False,
    ckpt_every: Annotated[int, typer.Option("--ckpt-every", help="Also checkpoint every N steps.")] = 0,
    min_accuracy: Annotated[float, typer.Option("--min-accuracy", help="Accuracy needed to pass.")] = 0.95,
    python: Annotated[
        Path | None, typer.Option("--python", help="Train with another interpreter (a venv) instead.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before the run is stopped.")] = 900.0,
    inject_inf_at: Annotated[
        int | None, typer.Option("--inject-inf-at", hidden=True, help="Plant an inf loss at this step.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
) -> None:
    """Train the reference model briefly here and check loss, accuracy, precisions, ranks, checkpoints."""
    from envdoctor.smoke import ConfigError, Launch, SmokeConfig
    from envdoctor.smoke import smoke_train as run_smoke_train

    if nproc < 1 or timeout <= 0:
        raise fail("--nproc must be >= 1 and --timeout positive")
    try:
        cfg = SmokeConfig(
            task=task, size=size, steps=steps, batch_size=batch_size, grad_accum=grad_accum, seq_len=seq_len,
            lr=lr, seed=seed, device=device, precision=precision, attention=attention, stages=stages,
            strategy=strategy, out_dir=str(out), resume=resume, ckpt_every=ckpt_every,
            min_accuracy=min_accuracy, inject_inf_at=inject_inf_at,
        )  # fmt: skip
    except ConfigError as exc:
        raise fail(str(exc)) from None
    launch = Launch(
        python=str(python) if python else sys.executable, nproc=nproc, nnodes=nnodes,
        rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id, timeout_s=timeout,
    )  # fmt: skip
    raise typer.Exit(run_smoke_train(cfg, launch, as_json=as_json, plot=out / "loss.svg"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
