"""Colossal-AI's ``colossalai check -i`` report read as tool output: torch, the toolkit Colossal-AI
builds with and torch's CUDA, so a toolkit of another CUDA major is found without the error."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text
from envdoctor.paste import ReportError, facts_from_report

# ColossalAI#2992, as pasted (notes cut).
REPORT = """#### Installation Report ####

------------ Environment ------------
Colossal-AI version: 0.2.5
PyTorch version: 1.13.1
System CUDA version: 9.1
CUDA version required by PyTorch: 11.7

------------ CUDA Extensions AOT Compilation ------------
Found AOT CUDA Extension: x
PyTorch version used for AOT compilation: N/A
CUDA version used for AOT compilation: N/A

------------ Compatibility ------------
PyTorch version match: N/A
System and PyTorch CUDA version match: x
"""

# ColossalAI#2384: the 2022 layout, capitalised keys.
OLD = """Colossal-AI version: 0.2.0

PyTorch Version: 1.10.0
PyTorch Version required by Colossal-AI: 1.10
PyTorch version match: ✓

System CUDA Version: 11.8
CUDA Version required by PyTorch: 11.1
CUDA Version required by Colossal-AI: 11.8
"""


def test_report_gives_torch_the_toolkit_and_torchs_cuda_as_tool_output():
    facts = facts_from_report(REPORT)
    assert facts.torch.version == "1.13.1"
    assert facts.torch.cuda == "11.7"
    assert facts.cuda.nvcc_version == "9.1"
    assert not {"torch.version", "cuda.nvcc_version"} & set(facts.stated)


def test_old_layout_is_read_too_and_its_aot_lines_are_not_taken_for_torch():
    facts = facts_from_report(OLD)
    assert (facts.torch.version, facts.torch.cuda, facts.cuda.nvcc_version) == ("1.10.0", "11.1", "11.8")


def test_toolkit_of_another_cuda_major_is_found_from_the_report_alone():
    assert explain_text(REPORT).candidates[0].finding.id == "nvcc-mismatch"


def test_na_for_torchs_cuda_is_a_cpu_build():
    facts = facts_from_report(REPORT.replace("required by PyTorch: 11.7", "required by PyTorch: N/A"))
    assert facts.torch.cuda is None and facts.torch.version == "1.13.1"


def test_the_same_keys_without_colossal_ais_line_are_not_read_as_its_report():
    """Without it nothing in these lines is read: the paste is refused as unrecognised."""
    with pytest.raises(ReportError):
        facts_from_report("System CUDA version: 9.1\nCUDA version required by PyTorch: 11.7\n")


def test_a_cuda_version_after_pytorch_is_not_read_as_torchs_version_in_prose():
    facts = facts_from_report("CUDA version required by PyTorch: 11.7\nI use torch 2.0.1 on Ubuntu\n")
    assert facts.torch.version == "2.0.1"
