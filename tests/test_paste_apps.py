"""Startup banners that print the running torch and GPU (ComfyUI, Unsloth) are tool output, not prose:
a report holding one is complete, and a rule resting on it is not softened to a warning."""

from __future__ import annotations

from pathlib import Path

import yaml

from envdoctor.explain import rank
from envdoctor.findings import Severity
from envdoctor.paste import facts_from_report

CORPUS = Path(__file__).parent / "corpus"

# Unsloth's banner since 2025 (unslothai/unsloth pull request 2039, verbatim).
UNSLOTH_2025 = r"""==((====))==  Unsloth 2025.3.14: Fast Llama patching. Transformers: 4.49.0. vLLM: 0.7.3.
   \\   /|    NVIDIA GeForce RTX 4090. Num GPUs = 1. Max memory: 23.621 GB. Platform: Linux.
O^O/ \_/ \    Torch: 2.5.1+cu124. CUDA: 8.9. CUDA Toolkit: 12.4. Triton: 3.1.0
\        /    Bfloat16 = TRUE. FA [Xformers = 0.0.28.post3. FA2 = False]
 "-____-"     Free license: http://github.com/unslothai/unsloth
"""


def _report(case: str) -> str:
    return yaml.safe_load((CORPUS / f"{case}.yaml").read_text(encoding="utf-8"))["report"]


def _from_tools(facts) -> None:
    assert not {"torch.version", "torch.cuda", "nvidia.gpus"} & set(facts.stated), facts.stated


def test_unsloth_banner_states_torch_its_cuda_and_the_gpu_capability():
    facts = facts_from_report(UNSLOTH_2025)
    assert (facts.torch.version, facts.torch.cuda) == ("2.5.1+cu124", "12.4")
    (gpu,) = facts.nvidia.gpus
    assert (gpu.name, gpu.compute_capability, gpu.capability_inferred) == (
        "NVIDIA GeForce RTX 4090",
        "8.9",
        False,
    )
    _from_tools(facts)


def test_old_unsloth_banner_on_a_turing_gpu_is_a_bf16_error_from_facts_alone():
    facts = facts_from_report(_report("unsloth-434-rtx2060-bf16-ptx"))
    assert facts.torch.version == "2.3.0" and facts.torch.cuda == "12.1"
    assert [(g.name, g.compute_capability) for g in facts.nvidia.gpus] == [
        ("NVIDIA GeForce RTX 2060 SUPER", "7.5")
    ]
    _from_tools(facts)
    assert rank(facts)[0].finding.id == "bf16-unsupported"


def test_comfyui_startup_log_with_its_timestamps_is_tool_output():
    facts = facts_from_report(_report("comfyui-6823-rtx5080-torch260-cu126-startup-log"))
    assert facts.torch.version == "2.6.0+cu126"
    assert [g.name for g in facts.nvidia.gpus] == ["NVIDIA GeForce RTX 5080"]
    _from_tools(facts)
    top = rank(facts)[0].finding
    assert top.id == "arch-not-in-wheel" and top.severity is Severity.ERROR


def test_comfyui_settings_panel_copy_reads_values_under_their_labels():
    facts = facts_from_report(_report("healthy-comfyui-hidream-7-rtx5090d-cu128-nightly"))
    assert facts.torch.version == "2.7.0.dev20250307+cu128"
    assert [g.name for g in facts.nvidia.gpus] == ["NVIDIA GeForce RTX 5090 D"]
    _from_tools(facts)
    assert not [d for d in rank(facts) if d.finding.severity is Severity.ERROR]
