"""A kernel library's own capability floor (flash-attn 2 needs Ampere, Triton a compute capability its
compiler targets), and bf16 refused in accelerate's words: the GPU runs torch, the library has nothing
for it. From the message when the paste has one; from the installed version and the GPU (the
kernel-floor table) when it has only those, as a warning."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text, rank
from envdoctor.findings import Severity
from envdoctor.knowledge import ecosystem
from envdoctor.paste import facts_from_report

FA_REFUSAL = "RuntimeError: FlashAttention only supports Ampere GPUs or newer."


@pytest.mark.parametrize("gpu", ["GPU：Tesla V100S", "on my GTX 1650", "2xRTX 5000 16GB"])
def test_flash_attn_refusing_an_older_gpu_is_arch_not_in_wheel_with_its_own_fix(gpu):
    first = explain_text(f"{gpu}\n{FA_REFUSAL}").candidates[0].finding
    assert first.id == "arch-not-in-wheel" and first.severity is Severity.ERROR
    assert "flash-attn 2" in first.message and "sdpa" in first.fix  # not "install another torch"


def test_flash_attn_2_has_a_kernel_floor_of_ampere_and_v1_is_not_judged():
    floor = ecosystem.kernel_floor("flash_attn", "2.6.0.post1")
    assert floor is not None and floor.min_capability == "8.0"
    assert ecosystem.kernel_floor("flash-attn", "1.0.9") is None


def test_flash_attn_listed_next_to_a_v100_is_a_kernel_floor_warning_from_facts_alone():
    facts = facts_from_report("env:\nflash-attn==2.6.0.post1\ntransformers== 4.42.4\n\nGPU: Tesla V100S")
    first = rank(facts)[0].finding
    assert first.id == "arch-not-in-wheel" and first.severity is Severity.WARNING
    assert first.evidence["knowledge.kernel_floors[flash-attn>=2.0]"] == "8.0"


def test_flash_attn_next_to_an_ampere_gpu_and_vllms_fork_are_not_judged():
    assert "arch-not-in-wheel" not in {
        d.finding.id for d in rank(facts_from_report("flash-attn==2.6.3 on an A100"))
    }
    # vllm-flash-attn is vLLM's own build, not flash-attn: its version is not flash-attn's
    facts = facts_from_report(
        "gpu V100 32G\nvllm                              0.5.4\nvllm-flash-attn                   2.6.1"
    )
    assert "flash-attn" not in (facts.packages.versions or {})


def test_accelerate_refusing_bf16_mixed_precision_is_bf16_unsupported_unless_the_gpus_have_it():
    said = "ValueError: bf16 mixed precision requires PyTorch >= 1.10 and a supported device."
    first = explain_text(f"Colab T4\n{said}").candidates[0].finding
    assert first.id == "bf16-unsupported" and first.severity is Severity.ERROR
    # on GPUs that all have bf16 the refusal is about the program's settings, not the GPU
    assert "bf16-unsupported" not in {d.finding.id for d in explain_text(f"8x A100\n{said}").candidates}
