"""What a smoke-train run does: one plain dataclass, shared by the CLI process and the workers.

No torch here: the CLI process builds and validates a :class:`SmokeConfig` without importing torch,
writes it as JSON, and the worker processes (which do import torch) read it back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envdoctor.errors import EnvdoctorError

PRECISIONS = ("fp32", "bf16", "fp16", "fp8")
STRATEGIES = ("ddp", "fsdp", "deepspeed")
TASKS = ("add", "recall", "local", "assoc")  # kept in step with reference_model.tasks.TASKS (tested)
ATTENTIONS = ("pam", "full")
# Model sizes: (n_layer, n_head, n_embd). Every width is a multiple of 16 so fp8 layers apply.
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 4, 64),
    "small": (4, 4, 128),
    "base": (6, 8, 256),
}
# Loss at init under a low precision vs fp32, same weights and batch: largest relative difference.
INIT_TOLERANCE = {"bf16": 2e-2, "fp16": 5e-3, "fp8": 5e-2}


# Seconds one optimizer step of the tiny model (64 examples x 32 tokens) may take per precision on a
# busy 2-core CPU, where fp16 and fp8 are emulated; a GPU is far faster, so these only set a ceiling.
STEP_SECONDS = {"fp32": 0.5, "bf16": 1.0, "fp16": 1.0, "fp8": 1.5}
SIZE_COST = {"tiny": 1, "small": 4, "base": 16}  # roughly the parameter ratio of SIZES
START_SECONDS = 120  # import torch, build the model, evaluate, checkpoint round trip
TIMEOUT_MARGIN = 4
# The long-context probe of `--precision all`: `recall` (a digit at position 0, asked for at the end)
# at PROBE_LEN tokens, 4x PAM's 16-token window, trained for PROBE_STEPS x PROBE_BATCH with PAM and
# with full attention under each precision. Full attention learns it to 100 % in this budget.
PROBE_TASK, PROBE_LEN, PROBE_STEPS, PROBE_BATCH = "recall", 64, 100, 16
PROBE_COST = 3  # a probe step (2 models, selection branch) vs a default step of the same tokens


class ConfigError(EnvdoctorError, ValueError):
    """A bad option combination, reported as a one-line error (exit 2)."""


def default_out_dir() -> Path:
    """Where checkpoints and loss.svg go without --out: the user's cache, never the current folder.

    A fixed folder (not a fresh temporary one) so that ``--resume`` finds the last run's checkpoints.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "envdoctor" / "smoke-train"


@dataclass
class SmokeConfig:
    task: str = "local"
    size: str = "tiny"
    steps: int = 300
    batch_size: int = 64  # examples per micro-batch and rank
    grad_accum: int = 1
    seq_len: int = 32  # recall and local; add has a fixed length
    lr: float = 3e-3
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # one of PRECISIONS or "all"
    attention: str = "pam"
    stages: int = 3
    strategy: str = "ddp"  # used when more than one process trains
    out_dir: str = ""  # "" : default_out_dir()
    resume: bool = False
    ckpt_every: int = 0  # also checkpoint every N steps (0: only at the end or on interrupt)
    eval_examples: int = 512
    min_accuracy: float = 0.95
    min_loss_drop: float = 0.5  # final loss must be at most (1 - this) x the first loss
    inject_inf_at: int | None = None  # plant an inf loss at this step to prove the NaN guard works
    # `--precision all` only (a table): the long-context probe and the interleaved speed rounds
    probe_len: int = PROBE_LEN
    probe_steps: int = PROBE_STEPS  # 0: no probe
    probe_batch: int = PROBE_BATCH
    speed_rounds: int = 3  # rounds of every precision in turn (a rotating order), for tokens/s
    speed_steps: int = 5  # timed steps per precision and round (after one untimed step)

    def __post_init__(self) -> None:
        self.out_dir = self.out_dir or str(default_out_dir())
        self.validate()

    def validate(self) -> None:
        checks = [
            (self.task in TASKS, f"unknown task {self.task!r} (choose {', '.join(TASKS)})"),
            (self.size in SIZES, f"unknown size {self.size!r} (choose {', '.join(SIZES)})"),
            (
                self.precision in (*PRECISIONS, "all"),
                f"unknown precision {self.precision!r} (choose {', '.join(PRECISIONS)} or all)",
            ),
            (
                self.strategy in STRATEGIES,
                f"unknown strategy {self.strategy!r} (choose ddp, fsdp, deepspeed)",
            ),
            (self.attention in ATTENTIONS, f"unknown attention {self.attention!r} (choose pam or full)"),
            (self.stages in (3, 5), "stages must be 3 or 5"),
            (
                self.steps >= 1 and self.batch_size >= 1 and self.grad_accum >= 1,
                "steps, batch size, accum >= 1",
            ),
            (16 <= self.seq_len <= 65536, "seq-len must be between 16 and 65536"),
            (self.lr > 0, "lr must be positive"),
            (0 <= self.min_accuracy <= 1 and 0 <= self.min_loss_drop < 1, "thresholds must be fractions"),
            (self.eval_examples >= 1 and self.ckpt_every >= 0, "eval examples >= 1, ckpt-every >= 0"),
            (self.probe_len >= 16 and self.probe_steps >= 0 and self.probe_batch >= 1, "bad probe size"),
            (self.speed_rounds >= 1 and self.speed_steps >= 1, "speed rounds and steps >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def default_timeout(self, nproc: int = 1) -> float:
        """The wall-clock limit when --timeout is not given, scaled to the work asked for.

        Steps x the per-step cost of every precision x model size x tokens per step, times
        ``nproc`` (on a CPU the ranks share the cores), with a margin for a loaded machine.
        """
        tokens = self.batch_size * self.grad_accum * self.seq_len / (64 * 32)
        per_step = sum(STEP_SECONDS[p] for p in self.precisions) * SIZE_COST[self.size] * max(tokens, 0.125)
        steps = self.steps
        if self.table:  # the speed rounds, and the probe in steps of the run's own size
            steps += self.speed_rounds * (self.speed_steps + 1)
            probe_share = (
                self.probe_batch * self.probe_len / (self.batch_size * self.grad_accum * self.seq_len)
            )
            steps += round(self.probe_steps * probe_share * PROBE_COST)
        return float(round(START_SECONDS + TIMEOUT_MARGIN * steps * per_step * nproc))

    @property
    def table(self) -> bool:
        """Several precisions: a measured table with interleaved speed rounds and the long-context probe."""
        return len(self.precisions) > 1

    @property
    def precisions(self) -> list[str]:
        return list(PRECISIONS) if self.precision == "all" else [self.precision]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def read(cls, path: Path) -> SmokeConfig:
        return cls(**json.loads(path.read_text()))
