"""Process group, model wrapping (DDP / FSDP2) and the cross-rank checks of a smoke-train run.

Workers started by ``torchrun`` find RANK / WORLD_SIZE / LOCAL_RANK in the environment; a single
process run has none and never creates a process group. gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str | None  # None for a single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_node_main(self) -> bool:
        """The first process of its node: it reports the node's verdict and keeps the node's checkpoint."""
        return self.local_rank == 0


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def setup(requested_device: str, timeout_s: float = 300.0) -> Dist:
    """Join the process group torchrun prepared (if any) and choose this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    backend = None
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return Dist(rank, world, local_rank, device, backend)


def teardown(ctx: Dist) -> None:
    if ctx.backend is not None and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: Dist, strategy: str) -> nn.Module:
    """DDP (bucket views for gradients, no extra copy) or FSDP2 (torch's ZeRO-3) when world > 1."""
    if ctx.world == 1:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in cast(nn.ModuleList, model.blocks):  # the reference model's transformer blocks
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def reduce_flags(values: list[float], ctx: Dist) -> list[float]:
    """Sum small per-rank numbers over all ranks (stop / bad-step flags, losses): one collective."""
    if ctx.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()


def gather_tensors(t: torch.Tensor, ctx: Dist) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped tensor, on the CPU.

    Plain tensor collectives, not ``all_gather_object``: that one pickles through numpy, which torch
    does not depend on, so it fails in an environment without numpy.
    """
    if ctx.world == 1:
        return [t]
    local = t.to(ctx.device)
    out = [torch.empty_like(local) for _ in range(ctx.world)]
    dist.all_gather(out, local)
    return [x.cpu() for x in out]


def full_parameters(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter as a full tensor (FSDP2 shards are all-gathered: a collective on all ranks)."""
    params = []
    for name, p in unwrap(model).named_parameters():
        t = p.detach()
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        params.append((name, t))
    return params


def checksum(tensors: list[tuple[str, torch.Tensor]]) -> int:
    """A bit-exact checksum: the raw float32 bits weighted by position, summed as integers."""
    total = 0
    for i, (_, t) in enumerate(tensors):
        bits = t.float().contiguous().view(torch.int32).flatten().to(torch.int64).cpu()
        weights = torch.arange(1, bits.numel() + 1, dtype=torch.int64) % 1_000_003 + i + 1
        total = (total + int((bits * weights).sum())) % (1 << 61)
    return total


def bus_bandwidth(ctx: Dist, mib: int = 8, iters: int = 5) -> float:
    """All-reduce bus bandwidth in GB/s, as nccl-tests define it: bytes x 2(n-1)/n / time per call.

    The same figure on every rank (the collective waits for the slowest link), so a fleet compares it
    between jobs, not between the nodes of one job.
    """
    t = torch.ones(mib * 2**20 // 4, dtype=torch.float32, device=ctx.device)
    dist.all_reduce(t)  # warm-up: connections and buffers
    _sync(ctx)
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(t)
    _sync(ctx)
    per_call = (time.perf_counter() - start) / iters
    return t.numel() * 4 * 2 * (ctx.world - 1) / ctx.world / per_call / 1e9


def _sync(ctx: Dist) -> None:
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
