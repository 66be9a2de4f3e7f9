"""`envdoctor smoke-train` end to end in subprocesses: exit codes, JSON, torchrun with gloo, no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--task", "local", "--seq-len", "16", "--batch-size", "16", "--min-accuracy", "0"]


def _cli(*args: str, python: str = sys.executable, env_extra: dict | None = None, timeout: int = 300):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    env.update(env_extra or {})
    return subprocess.run(
        [python, "-m", "envdoctor", "smoke-train", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _broken_torch(tmp_path: Path) -> Path:
    """A folder that shadows torch with a module failing the way a broken install does."""
    (tmp_path / "torch.py").write_text("raise OSError('libtorch_cpu.so: cannot open shared object file')\n")
    return tmp_path


def test_envdoctor_imports_without_torch(tmp_path) -> None:
    code = (
        "import envdoctor.cli, envdoctor.smoke, envdoctor.smoke.render, envdoctor.smoke.verdict; print('ok')"
    )
    env = {"PYTHONPATH": f"{_broken_torch(tmp_path)}:{ROOT}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_broken_torch_is_a_finding_not_a_traceback(tmp_path) -> None:
    proc = _cli("--json", env_extra={"PYTHONPATH": f"{_broken_torch(tmp_path)}:{ROOT}"})
    assert proc.returncode == 2
    out = json.loads(proc.stdout)
    assert out["finding"] == "torch-import-error" and "libtorch_cpu.so" in out["detail"]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_python_without_torch_reports_torch_missing(tmp_path) -> None:
    venv.create(tmp_path / "venv", with_pip=False)
    proc = _cli("--python", str(tmp_path / "venv" / "bin" / "python"))
    assert proc.returncode == 2
    assert "torch-missing" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--task", "sort"], "unknown task"),
        (["--precision", "fp4"], "unknown precision"),
        (["--stages", "4"], "stages must be 3 or 5"),
        (["--nproc", "0"], "--nproc"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.torch
def test_deepspeed_strategy_without_deepspeed_exits_2(tmp_path) -> None:
    pytest.importorskip("torch")
    if subprocess.run([sys.executable, "-c", "import deepspeed"], capture_output=True).returncode == 0:
        pytest.skip("deepspeed is installed here")
    proc = _cli("--strategy", "deepspeed", "--nproc", "2", "--out", str(tmp_path))
    assert proc.returncode == 2 and "deepspeed-unavailable" in proc.stderr


@pytest.mark.torch
@pytest.mark.slow
def test_json_run_writes_only_json_and_a_plot(tmp_path) -> None:
    pytest.importorskip("torch")
    proc = _cli("--json", "--steps", "40", "--precision", "bf16", "--out", str(tmp_path), *SMALL)
    out = json.loads(proc.stdout)  # stdout is one JSON document and nothing else
    assert proc.returncode == (0 if out["ok"] else 1)
    names = {c["name"]: c for c in out["checks"]}
    assert names["bf16: agrees with fp32 at init"]["ok"] and names["bf16: checkpoint round-trip"]["ok"]
    svg = ET.parse(out["plot"]).getroot()
    assert svg.tag.endswith("svg") and len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 1


@pytest.mark.torch
@pytest.mark.slow
def test_planted_inf_fails_the_run_and_names_the_step(tmp_path) -> None:
    pytest.importorskip("torch")
    proc = _cli("--json", "--steps", "10", "--inject-inf-at", "4", "--out", str(tmp_path), *SMALL)
    assert proc.returncode == 1
    (bad,) = [c for c in json.loads(proc.stdout)["checks"] if not c["ok"]]
    assert bad["finding"] == "smoke-train-nonfinite" and "step 4" in bad["figure"]


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_process_torchrun_keeps_ranks_in_sync(tmp_path, strategy: str) -> None:
    pytest.importorskip("torch")
    args = ["--json", "--nproc", "2", "--strategy", strategy, "--steps", "12", "--grad-accum", "2"]
    proc = _cli(*args, "--out", str(tmp_path), *SMALL, timeout=400)
    out = json.loads(proc.stdout)
    assert (
        out["result"]["environment"]["world_size"] == 2 and out["result"]["environment"]["backend"] == "gloo"
    )
    policy = out["result"]["environment"]["thread_policy"]  # torchrun's OMP_NUM_THREADS=1 was not kept
    assert policy["local_ranks"] == 2 and policy["source"] == "chosen"
    assert policy["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    names = {c["name"]: c for c in out["checks"]}
    assert names["fp32: causal"]["ok"]
    sync = names["fp32: ranks in sync"]
    assert sync["ok"] and "2 ranks" in sync["figure"], sync
    assert names["fp32: checkpoint round-trip"]["ok"]
    (run,) = out["result"]["runs"]
    assert len(run["checksums"]) == 2 and run["steps_done"] == 12


def test_crash_detail_names_the_exception_not_torchruns_banner() -> None:
    from envdoctor.smoke.runner import crash_line

    stderr = "[rank0]:   buf = t.numpy()\n[rank0]: RuntimeError: Numpy is not available\n" + "=" * 60 + "\n"
    assert crash_line(stderr) == "[rank0]: RuntimeError: Numpy is not available"
    assert crash_line("last words\n" + "=" * 60) == "last words"
    assert crash_line("") == "no output"
