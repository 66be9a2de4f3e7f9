"""`--strategy deepspeed`: two real processes under torchrun, gloo on CPU, a DeepSpeed ZeRO-3 engine.

Needs deepspeed installed next to torch; skipped with the reason otherwise (without it the CLI exits 2,
tested in test_smoke_cli.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from envdoctor.smoke.config import SmokeConfig
from envdoctor.smoke.runner import Launch, train

pytestmark = [
    pytest.mark.torch,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None or importlib.util.find_spec("deepspeed") is None,
        reason="torch and deepspeed are not both installed (pip install deepspeed)",
    ),
]


def _cfg(out: Path, strategy: str, resume: bool = False) -> SmokeConfig:
    return SmokeConfig(
        task="local",
        seq_len=16,
        batch_size=16,
        steps=12,
        grad_accum=2,
        eval_examples=64,
        min_accuracy=0,
        strategy=strategy,
        out_dir=str(out),
        resume=resume,
    )


def _train(cfg: SmokeConfig, on_event=lambda event: None) -> dict:
    outcome = train(cfg, Launch(python=sys.executable, nproc=2, timeout_s=300), on_event)
    assert outcome.error is None or outcome.interrupted, (outcome.error, outcome.detail)
    return outcome.result


def test_zero3_trains_like_ddp_and_resumes(tmp_path) -> None:
    ds = _train(_cfg(tmp_path / "ds", "deepspeed"))
    assert ds["strategy"] == "deepspeed" and ds["environment"]["backend"] == "gloo"
    (run,) = ds["runs"]
    assert run["steps_done"] == 12 and run["ranks_in_sync"] and len(set(run["checksums"])) == 1
    assert run["round_trip_max_diff"] <= run["round_trip_tolerance"]
    assert (tmp_path / "ds" / "checkpoint-fp32.deepspeed" / "step-12").is_dir()

    # same initial weights, data, AdamW, schedule, clipping and accumulation: the same loss curve
    (ddp,) = _train(_cfg(tmp_path / "ddp", "ddp"))["runs"]
    assert max(abs(a - b) for a, b in zip(run["history"], ddp["history"], strict=True)) < 1e-5

    def stop_at_six(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 6:
            raise KeyboardInterrupt  # the runner forwards SIGINT: workers checkpoint and exit 130

    cut = _train(_cfg(tmp_path / "cut", "deepspeed"), stop_at_six)
    assert cut is None or cut["runs"][0]["interrupted"]
    (resumed,) = _train(_cfg(tmp_path / "cut", "deepspeed", resume=True))["runs"]
    assert 6 <= resumed["resumed_from"] < 12 and resumed["steps_done"] == 12
    assert max(abs(a - b) for a, b in zip(resumed["history"], run["history"], strict=True)) < 1e-6
    assert resumed["ranks_in_sync"]
