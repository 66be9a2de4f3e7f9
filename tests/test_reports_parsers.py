"""Report parsers on recorded pastes (the fixtures were assembled from published tool outputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.paste import ReportError, decode_report, facts_from_report, read_report_text
from envdoctor.rules import evaluate

FIXTURES = Path(__file__).parent / "reports_fixtures"


def _facts(name: str):
    return facts_from_report((FIXTURES / name).read_text(encoding="utf-8"))


def test_fixture_collect_env_rtx5090_cu121_reads_torch_driver_gpus_and_error_facts():
    f = _facts("collect_env_rtx5090_cu121.txt")
    assert f.origin == "report"
    assert (f.torch.version, f.torch.cuda, f.torch.status) == ("2.1.0+cu121", "12.1", "ok")
    assert f.nvidia.driver_version == "570.86.15"
    assert [g.name for g in f.nvidia.gpus] == ["NVIDIA GeForce RTX 5090"] * 2
    assert f.nvidia.gpus[0].compute_capability == "12.0" and not f.nvidia.gpus[0].capability_inferred
    assert f.nvidia.gpus[1].capability_inferred  # from the name: GPU 1 is not named in the error
    assert f.torch.arch_list[-1] == "sm_90"
    assert f.python.version == "3.10.12" and f.system.glibc == "2.35"
    assert f.cuda.nvcc_version == "12.1"
    assert [lib.version for lib in f.cuda.libraries] == ["8.9.6", "8.9.6"]
    assert any("no kernel image" in line for line in f.error_lines)
    assert f.docker.status == "unknown" and f.system.shm_size_mib is None  # not in the paste: unknown


def test_fixture_vllm_collect_env_with_nvidia_smi_and_pip_list():
    f = _facts("mixed_vllm_smi_pip.txt")
    assert (f.torch.version, f.torch.cuda) == ("2.7.0+cu126", "12.6")
    assert f.nvidia.cuda_driver_version == "12.4"
    assert f.nvidia.gpus[0].memory_total_mib == 81559
    assert f.packages.versions["vllm"] == "0.9.0"
    assert f.packages.versions["numpy"] == "2.2.4"
    assert f.packages.nvidia_wheels == {"nvidia-nccl-cu12": "2.26.2"}
    assert f.system.env["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    assert "HF_TOKEN" not in f.system.env  # secrets never kept
    assert f.error_lines == []


def test_fixture_detectron2_table_and_transformers_env():
    f = _facts("detectron2_hf_mix.txt")
    assert f.torch.version == "1.10.0+cu113" and f.torch.cuda == "11.3"
    assert f.torch.arch_list == ["sm_37", "sm_86", "compute_86"]
    assert f.torch.cudnn_version == 8200
    assert [(g.index, g.compute_capability) for g in f.nvidia.gpus] == [(0, "8.6"), (1, "8.6")]
    assert f.nvidia.driver_version == "515.65.01"
    assert f.cuda.cuda_home == "/usr/local/cuda" and f.cuda.nvcc_version == "11.8"
    assert f.packages.versions["transformers"] == "4.36.2"
    assert f.packages.versions["torchvision"] == "0.11.1+cu113"
    assert f.torch.cuda_available is True


def test_cpu_build_stated_by_collect_env_and_conda_build_strings():
    f = facts_from_report("PyTorch version: 2.2.2\nCUDA used to build PyTorch: None\n")
    assert f.torch.status == "ok" and f.torch.cuda is None  # a CPU build, as a probe would say
    f = facts_from_report("[conda] pytorch 2.0.1 py3.10_cuda11.8_cudnn8.7.0_0 pytorch\n")
    assert f.torch.cuda == "11.8" and f.torch.cudnn_version == 8700
    f = facts_from_report("torch==2.1.0\n")  # no build line: the build stays unknown
    assert f.torch.version == "2.1.0" and f.torch.status == "unknown"


def test_mixed_torch_installs_from_pip_and_conda_lines():
    f = facts_from_report("[pip3] torch==2.1.0\n[conda] pytorch 2.0.1 py3.10_cuda11.8_cudnn8.7.0_0 pytorch\n")
    assert {d.version for d in f.packages.torch_installs} == {"2.1.0", "2.0.1"}


def test_uv_install_summary_keeps_what_it_installed_not_what_it_removed():
    text = "Installed 2 packages in 1.2s\n - torch==2.6.0+cu126\n + torch==2.7.0+cpu\n + numpy==2.2.1\n"
    f = facts_from_report(text)
    assert f.packages.versions["torch"] == "2.7.0+cpu"
    assert f.packages.versions["numpy"] == "2.2.1"
    assert {d.version for d in f.packages.torch_installs or []} <= {"2.7.0+cpu"}


def test_docker_run_without_shm_size_means_dockers_64_mib_default():
    assert facts_from_report("docker run --gpus all -it img python train.py\n").system.shm_size_mib == 64
    assert facts_from_report("docker run --shm-size=8g img\n").system.shm_size_mib == 8192
    assert facts_from_report("docker run --ipc=host img\n").system.shm_size_mib is None


def test_prose_is_not_a_package_listing():
    with pytest.raises(ReportError):
        facts_from_report("I use Ubuntu 22.04 and it does not work, please help\n")


def test_garbage_binary_and_huge_inputs_give_one_line_errors(tmp_path):
    with pytest.raises(ReportError, match="binary"):
        decode_report(b"\x7fELF\x00\x01\x02" * 100, "a.out")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (6 * 1024 * 1024))
    with pytest.raises(ReportError, match="larger than"):
        read_report_text(str(big))
    with pytest.raises(ReportError, match="no such file"):
        read_report_text(str(tmp_path / "missing.txt"))
    with pytest.raises(ReportError, match="no environment report"):
        facts_from_report("".join(chr(33 + i % 90) for i in range(200_000)))


def test_utf16_powershell_redirect_is_read():
    text = decode_report("PyTorch version: 2.3.0+cu121\r\n".encode("utf-16"), "env.txt")
    assert facts_from_report(text).torch.version == "2.3.0+cu121"


def test_markdown_quotes_fences_and_ansi_colours_are_ignored():
    paste = (
        "> ```\n> PyTorch version: 2.4.0+cu124\n> \x1b[31mNvidia driver version: 550.54.15\x1b[0m\n> ```\n"
    )
    f = facts_from_report(paste)
    assert (f.torch.version, f.nvidia.driver_version) == ("2.4.0+cu124", "550.54.15")


def test_amd_and_intel_gpus_of_a_report_are_not_counted_as_nvidia_gpus():
    cpu_build_on_amd = (
        "PyTorch version: 2.4.0+cpu\nCUDA used to build PyTorch: None\nROCM used to build PyTorch: N/A\n"
        "Is CUDA available: False\nGPU models and configuration: AMD Radeon RX 6800 XT (gfx1030)\n"
    )
    f = facts_from_report(cpu_build_on_amd)
    assert f.nvidia.gpus is None  # nothing is known about NVIDIA GPUs here
    assert f.system.other_gpus == ["AMD Radeon RX 6800 XT (gfx1030)"]
    assert "torch-cpu-build" not in {finding.id for finding in evaluate(f)}  # no CUDA wheel for an AMD GPU
    f = facts_from_report("GPU 0: Intel(R) Data Center GPU Max 1550\nGPU 1: NVIDIA A100-SXM4-80GB\n")
    assert [g.name for g in f.nvidia.gpus] == ["NVIDIA A100-SXM4-80GB"]
    assert f.system.other_gpus == ["Intel(R) Data Center GPU Max 1550"]


def test_pip_show_blocks_give_package_versions():
    text = (
        "Name: torch\nVersion: 2.4.0+cu121\nSummary: Tensors and Dynamic neural networks\n\n"
        "Name: torchvision\nVersion: 0.20.1+cu124\nSummary: image and video datasets\n"
    )
    f = facts_from_report(text)
    assert f.packages.versions["torch"] == "2.4.0+cu121"
    assert f.packages.versions["torchvision"] == "0.20.1+cu124"
    assert "ext-abi-mismatch" in {finding.id for finding in evaluate(f)}  # 0.20 is built for torch 2.5


def test_the_errorish_prefilter_never_skips_a_line_the_pattern_matches():
    """_errorish skips lines without any of its literal words before searching: on every line of the
    corpus it must agree with the full pattern."""
    import yaml

    from envdoctor.paste import _ERRORISH, _errorish, report_lines

    corpus = Path(__file__).parent / "corpus"
    lines = [
        line
        for case in sorted(corpus.glob("*.yaml"))
        for field in ("report", "error")
        for line in report_lines(str(yaml.safe_load(case.read_text(encoding="utf-8")).get(field) or ""))
    ]
    assert len(lines) > 3000
    disagree = [line for line in lines if _errorish(line) != bool(_ERRORISH.search(line))]
    assert not disagree, disagree[:3]


def test_a_capability_stated_only_in_a_message_is_the_named_gpus_not_one_more():
    """vLLM#4202: collect_env names one V100 and the quantization refusal, quoted in the title and
    again in the traceback, says "Current capability: 70". Each quote made another 'unknown GPU'."""
    refusal = (
        "ValueError: The quantization method awq is not supported for the current GPU. "
        "Minimum capability: 75. Current capability: 70."
    )
    text = f"{refusal}\nGPU models and configuration: GPU 0: Tesla V100-SXM2-32GB\n{refusal}\n"
    gpus = facts_from_report(text).nvidia.gpus
    assert [(g.name, g.compute_capability) for g in gpus] == [("Tesla V100-SXM2-32GB", "7.0")]
    # a capability that no named GPU can have is another GPU
    other = text.replace("Current capability: 70", "Current capability: 86")
    assert [g.compute_capability for g in facts_from_report(other).nvidia.gpus] == ["7.0", "8.6"]
