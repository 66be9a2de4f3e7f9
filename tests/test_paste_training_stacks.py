"""Reports and messages of training stacks: Lightning's environment table, ``trl env``'s devices, and the
message families of packages written for another release of each other."""

from __future__ import annotations

from envdoctor.explain import rank
from envdoctor.findings import Severity
from envdoctor.paste import ReportError, facts_from_report

LIGHTNING = """<details>
  <summary>Current environment</summary>

* CUDA:
\t- GPU:
\t\t- NVIDIA A100-SXM4-80GB
\t\t- NVIDIA A100-SXM4-80GB
\t- available:         True
\t- version:           12.1
* Lightning:
\t- lightning:         2.1.0
\t- torch:             2.1.0
* System:
\t- OS:                Linux
\t- python:            3.10.12

</details>"""


def test_lightning_table_is_tool_output_with_every_gpu():
    facts = facts_from_report(LIGHTNING)
    assert facts.torch.version == "2.1.0" and facts.torch.cuda == "12.1"
    assert facts.torch.cuda_available is True
    assert [g.name for g in facts.nvidia.gpus or []] == ["NVIDIA A100-SXM4-80GB"] * 2
    assert not facts.stated


def test_lightning_table_of_a_host_without_gpu_raises_no_error():
    """A CUDA torch on a TPU VM: torch sees no GPU, and no GPU is there to blame."""
    text = "* CUDA:\n\t- GPU:               None\n\t- available:         False\n\t- version:           11.7\n"
    facts = facts_from_report(text + "* Lightning:\n\t- torch:             2.0.0\n")
    assert (facts.torch.version, facts.torch.cuda, facts.torch.cuda_available) == ("2.0.0", "11.7", False)
    assert not facts.nvidia.gpus
    assert not [d for d in rank(facts) if d.finding.severity is Severity.ERROR]


def test_lightning_table_version_none_is_a_cpu_build():
    text = "* CUDA:\n\t- GPU:               None\n\t- available:         False\n\t- version:           None\n"
    facts = facts_from_report(text + "* Packages:\n\t- pyTorch_version:   1.10.0\n")
    assert facts.torch.version == "1.10.0"
    assert facts.torch.status == "ok" and facts.torch.cuda is None  # a CPU build, as a probe would say


def test_trl_env_devices_are_tool_output_one_per_gpu():
    text = "- PyTorch version: 2.6.0+cu124\n- CUDA device(s): NVIDIA H100 80GB HBM3, NVIDIA H100 80GB HBM3\n"
    facts = facts_from_report(text + "- TRL version: 0.16.0\n")
    assert [g.name for g in facts.nvidia.gpus or []] == ["NVIDIA H100 80GB HBM3"] * 2
    assert "nvidia.gpus" not in facts.stated
    none = facts_from_report("- PyTorch version: 2.6.0\n- CUDA device(s): not available\n")
    assert not none.nvidia.gpus


def _top(text: str):
    try:
        facts = facts_from_report(text)
    except ReportError:
        return None
    ranked = rank(facts)
    return ranked[0].finding if ranked else None


def test_unexpected_keyword_argument_is_a_release_mismatch_guessed_as_a_warning():
    """Two packages written for different releases of each other, or the user's own code: a guess, so a
    warning even when the program crashed of it (the signature is marked user_code)."""
    raised = _top(
        'Traceback (most recent call last):\n  File "serve.py", line 3, in <module>\n'
        "TypeError: EngineArgs.__init__() got an unexpected keyword argument 'worker_extension_cls'"
    )
    assert raised is not None and raised.id == "requirement-conflict"
    assert raised.severity is Severity.WARNING
    assert "EngineArgs does not take worker_extension_cls" in raised.message
    quoted = _top(
        "it fails with EngineArgs.__init__() got an unexpected keyword argument 'worker_extension_cls'"
    )
    assert quoted is None  # only the raised TypeError is matched, not a sentence about it


def test_extension_ops_missing_is_an_abi_mismatch_but_not_for_torch_own_ops():
    finding = _top("AttributeError: '_OpNamespace' '_C' object has no attribute 'rms_norm'")
    assert finding is not None and finding.id == "ext-abi-mismatch"
    assert _top("AttributeError: '_OpNamespace' 'aten' object has no attribute '_scaled_mm'") is None


def test_build_tool_missing_in_words():
    finding = _top("the Transformer Engine build fails because `cmake` is not installed")
    assert finding is not None and finding.id == "build-tools-missing"
    assert finding.severity is Severity.WARNING
    built = _top("cmake: command not found")
    assert built is not None and built.id == "build-tools-missing"
    assert _top("I installed cmake and ninja, the build works") is None


def test_a_name_missing_from_an_internal_module_is_a_release_mismatch_of_unknown_direction():
    """Internal modules (a path part starting with ``_``) are not in the mined public API and change
    between releases: the importer was written for another release, older or newer, so a warning."""
    finding = _top(
        "torch==2.1.0\n"
        "ImportError: cannot import name 'return_and_correct_aliasing' from 'torch.utils._python_dispatch'"
    )
    assert finding is not None and finding.id == "requirement-conflict"
    assert finding.severity is Severity.WARNING
    assert "internal module of torch" in finding.message and "torch 2.1.0 does not have it" in finding.message
    assert _top("ImportError: cannot import name 'helper' from 'mypkg._internal'") is None


def test_a_release_mismatch_guess_asks_for_every_installed_release():
    """A warning-level requirement-conflict settles with ``pip list`` (both sides), not collect_env."""
    from envdoctor.explain import PIP_LIST, explain_text

    ex = explain_text(
        "ImportError: cannot import name 'return_and_correct_aliasing' from 'torch.utils._python_dispatch'"
    )
    assert ex.settle is not None and PIP_LIST in ex.settle.ask_for
    gpu = explain_text(
        "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0."
    )
    assert gpu.settle is None or PIP_LIST not in gpu.settle.ask_for
