"""``fleet``: check a whole cluster (Slurm or Kubernetes) and find the odd node (docs/fleet.md).

Touches: ``fleet run``/``smoke`` start Slurm jobs (srun, sbatch) whose nodes write into --out;
``report`` reads files or stdin; ``manifest``/``health-script`` only print. Nothing on this node is changed.

Parses options and renders; the work is envdoctor.fleet (hostlists, Slurm, k8s, the verdict).
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, EXIT_PROBLEM, UsageError

# The Slurm options of `fleet run` and `fleet smoke`.
Slurm = Annotated[bool, typer.Option("--slurm", help="Run through Slurm (srun/sbatch).", show_default=False)]
Nodes = Annotated[int, typer.Option("-N", "--nodes", help="Number of nodes.", show_default=False)]
Partition = Annotated[str | None, typer.Option("-p", "--partition", help="Slurm partition.")]
TimeLimit = Annotated[str | None, typer.Option("-t", "--time", help="Slurm time limit (--time).")]
JobTimeout = Annotated[float, typer.Option("--timeout", help="Seconds before envdoctor stops the job.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the Slurm command, run nothing.")]
GroupBy = Annotated[
    str | None,
    typer.Option("--group-by", metavar="KEY", help="Judge each group of a mixed fleet on its own."),
]
VerdictJson = Annotated[
    bool, typer.Option("--json", help="Print the verdict as JSON. Same as --format json.")
]


def register(app: typer.Typer) -> None:
    group = o.new_app()
    group.callback(invoke_without_command=True)(fleet)
    for name, function in (
        ("report", fleet_report),
        ("run", fleet_run),
        ("smoke", fleet_smoke),
        ("health-script", fleet_health_script),
        ("manifest", fleet_manifest),
    ):
        o.command(group, name)(function)
    app.add_typer(group, name="fleet")


def fleet(ctx: typer.Context) -> None:
    """Check a whole cluster: run a check on every node, find the odd node (docs/fleet.md)."""
    if ctx.invoked_subcommand is None:
        raise UsageError(
            "choose a subcommand: envdoctor fleet report|run|smoke|manifest|health-script (see --help)"
        )


def _expected(value: str | None) -> int | list[str] | None:
    from envdoctor.fleet.hostlist import expand

    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        return expand(value)
    except ValueError as exc:
        raise UsageError(f"--expect: {exc}") from None


def fleet_report(
    source: Annotated[
        Path, typer.Argument(help="Folder of {host}.json check results, or a log of the k8s Job.")
    ],
    expect: Annotated[
        str | None,
        typer.Option(metavar="N|HOSTLIST", help="Nodes expected: a count or a Slurm host list."),
    ] = None,
    group_by: GroupBy = None,
    as_json: VerdictJson = False,
    fmt: o.TextJsonHtml = None,
) -> int:
    """The fleet verdict from one `check --json` file per node: majority baseline, odd nodes, findings.

    Exit 0 all nodes consistent and healthy, 1 odd, broken, unknown or missing nodes, 2 unreadable input.
    """
    return _fleet_verdict(source, _expected(expect), group_by, o.one_format(as_json, fmt))


def _fleet_verdict(source: Path, expected: int | list[str] | None, group_by: str | None, fmt: str) -> int:
    import json

    from envdoctor.fleet import report as fleet_verdict

    keys = fleet_verdict.group_keys()
    if group_by is not None and group_by not in keys:
        raise UsageError(f"--group-by {group_by!r}: choose one of {', '.join(keys)}")
    nodes = fleet_verdict.read_nodes(source)
    if not nodes:
        raise UsageError(f"{source}: no *.json node results in this folder")
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
        raise UsageError(f"--out {path}: {exc.strerror or exc}") from None


def _fresh_out(out: Path) -> None:
    if out.is_dir() and any(out.glob("*.json")):
        raise UsageError(f"{out} already holds node results: choose a new --out folder")


def fleet_run(
    slurm_: Slurm,
    nodes: Nodes,
    out: Annotated[Path, typer.Option(help="Shared folder for the {host}.json results.", show_default=False)],
    partition: Partition = None,
    time_limit: TimeLimit = None,
    timeout: JobTimeout = 1800.0,
    dry_run: DryRun = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="check --quick on every node (no torch import).")
    ] = False,
    python: Annotated[
        str | None, typer.Option(help="Interpreter to check on each node ({host} becomes the node's name).")
    ] = None,
    group_by: GroupBy = None,
    as_json: VerdictJson = False,
    fmt: o.TextJsonHtml = None,
) -> int:
    """Run `check --json` on N nodes through srun, then give the fleet verdict of what they wrote.

    Prints the srun command first. Exit as `fleet report`: 0 consistent and healthy, 1 not, 2 bad usage.
    """
    from envdoctor.fleet import slurm

    if nodes < 1:
        raise UsageError("-N must be >= 1")
    _fresh_out(out)
    fmt = o.one_format(as_json, fmt)
    alloc = slurm.Allocation(nodes, partition, time_limit)
    cmd = slurm.check_command(alloc, out, quick=quick, python=python)
    print(f"+ {slurm.shown(cmd)}", file=sys.stderr, flush=True)
    if dry_run:
        return EXIT_OK
    _make_folder(out)
    log = out / "srun.log"
    try:
        _code, stopped = slurm.run(cmd, timeout, log)
    except OSError as exc:
        raise UsageError(str(exc)) from None
    if stopped:
        print(f"envdoctor: srun {stopped}", file=sys.stderr)
    print(f"srun's output: {log}", file=sys.stderr)
    return _fleet_verdict(out, nodes, group_by, fmt)


def fleet_smoke(
    slurm_: Slurm,
    nodes: Nodes,
    out: Annotated[Path, typer.Option(help="Shared folder for each node's verdict.", show_default=False)],
    partition: Partition = None,
    time_limit: TimeLimit = None,
    timeout: JobTimeout = 1800.0,
    dry_run: DryRun = False,
    nproc: Annotated[int, typer.Option(help="Processes (GPUs) per node.")] = 1,
    port: Annotated[int, typer.Option(help="Rendezvous port on the first node.")] = 29500,
    slow_factor: Annotated[float, typer.Option(help="Flag nodes slower than this x median.")] = 1.5,
    train_args: Annotated[str, typer.Option(help="More smoke-train options, e.g. '--steps 100'.")] = "",
    as_json: VerdictJson = False,
    fmt: o.TextOrJson = None,
) -> int:
    """Train on N nodes at once through sbatch and torchrun; every node's verdict, slow nodes flagged.

    One smoke-train per node meets at a c10d rendezvous on the job's first node (--rdzv-id is the job
    id). Reports each node's verdict, the all-reduce bus bandwidth and each node's step time.
    Exit 0 every node passed, agrees and none is slow, 1 otherwise, 2 bad usage.
    """
    import json
    import shlex

    from envdoctor.fleet import slurm, smoke

    as_json = o.one_format(as_json, fmt) == "json"
    if nodes < 1 or nproc < 1 or slow_factor <= 1:
        raise UsageError("-N and --nproc must be >= 1, --slow-factor > 1")
    _fresh_out(out)
    try:
        more = shlex.split(train_args)
    except ValueError as exc:
        raise UsageError(f"--train-args: {exc}") from None
    alloc = slurm.Allocation(nodes, partition, time_limit)
    script = smoke.sbatch_script(alloc, out, nproc, slurm.envdoctor_command(), more, port)
    if dry_run:
        sys.stdout.write(script)
        return EXIT_OK
    path = out / "envdoctor-smoke.sbatch"
    _make_folder(out)
    try:
        path.write_text(script)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    print(f"+ sbatch --parsable --wait {path}", file=sys.stderr, flush=True)
    code, job, stopped = slurm.submit_and_wait(path, timeout)
    if stopped:
        print(f"envdoctor: job {job} {stopped}; cancelled", file=sys.stderr)
    verdict = smoke.gather(out, nodes, slow_factor)
    if as_json:
        sys.stdout.write(json.dumps({"job": job, **smoke.to_dict(verdict)}, indent=2) + "\n")
    else:
        sys.stdout.write(f"job {job} exited with status {code}\n" + smoke.render_text(verdict))
    return EXIT_OK if verdict.ok else EXIT_PROBLEM


def fleet_manifest(
    k8s: Annotated[bool, typer.Option("--k8s", help="A Kubernetes Indexed Job.", show_default=False)],
    nodes: Annotated[
        int, typer.Option("-N", "--nodes", help="Number of nodes (one pod each).", show_default=False)
    ],
    image: Annotated[
        str, typer.Option(help="An image with envdoctor and the stack to check.", show_default=False)
    ],
    gpus_per_node: Annotated[int, typer.Option(help="nvidia.com/gpu per pod (0: none).")] = 1,
    name: Annotated[str, typer.Option(help="Job name.")] = "envdoctor-fleet",
    namespace: Annotated[str | None, typer.Option(help="Namespace.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="check --quick (no torch import).")] = False,
    results_pvc: Annotated[
        str | None, typer.Option(metavar="CLAIM", help="Also write <node>.json into this shared claim.")
    ] = None,
    node_selector: Annotated[
        list[str], typer.Option(metavar="KEY=VALUE", help="Repeatable.", show_default=False)
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
) -> int:
    """Print a Kubernetes Indexed Job that runs `envdoctor check` on N nodes, one pod per node.

    Apply it with kubectl; its `kubectl logs` are what `fleet report` reads (docs/fleet.md).
    """
    from envdoctor.fleet.k8s import JobSpec, render

    if nodes < 1 or gpus_per_node < 0:
        raise UsageError("-N must be >= 1 and --gpus-per-node >= 0")
    selector = dict(item.partition("=")[::2] for item in node_selector)
    if any(not k or not v for k, v in selector.items()):
        raise UsageError("--node-selector takes KEY=VALUE")
    spec = JobSpec(nodes, image, name, namespace, gpus_per_node, quick, results_pvc, selector)
    sys.stdout.write(render(spec))
    return EXIT_OK


def fleet_health_script() -> int:
    """Print the Slurm HealthCheckProgram wrapper (drains a broken node with the finding as reason).

    envdoctor fleet health-script > /usr/local/sbin/envdoctor-health (docs/fleet.md has the slurm.conf).
    """
    from importlib.resources import files

    sys.stdout.write(files("envdoctor.fleet").joinpath("envdoctor-health.sh").read_text(encoding="utf-8"))
    return EXIT_OK
