"""``smoke-train`` (train the reference model briefly and judge it), and the --smoke options of check/fix.

Touches: starts training processes (the target interpreter, torchrun workers that meet on a rendezvous
port: local, or --rdzv-endpoint), writes checkpoints and loss.svg under --out (default ~/.cache/envdoctor/smoke-train).

Parses options; the work is envdoctor.smoke (training) and envdoctor.proof (a smoke-train as a verdict).
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import UsageError

if TYPE_CHECKING:
    from envdoctor.proof import Proof, SmokeOptions


def register(app: typer.Typer) -> None:
    o.command(app, "smoke-train")(smoke_train)


def smoke_options(device: str, precision: str, nproc: int, timeout: float | None) -> "SmokeOptions":
    """The --smoke options of a command line (proof.SmokeOptions), checked before anything runs."""
    from envdoctor.proof import SmokeOptions, validate

    options = SmokeOptions(device, precision, nproc, timeout or 900.0)
    validate(options)
    return options


def run_smoke(python: str, options: "SmokeOptions", quiet: bool) -> "Proof":
    """A smoke-train of ``python`` as a verdict; says what it runs unless ``quiet``."""
    from envdoctor.proof import smoke

    if not quiet:
        announce_smoke(python, options)
    return smoke(python, options)


def announce_smoke(python: str, options: "SmokeOptions") -> None:
    """The line printed before a smoke-train that proves an environment (``check`` / ``fix --smoke``)."""
    import sys

    print(f"smoke-train with {python} ({options.device}, {options.precision}, up to {options.timeout:g} s)")
    sys.stdout.flush()


def smoke_train(
    task: Annotated[
        str,
        typer.Option(
            click_type=o.TASKS, help="local (short range), recall, assoc (long range) or add (2-digit)."
        ),
    ] = "local",
    size: Annotated[str, typer.Option(click_type=o.SIZES, help="Model size.")] = "tiny",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Examples per micro-batch and rank.")] = 64,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per step.")] = 1,
    seq_len: Annotated[int, typer.Option(help="Sequence length (recall, local).")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Seed of weights and data.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[
        str, typer.Option(click_type=o.SMOKE_PRECISIONS, help="all: a measured table of every precision.")
    ] = "fp32",
    attention: Annotated[
        str, typer.Option(click_type=o.ATTENTIONS, help="pam (progressive attention) or full.")
    ] = "pam",
    stages: Annotated[int, typer.Option(help="PAM stages: 3 or 5.")] = 3,
    nproc: Annotated[int, typer.Option(help="Processes per node; >1 runs under torchrun.")] = 1,
    nnodes: Annotated[str, typer.Option(help="torchrun --nnodes (multi-node needs --rdzv-endpoint).")] = "1",
    rdzv_endpoint: Annotated[str | None, typer.Option(help="torchrun host:port.")] = None,
    rdzv_id: Annotated[str, typer.Option(help="torchrun rendezvous id.")] = "envdoctor-smoke",
    strategy: Annotated[
        str, typer.Option(click_type=o.STRATEGIES, help="ddp, fsdp (FSDP2, ZeRO-3) or deepspeed.")
    ] = "ddp",
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for checkpoints and loss.svg (default: ~/.cache/envdoctor/smoke-train)."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoints in --out.")] = False,
    ckpt_every: Annotated[int, typer.Option(help="Also checkpoint every N steps.")] = 0,
    min_accuracy: Annotated[float, typer.Option(help="Accuracy needed to pass.")] = 0.95,
    python: Annotated[
        Path | None, typer.Option("--python", help="Train with another interpreter (a venv) instead.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            parser=o.seconds,
            metavar="SECONDS",
            help="Seconds before the run is stopped (default: scaled to the work).",
        ),
    ] = None,
    inject_inf_at: Annotated[
        int | None, typer.Option(hidden=True)
    ] = None,  # an inf loss at this step (tests)
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only JSON on stdout. Same as --format json.")
    ] = False,
    fmt: o.TextOrJson = None,
) -> int:
    """Train the reference model briefly here and check loss, accuracy, precisions, ranks, checkpoints."""
    from envdoctor.smoke import Launch, SmokeConfig
    from envdoctor.smoke import smoke_train as run_smoke_train
    from envdoctor.sources import target_python

    as_json = o.one_format(as_json, fmt) == "json"
    if nproc < 1 or (timeout is not None and timeout <= 0):
        raise UsageError("--nproc must be >= 1 and --timeout positive")
    cfg = SmokeConfig(
        task=task, size=size, steps=steps, batch_size=batch_size, grad_accum=grad_accum, seq_len=seq_len,
        lr=lr, seed=seed, device=device, precision=precision, attention=attention, stages=stages,
        strategy=strategy, out_dir=str(out or ""), resume=resume, ckpt_every=ckpt_every,
        min_accuracy=min_accuracy, inject_inf_at=inject_inf_at,
    )  # fmt: skip
    launch = Launch(
        python=target_python(python), nproc=nproc, nnodes=nnodes, rdzv_endpoint=rdzv_endpoint,
        rdzv_id=rdzv_id, timeout_s=timeout or cfg.default_timeout(nproc),
    )  # fmt: skip
    return run_smoke_train(cfg, launch, as_json=as_json, plot=Path(cfg.out_dir) / "loss.svg")
