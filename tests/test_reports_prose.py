"""Facts written in prose and commands, marked as stated; rules resting only on them are warnings."""

from __future__ import annotations

import json

from envdoctor.explain import explain_text, rank, render_explanation
from envdoctor.findings import Severity
from envdoctor.paste import facts_from_report

COLLECT_ENV = """PyTorch version: 2.1.0+cu121
CUDA used to build PyTorch: 12.1
Python version: 3.10.12 (main, Nov 20 2023, 15:14:05) [GCC 11.4.0] (64-bit runtime)
Is CUDA available: True
GPU models and configuration: GPU 0: NVIDIA A100-SXM4-80GB
Nvidia driver version: 535.104.05
"""


def test_prose_versions_gpu_and_driver_are_read_and_marked_stated():
    facts = facts_from_report(
        "I am on Pytorch2.2.0+cu121, transformers 4.49.0, python 3.13.5, driver version 340 and an rtx3090."
    )
    assert facts.torch.version == "2.2.0+cu121" and facts.torch.cuda == "12.1"
    assert facts.packages.versions["transformers"] == "4.49.0"
    assert facts.python.version == "3.13.5"
    assert facts.nvidia.driver_version == "340"
    assert [g.name for g in facts.nvidia.gpus] == ["NVIDIA GeForce RTX 3090"]
    assert {"torch.version", "torch.cuda", "packages.versions.transformers", "python.version"} <= set(
        facts.stated
    )
    assert {"nvidia.driver_version", "nvidia.gpus"} <= set(facts.stated)
    assert "driver version 340" in facts.stated["nvidia.driver_version"]
    assert json.loads(facts.to_json())["stated"]["python.version"].startswith("I am on")


def test_a_build_tag_written_apart_from_the_version_is_read():
    """ComfyUI#9929: '**Versions:** PyTorch 2.8.0 + cu129' on a GTX 1070 (the cu129 build lacks sm_61)."""
    facts = facts_from_report(
        "**Setup:** i7-8750H, GTX 1070, 16 GB RAM.\n**Versions:** PyTorch 2.8.0 + cu129\n"
    )
    assert (facts.torch.version, facts.torch.cuda) == ("2.8.0+cu129", "12.9")
    assert rank(facts)[0].finding.id == "arch-not-in-wheel"


def test_a_version_written_in_parentheses_after_the_name_is_read():
    """DGL#7157: 'This is my environment: pytorch(2.2 + cu118)'."""
    facts = facts_from_report("This is my environment: pytorch(2.2 + cu118)")
    assert (facts.torch.version, facts.torch.cuda) == ("2.2+cu118", "11.8")
    assert "torch.version" in facts.stated


def test_driver_written_as_driver_is_version_is_read():
    facts = facts_from_report("the cluster GPU driver is version 470.82. Is there any way?")
    assert facts.nvidia.driver_version == "470.82" and "nvidia.driver_version" in facts.stated


def test_tool_output_wins_over_prose_and_is_not_marked_stated():
    facts = facts_from_report(COLLECT_ENV + "\nI think I have torch 2.0.1 and an RTX 3090.\n")
    assert facts.torch.version == "2.1.0+cu121"
    assert [g.name for g in facts.nvidia.gpus] == ["NVIDIA A100-SXM4-80GB"]  # a tool's GPU list stays
    assert not {"torch.version", "torch.cuda", "nvidia.gpus", "nvidia.driver_version"} & set(facts.stated)


def test_requested_versions_are_not_installed_versions():
    facts = facts_from_report(
        "pip install torch==2.5.1 transformers==4.40.0 --index-url https://download.pytorch.org/whl/cu118\n"
        "requires transformers>=4.41.2,<=4.49.0\n"
        "ERROR: Could not find a version that satisfies the requirement torch==1.13.1 (from versions: 2.0.0)\n"
    )
    assert facts.torch.version is None and not (facts.packages.versions or {})


def test_cpu_builds_stated_in_commands_and_words():
    conda = facts_from_report("conda install pytorch torchvision cpuonly -c pytorch\nRTX 4090 here")
    assert conda.torch.cuda is None and "torch.cuda" in conda.stated
    words = facts_from_report("pip install torch resulted in the CPU version of torch on my GB200")
    [finding] = [d.finding for d in rank(words) if d.finding.id == "torch-cpu-build"]
    assert finding.severity is Severity.WARNING and "stated, not tool output" in finding.evidence


def test_docker_run_is_a_stated_command():
    facts = facts_from_report("docker run --gpus all -it myimage python train.py\n")
    assert facts.system.in_container is True and facts.system.shm_size_mib == 64
    assert "docker run" in facts.stated["system.shm_size_mib"]


def test_docker_run_without_a_gpu_flag_means_no_gpu_inside_the_container():
    facts = facts_from_report(
        "docker run -it --ipc=host vllm/vllm-openai --model x\nPyTorch version: 2.5.1+cu124\n"
    )
    assert facts.nvidia.gpus == [] and "nvidia.gpus" in facts.stated
    top = rank(facts)[0].finding
    assert top.id == "container-gpu" and top.severity is Severity.WARNING
    with_gpus = facts_from_report("docker run --runtime=nvidia -it img\nPyTorch version: 2.5.1+cu124\n")
    assert with_gpus.nvidia.gpus is None


def test_rule_fired_by_stated_facts_is_a_warning_unless_an_error_line_agrees():
    prose = "My driver version is 470.57 and I run torch 2.4.0+cu121 on an RTX 3090."
    [alone] = [d for d in rank(facts_from_report(prose)) if d.finding.id == "driver-too-old"]
    assert alone.finding.severity is Severity.WARNING
    assert "470.57" in alone.finding.evidence["stated, not tool output"]
    error = "RuntimeError: The NVIDIA driver on your system is too old (found version 11040)."
    top = rank(facts_from_report(prose + "\n" + error))[0]
    assert top.finding.id == "driver-too-old" and top.finding.severity is Severity.ERROR
    assert "error" in top.support


def test_driver_below_floor_with_cuda_available_is_forward_compatibility_not_an_error():
    report = COLLECT_ENV.replace("535.104.05", "470.129.06")
    [d] = [d for d in rank(facts_from_report(report)) if d.finding.id == "driver-too-old"]
    assert d.finding.severity is Severity.WARNING and "forward compatibility" in d.finding.message
    unavailable = report.replace("Is CUDA available: True", "Is CUDA available: False")
    [d] = [d for d in rank(facts_from_report(unavailable)) if d.finding.id == "driver-too-old"]
    assert d.finding.severity is Severity.ERROR


def test_unrecognised_text_says_what_was_read_and_asks_for_the_report_that_settles_it():
    ex = explain_text("I have a RTX3060 but I couldn't use cuda")
    assert ex.candidates == []
    assert ex.settle is not None
    assert ex.settle.recognised == ["nvidia.gpus: NVIDIA GeForce RTX 3060 (stated in prose)"]
    assert "python -m torch.utils.collect_env" in ex.settle.ask_for
    text = render_explanation(ex)
    assert "read: nvidia.gpus" in text and "To settle it, paste" in text
    data = ex.to_dict()
    assert data["ask_for"] == ex.settle.ask_for and data["recognised"] == ex.settle.recognised
    full = explain_text(COLLECT_ENV + "\nSegmentation fault somewhere\n")  # a complete, healthy report
    assert full.candidates == [] and full.settle is not None
    assert "complete error output" in full.settle.ask_for


def test_a_gpu_named_between_ideographs_is_read():
    """Chinese text runs a GPU name into the words around it ("使用v100在运行"): \\w matches ideographs,
    so the name's edges are ASCII letters and digits only."""
    facts = facts_from_report("使用v100在运行RL章节里面的快速上手示例时候，因为不支持BF16，导致出错。")
    assert [g.name for g in facts.nvidia.gpus] == ["NVIDIA V100"]
    assert "nvidia.gpus" in facts.stated
    # still no GPU inside a longer ASCII word or model name
    assert facts_from_report("I run model xv100b on torch 2.1.0").nvidia.gpus is None


def test_a_capability_printed_as_torchs_tuple_is_the_gpus_capability():
    """CosyVoice#1318 prints torch.cuda.get_device_capability() under its own label ("GPU 架构: (12, 0)")
    next to torch's version: the RTX 50 card under a cu126 torch is found from those lines alone."""
    text = "我的conda环境如下:\nGPU 架构: (12, 0)\nCUDA: 12.6\nPyTorch: 2.7.0+cu126\nCUDA可用: True\n"
    facts = facts_from_report(text)
    assert [(g.compute_capability, g.capability_inferred) for g in facts.nvidia.gpus] == [("12.0", False)]
    assert "nvidia.gpus" in facts.stated
    assert explain_text(text).candidates[0].finding.id == "arch-not-in-wheel"


def test_a_stated_capability_joins_the_one_gpu_named_and_never_a_tool_list():
    named = facts_from_report("RTX 4090, compute capability: (8, 9), torch 2.1.0+cu121")
    assert [(g.name, g.compute_capability) for g in named.nvidia.gpus] == [("NVIDIA GeForce RTX 4090", "8.9")]
    tool = facts_from_report("GPU 0: Tesla T4\nGPU 1: Tesla T4\narch: (8, 0)\n")
    assert [g.compute_capability for g in tool.nvidia.gpus] != ["8.0", "8.0"]
    assert len(tool.nvidia.gpus) == 2
    two = facts_from_report("capability (8, 6) on one box, capability (7, 5) on the other; torch 2.1.0")
    assert two.nvidia.gpus is None


def test_package_names_in_markdown_code_or_bold_are_read_with_their_versions():
    facts = facts_from_report("- `torch` 2.6.0\n- **transformers**: 5.10.2\n- `flash_attn`==2.7.4")
    assert facts.torch.version == "2.6.0"
    assert facts.packages.versions["transformers"] == "5.10.2"
    assert facts.packages.versions["flash-attn"] == "2.7.4"
    assert facts.stated["torch.version"] == "- `torch` 2.6.0"


def test_torchs_cuda_said_without_its_version_bounds_the_archs_it_can_have():
    """spinalcordtoolbox#5104: a dependency checker's "CUDA version used by PyTorch ... (12.1)" next to
    an RTX PRO 6000 (sm_120): CUDA 12.1 compiles for sm_50 .. sm_90, whatever the torch release."""
    facts = facts_from_report(
        "PyTorch version error with NVIDIA RTX PRO 6000 (tassan)\n"
        "`Check CUDA version used by PyTorch..................[OK] (12.1)`"
    )
    assert facts.torch.cuda == "12.1" and facts.torch.version is None
    assert [g.name for g in facts.nvidia.gpus or []] == ["NVIDIA RTX PRO 6000"]
    first = rank(facts)[0].finding
    assert first.id == "arch-not-in-wheel" and first.severity is Severity.WARNING  # stated, not printed
    assert first.message.startswith(
        "this torch (version not stated) was built with CUDA 12.1, which compiles for sm_50 .. sm_90"
    )
    assert first.evidence["knowledge.cuda_toolkit_archs[12.1]"] == "5.0..9.0"


def test_torchs_cuda_is_read_only_from_words_that_tie_it_to_torch():
    assert facts_from_report("torch's CUDA version: 12.4, on an A100").torch.cuda == "12.4"
    assert facts_from_report("CUDA 12.1 installed, torch 2.3.0 on an A100").torch.cuda is None
