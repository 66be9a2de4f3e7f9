"""Error signatures: every shipped signature matches its own example and names a registered rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import invoke

from envdoctor.explain import explain_text, load_signatures, match_text, rank
from envdoctor.paste import facts_from_report
from envdoctor.rules import all_rules

SIGNATURES = load_signatures()
FIXTURES = Path(__file__).parent / "reports_fixtures"


@pytest.mark.parametrize("sig", SIGNATURES, ids=[s.name for s in SIGNATURES])
def test_signature_matches_its_example_and_points_to_a_registered_rule(sig):
    matches = match_text(sig.example)
    assert any(m.signature.name == sig.name for m in matches)
    assert sig.id is None or sig.id in {r.id for r in all_rules()}
    assert sig.source.startswith("https://github.com/")


def test_fields_are_extracted_and_converted():
    ex = explain_text(
        "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch\n"
        "installation. The current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_90.\n"
        "RuntimeError: The NVIDIA driver on your system is too old (found version 11040)."
    )
    by_id = {d.finding.id: d for d in ex.candidates}
    fields = {k: v for m in by_id["arch-not-in-wheel"].matches for k, v in m.fields.items()}
    assert fields["sm"] == "12.0" and fields["supported"] == ["sm_50", "sm_60", "sm_90"]
    assert by_id["driver-too-old"].matches[0].fields["found"] == "11.4"


def test_specific_library_signature_beats_generic_undefined_symbol():
    text = (
        "ImportError: libcudnn_cnn_infer.so.8: undefined symbol: _ZN5cudnn3cnn5infer22queryClusterPoolingEv"
    )
    assert [d.finding.id for d in explain_text(text).candidates] == ["cuda-lib-conflict"]
    text = "ImportError: /x/flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEi"
    assert [d.finding.id for d in explain_text(text).candidates] == ["ext-abi-mismatch"]


def test_messages_without_a_single_cause_are_recognised_but_not_diagnosed():
    ex = explain_text("RuntimeError: CUDA error: an illegal memory access was encountered")
    assert ex.candidates == [] and ex.notes[0].signature.name == "illegal-memory-access"


def test_nvml_mismatch_inside_docker_is_the_driver_not_the_toolkit():
    ex = explain_text(
        "nvidia-container-cli: initialization error: nvml error: driver/library version mismatch"
    )
    assert ex.candidates[0].finding.id == "driver-library-mismatch"


def test_deepspeed_op_builder_mismatch_states_both_cuda_versions_and_the_rule_agrees():
    """DeepSpeed's refusal (deepspeedai/DeepSpeedExamples#370) names nvcc's CUDA and torch's: both become
    facts, so the nvcc-mismatch rule fires on them and the finding is supported by error and facts."""
    text = (
        "Exception: >- DeepSpeed Op Builder: Installed CUDA version 12.0 does not match the version "
        "torch was compiled with 11.8, unable to compile cuda/cpp extensions without a matching cuda version."
    )
    facts = facts_from_report(text)
    assert facts.cuda.nvcc_version == "12.0" and facts.torch.cuda == "11.8"
    top = rank(facts)[0]
    assert top.finding.id == "nvcc-mismatch" and top.support == ("error", "facts")


def test_retyped_and_paraphrased_messages_still_match():
    nccl = "VllM ： NCCLerror: unhandled system error (run withNCCL DEBUG=INFo for details)"
    assert explain_text(nccl).candidates[0].finding.id == "shm-too-small"
    said = "When compiling the model, it prompts that the driver version is too low."
    assert explain_text(said).candidates[0].finding.id == "driver-too-old"
    assert not explain_text("my GPU is too old for this PyTorch").candidates  # not a driver


def test_cuda_library_dlls_missing_on_windows_are_a_library_conflict():
    """CTranslate2's, and a retyped name (SYSTRAN/faster-whisper#1080); a DLL name in prose is not one."""
    for text in (
        "Could not locate cudnn_ops_infer64_8.dll. Please make sure it is in your library path!",
        "RuntimeError: Library cublas64_12.dll is not found or cannot be loaded",
        "I got `cudnn ops64_9.dll is not found` error which means cuDNN version mismatch.",
    ):
        assert explain_text(text).candidates[0].finding.id == "cuda-lib-conflict", text
    assert not explain_text("cudnn_ops64_9.dll ships with the cuDNN 9 installer").candidates


def test_a_packages_own_python_range_refusing_the_interpreter_is_python_unsupported():
    """pip's refusal names the interpreter (a fact); an installer's range message (InvokeAI) too."""
    text = "ERROR: Package 'invokeai' requires a different Python: 3.11.0 not in '<3.11,>=3.9'"
    assert facts_from_report(text).python.version == "3.11.0"
    assert explain_text(text).candidates[0].finding.id == "python-unsupported"
    installer = "Please install Python 3.10.0 or higher (maximum 3.11.100) before running this script."
    assert explain_text(installer).candidates[0].finding.id == "python-unsupported"


def test_torchs_windows_dll_loader_failing_is_a_torch_import_error():
    """WinError 126 / 1114 in torch's own loader, in English and localised (1517005260/graph-rag-agent#54),
    with a short path (intel/intel-extension-for-pytorch#665); another program's DLL is not torch's."""
    for text in (
        'OSError: [WinError 1114] 动态链接库(DLL)初始化例程失败。 Error loading "D:\\anaconda\\envs\\graphrag'
        '\\lib\\site-packages\\torch\\lib\\c10.dll" or one of its dependencies.',
        'OSError: [WinError 126] The specified module could not be found. Error loading "\\.venv\\Lib'
        '\\site-packages\\torch\\lib\\fbgemm.dll" or one of its dependencies.',
    ):
        assert explain_text(text).candidates[0].finding.id == "torch-import-error", text
    other = 'OSError: [WinError 126] Error loading "C:\\app\\lib\\foo.dll" or one of its dependencies.'
    assert not explain_text(other).candidates


def test_a_program_falling_back_to_the_cpu_is_recognised_without_a_cause():
    """whisper's FP16 warning (mmguero/monkeyplug#4) says torch ran on the CPU, not why: no id is
    claimed, and the paste that would settle it is asked for."""
    result = explain_text("UserWarning: FP16 is not supported on CPU; using FP32 instead")
    assert not result.candidates
    assert [m.signature.name for m in result.notes] == ["ran-on-cpu"]
    assert result.settle is not None and "collect_env" in result.settle.ask_for


def test_transformers_feature_requiring_a_newer_dependency_is_a_requirement_conflict():
    text = (
        "ImportError: Using the `Trainer` with `PyTorch` requires `accelerate>=0.20.1`: Please run "
        "`pip install transformers[torch]` or `pip install accelerate -U`"
    )
    top = explain_text(text).candidates[0]
    assert top.finding.id == "requirement-conflict" and "accelerate>=0.20.1" in top.finding.message
    assert not explain_text("This fork requires `numpy<2` until the next release.").candidates


def test_fixture_rtx5090_cu121_id_supported_by_error_and_facts_comes_first():
    facts = facts_from_report((FIXTURES / "collect_env_rtx5090_cu121.txt").read_text())
    top = rank(facts)[0]
    assert top.finding.id == "arch-not-in-wheel" and top.support == ("error", "facts")
    assert "error message" in top.finding.evidence


def test_fixture_facts_only_report_still_finds_the_arch_problem():
    text = (FIXTURES / "collect_env_rtx5090_cu121.txt").read_text()
    facts_only = "\n".join(line for line in text.splitlines() if "sm_" not in line and "Error" not in line)
    facts = facts_from_report(facts_only)
    top = rank(facts)[0]
    assert top.finding.id == "arch-not-in-wheel" and top.support == ("facts",)
    assert top.finding.inferred  # the GPU's capability came from its name


def test_cli_explain_text_json_and_exit_codes(tmp_path):
    result = invoke(["explain", "AssertionError: Torch not compiled with CUDA enabled"])
    assert result.exit_code == 1 and "torch-cpu-build" in result.stdout
    result = invoke(["explain", "--json", "operator torchvision::nms does not exist"])
    assert json.loads(result.stdout)["candidates"][0]["id"] == "ext-abi-mismatch"
    result = invoke(["explain", "everything is fine"])
    assert result.exit_code == 0 and "No known error" in result.stdout
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01" * 100)
    result = invoke(["explain", str(binary)])
    assert result.exit_code == 2 and "binary" in result.stderr


def test_cli_check_from_report_stdin_ranks_and_exits_1():
    text = (FIXTURES / "collect_env_rtx5090_cu121.txt").read_text()
    result = invoke(["check", "--from-report", "-", "--json"], input=text)
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["facts"]["origin"] == "report"
    assert out["findings"][0]["id"] == "arch-not-in-wheel"


NVCC_PROBE = "/bin/sh: 1: /usr/local/cuda/bin/nvcc: not found"


def test_nvcc_missing_from_a_plain_cuda_home_is_a_warning_when_nothing_is_built():
    """kvcache-ai/Mooncake#507: SGLang's check_env probes $CUDA_HOME/bin/nvcc in a runtime container."""
    report = f"{NVCC_PROBE}\nPython: 3.10.12\nCUDA available: True\nGPU 0: NVIDIA H200\nCUDA_HOME: /usr/local/cuda\nNVCC: Not Available\nPyTorch: 2.3.0+cu121\nsglang: 0.4.7.post1"
    first = rank(facts_from_report(report))[0].finding
    assert first.id == "cuda-home-invalid" and first.severity.value == "warning"


@pytest.mark.parametrize(
    "text",
    [
        # a build in the paste: the missing nvcc is what failed it
        f'  File "/venv/lib/python3.10/site-packages/torch/utils/cpp_extension.py", line 525, in build_extensions\n{NVCC_PROBE}',
        # a list of folders is wrong whatever runs
        "/bin/sh: 1: :/usr/local/cuda-9.0:/usr/local/cuda-9.0/bin/nvcc: not found",
    ],
)
def test_nvcc_missing_stays_an_error_in_a_build_or_for_a_list_of_folders(text):
    first = rank(facts_from_report(text))[0].finding
    assert first.id == "cuda-home-invalid" and first.severity.value == "error"
