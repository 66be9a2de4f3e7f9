"""Real-world variations of pasted reports seen in the public corpus (tests/corpus)."""

from __future__ import annotations

from envdoctor.explain import rank
from envdoctor.knowledge.cuda import min_driver_for_cuda
from envdoctor.reports import facts_from_report


def test_markdown_bold_bullets_with_gpu_and_inline_driver():
    facts = facts_from_report(
        "- **PyTorch Version**: 2.2.0+cu121\n"
        "- **GPU**: NVIDIA GeForce RTX 5090 (32GB GDDR7)\n"
        "- **CUDA Version**: 12.8 (Driver 570.181)\n"
    )
    assert facts.torch.version == "2.2.0+cu121"
    assert [g.name for g in facts.nvidia.gpus] == ["NVIDIA GeForce RTX 5090"]
    assert facts.nvidia.driver_version == "570.181"
    assert rank(facts)[0].finding.id == "arch-not-in-wheel"


def test_full_width_colon_and_old_layout_without_colon():
    facts = facts_from_report(
        "PyTorch version 1.5.0\nCUDA used to build PyTorch: 10.2\nGPU 0： Tesla P100-PCIE-16GB\n"
        "Nvidia driver version: 410.104\n"
    )
    assert facts.torch.version == "1.5.0"
    assert facts.nvidia.gpus[0].name == "Tesla P100-PCIE-16GB"
    assert rank(facts)[0].finding.id == "driver-too-old"


def test_could_not_collect_build_is_a_cpu_build_but_na_is_unknown():
    cpu = facts_from_report("PyTorch version: 2.2.2\nCUDA used to build PyTorch: Could not collect\n")
    assert cpu.torch.status == "ok" and cpu.torch.cuda is None
    missing = facts_from_report(
        "PyTorch version: N/A\nCUDA used to build PyTorch: N/A\nNvidia driver version: 535.104.05\n"
    )
    assert missing.torch.status == "unknown" and missing.torch.version is None


def test_no_cuda_is_not_a_gpu_name():
    facts = facts_from_report(
        "PyTorch version: 2.2.2\nCUDA used to build PyTorch: None\n"
        "GPU models and configuration: No CUDA\nNvidia driver version: No CUDA\n"
    )
    assert facts.nvidia.gpus is None and facts.nvidia.driver_version is None
    assert not [d for d in rank(facts) if d.finding.id == "torch-cpu-build"]


def test_pip_record_without_local_tag_is_the_same_install():
    facts = facts_from_report("PyTorch version: 1.9.0+cu102\n[pip3] numpy==1.20.3\n[pip3] torch==1.9.0\n")
    assert facts.packages.torch_installs is None
    mixed = facts_from_report("PyTorch version: 2.0.0a0+git7f2b5ea\n[pip3] torch==1.13.1\n")
    assert mixed.packages.torch_installs


def test_cuda_10_has_no_minor_version_compatibility():
    assert min_driver_for_cuda("cu102") == "440.33"
    assert min_driver_for_cuda("10.1") == "418.39"
    assert min_driver_for_cuda("cu118") == "450.80.02"


def test_stated_symptom_ranks_its_explanation_first():
    # Two installs of torch and a driver too old for the imported build; torch sees no GPU.
    facts = facts_from_report(
        "PyTorch version: 1.3.0\nCUDA used to build PyTorch: 10.1.243\nIs CUDA available: No\n"
        "GPU models and configuration: GPU 0: Tesla T4\nNvidia driver version: 410.104\n"
        "[pip3] torch==1.2.0\n[conda] pytorch 1.3.0 py3.7_cuda10.1.243_cudnn7.6.3_0 pytorch\n"
    )
    ranked = rank(facts)
    assert [d.finding.id for d in ranked[:2]] == ["driver-too-old", "mixed-torch-installs"]
    assert "symptom" in ranked[0].support
