"""`envdoctor fit`: model states against DeepSpeed's own estimators, activations against real training.

The DeepSpeed tests call ``estimate_zero2/zero3_model_states_mem_needs_all_cold`` (the functions users
run) and read the per-GPU figure they print. The measured tests train the reference model on CPU in a
child process (tests/fit_measure.py) and compare its peak memory with the estimate.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor import fit
from envdoctor.cli import main
from envdoctor.facts import load_facts

ROOT = Path(__file__).resolve().parent.parent
needs_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed (pip install deepspeed)"
)


def _states(run: fit.Run) -> int:
    return fit.estimate(run).model_states


def _deepspeed_gpu_gib(printed: str) -> float:
    """The per-GPU GiB of the 'no offload' row that DeepSpeed's *_all_cold estimators print."""
    for line in printed.splitlines():
        if "offload_optimizer=none" in line:  # ZeRO-3 prints it with offload_param=none only
            return float(re.findall(r"([\d.]+)GB", line)[1])
    raise AssertionError(f"no 'offload_optimizer=none' row in:\n{printed}")


@needs_deepspeed
@pytest.mark.parametrize(
    ("model", "gpus", "nodes"), [("13B", 8, 1), ("7B", 8, 2), ("70B", 8, 4), ("1B", 1, 1)]
)
def test_zero3_model_states_match_deepspeed(model: str, gpus: int, nodes: int, capsys) -> None:
    from deepspeed.runtime.zero.stage3 import (
        estimate_zero3_model_states_mem_needs,
        estimate_zero3_model_states_mem_needs_all_cold,
    )

    shape = fit.shape_for(model)
    run = fit.Run(shape, precision="bf16", zero=3, gpus=gpus * nodes)
    largest = shape.largest_layer_params
    _, gpu_bytes, _ = estimate_zero3_model_states_mem_needs(
        shape.params, largest, gpus, nodes, cpu_offload=False, cpu_offload_params=False
    )
    assert abs(_states(run) - gpu_bytes) <= 8  # integer division on each part
    estimate_zero3_model_states_mem_needs_all_cold(shape.params, largest, gpus, nodes)
    assert _deepspeed_gpu_gib(capsys.readouterr().out) == pytest.approx(_states(run) / fit.GiB, abs=0.006)


@needs_deepspeed
@pytest.mark.parametrize(("model", "gpus", "nodes"), [("13B", 8, 1), ("7B", 4, 1), ("8B", 8, 2)])
def test_zero2_model_states_match_deepspeed(model: str, gpus: int, nodes: int, capsys) -> None:
    from deepspeed.runtime.zero.stage_1_and_2 import (
        estimate_zero2_model_states_mem_needs,
        estimate_zero2_model_states_mem_needs_all_cold,
    )

    shape = fit.shape_for(model)
    run = fit.Run(shape, precision="bf16", zero=2, gpus=gpus * nodes)
    _, gpu_bytes = estimate_zero2_model_states_mem_needs(shape.params, gpus, nodes, cpu_offload=False)
    assert abs(_states(run) - gpu_bytes) <= 8
    estimate_zero2_model_states_mem_needs_all_cold(shape.params, gpus, nodes)
    assert _deepspeed_gpu_gib(capsys.readouterr().out) == pytest.approx(_states(run) / fit.GiB, abs=0.006)


def test_named_sizes_have_their_published_parameter_counts() -> None:
    # Counts from the model cards: Llama 2 13B 13,015,864,320; Llama 3.1 8B 8,030,261,248.
    assert fit.shape_for("13B").params == 13_015_864_320
    assert fit.shape_for("8b").params == 8_030_261_248
    assert abs(fit.shape_for("70B").params - 70.55e9) / 70.55e9 < 0.01
    assert abs(fit.shape_for("350M").params - 350e6) / 350e6 < 0.15  # a Llama-like shape of that size


def test_stages_order_and_8bit_adam() -> None:
    shape = fit.shape_for("7B")
    totals = [_states(fit.Run(shape, zero=z, gpus=8)) for z in range(4)]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 4
    assert _states(fit.Run(shape)) == 16 * shape.params  # the ZeRO paper's 16 bytes per parameter
    assert _states(fit.Run(shape, precision="fp32")) == 16 * shape.params
    eight = fit.Run(shape, optimizer="adamw8bit")
    assert _states(fit.Run(shape)) - _states(eight) == 6 * shape.params  # 8 -> 2 bytes of moments
    fsdp = fit.Run(shape, fsdp=True, gpus=8)
    assert fit.estimate(fsdp).weights == 4 * shape.params // 8


def test_checkpointing_and_micro_batch_scale_activations() -> None:
    shape = fit.shape_for("13B")
    full = fit.activations(fit.Run(shape, seq_len=4096, micro_batch=2))
    assert fit.activations(fit.Run(shape, seq_len=4096, micro_batch=1)) * 2 == full
    ckpt = fit.activations(fit.Run(shape, seq_len=4096, micro_batch=2, checkpointing=True))
    assert ckpt < full / 5
    fp8 = fit.activations(fit.Run(shape, precision="fp8", seq_len=4096, micro_batch=2))
    assert ckpt < fp8 < full


def test_smallest_change_keeps_the_global_batch() -> None:
    run = fit.Run(fit.shape_for("13B"), gpus=8, seq_len=4096, micro_batch=4)
    gpu = fit.named_gpu("A100-SXM4-40GB")
    assert gpu.bytes == 40 * fit.GiB
    assert fit.verdict(fit.estimate(run), gpu) == "does-not-fit"
    change = fit.smallest_change(run, gpu)
    assert change is not None and fit.verdict(change.estimate, gpu) == "fits"
    new = change.run
    assert new.micro_batch * new.grad_accum == run.micro_batch * run.grad_accum
    assert new.gpus == run.gpus and new.precision == run.precision  # hardware and numerics kept
    # One knob suffices when the run is only a little too big: ZeRO-3 alone, no checkpointing.
    near = fit.Run(fit.shape_for("13B"), zero=2, gpus=8, seq_len=1024)
    gpu48 = fit.Capacity("48 GiB", 48 * fit.GiB, "test")
    assert fit.verdict(fit.estimate(near), gpu48) == "does-not-fit"
    step = fit.smallest_change(near, gpu48)
    assert step is not None and step.changes == ("ZeRO stage 2 -> 3",)


def test_more_gpus_trade_accumulation_and_say_when_the_global_batch_grows(capsys) -> None:
    run = fit.Run(fit.shape_for("7B"), micro_batch=2, grad_accum=8, seq_len=2048)
    change = fit.smallest_change(run, fit.named_gpu("RTX 4090"))
    assert change is not None and change.run.gpus > 1
    assert fit.global_batch(change.run) == fit.global_batch(run) == 16  # 8 accumulation steps to trade
    assert main(["fit", "--model", "70B", "--seq-len", "4096", "--gpu", "H100"]) == 1
    out = capsys.readouterr().out
    assert "1 -> 32 GPUs" in out and "global batch 1 -> 32 sequences" in out


def test_docs_worked_example_is_the_real_output(capsys) -> None:
    argv = ["fit", "--model", "13B", "--zero", "3", "--gpus", "8", "--seq-len", "4096", "--gpu", "A100 40GB"]
    assert main(argv) == 1
    assert capsys.readouterr().out in (ROOT / "docs" / "fit.md").read_text()


def test_cli_worked_example_13b_zero3_on_8_gpus(capsys) -> None:
    argv = ["fit", "--model", "13B", "--zero", "3", "--gpus", "8", "--seq-len", "4096", "--checkpointing"]
    assert main([*argv, "--gpu", "A100 40GB", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "fits" and data["run"]["params"] == 13_015_864_320
    assert data["per_gpu_bytes"]["total"] < data["capacity"]["usable"]
    assert main([*argv[:-1], "--micro-batch", "2", "--memory-gib", "24"]) == 1
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "smallest change that fits" in out and "activation checkpointing" in out


def test_fixture_cli_reads_gpu_memory_from_facts(tmp_path, capsys) -> None:
    """A facts file of a GPU machine (this one has none): the smallest GPU bounds the run."""
    facts = load_facts(ROOT / "tests/fixtures/facts/rtx4090_torch211_cu128.json")
    gpus = facts.nvidia.gpus or []
    assert gpus and all(g.memory_total_mib for g in gpus)
    cap = fit.capacity_from_facts(facts)
    assert cap is not None and cap.bytes == min(g.memory_total_mib for g in gpus) * 1024**2
    code = main(
        ["fit", "--model", "7B", "--facts", str(ROOT / "tests/fixtures/facts/rtx4090_torch211_cu128.json")]
    )
    assert code == 1 and "does NOT fit" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "13X"], "not a parameter count"),
        (["--model", "7B", "--gpu", "Voodoo 3"], "unknown GPU"),
        (["--model", "7B", "--zero", "4"], "ZeRO stage 4"),
        (["--model", "7B", "--precision", "fp4"], "precision 'fp4'"),
        (["--model", "7B", "--memory-gib", "0"], "must be a positive"),
        (["--model", "7B", "--memory-gib", "nan"], "must be a positive"),
        (["--model", "7B", "--memory-gib", "inf"], "must be a positive"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, capsys) -> None:
    assert main(["fit", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# (n_layer, n_head, n_embd, seq, batch, checkpointing): model states dominate / activations dominate
# / activations with checkpointing.
MEASURED = [(4, 8, 1024, 64, 2, False), (4, 4, 256, 512, 8, False), (4, 4, 256, 512, 8, True)]


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
@pytest.mark.parametrize(("layers", "heads", "hidden", "seq", "batch", "ckpt"), MEASURED)
def test_estimate_within_15_percent_of_measured_cpu_peak(layers, heads, hidden, seq, batch, ckpt) -> None:
    spec = {"n_layer": layers, "n_head": heads, "n_embd": hidden, "vocab": 32, "seq": seq, "batch": batch}
    spec["checkpointing"] = ckpt
    # A fixed mmap threshold makes glibc hand every freed tensor back, so the peak RSS counts live
    # tensors (as CUDA's max_memory_allocated does) instead of what malloc kept for reuse.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests/fit_measure.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    shape = fit.ModelShape(layers, hidden, 4 * hidden, heads, heads, 32, mlp="gelu", tied=True)
    # The reference model also has a learned position table (seq x hidden) that the shape leaves out.
    assert abs(shape.params + seq * hidden - measured["params"]) / measured["params"] < 0.01
    run = fit.Run(shape, precision="fp32", seq_len=seq, micro_batch=batch, checkpointing=ckpt)
    predicted = fit.estimate(run).total
    assert abs(predicted - measured["peak_bytes"]) / measured["peak_bytes"] <= 0.15, (predicted, measured)
