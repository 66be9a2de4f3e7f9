"""The platform a paste names decides what some messages and versions mean: PyPI's torch for Windows and
macOS is a CPU build, and on a Mac "Torch not compiled with CUDA enabled" is no build to replace."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text, rank, render_explanation
from envdoctor.findings import Severity
from envdoctor.paste import ReportError, facts_from_report
from envdoctor.readers import os_family, torch_build

CUDA_ASSERT = 'raise AssertionError("Torch not compiled with CUDA enabled")\nAssertionError: Torch not compiled with CUDA enabled'


@pytest.mark.parametrize(
    "words",
    [
        "I am running it on mac with following specification\nChipset Model: Apple M2",
        "Unable to run on Mac\n    Apple M3 Max:\n      Chipset Model: Apple M3 Max",
        "I'm facing a problem running it on my MacBook.",
        "Machine: Apple silicon, 16 GB",
    ],
)
def test_a_mac_or_apple_chip_named_in_words_is_macos(words: str) -> None:
    facts = facts_from_report(words + "\n" + CUDA_ASSERT)
    assert facts.system.os == "macOS" and os_family(facts) == "macos"
    assert "system.os" in facts.stated


def test_the_os_named_alone_is_still_no_report() -> None:
    with pytest.raises(ReportError):
        facts_from_report("It happens on my MacBook, and on Windows too.")


def test_torch_not_compiled_with_cuda_on_a_mac_is_explained_without_an_id() -> None:
    """genmoai/mochi#74-like: the program asks for CUDA on an Apple M3 Max; no torch build has it."""
    text = "Unable to run on Mac\nChipset Model: Apple M3 Max\n" + CUDA_ASSERT
    assert not [d for d in rank(facts_from_report(text)) if d.finding.id == "torch-cpu-build"]
    ex = explain_text(text)
    assert not ex.candidates and ex.notes
    assert "'mps' device" in render_explanation(ex)


def test_the_same_message_next_to_an_nvidia_gpu_is_still_a_cpu_build() -> None:
    text = "Windows 11, RTX 3070\n" + CUDA_ASSERT
    top = rank(facts_from_report(text))[0]
    assert top.finding.id == "torch-cpu-build" and top.finding.severity is Severity.ERROR


def test_a_plain_torch_version_on_windows_is_pypis_cpu_wheel_as_a_warning() -> None:
    """SWivid/F5-TTS#404: 'torch Version: 2.5.1' on Windows 11 next to an RTX 3070."""
    facts = facts_from_report("Windows 11\nRTX 3070\ntorch Version: 2.5.1\nCUDA Version: 12.3")
    build = torch_build(facts)
    assert build is not None and build.variant == "cpu" and "inferred build" in build.evidence
    top = rank(facts)[0]
    assert top.finding.id == "torch-cpu-build" and top.finding.severity is Severity.WARNING
    assert "inferred" in top.finding.message


@pytest.mark.parametrize(
    "text",
    [
        "Ubuntu 22.04, RTX 3070, torch 2.5.1",  # PyPI's Linux wheel is a CUDA build
        "Windows 11, RTX 3070, torch 2.5.1+cu124",  # the tag names the build
        "PyTorch version: 2.5.1\nCUDA used to build PyTorch: 12.4\nOS: Microsoft Windows 11 Pro\n"
        "GPU models and configuration: GPU 0: NVIDIA GeForce RTX 3070",  # conda's build: CUDA stated
    ],
)
def test_no_cpu_build_is_inferred_where_the_build_is_known_or_linux(text: str) -> None:
    facts = facts_from_report(text)
    build = torch_build(facts)
    assert build is not None and build.variant != "cpu"
    assert "torch-cpu-build" not in [d.finding.id for d in rank(facts)]


def test_torchaudio_built_for_another_cuda_is_an_extension_mismatch() -> None:
    """KoljaB/RealtimeSTT#2: torch 2.0.1+cu118 with a torchaudio built for CUDA 11.7."""
    ex = explain_text(
        "RuntimeError: Detected that PyTorch and TorchAudio were compiled with different CUDA versions. "
        "PyTorch has CUDA version 11.8 whereas TorchAudio has CUDA version 11.7. Please install the "
        "TorchAudio version that matches your PyTorch version."
    )
    top = ex.candidates[0]
    assert top.finding.id == "ext-abi-mismatch" and top.finding.severity is Severity.ERROR
    assert "TorchAudio (CUDA 11.7)" in top.finding.message


def test_a_plain_torch_version_on_linux_is_pypis_default_cuda_build() -> None:
    """'torch 2.5.1' on Ubuntu is PyPI's cu124 wheel (the knowledge table's pypi_default_cuda), which has
    no sm_120 kernels: a warning from the inference, an error once torch's own warning agrees."""
    words = "Ubuntu 22.04 with an RTX 5090, torch 2.5.1"
    facts = facts_from_report(words)
    build = torch_build(facts)
    assert build is not None and build.variant == "cu124" and "inferred build" in build.evidence
    top = rank(facts)[0]
    assert top.finding.id == "arch-not-in-wheel" and top.finding.severity is Severity.WARNING
    warning = (
        "UserWarning: NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the "
        "current PyTorch installation."
    )
    top = rank(facts_from_report(words + "\n" + warning))[0]
    assert top.finding.id == "arch-not-in-wheel" and top.finding.severity is Severity.ERROR


def test_no_build_is_inferred_for_an_unknown_platform_or_arm() -> None:
    for text in ("RTX 5090, torch 2.5.1", "Ubuntu 22.04 aarch64 with an RTX 5090, torch 2.5.1"):
        build = torch_build(facts_from_report(text))
        assert build is not None and build.variant is None


def test_the_platform_read_is_said_when_nothing_is_diagnosed() -> None:
    ex = explain_text("I am running it on mac\n" + CUDA_ASSERT)
    assert ex.settle is not None
    assert "system.os: macOS (stated in prose)" in ex.settle.recognised


def test_a_gpu_too_old_for_triton_is_explained_with_its_capability() -> None:
    """MIC-DKFZ/nnUNet#2188: torch.compile on a GTX 1080 Ti (6.1); Triton needs 7.0. A kernel
    library's capability floor (the arch id), with the remedy of running without torch.compile."""
    text = (
        "RuntimeError: Found NVIDIA GeForce GTX 1080 Ti which is too old to be supported by the triton GPU "
        "compiler, which is used as the backend. Triton only supports devices of CUDA Capability >= 7.0, "
        "but your device is of CUDA capability 6.1"
    )
    ex = explain_text(text)
    top = ex.candidates[0].finding
    assert top.id == "arch-not-in-wheel" and "below the 7.0 that Triton" in top.message
    assert "TORCHDYNAMO_DISABLE=1" in render_explanation(ex)
    gpus = facts_from_report(text).nvidia.gpus or []
    assert [(g.name, g.compute_capability) for g in gpus] == [("NVIDIA GeForce GTX 1080 Ti", "6.1")]


@pytest.mark.parametrize(
    ("message", "finding_id", "named"),
    [
        ("RuntimeError: HIP error: invalid device function", "arch-not-in-wheel", "HSA_OVERRIDE_GFX_VERSION"),
        (
            '"hipErrorNoBinaryForGpu: Unable to find code object for all current devices!"\nAborted (core dumped)',
            "arch-not-in-wheel",
            "HSA_OVERRIDE_GFX_VERSION",
        ),
        (
            "hipErrorNoBinaryForGpu: Coudn't find binary for current devices!",
            "arch-not-in-wheel",
            "HSA_OVERRIDE_GFX_VERSION",
        ),
        (
            "ImportError: libnvinfer.so.8: cannot open shared object file: No such file or directory",
            "cuda-lib-conflict",
            "TensorRT",
        ),
        (
            "ImportError: libnvinfer_plugin.so.8: cannot open shared object file: No such file or directory",
            "cuda-lib-conflict",
            "TensorRT",
        ),
        (
            "OSError: libnvonnxparser.so.10: cannot open shared object file: No such file or directory",
            "cuda-lib-conflict",
            "TensorRT",
        ),
    ],
)
def test_rocm_and_tensorrt_messages_rank_their_cause_first(message: str, finding_id: str, named: str) -> None:
    """ROCm/TheRock#1184 (a Radeon 780M, gfx1103, under packages built for gfx1100-1102) and
    legacy-rocm-build#2061 (an RX 6600): HIP's words for CUDA's 'no kernel image is available'.
    open-mmlab/mmdeploy#2594, jkjung-avt/tensorrt_demos#517: tensorrt imported without its libraries."""
    top = explain_text(message).candidates[0]
    assert top.finding.id == finding_id and top.finding.severity is Severity.ERROR
    assert named in top.finding.message
