"""Checkpoints: atomic writes, a fingerprint that refuses a resume into a different run, and the
model / optimizer state gathering that works the same for one process, DDP and FSDP2.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from envdoctor.smoke.distributed import unwrap

# Options that change what is trained: a checkpoint only resumes a run that agrees on all of them.
FINGERPRINT_KEYS = (
    "task",
    "size",
    "steps",
    "batch_size",
    "grad_accum",
    "seq_len",
    "lr",
    "seed",
    "attention",
    "stages",
    "strategy",
)


class CheckpointError(RuntimeError):
    pass


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only folder): one line, no temp file left."""


def fingerprint(config: dict[str, Any], precision: str, world: int) -> dict[str, Any]:
    return {**{k: config[k] for k in FINGERPRINT_KEYS}, "precision": precision, "world": world}


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then os.replace: never half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointWriteError(
            f"{path}: cannot write the checkpoint ({_why(exc, path.parent)})"
        ) from None


def _why(exc: BaseException, folder: Path) -> str:
    """'no space left on device' when that is the cause (torch's own message does not say so)."""
    try:
        stat = os.statvfs(folder)
        full = stat.f_bavail * stat.f_frsize < 1024 * 1024
    except OSError:
        full = False
    if getattr(exc, "errno", None) == errno.ENOSPC or full:
        return "no space left on device"
    text = " ".join(str(exc).split())
    return getattr(exc, "strerror", None) or text[-200:] or type(exc).__name__


def load(path: Path, expected_fingerprint: dict[str, Any]) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which and why
        raise CheckpointError(f"{path}: cannot load checkpoint ({exc})") from None
    if state.get("fingerprint") != expected_fingerprint:
        raise CheckpointError(
            f"{path}: checkpoint is from a different run ({state.get('fingerprint')}), "
            "use the same options or another --out"
        )
    return state


def _is_sharded(model: nn.Module) -> bool:
    return any(hasattr(p, "full_tensor") for p in model.parameters())


def model_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full (unsharded, CPU) model and optimizer state; a collective under FSDP2."""
    if _is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_state_dict(model, optimizer, options=opts)
    model_sd = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    return model_sd, optimizer.state_dict()


def restore(model: nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict, optim_sd: dict) -> None:
    """Load full states written by :func:`model_optimizer_state` (every rank reads the same file)."""
    if _is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(
            model,
            optimizer,
            model_state_dict=model_sd,
            optim_state_dict=optim_sd,
            options=StateDictOptions(full_state_dict=True),
        )
        return
    unwrap(model).load_state_dict(model_sd)
    optimizer.load_state_dict(optim_sd)
