"""smoke-train says what it does while it runs: rows as precisions finish, partial results on a timeout,
a timeout scaled to the work, a warning for emulated precisions, step lines in logs, output in the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from envdoctor.smoke import Launch, SmokeConfig
from envdoctor.smoke.config import default_out_dir
from envdoctor.smoke.runner import train

ROOT = Path(__file__).resolve().parents[1]
# The fp32 row of a real 40-step run on this machine (history cut to its last values).
FP32_RUN = {
    "precision": "fp32", "steps": 40, "steps_done": 40, "resumed_from": None,
    "history": [2.9077, 2.9035, 2.9019], "bad_step": None, "interrupted": False, "skipped_steps": 0,
    "train_seconds": 139.6, "tokens_per_s": 586.75, "peak_memory_bytes": 133087232,
    "memory_method": "peak RSS growth (VmHWM)", "micro_batch": 64, "checkpoint": "checkpoint-fp32.pt",
    "eval_loss": 2.9046, "accuracy": 0.0, "checksums": ["0x1f1216765833a03c"], "ranks_in_sync": True,
    "round_trip_max_diff": 0.0, "round_trip_tolerance": 1e-06,
}  # fmt: skip


def _stalling_python(tmp_path: Path) -> Path:
    """An interpreter stand-in whose worker finishes fp32, then hangs in bf16 (a wedged run)."""
    script = tmp_path / "python"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(f"""
        import json, sys, time
        if sys.argv[1] == "-c":  # the torch probe of the CLI side
            print(json.dumps({{"torch": "2.13.0+cpu", "cuda": False, "deepspeed": False}}))
            sys.exit(0)
        def emit(event, **fields):
            print("@envdoctor-smoke", json.dumps({{"event": event, **fields}}), flush=True)
        emit("start", precision="fp32", steps=40, start=0)
        emit("step", precision="fp32", step=40, loss=2.9019)
        emit("run", run=json.loads({json.dumps(json.dumps(FP32_RUN))}))
        emit("start", precision="bf16", steps=40, start=0)
        time.sleep(600)
        """)
    )
    script.chmod(0o755)
    return script


def test_a_timeout_keeps_the_precisions_that_finished(tmp_path):
    cfg = SmokeConfig(precision="all", steps=40, out_dir=str(tmp_path / "out"))
    events: list[dict] = []
    started = time.monotonic()
    outcome = train(cfg, Launch(python=str(_stalling_python(tmp_path)), timeout_s=3), events.append)
    assert time.monotonic() - started < 60  # the hung worker was stopped
    assert outcome.error == "smoke-train-timeout" and "--timeout" in outcome.detail
    assert [r["precision"] for r in outcome.finished_runs] == ["fp32"]
    notice = next(e["text"] for e in events if e["event"] == "notice")
    assert notice.startswith("fp16, fp8 run emulated on the CPU")


def test_cli_timeout_prints_the_finished_rows_and_json_keeps_them(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"))
    base = [sys.executable, "-m", "envdoctor", "smoke-train", "--python", str(_stalling_python(tmp_path))]
    args = ["--precision", "all", "--steps", "40", "--timeout", "3"]
    text = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert text.returncode == 1
    assert "finished before it stopped (1 of 4):" in text.stderr
    assert "fp32: final loss 2.9019, accuracy 0.0%, 587 tokens/s" in text.stderr
    assert "note: fp16, fp8 run emulated on the CPU" in text.stderr
    assert "fp32 step 40/40 loss 2.9019" in text.stderr  # stderr is a pipe: step lines, not a bar
    as_json = subprocess.run(
        [*base, *args, "--json"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    payload = json.loads(as_json.stdout)
    assert payload["finding"] == "smoke-train-timeout"
    assert [row["precision"] for row in payload["precisions"]] == ["fp32"]


def test_default_timeout_scales_with_steps_precisions_size_and_ranks():
    fp32 = SmokeConfig().default_timeout()
    every = SmokeConfig(precision="all").default_timeout()
    assert every > 900 > fp32 > 300  # four precisions on a CPU outlast the old flat 900 s
    assert SmokeConfig(steps=600).default_timeout() > fp32
    assert SmokeConfig(size="base").default_timeout() > SmokeConfig(size="small").default_timeout() > fp32
    assert SmokeConfig().default_timeout(nproc=2) > fp32


def test_default_output_is_the_cache_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_out_dir() == tmp_path / "cache" / "envdoctor" / "smoke-train"
    assert SmokeConfig().out_dir == str(tmp_path / "cache" / "envdoctor" / "smoke-train")
    assert SmokeConfig(out_dir="mine").out_dir == "mine"


def test_real_run_in_a_log_prints_step_lines_and_the_row_and_writes_to_the_cache(tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    small = ["--seq-len", "16", "--batch-size", "16", "--min-accuracy", "0", "--steps", "10"]
    done = subprocess.run(
        [sys.executable, "-m", "envdoctor", "smoke-train", *small],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=work,
    )
    assert done.returncode in (0, 1), done.stderr
    assert "fp32 step 10/10 loss" in done.stderr and "fp32: final loss" in done.stderr
    out = tmp_path / "cache" / "envdoctor" / "smoke-train"
    assert (out / "checkpoint-fp32.pt").is_file() and (out / "loss.svg").is_file()
    assert list(work.iterdir()) == []  # nothing written where the user stood
