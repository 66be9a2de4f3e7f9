"""Real-world variations of pasted reports seen in the public corpus (tests/corpus)."""

from __future__ import annotations

from envdoctor.explain import rank
from envdoctor.knowledge.cuda import min_driver_for_cuda
from envdoctor.paste import facts_from_report


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


def test_pre_release_and_dev_versions_keep_their_local_tag():
    dev = facts_from_report("PyTorch version: 2.0.0.dev20230203+cu118\nIs CUDA available: False\n")
    assert dev.torch.version == "2.0.0.dev20230203+cu118" and dev.torch.cuda == "11.8"
    ngc = facts_from_report("PyTorch version: 2.3.0a0+6ddf5cf85e\nCUDA used to build PyTorch: 12.4\n")
    assert (ngc.torch.version, ngc.torch.cuda) == ("2.3.0a0+6ddf5cf85e", "12.4")


def test_two_commits_of_one_source_build_are_one_install():
    facts = facts_from_report(
        "PyTorch version: 1.7.0a0+9ddd3df\nROCM used to build PyTorch: 3.7.20315-077bcfa0\n"
        "[pip3] numpy==1.18.5\n[pip3] torch==1.7.0a0+a9603c7\n"
    )
    assert facts.torch.hip == "3.7" and facts.packages.torch_installs is None


def test_truncated_smi_name_infers_nothing_and_bus_id_is_no_gpu_index():
    smi = facts_from_report(
        "| NVIDIA-SMI 461.72       Driver Version: 461.72       CUDA Version: 11.2     |\n"
        "|   0  GeForce GTX 105... WDDM  | 00000000:01:00.0 Off |                  N/A |\n"
        "| N/A   61C    P8    N/A /  N/A |     78MiB /  4096MiB |      0%      Default |\n"
    )
    gpu = smi.nvidia.gpus[0]
    assert (gpu.name, gpu.compute_capability, gpu.memory_total_mib) == ("GeForce GTX 105...", None, 4096)
    query = facts_from_report(
        "Driver Version                            : 450.203.03\nCUDA Version                              : 11.0\n"
        "GPU 00000000:07:00.0\n    Product Name                          : A100-SXM4-40GB\n"
    )
    assert [(g.name, g.compute_capability) for g in query.nvidia.gpus] == [("A100-SXM4-40GB", "8.0")]


def test_cut_line_with_vendor_only_name_or_empty_pin_states_nothing():
    facts = facts_from_report(
        "PyTorch version: 2.8.0+cu128\nGPU 0: NVIDIA H20\nGPU 1: NVIDIA\n[pip3] torch==\n"
    )
    assert [g.name for g in facts.nvidia.gpus] == ["NVIDIA H20"]


def test_interpreter_output_html_entities_and_markdown_tables():
    repl = facts_from_report(
        "print(torch.__version__)\n1.8.1+cu102\n>>> torch.cuda.is_available()\nFalse\n"
        "NVIDIA-SMI 450.51.05    Driver Version: 450.51.05    CUDA Version: 11.0\n"
    )
    assert (repl.torch.version, repl.torch.cuda, repl.torch.cuda_available) == ("1.8.1+cu102", "10.2", False)
    one_liner = facts_from_report('python -c "print(torch.__version__, torch.version.cuda)"\n2.4.1 None\n')
    assert one_liner.torch.status == "ok" and one_liner.torch.cuda is None
    escaped = facts_from_report("&gt; PyTorch version: 2.1.0+cu121\n&gt; Nvidia driver version: 470.82.01\n")
    assert (escaped.torch.version, escaped.nvidia.driver_version) == ("2.1.0+cu121", "470.82.01")
    table = facts_from_report(
        "| Key | Value |\n|---|---|\n| PyTorch version | 2.1.0+cu121 |\n"
        "| GPU models and configuration | GPU 0: NVIDIA GeForce RTX 3060 Laptop GPU |\n"
    )
    assert table.torch.version == "2.1.0+cu121"
    assert table.nvidia.gpus[0].compute_capability == "8.6"
