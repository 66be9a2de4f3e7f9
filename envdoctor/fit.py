"""Will a training run fit: memory per GPU for weights, gradients, optimizer states and activations.

Model states follow the ZeRO paper's accounting (Rajbhandari et al., 2020) in DeepSpeed's form, so
that ``estimate_zero2_model_states_mem_needs`` / ``estimate_zero3_model_states_mem_needs`` give the
same bytes for the same run (the tests check this against DeepSpeed itself):

* fp32: weights 4, gradients 4, AdamW moments 8 bytes per parameter (8-bit AdamW: 2).
* bf16 / fp8 (mixed precision): 16-bit weights 2 and gradients 2; the optimizer holds fp32 master
  weights 4 and moments 8 (8-bit: 2); with ZeRO >= 1 the gradients add the fp32 partition the
  optimizer steps on (4 / GPUs). fp8 also caches a 1-byte copy of the weights.
* ZeRO-1 shards the optimizer side over the GPUs, ZeRO-2 the 16-bit gradients too, ZeRO-3 the
  weights too and gathers the largest layer (4 bytes per parameter of it: 16-bit weights and
  gradients). FSDP (full shard) keeps fp32 weights,
  gradients and moments sharded (16 bytes / GPUs) and gathers the current and the prefetched layer.

Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
Models") with fused attention (flash / SDPA: no ``s x s`` scores kept) and no dropout, counted in
elements per token and layer: attention 6h (layer-norm output, q, k, v, attention output and its
contiguous copy), MLP h + 2f (GELU) or h + 4f (SwiGLU), layer norms 2h. Full activation
checkpointing keeps each layer's input and recomputes one layer at a time. The loss adds the logits
and their fp32 copy. Measured against real training on CPU in ``tests/test_fit.py``.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from envdoctor.errors import EnvdoctorError
from envdoctor.facts import Facts
from envdoctor.knowledge import load_table

GiB = 1024**3
PRECISIONS = ("fp32", "bf16", "fp8")
OPTIMIZERS = ("adamw", "adamw8bit")
# CUDA context, cuBLAS/NCCL workspaces: memory a GPU reports that training cannot have.
RESERVE_BYTES = 1 * GiB
# Within this share of the usable memory the caching allocator's fragmentation may still break a run.
TIGHT_SHARE = 0.9


class FitError(EnvdoctorError, ValueError):
    """A size, GPU name or option that cannot be estimated: the message says which and why."""


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer, as much of it as memory depends on."""

    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    mlp: str = "swiglu"  # "gelu" (two matrices) or "swiglu" (three)
    tied: bool = False
    name: str = ""

    @property
    def params(self) -> int:
        kv = self.hidden * self.kv_heads // self.heads
        attention = self.hidden * (self.hidden + 2 * kv) + self.hidden * self.hidden
        mlp = (3 if self.mlp == "swiglu" else 2) * self.hidden * self.ffn
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * (attention + mlp + 2 * self.hidden) + embeddings + self.hidden

    @property
    def largest_layer_params(self) -> int:
        """The largest single weight matrix: what ZeRO-3 / FSDP gather at once at the least."""
        return max(self.vocab * self.hidden, self.hidden * self.ffn, self.hidden * self.hidden * 3)


@dataclass(frozen=True)
class Run:
    """One training setup: the knobs ``fit`` reads and may turn."""

    shape: ModelShape
    precision: str = "bf16"
    optimizer: str = "adamw"
    zero: int = 0  # 0 (DDP) .. 3
    fsdp: bool = False  # PyTorch FSDP full shard instead of ZeRO
    gpus: int = 1
    seq_len: int = 2048
    micro_batch: int = 1
    grad_accum: int = 1
    checkpointing: bool = False

    def __post_init__(self) -> None:
        checks = (
            (self.precision in PRECISIONS, f"precision {self.precision!r}: choose {', '.join(PRECISIONS)}"),
            (self.optimizer in OPTIMIZERS, f"optimizer {self.optimizer!r}: choose {', '.join(OPTIMIZERS)}"),
            (0 <= self.zero <= 3, f"ZeRO stage {self.zero}: choose 0, 1, 2 or 3"),
            (self.gpus >= 1 and self.seq_len >= 1, "GPUs and sequence length must be at least 1"),
            (self.micro_batch >= 1 and self.grad_accum >= 1, "micro-batch and grad-accum must be >= 1"),
        )
        for ok, message in checks:
            if not ok:
                raise FitError(message)

    @property
    def strategy(self) -> str:
        return "FSDP (full shard)" if self.fsdp else f"ZeRO-{self.zero}" if self.zero else "DDP"


@dataclass(frozen=True)
class Estimate:
    """Bytes per GPU, by part."""

    weights: int
    gradients: int
    optimizer: int
    gathered: int  # ZeRO-3 / FSDP: layers gathered for compute
    activations: int

    @property
    def model_states(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.gathered

    @property
    def total(self) -> int:
        return self.model_states + self.activations


def model_states(run: Run) -> tuple[int, int, int, int]:
    """(weights, gradients, optimizer, gathered) bytes per GPU."""
    p, n, mixed = run.shape.params, run.gpus, run.precision != "fp32"
    moments = 2 if run.optimizer == "adamw8bit" else 8
    largest = run.shape.largest_layer_params
    if run.fsdp:  # fp32 shards (mixed precision casts a gathered copy for compute)
        compute = (2 if mixed else 4) * 2  # gathered weights and their gradients
        return 4 * p // n, 4 * p // n, moments * p // n, 2 * compute * largest  # current + prefetch
    if not mixed:
        weights, grads, optim = 4 * p, 4 * p, moments * p
        if run.zero >= 1:
            optim //= n
        if run.zero >= 2:
            grads //= n
        if run.zero == 3:
            return weights // n, grads, optim, 8 * largest
        return weights, grads, optim, 0
    fp8_copy = p if run.precision == "fp8" else 0
    master = 4 + moments
    if run.zero == 0:
        return 2 * p + fp8_copy, 2 * p, master * p, 0
    optim, fp32_grads = master * p // n, 4 * p // n  # the fp32 gradient partition the optimizer steps on
    if run.zero == 3:
        return 2 * p // n, fp32_grads, optim, 4 * largest
    grads16 = 2 * p // n if run.zero == 2 else 2 * p
    return 2 * p + fp8_copy, grads16 + fp32_grads, optim, 0


def activations(run: Run) -> int:
    """Activation bytes per GPU at the peak of the backward pass of one micro-batch."""
    s = run.shape
    tokens = run.seq_len * run.micro_batch
    mlp_extra = 4 if s.mlp == "swiglu" else 2
    if run.precision == "fp32":
        per_layer = 4 * (8 * s.hidden + mlp_extra * s.ffn)
    else:
        # fp8 keeps the inputs of the four matmuls (h, h, h, f elements) in 1 byte instead of 2.
        per_layer = 2 * (8 * s.hidden + mlp_extra * s.ffn)
        if run.precision == "fp8":
            per_layer -= 3 * s.hidden + s.ffn
    element = 4 if run.precision == "fp32" else 2
    # Checkpointing keeps each layer's input and recomputes one layer at a time.
    layers = s.layers * element * s.hidden + per_layer if run.checkpointing else s.layers * per_layer
    logits = (element + 4) * s.vocab  # logits and their fp32 copy for the loss
    return tokens * (layers + logits)


def estimate(run: Run) -> Estimate:
    return Estimate(*model_states(run), activations(run))


# ----------------------------------------------------------------------------- sizes and GPUs


def parse_count(text: str) -> int:
    """``"13B"``, ``"1.3e9"``, ``"350M"``, ``"7b"`` -> a parameter count."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbt]?)\s*", text, re.I)
    if not m:
        raise FitError(f"{text!r} is not a parameter count (e.g. 13B, 350M, 1.3e9)")
    scale = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}[m.group(2).lower()]
    count = int(float(m.group(1)) * scale)
    if count < 1:
        raise FitError(f"{text!r}: a model needs at least one parameter")
    return count


def named_shapes() -> dict[str, dict[str, Any]]:
    return {str(r["name"]).upper(): r for r in load_table("model_shapes")}


def shape_for(model: str) -> ModelShape:
    """A named size from the table (``13B``), else a Llama-like shape of that many parameters.

    Llama 2 7B and 13B have about 128 hidden units per layer; with ``h = 128 L`` and SwiGLU's
    ``ffn = 8h/3`` a model has about ``12 L h^2`` parameters, which gives L; then h solves
    ``12 L h^2 + 2 V h = params`` with Llama 2's vocabulary.
    """
    row = named_shapes().get(model.strip().upper())
    if row is not None:
        keys = ("layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "mlp", "tied")
        return ModelShape(**{k: row[k] for k in keys}, name=f"{row['name']} ({row['model']})")
    params, vocab = parse_count(model), 32000
    layers = max(1, round((params / (12 * 128**2)) ** (1 / 3)))
    # 12 L h^2 + 2 V h = params (untied embeddings), solved for h.
    hidden = (-2 * vocab + math.sqrt(4 * vocab**2 + 48 * layers * params)) / (24 * layers)
    hidden = max(64, round(hidden / 64) * 64)
    heads = max(1, hidden // 128)
    ffn = round(8 * hidden / 3 / 64) * 64
    return ModelShape(layers, hidden, ffn, heads, heads, vocab, name=f"{model} (Llama-like shape)")


@dataclass(frozen=True)
class Capacity:
    name: str
    bytes: int  # per GPU, as reported or marketed
    source: str  # "this machine" or the table row's URL

    @property
    def usable(self) -> int:
        return max(0, self.bytes - RESERVE_BYTES)


def named_gpu(name: str) -> Capacity:
    for row in load_table("gpu_memory"):
        if re.search(str(row["match"]), name, re.IGNORECASE):
            return Capacity(str(row["name"]), int(row["memory_gib"]) * GiB, str(row["source"]))
    raise FitError(f"unknown GPU {name!r}: give its memory with --memory-gib")


def capacity_from_facts(facts: Facts) -> Capacity | None:
    """The smallest GPU of the facts (a run is as big as its smallest GPU allows); None without GPUs."""
    sized = [(g.memory_total_mib, g) for g in facts.nvidia.gpus or [] if g.memory_total_mib]
    if not sized:
        return None
    mib, small = min(sized, key=lambda pair: pair[0])
    return Capacity(f"{small.name} (GPU {small.index})", mib * 1024**2, "this machine")


# ----------------------------------------------------------------------------- verdict and advice


def verdict(est: Estimate, capacity: Capacity) -> str:
    """``fits``, ``tight`` (fits, within 10% of the usable memory) or ``does-not-fit``."""
    if est.total > capacity.usable:
        return "does-not-fit"
    return "tight" if est.total > TIGHT_SHARE * capacity.usable else "fits"


@dataclass(frozen=True)
class Change:
    run: Run
    estimate: Estimate
    changes: tuple[str, ...]  # human lines, one per knob turned


# Knobs in the order a user would rather turn them: a ZeRO stage changes no result, checkpointing
# costs a third more compute, a smaller micro-batch (same global batch) costs throughput, 8-bit
# AdamW changes the optimizer, bf16 changes numerics, more GPUs cost money.
def _candidates(run: Run) -> list[tuple[tuple[int, ...], Run]]:
    zeros = [run.zero] if run.fsdp else list(range(run.zero, 4))
    ckpts = [run.checkpointing] if run.checkpointing else [False, True]
    # Divisors of the micro-batch: accumulation then makes up the same global batch exactly.
    batches = [mb for mb in range(run.micro_batch, 0, -1) if run.micro_batch % mb == 0]
    optims = [run.optimizer] if run.optimizer == "adamw8bit" else ["adamw", "adamw8bit"]
    precisions = [run.precision] if run.precision != "fp32" else ["fp32", "bf16"]
    gpus = [run.gpus * k for k in (1, 2, 4, 8, 16, 32, 64)]
    out: list[tuple[tuple[int, ...], Run]] = []
    for z, c, mb, o, pr, g in itertools.product(zeros, ckpts, batches, optims, precisions, gpus):
        # Keep the global batch: fewer accumulation steps on more GPUs, as far as they divide it.
        accum = max(1, global_batch(run) // (mb * g))
        cand = replace(
            run, zero=z, checkpointing=c, micro_batch=mb, grad_accum=accum, optimizer=o, precision=pr, gpus=g
        )
        turned = (z != run.zero, c != run.checkpointing, mb != run.micro_batch, o != run.optimizer) + (
            pr != run.precision,
            g != run.gpus,
        )
        # Fewest knobs first, then the cheapest knobs, then the least turn of each.
        cost = (sum(turned), sum(i for i, t in enumerate(turned, 1) if t), -mb, g, z)
        out.append((cost, cand))
    return out


def global_batch(run: Run) -> int:
    return run.micro_batch * run.grad_accum * run.gpus


def smallest_change(run: Run, capacity: Capacity) -> Change | None:
    """The cheapest set of knob turns that makes ``run`` fit (not tight) on ``capacity``; None if none."""
    fitting = [
        (cost, cand)
        for cost, cand in _candidates(run)
        if cand != run and verdict(estimate(cand), capacity) == "fits"
    ]
    if not fitting:
        return None
    _, best = min(fitting, key=lambda x: x[0])
    return Change(best, estimate(best), _describe(run, best))


def _describe(old: Run, new: Run) -> tuple[str, ...]:
    lines = []
    if new.zero != old.zero:
        lines.append(f"ZeRO stage {old.zero} -> {new.zero}")
    if new.checkpointing != old.checkpointing:
        lines.append("turn on activation checkpointing")
    if new.micro_batch != old.micro_batch:
        lines.append(f"micro-batch {old.micro_batch} -> {new.micro_batch}")
    if new.grad_accum != old.grad_accum:
        lines.append(f"gradient accumulation {old.grad_accum} -> {new.grad_accum}")
    if new.optimizer != old.optimizer:
        lines.append("8-bit AdamW (bitsandbytes) instead of AdamW")
    if new.precision != old.precision:
        lines.append(f"precision {old.precision} -> {new.precision}")
    if new.gpus != old.gpus:
        lines.append(f"{old.gpus} -> {new.gpus} GPUs")
    return tuple(lines)


# ----------------------------------------------------------------------------- output


def gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


def to_dict(run: Run, est: Estimate, capacity: Capacity | None, change: Change | None) -> dict[str, Any]:
    parts = asdict(est)
    out: dict[str, Any] = {
        "run": asdict(run) | {"params": run.shape.params, "strategy": run.strategy},
        "per_gpu_bytes": parts | {"total": est.total},
        "capacity": asdict(capacity) | {"usable": capacity.usable} if capacity else None,
        "verdict": verdict(est, capacity) if capacity else "unknown",
    }
    if change is not None:
        out["smallest_change"] = {"changes": list(change.changes), "total": change.estimate.total}
        out["smallest_change"]["run"] = asdict(change.run)
    return out


def render(run: Run, est: Estimate, capacity: Capacity | None, change: Change | None) -> str:
    s = run.shape
    ckpt = "with" if run.checkpointing else "without"
    lines = [
        f"{s.name or 'model'}: {s.params / 1e9:.2f}B parameters, {s.layers} layers, hidden {s.hidden}",
        f"{run.precision}, {run.optimizer}, {run.strategy} on {run.gpus} GPU(s), sequence {run.seq_len}, "
        f"micro-batch {run.micro_batch} x {run.grad_accum} accumulation, {ckpt} activation checkpointing",
        "",
        "memory per GPU:",
    ]
    rows = [
        ("weights", est.weights),
        ("gradients", est.gradients),
        ("optimizer states", est.optimizer),
    ]
    if est.gathered:
        rows.append(("gathered layers", est.gathered))
    rows += [("activations", est.activations), ("total", est.total)]
    lines += [f"  {name:<17} {gib(value):>11}" for name, value in rows]
    lines.append("")
    if capacity is None:
        lines.append(
            "no GPU memory known (no NVIDIA GPU with a memory size in the facts): name one with --gpu or --memory-gib"
        )
        return "\n".join(lines) + "\n"
    v = verdict(est, capacity)
    words = {"fits": "fits", "tight": "fits, but tightly", "does-not-fit": "does NOT fit"}[v]
    lines.append(
        f"{words}: {gib(est.total)} of {gib(capacity.usable)} usable on {capacity.name} "
        f"({gib(capacity.bytes)} less {gib(RESERVE_BYTES)} for the CUDA context)"
    )
    if v != "fits":
        if change is None:
            lines.append(
                "no combination of ZeRO, checkpointing, micro-batch, 8-bit AdamW, bf16, up to 64x GPUs fits"
            )
        else:
            lines.append(f"smallest change that fits ({gib(change.estimate.total)} per GPU):")
            lines += [f"  - {c}" for c in change.changes]
            before, after = global_batch(run), global_batch(change.run)
            if before == after:
                lines.append(f"  global batch kept at {before} sequences")
            else:
                lines.append(
                    f"  global batch {before} -> {after} sequences (more GPUs than accumulation steps)"
                )
    return "\n".join(lines) + "\n"
