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


# A four-GPU training log (garylvov/garylvov.github.io, a blog post's log; verbatim, indentation kept).
ULTRALYTICS_4_GPUS = """New https://pypi.org/project/ultralytics/8.3.78 available 😃 Update with 'pip install -U ultralytics'
Ultralytics 8.3.75 🚀 Python-3.11.11 torch-2.2.2+cu121 CUDA:0 (NVIDIA GeForce RTX 3090 Ti, 24142MiB)
                                                       CUDA:1 (NVIDIA GeForce RTX 3090 Ti, 24139MiB)
                                                       CUDA:2 (NVIDIA GeForce RTX 3090, 24154MiB)
                                                       CUDA:3 (NVIDIA GeForce RTX 3090, 24154MiB)
engine/trainer: task=detect, mode=train, model=yolo11m.pt, device=0,1,2,3, workers=8
"""
# YOLOv5 of 2021 (ultralytics/yolov5 issue 5870, verbatim): a space after "torch" and MB with a decimal.
YOLOV5_2021 = "YOLOv5  2021-10-12 torch 1.10.0 CUDA:0 (NVIDIA T600 Laptop GPU, 4096.0MB)\n"


def test_ultralytics_device_line_is_tool_output_and_sm120_on_cu124_is_an_error_from_facts_alone():
    facts = facts_from_report(_report("ultralytics-19833-rtx5090-torch260-cu124-image"))
    assert (facts.torch.version, facts.torch.cuda, facts.python.version) == ("2.6.0+cu124", "12.4", "3.10.12")
    assert [(g.index, g.name, g.memory_total_mib) for g in facts.nvidia.gpus] == [
        (0, "NVIDIA GeForce RTX 5090", 32120)
    ]
    _from_tools(facts)
    top = rank(facts)[0].finding
    assert (top.id, top.severity) == ("arch-not-in-wheel", Severity.ERROR)


def test_ultralytics_device_line_lists_every_gpu_under_it():
    facts = facts_from_report(ULTRALYTICS_4_GPUS)
    assert facts.torch.version == "2.2.2+cu121"
    assert [(g.index, g.name) for g in facts.nvidia.gpus] == [
        (0, "NVIDIA GeForce RTX 3090 Ti"),
        (1, "NVIDIA GeForce RTX 3090 Ti"),
        (2, "NVIDIA GeForce RTX 3090"),
        (3, "NVIDIA GeForce RTX 3090"),
    ]
    _from_tools(facts)
    assert not [d for d in rank(facts) if d.finding.severity is Severity.ERROR]


def test_old_yolov5_device_line_with_mb_is_read():
    facts = facts_from_report(YOLOV5_2021)
    assert facts.torch.version == "1.10.0"
    assert [(g.name, g.memory_total_mib) for g in facts.nvidia.gpus] == [("NVIDIA T600 Laptop GPU", 4096)]


def test_a_log_with_two_ultralytics_runs_is_read_at_the_last_one():
    """An old run on torch-1.8.1+cu111 and the new one on torch-2.0.0+cpu: the CPU build is now."""
    facts = facts_from_report(_report("ultralytics-1495-torch200-cpu-after-update"))
    assert (facts.torch.version, facts.torch.cuda, facts.python.version) == ("2.0.0+cpu", None, "3.10.6")
    assert facts.packages.torch_installs is None  # one install, seen twice in time, not two at once
    assert rank(facts)[0].finding.id == "torch-cpu-build"


def test_invokeai_dependency_json_states_torch_its_cuda_and_python():
    facts = facts_from_report(_report("invokeai-7683-rtx5090-torch241-cu124"))
    assert (facts.torch.version, facts.torch.cuda, facts.python.version) == ("2.4.1+cu124", "12.4", "3.10.11")
    assert facts.packages.versions["xformers"] == "0.0.28.post1"
    assert "version" not in facts.packages.versions and "cuda" not in facts.packages.versions
    assert "torch.version" not in facts.stated
    # The GPU comes from the form's "GPU model" field, typed by the user: it stays marked as stated.
    assert "nvidia.gpus" in facts.stated
    assert rank(facts)[0].finding.id == "arch-not-in-wheel"


# `yolo checks` on Windows (SunOner/sunone_aimbot issue 36, verbatim, the package list cut after torchvision).
YOLO_CHECKS = """Ultralytics YOLOv8.0.221 🚀 Python-3.11.6 torch-2.1.1+cu121 CUDA:0 (NVIDIA GeForce GTX 1650 SUPER, 4096MiB)
Setup complete ✅ (12 CPUs, 15.9 GB RAM, 101.6/111.2 GB disk)

OS                  Windows-10-10.0.18363-SP0
Environment         Windows
Python              3.11.6
Install             pip
RAM                 15.93 GB
CPU                 AMD Ryzen 5 2600 Six-Core Processor
CUDA                12.1

matplotlib          ✅ 3.8.2>=3.3.0
numpy               ✅ 1.26.2>=1.22.2
opencv-python       ✅ 4.8.1.78>=4.6.0
pillow              ✅ 10.1.0>=7.1.2
pyyaml              ✅ 6.0.1>=5.3.1
torch               ✅ 2.1.1+cu121>=1.8.0
torchvision         ✅ 0.16.1>=0.9.0
"""


def test_yolo_checks_lists_installed_requirements_as_tool_output():
    facts = facts_from_report(YOLO_CHECKS)
    versions = facts.packages.versions
    assert (versions["numpy"], versions["opencv-python"], versions["torchvision"]) == (
        "1.26.2",
        "4.8.1.78",
        "0.16.1",
    )
    assert "setup" not in versions  # "Setup complete ✅ (12 CPUs, ...)" is no requirement
    assert not [k for k in facts.stated if k.startswith("packages.") or k.startswith("torch.")]
    assert facts.torch.cuda == "12.1" and facts.nvidia.gpus[0].name == "NVIDIA GeForce GTX 1650 SUPER"
    assert not [d for d in rank(facts) if d.finding.severity is Severity.ERROR]
