"""Library messages whose family earlier rounds had only in another wording: NumPy's C API version
check, and ONNX Runtime's GPU provider failing to load a CUDA library (after which it runs on the CPU)."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text
from envdoctor.findings import Severity


@pytest.mark.parametrize(
    "message",
    [
        # coqui-ai/TTS#1600: TTS pinned numpy 1.21.6 (C API 0xe) under a torch 1.11 built against 0xf.
        "UserWarning: Failed to initialize NumPy: module compiled against API version 0xf but this version "
        "of numpy is 0xe (Triggered internally at ..\\torch\\csrc\\utils\\tensor_numpy.cpp:68.)",
        "RuntimeError: module compiled against ABI version 0x1000009 but this version of numpy is 0x2000000",
        # coqui-ai/TTS#1775: the ndarray form of the dtype size check.
        "ValueError: numpy.ndarray size changed, may indicate binary incompatibility. Expected 96 from C "
        "header, got 88 from PyObject",
    ],
)
def test_numpy_c_api_and_size_checks_are_numpy_abi(message: str):
    first = explain_text(message).candidates[0]
    assert first.finding.id == "numpy-abi"


def test_numpy_c_api_message_names_both_versions():
    first = explain_text(
        "module compiled against API version 0xf but this version of numpy is 0xe"
    ).candidates[0]
    assert first.matches[0].fields == {"built": "0xf", "installed": "0xe"}


ORT_FALLBACK = (
    "[E:onnxruntime:Default, provider_bridge_ort.cc:1480 TryGetProviderInfo_CUDA] "
    "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1193 onnxruntime::Provider& "
    "onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library "
    "libonnxruntime_providers_cuda.so with error: libcufft.so.10: cannot open shared object file: No such "
    "file or directory\nFailed to create CUDAExecutionProvider. Please reference "
    "https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements to ensure all "
    "dependencies are met."
)


def test_onnxruntime_provider_library_missing_is_a_library_warning_naming_the_provider():
    """CosyVoice#372 (maintainer: ignorable) and #91: ONNX Runtime falls back to the CPU, so a warning."""
    first = explain_text(ORT_FALLBACK).candidates[0]
    assert first.finding.id == "cuda-lib-conflict"
    assert first.finding.severity is Severity.WARNING
    assert first.matches[0].fields == {"provider": "cuda", "library": "libcufft.so.10"}
    assert [m.signature.name for m in first.matches] == ["onnxruntime-provider-library-missing"]
    # the signature's own fix, not cuda-lib-conflict's usual one (clean LD_LIBRARY_PATH)
    assert "onnxruntime-gpu" in first.finding.fix and "LD_LIBRARY_PATH" not in first.finding.fix
    # and only its own source: the rule's sources stand behind the rule's fix
    assert first.finding.sources == [first.matches[0].signature.source]


def test_the_same_library_missing_when_the_program_died_is_an_error():
    crashed = "Traceback (most recent call last):\n" + ORT_FALLBACK.replace(
        "[ONNXRuntimeError]", "RuntimeError:"
    )
    assert explain_text(crashed).candidates[0].finding.severity is Severity.ERROR


def test_a_cuda_library_missing_outside_onnxruntime_is_still_an_error():
    first = explain_text("OSError: libcudnn.so.8: cannot open shared object file: No such file or directory")
    assert first.candidates[0].finding.id == "cuda-lib-conflict"
    assert first.candidates[0].finding.severity is Severity.ERROR
