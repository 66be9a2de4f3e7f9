"""Messages from image, video and 3D generation stacks as their users paste them: a Windows CUDA
extension that will not load, xFormers built for another torch without a CUDA version, torch's CUDA
mismatch and a removed torchvision module quoted without their usual spacing or quotes, and an old
plain torch version read as the CUDA build PyPI shipped for it."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text, rank
from envdoctor.findings import Severity
from envdoctor.paste import facts_from_report
from envdoctor.readers import torch_build


def _top(text: str) -> str | None:
    candidates = explain_text(text).candidates
    return candidates[0].finding.id if candidates else None


@pytest.mark.parametrize(
    ("text", "module"),
    [
        (
            "Hy3DRenderMultiView DLL load failed while importing custom_rasterizer_kernel: The specified procedure could not be found.",
            "custom_rasterizer_kernel",
        ),
        (
            "ImportError: DLL load failed while importing custom_rasterizer_kernel: 지정된 프로시저를 찾을 수 없습니다.",
            "custom_rasterizer_kernel",
        ),
        (
            "!!! Exception during processing !!! DLL load failed while importing custom_rasterizer_kernel: 找不到指定的程序。",
            "custom_rasterizer_kernel",
        ),
        (
            "ImportError: DLL load failed while importing custom_rasterizer_kernel: Cannot find the specified module.",
            "custom_rasterizer_kernel",
        ),
        ("DLL load failed while importing nvdiffrast_plugin", "nvdiffrast_plugin"),
    ],
)
def test_a_windows_cuda_extension_that_will_not_load_is_built_for_another_torch(text, module):
    first = explain_text(text).candidates[0]
    assert first.finding.id == "ext-abi-mismatch" and first.matches[0].fields["module"] == module


def test_the_missing_procedure_is_the_confident_reading():
    text = "ImportError: DLL load failed while importing flash_attn_2_cuda: The specified procedure could not be found."
    match = explain_text(text).candidates[0].matches[0]
    assert match.signature.confidence == "high"
    assert (
        explain_text("DLL load failed while importing flash_attn_2_cuda")
        .candidates[0]
        .matches[0]
        .signature.confidence
        == "low"
    )


@pytest.mark.parametrize(
    "text",
    [
        "ImportError: DLL load failed while importing cv2: The specified module could not be found.",
        "ImportError: DLL load failed while importing _C: The specified procedure could not be found.",
        "ImportError: DLL load failed while importing _multiarray_umath: The specified module could not be found.",
        "ImportError: DLL load failed while importing onnxruntime_pybind11_state: A dynamic link library (DLL) initialization routine failed.",
    ],
)
def test_modules_that_are_not_torch_extensions_are_left_to_their_own_signatures(text):
    assert _top(text) != "ext-abi-mismatch"


def test_xformers_built_without_a_cuda_version_still_names_the_other_torch():
    text = (
        "WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\n"
        "    PyTorch 2.3.0+cu121 with CUDA None (you have 2.0.0+cu117)\n"
        "    Python  3.11.9 (you have 3.11.9)\n"
    )
    first = explain_text(text).candidates[0]
    assert first.finding.id == "ext-abi-mismatch"
    assert first.matches[0].fields == {"built": "2.3.0+cu121", "torch": "2.0.0+cu117"}


def test_torchs_cuda_mismatch_without_a_space_before_the_version_is_nvcc_mismatch():
    text = "The detected CUDA version(11.8) mismatches the version that was used to compile PyTorch (12.4)"
    first = explain_text(text).candidates[0]
    assert first.finding.id == "nvcc-mismatch" and first.matches[0].fields["nvcc"] == "11.8"


@pytest.mark.parametrize(
    "line",
    [
        "(ModuleNotFoundError: No module named 'torchvision.transforms.functional_tensor)",
        "ModuleNotFoundError: No module named 'torchvision.transforms.functional_tensor'",
    ],
)
def test_a_removed_torchvision_module_with_or_without_its_closing_quote(line):
    candidates = explain_text(line).candidates
    assert candidates[0].finding.id == "requirement-conflict"
    assert "removed in torchvision 0.17.0" in candidates[0].finding.message


def test_a_plain_torch_1_12_on_ubuntu_is_pypis_cuda_10_2_build_without_ampere_kernels():
    """wang-zidu/3DDFA-V3#19: 'PyTorch version: 1.12.1' on Ubuntu with an RTX 3090; PyPI's 1.12 Linux wheel is
    its CUDA 10.2 build, which compiles for sm_75 at most: a warning from the inference alone."""
    facts = facts_from_report(
        "- GPU: NVIDIA GeForce RTX 3090\n- PyTorch version: 1.12.1\n- Python version: 3.8\n- OS: ubuntu"
    )
    build = torch_build(facts)
    assert build is not None and build.variant == "cu102" and "inferred build" in build.evidence
    top = rank(facts)[0].finding
    assert top.id == "arch-not-in-wheel" and top.severity is Severity.WARNING
