"""``--strategy deepspeed``: the reference model under a DeepSpeed ZeRO-3 engine.

Imported only when that strategy is asked for (the runner checked that deepspeed is installed).
The engine gets the same AdamW, clipping and gradient accumulation as the torch strategies, set
through a ZeRO-3 config; bf16 / fp16 switch on DeepSpeed's own mixed precision (fp16 with its
dynamic loss scaler). On CPU DeepSpeed's CPU accelerator is used and the process group torchrun
prepared (gloo) is reused: DeepSpeed wraps an existing group instead of creating one.
Checkpoints: the full model state (gathered) goes into smoke-train's own file, which also names a
DeepSpeed checkpoint (per-rank optimizer and fp32 partitions) written next to it; resume loads both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from envdoctor.smoke.checkpoint import CheckpointError
from envdoctor.smoke.config import SmokeConfig
from envdoctor.smoke.distributed import Dist

TAG_PREFIX = "step-"


def ds_config(cfg: SmokeConfig, precision: str) -> dict[str, Any]:
    """ZeRO stage 3 with the options of the torch strategies; DeepSpeed's mixed precision for bf16/fp16."""
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": 3},
        "steps_per_print": 2**31 - 1,  # progress comes from smoke-train's own events
        "wall_clock_breakdown": False,
    }
    if precision == "bf16":
        config["bf16"] = {"enabled": True}
    elif precision == "fp16":
        config["fp16"] = {"enabled": True, "initial_scale_power": 16}
    return config


class DeepSpeedSteps:
    """The optimizer side of the training loop, done by a DeepSpeed engine (see train.TorchSteps)."""

    def __init__(self, model: nn.Module, cfg: SmokeConfig, precision: str, ctx: Dist) -> None:
        if ctx.device.type == "cpu":
            os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed picks an accelerator
        import deepspeed

        self._zero = deepspeed.zero
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
        self.model, self._optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config=ds_config(cfg, precision)
        )
        self.dtype = next(self.model.module.parameters()).dtype  # bf16 / fp16 under mixed precision
        self.grad_scaling = precision == "fp16"
        self._skipped = 0
        self._tag: str | None = None
        self._rank = ctx.rank

    def set_lr(self, lr: float) -> None:
        for group in self._optimizer.param_groups:
            group["lr"] = lr

    def micro(self, last: bool):
        """DeepSpeed reduces gradients itself at the accumulation boundary: nothing to suppress."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """engine.backward divides by the accumulation steps; engine.step after every micro-batch
        counts micro-batches and, at the boundary, clips and updates."""
        self.model.backward(loss)
        self.model.step()

    def grad_norm(self) -> float:
        """The norm DeepSpeed computed before clipping in its step (inf when fp16 overflowed)."""
        return float(self.model.get_global_grad_norm())

    def discard(self) -> None:
        """Nothing to drop: DeepSpeed already zeroed the gradients in its step."""

    def update(self) -> bool:
        """The update happened in engine.step; True when DeepSpeed skipped it (fp16 overflow)."""
        skipped = self.model.skipped_steps > self._skipped
        self._skipped = self.model.skipped_steps
        return skipped

    def full_parameters(self) -> list[tuple[str, torch.Tensor]]:
        """Every parameter gathered from its ZeRO-3 partitions (a collective on all ranks), copied."""
        module = self.model.module
        with self._zero.GatheredParameters(list(module.parameters())):
            return [(name, p.detach().clone()) for name, p in module.named_parameters()]

    def state(self, path: Path, step: int) -> dict[str, Any]:
        """Full model state for smoke-train's file, plus a DeepSpeed checkpoint of the partitions.

        Keeps the previous tag until the new file names the new one: a crash leaves a usable pair.
        """
        module = self.model.module
        with self._zero.GatheredParameters(list(module.parameters())):
            model_sd = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        folder = path.with_suffix(".deepspeed")
        if self._rank == 0 and folder.is_dir():
            for old in folder.glob(f"{TAG_PREFIX}*"):
                if old.name != self._tag:
                    shutil.rmtree(old, ignore_errors=True)
        self._tag = f"{TAG_PREFIX}{step}"
        self.model.save_checkpoint(str(folder), tag=self._tag)
        return {"model": model_sd, "deepspeed": {"dir": folder.name, "tag": self._tag}}

    def load(self, state: dict[str, Any], path: Path) -> None:
        folder = path.parent / state["deepspeed"]["dir"]
        self._tag = state["deepspeed"]["tag"]
        loaded, _ = self.model.load_checkpoint(str(folder), tag=self._tag, load_lr_scheduler_states=False)
        if loaded is None:
            raise CheckpointError(f"{folder}: DeepSpeed checkpoint {self._tag} is missing or unreadable")
        self._skipped = self.model.skipped_steps
