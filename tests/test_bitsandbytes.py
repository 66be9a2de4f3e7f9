"""bitsandbytes: its native library is one binary per CUDA release (and, in old releases, Linux x86_64
only), its int8 matmul has a hardware floor, and ``python -m bitsandbytes`` reports what it took from
torch. A missing binary is an extension built for another CUDA or platform (ext-abi-mismatch, fixed in
bitsandbytes, not in torch); a GPU below a quantization kernel's floor is arch-not-in-wheel. Texts are
from public threads (the corpus cases named in each test)."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text
from envdoctor.findings import Severity
from envdoctor.paste import facts_from_report
from envdoctor.signatures import SignatureError, parse_signature


def _first(text: str):
    return explain_text(text).candidates[0].finding


def _ids(text: str) -> set[str]:
    return {c.finding.id for c in explain_text(text).candidates}


@pytest.mark.parametrize(
    "message",
    [
        # bitsandbytes#551 (CUDA 12.2, 0.39), 0.46 on CUDA 12.9 (#1688), 0.43.3 on CUDA 12.6 (#1315)
        "CUDA SETUP: Required library version not found: libbitsandbytes_cuda122.so. "
        "Maybe you need to compile it from source?\nCUDA SETUP: Defaulting to libbitsandbytes_cpu.so...",
        "RuntimeError: Configured CUDA binary not found at "
        "/usr/local/lib/python3.12/dist-packages/bitsandbytes/libbitsandbytes_cuda129.so",
        "WARNING  bitsandbytes.cextension:cextension.py:94 Could not find the bitsandbytes CUDA binary at "
        "PosixPath('/usr/local/lib/python3.10/dist-packages/bitsandbytes/libbitsandbytes_cuda126.so')",
        # InvokeAI#8084: a ROCm torch, a CUDA-only bitsandbytes wheel
        "🚨 CUDA VERSION MISMATCH 🚨\nRequested CUDA version:          6.3\n"
        "The version you're trying to use is NOT distributed with this package",
    ],
)
def test_a_bitsandbytes_release_without_a_binary_for_this_cuda_is_ext_abi_mismatch_fixed_in_bnb(message):
    first = _first(message)
    assert first.id == "ext-abi-mismatch" and first.severity is Severity.ERROR
    assert "bitsandbytes" in first.fix  # not "reinstall torch"


def test_the_binarys_cuda_is_named_in_the_message():
    first = _first("CUDA SETUP: Required library version not found: libbitsandbytes_cuda117_nocublaslt.so.")
    assert "CUDA 11.7" in first.message and "libbitsandbytes_cuda117_nocublaslt.so" in first.message
    assert first.verify == "python -m bitsandbytes"  # its own report, not torchvision's import


def test_a_signatures_verify_must_be_a_command():
    row = {
        "name": "x",
        "id": "ext-abi-mismatch",
        "severity": "error",
        "confidence": "high",
        "pattern": "boom",
        "message": "m",
        "source": "https://example.org/1",
        "example": "boom",
        "verify": " ",
    }
    with pytest.raises(SignatureError, match="verify"):
        parse_signature("test.yaml", 0, row)


def test_the_cpu_library_warning_alone_is_a_warning_and_a_cpu_torch_outranks_it():
    warning = (
        "UserWarning: The installed version of bitsandbytes was compiled without GPU support. "
        "8-bit optimizers, 8-bit multiplication, and GPU quantization are unavailable."
    )
    first = _first(f"Windows 10, NVIDIA GTX 1050 Ti, CUDA version 10.1.\n{warning}")
    assert first.id == "ext-abi-mismatch" and first.severity is Severity.WARNING
    # bitsandbytes#397: the same warning next to torch's own refusal is a CPU-only torch
    assert _first(f"{warning}\nAssertionError: Torch not compiled with CUDA enabled").id == "torch-cpu-build"


@pytest.mark.parametrize(
    "message",
    [
        "RuntimeError: CUDA Setup failed despite GPU being available. Please run the following command",
        "Could not load bitsandbytes native library: /x/bitsandbytes/libbitsandbytes_cpu.so: "
        "cannot open shared object file: No such file or directory",
    ],
)
def test_the_loaders_own_failures_are_ext_abi_mismatch_with_low_confidence(message):
    first = _first(message)
    assert first.id == "ext-abi-mismatch"


def test_a_gpu_below_the_int8_floor_is_arch_not_in_wheel_with_a_4bit_fix():
    first = _first("=============\nERROR: Your GPU does not support Int8 Matmul!\n=============")
    assert first.id == "arch-not-in-wheel" and first.severity is Severity.ERROR
    assert "4-bit" in first.fix
    slow = "UserWarning: WARNING: Compute capability < 7.5 detected! Only slow 8-bit matmul is supported for your GPU!"
    assert _first(slow).severity is Severity.WARNING  # printed on every load on a V100; 4-bit works there


def test_a_missing_binary_outranks_the_slow_matmul_warning_printed_beside_it():
    # bitsandbytes#498: a V100 under 0.39, whose release had no cuda113_nocublaslt binary
    text = (
        "CUDA SETUP: Highest compute capability among GPUs detected: 7.0\n"
        "UserWarning: WARNING: Compute capability < 7.5 detected! Only slow 8-bit matmul is supported for your GPU!\n"
        "CUDA SETUP: Required library version not found: libbitsandbytes_cuda113_nocublaslt.so."
    )
    assert _first(text).id == "ext-abi-mismatch"


def test_vllms_quantization_floor_is_arch_not_in_wheel_and_states_the_gpus_capability():
    said = (
        "ValueError: The quantization method bitsandbytes is not supported for the current GPU. "
        "Minimum capability: 70. Current capability: 52."
    )
    first = _first(said)
    assert first.id == "arch-not-in-wheel" and "5.2" in first.message
    assert facts_from_report(said).nvidia.gpus[0].compute_capability == "5.2"
    scheme = (
        "RuntimeError: ('Quantization scheme is not supported for ', 'the current GPU. Min capability: 75. ', "
        "'Current capability: 70.')"
    )
    assert _first(scheme).id == "arch-not-in-wheel"


def test_vllms_fp8_floor_stays_fp8_unsupported():
    fp8 = (
        "ValueError: The quantization method fp8 is not supported for the current GPU. "
        "Minimum capability: 89. Current capability: 86."
    )
    assert "arch-not-in-wheel" not in _ids(fp8)


@pytest.mark.parametrize(
    "message",
    [
        "ImportError: Please install bitsandbytes>=0.44.0 via `pip install bitsandbytes>=0.44.0` to use "
        "bitsandbytes quantizer.",
        "AttributeError: module 'bitsandbytes.nn' has no attribute 'Linear4bit'. Did you mean: 'Linear8bitLt'?",
    ],
)
def test_a_bitsandbytes_release_older_than_its_caller_needs_is_requirement_conflict(message):
    assert _first(message).id == "requirement-conflict"


OLD_REPORT = """===================================BUG REPORT===================================
bin /data/env/lib/python3.10/site-packages/bitsandbytes-0.38.1-py3.10.egg/bitsandbytes/libbitsandbytes_cuda121.so
CUDA SETUP: CUDA runtime path found: /usr/local/cuda-12.1/lib64/libcudart.so
CUDA SETUP: Highest compute capability among GPUs detected: 7.5
CUDA SETUP: Detected CUDA version 121
CUDA SETUP: Loading binary /data/env/lib/python3.10/site-packages/bitsandbytes-0.38.1-py3.10.egg/bitsandbytes/libbitsandbytes_cuda121.so...
"""  # bitsandbytes#361

NEW_REPORT = """++++++++++++++++++++++++++ OTHER +++++++++++++++++++++++++++
CUDA specs: CUDASpecs(highest_compute_capability=(8, 6), cuda_version_string='121', cuda_version_tuple=(12, 1))
PyTorch settings found: CUDA_VERSION=121, Highest Compute Capability: (8, 6).
To manually override the PyTorch CUDA version please see: https://github.com/TimDettmers/bitsandbytes/blob/main/docs/source/nonpytorchcuda.mdx
CUDA SETUP: WARNING! CUDA runtime files not found in any environmental path.
"""  # bitsandbytes#1449


def test_python_m_bitsandbytes_before_039_gives_the_gpus_capability_and_the_release():
    facts = facts_from_report(OLD_REPORT)
    assert facts.nvidia.gpus and facts.nvidia.gpus[0].compute_capability == "7.5"
    assert facts.packages.versions == {"bitsandbytes": "0.38.1"}
    assert facts.torch.cuda is None  # "Detected CUDA version" is the runtime it found, not torch's
    assert "nvidia.gpus" not in facts.stated  # tool output, not a person's words


def test_python_m_bitsandbytes_from_043_gives_torchs_cuda_and_the_capability():
    facts = facts_from_report(NEW_REPORT)
    assert facts.torch.cuda == "12.1"
    assert facts.nvidia.gpus and facts.nvidia.gpus[0].compute_capability == "8.6"


def test_torch_seeing_no_gpu_in_bitsandbytes_words_is_read():
    facts = facts_from_report(
        "The installed version of bitsandbytes was compiled without GPU support.\nCUDA specs: None\n"
        "Torch says CUDA is not available. Possible reasons:\n1. CUDA driver not installed"
    )
    assert facts.torch.cuda_available is False


def test_one_highest_capability_does_not_stand_for_a_gpu_of_several():
    facts = facts_from_report(
        "GPU 0: NVIDIA GeForce RTX 4090\nGPU 1: Quadro P600\n"
        "CUDA SETUP: Highest compute capability among GPUs detected: 8.9"
    )
    assert [g.compute_capability for g in facts.nvidia.gpus or []] != ["8.9", "8.9"]
    assert all(g.compute_capability != "8.9" or "4090" in g.name for g in facts.nvidia.gpus or [])


@pytest.mark.parametrize(
    ("text", "platform", "first"),
    [
        ("Windows 10, RTX 3060\nbitsandbytes==0.41.1\ntorch==2.1.0+cu121", "Windows", "0.43.0"),
        ("Jetson AGX Orin, aarch64, JetPack 6\nbitsandbytes==0.42.0", "Linux aarch64", "0.46.0"),
    ],
)
def test_a_release_without_a_wheel_for_this_platform_is_a_warning_naming_the_first_that_has_one(
    text, platform, first
):
    """The mined PyPI listings: up to 0.42 one py3-none-any wheel (Linux x86_64 binaries inside),
    win_amd64 from 0.43.0, manylinux_aarch64 from 0.46.0 (bitsandbytes#1104, #1154)."""
    found = [d.finding for d in explain_text(text).candidates if d.finding.id == "ext-abi-mismatch"]
    assert found and found[0].severity is Severity.WARNING
    assert platform in found[0].message and f">={first}" in found[0].fix
    assert found[0].verify == "python -m bitsandbytes"


@pytest.mark.parametrize(
    "text",
    [
        "Windows 11\nbitsandbytes==0.45.0\nRTX 4090",  # has a win_amd64 wheel
        "Ubuntu 22.04\nbitsandbytes==0.41.1\nRTX 3090",  # the any wheel's binaries are Linux x86_64
        "Windows 10\nbitsandbytes==0.0.1",  # a release the listings do not hold: nothing said
    ],
)
def test_no_platform_warning_where_the_release_has_a_build_for_it_or_is_unknown(text):
    assert "ext-abi-mismatch" not in _ids(text)


def test_a_bitsandbytes_explanation_gives_no_reason_or_source_of_the_rules_usual_cause():
    """ext-abi-mismatch's rule speaks of torchvision and xformers wheels; bitsandbytes' own message
    carries its own fix, so its explanation quotes neither the rule's reason nor its sources."""
    from envdoctor.explain import render_explanation

    ex = explain_text("CUDA Setup failed despite GPU being available. Please run the following command")
    text = render_explanation(ex)
    first = ex.candidates[0].finding
    assert first.id == "ext-abi-mismatch" and "python -m bitsandbytes" in first.fix
    assert "torchvision" not in text and "why:" not in text.split("\n2.")[0]
    assert first.sources == [ex.candidates[0].matches[0].signature.source]
