"""The training run of smoke-train, executed inside a worker process (one per rank).

For each requested precision: build the reference model with the same seed on every rank, train
with AdamW, gradient accumulation, clipping at 1.0 and a NaN/Inf guard that stops at the first bad
step, checkpoint atomically, evaluate exact-match accuracy, check that all ranks hold identical
parameters and that the checkpoint reloads into a fresh model with identical outputs.
Returns plain data (figures); :mod:`envdoctor.smoke.verdict` turns them into checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import math
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch.nn.parallel import DistributedDataParallel

from envdoctor.smoke import checkpoint, distributed, threads
from envdoctor.smoke.config import INIT_TOLERANCE, PROBE_TASK, SIZES, SmokeConfig
from envdoctor.smoke.distributed import Dist
from envdoctor.smoke.fp8 import convert_to_float8, fp8_support
from reference_model import VOCAB_SIZE, PAMConfig, PAMTransformer, Task, exact_match, make_task, select_kernel

Emit = Callable[..., None]  # emit(event_name, **fields)
WARMUP_STEPS = 50
EVAL_CHUNK = 256
ROUND_TRIP_TOLERANCE = 1e-6
CAUSALITY_EXAMPLES = 32
# Largest change of a logit before the cut, as a fraction of the largest change after it. 0 for
# fp32 / bf16 / fp16: no computation of an earlier position reads a later one. fp8 scales each tensor
# by its amax over all positions, so a later token moves earlier logits by rounding steps (measured
# 2.3–2.8 % of the change after the cut); reading ahead moves them as much as the later ones.
CAUSAL_TOLERANCE = {"fp32": 0.0, "bf16": 0.0, "fp16": 0.0, "fp8": 0.1}


@dataclass
class StopSignal:
    """Set by a signal handler (or a caller) to stop after the current step with a checkpoint."""

    requested: bool = False


def model_config(cfg: SmokeConfig, task: Task) -> PAMConfig:
    """The reference model for this task: short inputs get smaller blocks and windows.

    Beyond the window a token is seen only through a block mean, which cannot say which token it
    was: without the selected branch PAM stayed at chance on recall at 64 tokens (10.5 % vs 100 %
    for full attention). With it, the selection is chosen by the block means' scores, where one
    token weighs 1/b: blocks of 8 gave 82 / 100 / 100 % over 3 seeds, blocks of 4 100 % on each.
    Below 64 tokens the tasks that ask for an exact token (local, add) hold it within the window;
    blocks of 4 at 32 tokens (the default run) raised fp8's causality leak (per-tensor scaling, see
    CAUSAL_TOLERANCE) from 2.6 % to 12.4 % of the change after the cut, so 8 stay there.
    """
    n_layer, n_head, n_embd = SIZES[cfg.size]
    few_blocks = task.length < 32 or 64 <= task.length < 128  # add; selection among few blocks
    return PAMConfig(
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        block_size=task.length,
        attention=cfg.attention,
        stages=cfg.stages,
        compress_block=4 if few_blocks else 8,
        window=8 if task.length < 64 else 16,
        select_blocks=2 if task.length >= 64 else 0,
    )


def learning_rate(step: int, cfg: SmokeConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < WARMUP_STEPS:
        return cfg.lr * (step + 1) / WARMUP_STEPS
    frac = (step - WARMUP_STEPS) / max(1, cfg.steps - WARMUP_STEPS)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(frac, 1.0))))


def autocast(precision: str, device: torch.device):
    """bf16 / fp16 through autocast; fp32 and fp8 (whose layers pick their own dtype) run plain."""
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def precision_support(precision: str, device: torch.device) -> str | None:
    """None when this precision runs on this device, else a finding id (fp8-unsupported, ...)."""
    if precision == "fp8":
        return fp8_support(device)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "bf16-unsupported"
    if precision in ("bf16", "fp16"):
        try:
            with autocast(precision, device):
                torch.nn.functional.linear(
                    torch.ones(2, 16, device=device), torch.ones(16, 16, device=device)
                )
        except (RuntimeError, NotImplementedError):
            return f"{precision}-unsupported"
    return None


def build_model(mcfg: PAMConfig, precision: str, seed: int, device: torch.device) -> PAMTransformer:
    torch.manual_seed(seed)  # identical initial weights on every rank
    model = PAMTransformer(mcfg).to(device)
    if precision == "fp8":
        convert_to_float8(model)
    return model


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, precision: str, device: torch.device):
    """(logits on CPU, mean loss, exact-match accuracy) over the fixed evaluation set."""
    model.eval()
    logits, losses = [], []
    for i in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[i : i + EVAL_CHUNK].to(device), y[i : i + EVAL_CHUNK].to(device)
        with autocast(precision, device):
            out, loss = model(xb, yb)
        logits.append(out.float().cpu())
        losses.append(loss.item() * len(xb))
    model.train()
    all_logits = torch.cat(logits)
    return all_logits, sum(losses) / len(x), exact_match(all_logits, y).float().mean().item()


@torch.no_grad()
def causality(model, x: torch.Tensor, precision: str, device: torch.device) -> dict[str, Any]:
    """Change every token after position t: the logits up to t must not move (three cut points).

    A kernel that ignores the causal mask still learns (by looking ahead) and passes every other
    check; this one compares logits of the trained model, so it catches it under the run's precision.
    """
    model.eval()
    x = x[:CAUSALITY_EXAMPLES].to(device)
    T = x.shape[1]
    leak = after = 0.0
    for t in sorted({max(0, T // 4), T // 2, max(0, 3 * T // 4 - 1)}):
        changed = x.clone()
        changed[:, t + 1 :] = (x[:, t + 1 :] + 1 + torch.arange(T - t - 1, device=device) % 5) % VOCAB_SIZE
        with autocast(precision, device):
            a, b = model(x)[0].float(), model(changed)[0].float()
        diff = (a - b).abs()
        leak = max(leak, diff[:, : t + 1].max().item())
        after = max(after, diff[:, t + 1 :].max().item() if t + 1 < T else 0.0)
    model.train()
    return {"max_diff_before": leak, "max_diff_after": after, "tolerance": CAUSAL_TOLERANCE[precision]}


def init_agreement(cfg: SmokeConfig, mcfg: PAMConfig, batch, device: torch.device) -> dict[str, Any]:
    """Loss of the freshly initialised model under each low precision vs fp32 (same weights, batch)."""
    x, y = (t[:64].to(device) for t in batch)
    base = build_model(mcfg, "fp32", cfg.seed, device)
    with torch.no_grad():
        ref = base(x, y)[1].item()
    out = {}
    for precision in cfg.precisions:
        if precision == "fp32" or precision_support(precision, device):
            continue
        model = build_model(mcfg, precision, cfg.seed, device)
        with torch.no_grad(), autocast(precision, device):
            loss = model(x, y)[1].item()
        rel = abs(loss - ref) / abs(ref)
        out[precision] = {
            "fp32_loss": ref,
            "loss": loss,
            "rel_diff": rel,
            "tolerance": INIT_TOLERANCE[precision],
        }
    return out


class PeakMemory:
    """Peak memory of one training run.

    CUDA: ``torch.cuda.max_memory_allocated`` (reset per run). CPU: growth of the process's peak
    resident set (VmHWM in /proc/self/status, reset by writing 5 to /proc/self/clear_refs) over the
    resident size at the start of the run: model, optimizer state, activations and allocator caches.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "cuda max_memory_allocated" if device.type == "cuda" else "peak RSS growth (VmHWM)"
        self.start = 0
        gc.collect()  # drop the previous run's model before measuring this one
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so RSS starts low
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")
            self.start = self._status("VmRSS")

    @staticmethod
    def _status(key: str) -> int:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def peak_bytes(self) -> int | None:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        peak = self._status("VmHWM")
        return max(0, peak - self.start) if peak else None


class TorchSteps:
    """The optimizer side of the loop for one process, DDP and FSDP2: AdamW, GradScaler, clipping.

    :class:`envdoctor.smoke.zero3.DeepSpeedSteps` has the same methods for a DeepSpeed engine, so
    one training loop serves every strategy.
    """

    def __init__(self, model, cfg: SmokeConfig, precision: str, ctx: Dist) -> None:
        self.model = distributed.wrap(model, ctx, cfg.strategy)
        self.dtype = torch.float32
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0
        )
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=precision == "fp16")
        self.grad_scaling = self.scaler.is_enabled()
        self._accum = cfg.grad_accum
        self._is_ddp = hasattr(self.model, "no_sync")

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def micro(self, last: bool):
        """DDP: no gradient all-reduce on all but the last micro-batch (``no_sync``)."""
        if self._is_ddp and not last:
            return cast(DistributedDataParallel, self.model).no_sync()
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss / self._accum).backward()

    def grad_norm(self) -> float:
        """Unscale and clip at 1.0; the norm before clipping (a full norm under FSDP2)."""
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def discard(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def update(self) -> bool:
        """Step and clear the gradients; True when the grad scaler skipped the step (fp16 overflow)."""
        scale_before = self.scaler.get_scale() if self.grad_scaling else 1.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return self.grad_scaling and self.scaler.get_scale() < scale_before

    def full_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return distributed.full_parameters(self.model)

    def state(self, path: Path, step: int) -> dict[str, Any]:
        """Full model, optimizer and grad-scaler states (a collective under FSDP2)."""
        model_sd, optim_sd = checkpoint.model_optimizer_state(self.model, self.optimizer)
        return {"model": model_sd, "optimizer": optim_sd, "scaler": self.scaler.state_dict()}

    def load(self, state: dict[str, Any], path: Path) -> None:
        checkpoint.restore(self.model, self.optimizer, state["model"], state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])


def make_steps(model, cfg: SmokeConfig, precision: str, ctx: Dist):
    """DeepSpeed ZeRO-3 for ``--strategy deepspeed`` with several processes, else torch's own."""
    if cfg.strategy == "deepspeed" and ctx.world > 1:
        from envdoctor.smoke.zero3 import DeepSpeedSteps

        return DeepSpeedSteps(model, cfg, precision, ctx)
    return TorchSteps(model, cfg, precision, ctx)


def _save(path: Path, steps, gen, step, history, fp, ctx: Dist) -> None:
    """Gather full states (collective) and let each node's first rank write them atomically: nodes
    may not share a file system, and on a shared one the copies are identical."""
    states = steps.state(path, step)
    generators = distributed.gather_tensors(gen.get_state(), ctx)
    if ctx.is_node_main:
        state = {"fingerprint": fp, "step": step, "history": history, **states, "generators": generators}
        checkpoint.atomic_save(state, path)
    distributed.reduce_flags([0.0], ctx)  # barrier: the file exists before anyone goes on


def train_precision(
    cfg: SmokeConfig, precision: str, mcfg: PAMConfig, task: Task, eval_set, ctx: Dist, emit: Emit, stop
) -> dict[str, Any]:
    device = ctx.device
    memory = PeakMemory(device)
    steps = make_steps(build_model(mcfg, precision, cfg.seed, device), cfg, precision, ctx)
    model = steps.model
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + 17 + ctx.rank)  # each rank its own data
    path = Path(cfg.out_dir) / f"checkpoint-{precision}.pt"
    fp = checkpoint.fingerprint(cfg.to_dict(), precision, ctx.world)
    start, history, resumed_from = 0, [], None
    if cfg.resume and path.exists():
        state = checkpoint.load(path, fp)
        steps.load(state, path)
        gen.set_state(state["generators"][ctx.rank])
        start, history, resumed_from = state["step"], list(state["history"]), state["step"]
    emit("start", precision=precision, steps=cfg.steps, start=start)
    every = max(1, cfg.steps // 100)
    bad_step, interrupted, skipped, done = None, False, 0, start
    tokens = cfg.batch_size * cfg.grad_accum * task.length
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        steps.set_lr(learning_rate(step, cfg))
        loss_sum = 0.0
        for micro in range(cfg.grad_accum):
            x, y = (t.to(device) for t in task.batch(cfg.batch_size, gen, "train"))
            last = micro == cfg.grad_accum - 1
            with steps.micro(last):
                with autocast(precision, device):
                    _, loss = model(x, y)
                if cfg.inject_inf_at == step:
                    loss = loss * float("inf")
                steps.backward(loss)
            loss_sum += loss.item()
        norm = steps.grad_norm()
        # fp16: an overflowing gradient is the grad scaler's business (it skips the step and backs off)
        local_bad = not math.isfinite(loss_sum) or (not steps.grad_scaling and not math.isfinite(norm))
        bad, stop_votes, loss_total = distributed.reduce_flags(
            [float(local_bad), float(stop.requested), loss_sum / cfg.grad_accum if not local_bad else 0.0],
            ctx,
        )
        if bad:
            bad_step = step
            steps.discard()
            emit("bad_step", precision=precision, step=step)
            break
        skipped += int(steps.update())
        history.append(loss_total / ctx.world)
        done = step + 1
        if done % every == 0 or done == cfg.steps:
            emit("step", precision=precision, step=done, loss=history[-1])
        if stop_votes:
            interrupted = True
            break
        if cfg.ckpt_every and done % cfg.ckpt_every == 0 and done < cfg.steps:
            _save(path, steps, gen, done, history, fp, ctx)
    elapsed = time.perf_counter() - t0
    run: dict[str, Any] = {
        "precision": precision,
        "steps": cfg.steps,
        "steps_done": done,
        "resumed_from": resumed_from,
        "history": history,
        "bad_step": bad_step,
        "interrupted": interrupted,
        "skipped_steps": skipped,
        "train_seconds": elapsed,
        "tokens_per_s": tokens * (done - start) / elapsed if done > start and elapsed > 0 else None,
        "peak_memory_bytes": memory.peak_bytes(),
        "memory_method": memory.method,
        "micro_batch": cfg.batch_size,
        "checkpoint": str(path),
    }
    if bad_step is not None:
        return run
    _save(path, steps, gen, done, history, fp, ctx)
    if interrupted:
        return run
    x, y = eval_set
    logits, eval_loss, accuracy = evaluate(model, x, y, precision, device)
    mine = torch.tensor([distributed.checksum(steps.full_parameters())], dtype=torch.int64)
    sums = [int(t.item()) for t in distributed.gather_tensors(mine, ctx)]
    run.update(
        eval_loss=eval_loss,
        accuracy=accuracy,
        causality=causality(model, x, precision, device),
        checksums=[hex(s) for s in sums],
        ranks_in_sync=len(set(sums)) == 1,
    )
    if ctx.is_node_main:  # every node checks the round trip of its own copy
        fresh = build_model(mcfg, precision, cfg.seed + 1, device)  # other init: the load must overwrite it
        fresh.load_state_dict(checkpoint.load(path, fp)["model"])
        fresh.to(steps.dtype)  # DeepSpeed bf16 / fp16 keep the weights themselves in that dtype
        reloaded, _, _ = evaluate(fresh, x, y, precision, device)
        run["round_trip_max_diff"] = (reloaded - logits).abs().max().item()
        run["round_trip_tolerance"] = ROUND_TRIP_TOLERANCE
    return run


def _local_steps(mcfg: PAMConfig, cfg: SmokeConfig, precision: str, device: torch.device) -> TorchSteps:
    """A fresh model and optimizer in this process alone (no process group, no collective)."""
    model = build_model(mcfg, precision, cfg.seed, device)
    return TorchSteps(model, cfg, precision, Dist(0, 1, 0, device, None))


def _train_steps(
    steps, task: Task, cfg: SmokeConfig, precision: str, gen, device: torch.device, stop: StopSignal
) -> None:
    """``cfg.steps`` plain optimizer steps (schedule, autocast, scaler, clipping), no checks, until a
    stop is requested: the probe's and the speed rounds' loop (the verdict's is :func:`train_precision`)."""
    for step in range(cfg.steps):
        if stop.requested:
            return
        steps.set_lr(learning_rate(step, cfg))
        for micro in range(cfg.grad_accum):
            x, y = (t.to(device) for t in task.batch(cfg.batch_size, gen, "train"))
            with steps.micro(micro == cfg.grad_accum - 1):
                with autocast(precision, device):
                    _, loss = steps.model(x, y)
                steps.backward(loss)
        steps.grad_norm()
        steps.update()


def long_context_probe(
    cfg: SmokeConfig, precision: str, device: torch.device, stop: StopSignal
) -> dict[str, Any] | None:
    """Exact match on ``recall`` beyond PAM's local window, PAM vs full attention at equal budget.

    Both models train ``probe_steps`` x ``probe_batch`` on the same batches under ``precision`` and
    are evaluated on the same held-out examples. One process, no collectives. None when stopped.
    """
    task = make_task(PROBE_TASK, cfg.probe_len)
    pcfg = dataclasses.replace(
        cfg, task=PROBE_TASK, seq_len=cfg.probe_len, steps=cfg.probe_steps, batch_size=cfg.probe_batch,
        grad_accum=1, resume=False,
    )  # fmt: skip
    x, y = task.batch(cfg.eval_examples, torch.Generator().manual_seed(cfg.seed + 2_000_003), "eval")
    figures: dict[str, Any] = {
        "task": PROBE_TASK,
        "length": cfg.probe_len,
        "steps": cfg.probe_steps,
        "batch": cfg.probe_batch,
        "window": model_config(pcfg, task).window,
    }
    for attention in ("pam", "full"):
        acfg = dataclasses.replace(pcfg, attention=attention)
        steps = _local_steps(model_config(acfg, task), acfg, precision, device)
        start = time.perf_counter()
        _train_steps(steps, task, acfg, precision, torch.Generator().manual_seed(cfg.seed + 31), device, stop)
        if stop.requested:
            return None
        figures[f"{attention}_seconds"] = time.perf_counter() - start
        figures[attention] = evaluate(steps.model, x, y, precision, device)[2]
    return figures


def speed_rounds(
    cfg: SmokeConfig,
    mcfg: PAMConfig,
    task: Task,
    precisions: list[str],
    device: torch.device,
    stop: StopSignal,
) -> dict[str, Any] | None:
    """tokens/s of every precision measured in interleaved rounds, so that a change of load hits all.

    Round r runs the precisions in an order rotated by r; each precision builds its model, takes one
    untimed step, then ``speed_steps`` timed ones. The 1-minute load average is read before every
    round and after the last. One process (a single-process run). None when stopped.
    """
    times: dict[str, list[float]] = {p: [] for p in precisions}
    load = []
    tokens = cfg.batch_size * cfg.grad_accum * task.length
    timed = dataclasses.replace(cfg, steps=cfg.speed_steps)
    for r in range(cfg.speed_rounds):
        load.append(os.getloadavg()[0])
        for precision in precisions[r % len(precisions) :] + precisions[: r % len(precisions)]:
            steps = _local_steps(mcfg, cfg, precision, device)
            gen = torch.Generator().manual_seed(cfg.seed + r)
            _train_steps(steps, task, dataclasses.replace(cfg, steps=1), precision, gen, device, stop)
            start = time.perf_counter()
            _train_steps(steps, task, timed, precision, gen, device, stop)
            if stop.requested:
                return None
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[precision].append(tokens * cfg.speed_steps / (time.perf_counter() - start))
            del steps
    load.append(os.getloadavg()[0])
    return {
        "rounds": cfg.speed_rounds,
        "steps_per_round": cfg.speed_steps,
        "load_average": load,
        "tokens_per_s": times,
        "median": {p: statistics.median(v) for p, v in times.items()},
    }


def use_threads() -> threads.ThreadPolicy:
    """This process's OpenMP policy (:mod:`envdoctor.smoke.threads`), applied to torch's pool."""
    policy = threads.apply()
    torch.set_num_threads(policy.threads)
    return policy


def environment(ctx: Dist, policy: threads.ThreadPolicy) -> dict[str, Any]:
    device = ctx.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": name,
        "capability": ".".join(map(str, torch.cuda.get_device_capability(device)))
        if device.type == "cuda"
        else None,
        "world_size": ctx.world,
        "rank": ctx.rank,  # global rank of the process reporting (each node's first)
        "host": socket.gethostname(),
        "backend": ctx.backend,
        "threads": torch.get_num_threads(),
        "thread_policy": policy.to_dict(),
    }


def local_step_seconds(
    cfg: SmokeConfig, mcfg: PAMConfig, task: Task, device: torch.device, steps: int = 5
) -> float:
    """Median seconds of one forward and backward pass of this rank alone, with no collective: data
    parallel steps wait for the slowest rank, so only a step without communication shows a slow node."""
    model = build_model(mcfg, "fp32", cfg.seed, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    times = []
    for _ in range(steps + 1):
        x, y = (t.to(device) for t in task.batch(cfg.batch_size, gen))
        start = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first pass warms up


def node_figures(cfg: SmokeConfig, mcfg: PAMConfig, task: Task, ctx: Dist) -> dict[str, Any]:
    """What `fleet smoke` compares between nodes: local step time and the all-reduce bus bandwidth."""
    return {
        "local_step_s": local_step_seconds(cfg, mcfg, task, ctx.device),
        "allreduce_busbw_gbps": distributed.bus_bandwidth(ctx),
    }


def selected_branch(mcfg: PAMConfig, ctx: Dist) -> dict[str, str]:
    """How PAM's selected branch runs here (compiled C or PyTorch operations, and why), for the
    verdict header: the same model is several times faster with it on a CPU."""
    if mcfg.attention != "pam" or not mcfg.select_blocks:
        return {}
    how = select_kernel.status() if ctx.device.type == "cpu" else f"PyTorch operations ({ctx.device.type})"
    return {"selected_branch": how}


def run(cfg: SmokeConfig, emit: Emit, stop: StopSignal | None = None) -> dict[str, Any]:
    """Train every requested precision; returns the figures of all runs (the same on every rank)."""
    stop = stop or StopSignal()
    policy = use_threads()
    ctx = distributed.setup(cfg.device)
    try:
        task = make_task(cfg.task, cfg.seq_len)
        mcfg = model_config(cfg, task)
        eval_set = task.batch(cfg.eval_examples, torch.Generator().manual_seed(cfg.seed + 1_000_003), "eval")
        result: dict[str, Any] = {
            "environment": environment(ctx, policy),
            "model": {
                **mcfg.to_dict(),
                "params": PAMTransformer(mcfg).num_params(),
                **selected_branch(mcfg, ctx),
            },
            "task": {"name": task.name, "length": task.length},
            "strategy": cfg.strategy if ctx.world > 1 else None,
            "init_agreement": init_agreement(cfg, mcfg, eval_set, ctx.device),
            "runs": [],
        }
        for precision in cfg.precisions:
            finding = precision_support(precision, ctx.device)
            if finding:
                result["runs"].append({"precision": precision, "unsupported": finding})
                emit("unsupported", precision=precision, finding=finding)
                continue
            one = train_precision(cfg, precision, mcfg, task, eval_set, ctx, emit, stop)
            if cfg.table and cfg.probe_steps and ctx.world == 1 and "accuracy" in one and not stop.requested:
                text = (
                    f"{precision}: long-context probe, {PROBE_TASK} at {cfg.probe_len} tokens, PAM and full"
                )
                emit("notice", text=f"{text} attention, {cfg.probe_steps} steps x {cfg.probe_batch} each")
                probe = long_context_probe(cfg, precision, ctx.device, stop)
                if probe is not None:
                    one["long_context"] = probe
            result["runs"].append(one)
            emit("run", run=one)  # its row is shown now, and kept if a later precision times out
            if one["interrupted"]:
                break
        # The table's figures, in one process only (the probe and the rounds have no collectives)
        measured = [r["precision"] for r in result["runs"] if "accuracy" in r]
        if cfg.table and ctx.world == 1 and len(measured) > 1 and not stop.requested:
            emit("notice", text=f"tokens/s: {cfg.speed_rounds} interleaved rounds of {', '.join(measured)}")
            speed = speed_rounds(cfg, mcfg, task, measured, ctx.device, stop)
            if speed is not None:
                result["speed"] = speed
        # With several ranks only (what `fleet smoke` compares); interrupted is agreed by every rank.
        if ctx.world > 1 and not any(r.get("interrupted") for r in result["runs"]):
            result["node"] = node_figures(cfg, mcfg, task, ctx)
        return result
    finally:
        distributed.teardown(ctx)
