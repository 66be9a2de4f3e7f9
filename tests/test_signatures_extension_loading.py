"""An extension whose compiled part does not load under the installed torch, in the shapes the message
takes beyond "undefined symbol: ...": the dispatcher's view (its CUDA kernels were never registered),
mmcv's missing ops module, and the mangled libtorch symbol retold in a sentence."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text
from envdoctor.findings import Severity

CUDA_BACKEND = (
    "NotImplementedError: Could not run '{op}' with arguments from the 'CUDA' backend. This could be "
    "because the operator doesn't exist for this backend, or was omitted during the selective/custom "
    "build process (if using custom build)."
)


@pytest.mark.parametrize("op", ["torchvision::nms", "torchvision::roi_align", "mmcv::nms"])
def test_an_extension_op_without_cuda_kernels_is_an_extension_built_for_another_torch(op):
    first = explain_text(CUDA_BACKEND.format(op=op)).candidates[0].finding
    assert first.id == "ext-abi-mismatch" and first.severity is Severity.ERROR
    assert op in first.message


@pytest.mark.parametrize("op", ["aten::empty.memory_format", "quantized::linear_dynamic"])
def test_torchs_own_ops_without_cuda_kernels_are_not_an_extension(op):
    candidates = explain_text(CUDA_BACKEND.format(op=op)).candidates
    assert "ext-abi-mismatch" not in {d.finding.id for d in candidates}


def test_mmcvs_missing_compiled_ops_are_an_mmcv_built_for_another_torch():
    first = explain_text("ModuleNotFoundError: No module named 'mmcv._ext'").candidates[0].finding
    assert first.id == "ext-abi-mismatch" and "mmcv._ext" in first.message
    assert "mmcv wheel built for this torch and CUDA" in first.fix


def test_a_libtorch_symbol_retold_without_the_loaders_colon_still_counts():
    said = "The undefined symbol _ZN3c104cuda9SetDeviceEa is from PyTorch's C++ CUDA API."
    first = explain_text(said).candidates[0].finding
    assert first.id == "ext-abi-mismatch" and "_ZN3c104cuda9SetDeviceEa" in first.message
    # an ordinary word after "undefined symbol" is not a libtorch symbol
    assert explain_text("undefined symbol in my own code").candidates == []
