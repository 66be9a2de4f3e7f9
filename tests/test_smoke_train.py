"""Real (short) training on CPU in this process: learning, NaN guard, checkpoint round-trip, resume."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")

from envdoctor.smoke.checkpoint import CheckpointError, atomic_save  # noqa: E402
from envdoctor.smoke.config import SmokeConfig  # noqa: E402
from envdoctor.smoke.train import StopSignal, long_context_probe, run  # noqa: E402
from envdoctor.smoke.verdict import passed, verdict  # noqa: E402

pytestmark = pytest.mark.torch


def _cfg(tmp_path, **kw) -> SmokeConfig:
    base = dict(task="local", seq_len=16, steps=12, batch_size=16, eval_examples=64, out_dir=str(tmp_path))
    small = dict(probe_len=16, probe_steps=2, probe_batch=4, speed_rounds=2, speed_steps=1)  # --precision all
    return SmokeConfig(**{**base, **small, **kw})


def _quiet(event: str, **fields) -> None:
    pass


@pytest.mark.slow
def test_training_learns_the_local_task(tmp_path) -> None:
    cfg = _cfg(tmp_path, steps=150, batch_size=32, lr=3e-3, min_accuracy=0.5)
    result = run(cfg, _quiet)
    (one,) = result["runs"]
    assert one["history"][-1] < 0.5 * one["history"][0]
    checks = verdict(result, cfg)
    assert passed(checks), [c for c in checks if not c.ok]
    assert one["round_trip_max_diff"] == 0.0
    assert one["tokens_per_s"] > 0 and one["peak_memory_bytes"] is not None


def test_nan_guard_stops_at_the_planted_step_and_names_it(tmp_path) -> None:
    cfg = _cfg(tmp_path, inject_inf_at=3)
    (one,) = run(cfg, _quiet)["runs"]
    assert one["bad_step"] == 3 and len(one["history"]) == 3
    checks = verdict({"init_agreement": {}, "runs": [one]}, cfg)
    assert not passed(checks)
    assert any("step 3" in c.figure and c.finding == "smoke-train-nonfinite" for c in checks)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path) -> None:
    straight = run(_cfg(tmp_path / "a"), _quiet)["runs"][0]

    stop = StopSignal()

    def stop_at_five(event: str, **fields) -> None:
        if event == "step" and fields["step"] == 5:
            stop.requested = True

    cut = run(_cfg(tmp_path / "b"), stop_at_five, stop)["runs"][0]
    assert cut["interrupted"] and cut["steps_done"] == 6  # the step in flight finishes, then it stops
    resumed = run(_cfg(tmp_path / "b", resume=True), _quiet)["runs"][0]
    assert resumed["resumed_from"] == 6 and resumed["steps_done"] == 12
    assert resumed["history"] == straight["history"]
    assert resumed["checksums"] == straight["checksums"]  # bit-identical parameters


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path) -> None:
    run(_cfg(tmp_path, steps=3), _quiet)
    with pytest.raises(CheckpointError, match="different run"):
        run(_cfg(tmp_path, steps=3, seed=7, resume=True), _quiet)


def test_atomic_save_leaves_no_temporary_file(tmp_path) -> None:
    target = tmp_path / "c.pt"
    atomic_save({"x": torch.ones(3)}, target)
    atomic_save({"x": torch.zeros(3)}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.zeros(3))


def test_low_precisions_agree_with_fp32_at_init(tmp_path) -> None:
    result = run(_cfg(tmp_path, precision="all", steps=2), _quiet)
    assert set(result["init_agreement"]) == {"bf16", "fp16", "fp8"}
    for figures in result["init_agreement"].values():
        assert 0 < figures["rel_diff"] <= figures["tolerance"]
    assert [r["precision"] for r in result["runs"]] == ["fp32", "bf16", "fp16", "fp8"]


@pytest.mark.parametrize("attention", ["full", "pam"])
def test_attention_that_ignores_the_causal_mask_fails_the_verdict(tmp_path, monkeypatch, attention) -> None:
    """A broken kernel that drops the mask still trains (it reads ahead); only the causality check sees it."""
    real = torch.nn.functional.scaled_dot_product_attention

    def lookahead(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        return real(q, k, v)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", lookahead)
    cfg = _cfg(tmp_path, attention=attention, min_accuracy=0.0, min_loss_drop=0.0)
    result = run(cfg, _quiet)
    failed = [c for c in verdict(result, cfg) if c.ok is False]
    assert [c.finding for c in failed] == ["smoke-train-noncausal"], failed
    assert result["runs"][0]["causality"]["max_diff_before"] > 0.01


def test_a_sound_model_passes_the_causality_check_under_every_precision(tmp_path) -> None:
    cfg = _cfg(tmp_path, precision="all", steps=3, min_accuracy=0.0, min_loss_drop=0.0)
    result = run(cfg, _quiet)
    causal = {c.name: c for c in verdict(result, cfg) if c.name.endswith(": causal")}
    assert set(causal) == {"fp32: causal", "bf16: causal", "fp16: causal", "fp8: causal"}
    assert all(c.ok for c in causal.values()), causal
    for one in result["runs"]:
        assert one["causality"]["max_diff_after"] > 0  # the perturbation did reach the later logits


@pytest.mark.slow
def test_long_context_probe_is_trained_and_measured(tmp_path) -> None:
    """The probe's exact matches come from training: one step is at chance, the default budget
    (recall at 64 tokens, 100 steps x 16) teaches full attention and, through its selected branch, PAM."""
    device = torch.device("cpu")
    short = long_context_probe(
        _cfg(tmp_path, probe_len=64, probe_steps=1, probe_batch=16), "fp32", device, StopSignal()
    )
    long = long_context_probe(
        _cfg(tmp_path, probe_len=64, probe_steps=100, probe_batch=16), "fp32", device, StopSignal()
    )
    assert (short["task"], short["length"], short["window"]) == ("recall", 64, 16)  # answer 63 tokens back
    assert short["pam"] < 0.3 and short["full"] < 0.3  # 10 digits: chance is 10 %
    assert long["full"] >= 0.9 and long["pam"] >= 0.9, long


def test_precision_all_table_has_interleaved_speed_and_a_long_context_column(tmp_path) -> None:
    from rich.console import Console

    from envdoctor.smoke import render

    cfg = _cfg(tmp_path, precision="all", steps=3, min_accuracy=0.0, min_loss_drop=0.0)
    result = run(cfg, _quiet)
    speed = result["speed"]
    assert set(speed["tokens_per_s"]) == {"fp32", "bf16", "fp16", "fp8"}
    assert all(len(v) == 2 and min(v) > 0 for v in speed["tokens_per_s"].values())
    assert len(speed["load_average"]) == 3  # before each round and after the last
    for one in result["runs"]:
        probe = one["long_context"]
        assert (probe["length"], probe["steps"], probe["batch"]) == (16, 2, 4)
        assert 0 <= probe["pam"] <= 1 and 0 <= probe["full"] <= 1
    narrow = Console(record=True, width=80)  # a log or a pipe: headers wrap, nothing is cut off
    render.print_text(result, verdict(result, cfg), None, narrow)
    assert "…" not in narrow.export_text()
    console = Console(record=True, width=250)
    render.print_text(result, verdict(result, cfg), None, console)
    text = console.export_text()
    assert "recall 16: PAM / full" in text and "tokens/s median" in text
    assert "PAM and full attention each trained 2 steps x 4 on the same batches" in text
    load = " → ".join(f"{x:.1f}" for x in speed["load_average"])
    assert f"load average (1 min) {load}" in text
    for row in render.precision_rows(result):
        cell = f"{row['long_context_pam']:.1%} / {row['long_context_full']:.1%}"
        low, high = row["tokens_per_s_min"], row["tokens_per_s_max"]
        assert re.search(rf"{row['precision']} +{row['tokens_per_s_median']:,.0f} .*{re.escape(cell)}", text)
        assert f"{row['precision']} {low:,.0f}–{high:,.0f}" in text


def test_ctrl_c_during_the_probe_stops_it_and_the_next_precision(tmp_path) -> None:
    """A stop requested while the probe trains ends it at once (no column) and the run after it."""
    stop = StopSignal()

    def stop_in_probe(event: str, **fields) -> None:
        if event == "notice" and "long-context probe" in fields["text"]:
            stop.requested = True

    cfg = _cfg(tmp_path, precision="all", steps=3, probe_steps=10_000, min_accuracy=0.0)
    result = run(cfg, stop_in_probe, stop)
    first, second = result["runs"]
    assert "long_context" not in first and "accuracy" in first
    assert second["interrupted"] and second["steps_done"] == 1
    assert "speed" not in result
