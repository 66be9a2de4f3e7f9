"""``fit``: will a training run fit in GPU memory, and the smallest change that makes it fit.

Touches: reads --facts, else starts the probes (child processes, see envdoctor.probes). Writes nothing.

Parses options and renders; the work is envdoctor.fit (the estimator).
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, EXIT_PROBLEM


def register(app: typer.Typer) -> None:
    o.command(app, "fit")(fit)


def fit(
    model: Annotated[
        str,
        typer.Option(
            help="A named size (125M, 1B, 3B, 7B, 8B, 13B, 70B) or a count (350M).", show_default=False
        ),
    ],
    precision: Annotated[str, typer.Option(click_type=o.FIT_PRECISIONS, help="Training precision.")] = "bf16",
    optimizer: Annotated[str, typer.Option(help="adamw or adamw8bit (bitsandbytes).")] = "adamw",
    zero: Annotated[int, typer.Option(help="ZeRO stage 0 (DDP), 1, 2 or 3.")] = 0,
    fsdp: Annotated[bool, typer.Option("--fsdp", help="PyTorch FSDP full shard instead of ZeRO.")] = False,
    gpus: Annotated[int, typer.Option(help="GPUs in the run (all nodes).")] = 1,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence.")] = 2048,
    micro_batch: Annotated[int, typer.Option(help="Sequences per GPU and micro-batch.")] = 1,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    checkpointing: Annotated[
        bool, typer.Option("--checkpointing", help="Full activation checkpointing.")
    ] = False,
    gpu: Annotated[
        str | None,
        typer.Option(
            help="Judge against this GPU model (H100, A100 40GB, RTX 4090, ...) instead of this machine's."
        ),
    ] = None,
    memory_gib: Annotated[float | None, typer.Option(help="Judge against this much memory per GPU.")] = None,
    facts: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Judge against the GPUs of a `check --json` file.")
    ] = None,
    as_json: o.Json = False,
    fmt: o.TextOrJson = None,
) -> int:
    """Will a training run fit: memory per GPU, the verdict, and the smallest change that fits.

    Exit 1 when it does not fit the GPU (this machine's, --facts, --gpu or --memory-gib).
    """
    import json

    from envdoctor import fit as estimator
    from envdoctor.sources import gather_facts

    as_json = o.one_format(as_json, fmt) == "json"
    run = estimator.Run(
        estimator.shape_for(model), precision=precision, optimizer=optimizer, zero=zero, fsdp=fsdp,
        gpus=gpus, seq_len=seq_len, micro_batch=micro_batch, grad_accum=grad_accum,
        checkpointing=checkpointing,
    )  # fmt: skip
    capacity: estimator.Capacity | None
    if memory_gib is not None:
        if not 0 < memory_gib < 1e9:  # NaN compares false
            raise estimator.FitError("--memory-gib must be a positive number of GiB")
        capacity = estimator.Capacity(f"{memory_gib:g} GiB GPU", int(memory_gib * 2**30), "--memory-gib")
    elif gpu is not None:
        capacity = estimator.named_gpu(gpu)
    else:
        capacity = estimator.capacity_from_facts(gather_facts(None, facts, quick=True))
    est = estimator.estimate(run)
    verdict = estimator.verdict(est, capacity) if capacity else "unknown"
    tight = verdict in ("tight", "does-not-fit")
    change = estimator.smallest_change(run, capacity) if tight and capacity is not None else None
    if as_json:
        sys.stdout.write(json.dumps(estimator.to_dict(run, est, capacity, change), indent=2) + "\n")
    else:
        sys.stdout.write(estimator.render(run, est, capacity, change))
    return EXIT_PROBLEM if verdict == "does-not-fit" else EXIT_OK
