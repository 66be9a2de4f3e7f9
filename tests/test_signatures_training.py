"""Messages from training loops whose cause is the GPU's number formats: torch's fp16 gradient scaler
meeting bf16 gradients, the fallback recipes take on GPUs without bf16."""

from __future__ import annotations

from envdoctor.explain import explain_text
from envdoctor.findings import Severity

SCALER = "RuntimeError: \"_amp_foreach_non_finite_check_and_unscale_cuda\" not implemented for 'BFloat16'"


def test_grad_scaler_on_bf16_gradients_points_to_bf16_and_says_why():
    first = explain_text(SCALER).candidates[0]
    assert first.finding.id == "bf16-unsupported"
    assert "gradient scaler" in first.finding.message


def test_the_same_message_quoted_inside_a_json_error_is_recognised():
    quoted = (
        "{'status': 'error', 'message': '操作失败: \"_amp_foreach_non_finite_check_and_unscale_cuda\" "
        "not implemented for \\'BFloat16\\'', 'traceback': 'Traceback (most recent call last):"
    )
    assert explain_text(quoted).candidates[0].finding.id == "bf16-unsupported"


def test_on_a_v100_it_is_bf16_unsupported_and_on_an_a100_a_precision_setting_without_an_id():
    """Next to a GPU without bf16 the rule and the message agree; next to GPUs that all have bf16 the
    message explains the program's settings and points to no finding."""
    v100 = explain_text("GPU 0: Tesla V100-SXM2-32GB\n" + SCALER)
    assert v100.candidates[0].finding.id == "bf16-unsupported"
    assert set(v100.candidates[0].support) >= {"error", "facts"}
    a100 = explain_text("GPU 0: NVIDIA A100-SXM4-80GB\nGPU 1: NVIDIA H100 80GB HBM3\n" + SCALER)
    assert not any(d.finding.id == "bf16-unsupported" for d in a100.candidates)
    assert any("has this number format" in m.signature.message for m in a100.notes)


def test_a_bf16_refusal_next_to_one_older_gpu_still_points_to_bf16():
    mixed = explain_text("GPU 0: NVIDIA A100-SXM4-80GB\nGPU 1: Tesla T4\n" + SCALER)
    assert mixed.candidates[0].finding.id == "bf16-unsupported"
    assert mixed.candidates[0].finding.severity in (Severity.ERROR, Severity.WARNING)


TRAINER_BF16 = (
    "ValueError: Your setup doesn't support bf16/gpu. You need torch>=1.10, using Ampere GPU with cuda>=11.0"
)
TRAINER_BF16_NEW = "ValueError: Your setup doesn't support bf16/gpu. You need Ampere+ GPU with cuda>=11.0"


def test_transformers_refusing_bf16_on_a_v100_or_t4_is_bf16_unsupported_in_both_wordings():
    """FastChat#399 (8x V100, --bf16 True) and unsloth#2783 (T4): TrainingArguments refuses --bf16."""
    for message in (TRAINER_BF16, TRAINER_BF16_NEW):
        for gpu in ("GPU 0: Tesla V100-SXM2-32GB", "GPU 0: Tesla T4"):
            first = explain_text(gpu + "\n" + message).candidates[0]
            assert first.finding.id == "bf16-unsupported"
            assert first.finding.severity is Severity.ERROR
            assert "transformers refused --bf16" in first.matches[0].signature.message


def test_transformers_refusing_bf16_on_an_a100_is_not_blamed_on_the_gpu():
    """An A100 has bf16: the refusal there is torch's build (CPU, CUDA < 11), not the GPU's formats."""
    a100 = explain_text("GPU 0: NVIDIA A100-SXM4-80GB\n" + TRAINER_BF16)
    assert not any(d.finding.id == "bf16-unsupported" for d in a100.candidates)
