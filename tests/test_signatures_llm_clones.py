"""What people who run LLM training code from a clone paste (nanoGPT, llm.c, gpt-neox, stanford_alpaca,
an HPC login node): CUDA programs built here, a bf16 refusal in words, a GeForce named by its number, a
CPU-only torch made on a login node, a torch API that the installed transformers calls with a keyword
the installed torch does not take."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text
from envdoctor.findings import Severity
from envdoctor.paste import ReportError, facts_from_report

PTX = "the provided PTX was compiled with an unsupported toolchain."


@pytest.mark.parametrize(
    "text",
    [
        f"[CUDA ERROR] at file train_gpt2.cu:341:\n{PTX}",
        f"RuntimeError: [TM][ERROR] CUDA runtime error: {PTX}  ./lmdeploy/src/turbomind/utils/memory_utils.cu:32",
    ],
)
def test_ptx_refused_in_a_program_that_names_its_cu_source_is_a_toolkit_newer_than_the_driver(text):
    first = explain_text(text).candidates[0].finding
    assert first.id == "toolkit-newer-than-driver"
    assert first.severity is Severity.ERROR


def test_the_same_refusal_from_torch_alone_still_points_at_the_driver():
    assert explain_text(f"RuntimeError: CUDA error: {PTX}").candidates[0].finding.id == "driver-too-old"


def test_a_bf16_refusal_in_words_next_to_a_geforce_named_by_number_is_bf16_unsupported():
    said = "I've been trying to run the train.py on a 2060 GPU, but this device does not support dtype=torch.bfloat16."
    first = explain_text(said).candidates[0]
    assert first.finding.id == "bf16-unsupported"
    assert first.finding.severity is Severity.WARNING  # stated in words, no program message
    assert {"error", "facts"} <= set(first.support)


def test_a_bf16_refusal_in_words_next_to_gpus_that_have_bf16_points_to_no_finding():
    said = "On my A100 it says the model doesn't support bf16."
    assert not any(d.finding.id == "bf16-unsupported" for d in explain_text(said).candidates)


@pytest.mark.parametrize(
    ("said", "gpus"),
    [
        ("running on a 2060 GPU", ["NVIDIA GeForce RTX 2060"]),
        ("my 1080 Ti card", ["NVIDIA GeForce GTX 1080 Ti"]),
        ("a 1660 graphics card", ["NVIDIA GeForce GTX 1660"]),
        ("we spent 3090 GPU hours on an A100", ["NVIDIA A100"]),
    ],
)
def test_a_geforce_named_by_its_number_alone_takes_its_series(said, gpus):
    assert [g.name for g in facts_from_report(said).nvidia.gpus or []] == gpus


def test_a_cpu_only_torch_stated_without_a_version_is_a_report():
    facts = facts_from_report("pip installed the CPU-only PyTorch.")
    assert facts.torch.cuda is None and "torch.cuda" in facts.stated
    with pytest.raises(ReportError):
        facts_from_report("I run it every day.")


def test_a_cpu_only_torch_made_on_a_login_node_for_gpu_nodes_is_a_stated_cpu_build():
    said = (
        "If an environment is created on a login node or CPU-only worker node, the CPU-only PyTorch is "
        "installed.\n\nIt would be ideal to set up an environment on a non-GPU node that can later be used "
        "on a GPU node."
    )
    first = explain_text(said).candidates[0].finding
    assert first.id == "torch-cpu-build"
    assert first.severity is Severity.WARNING  # resting on stated facts only


def test_a_gpu_node_named_next_to_a_gpu_model_adds_no_second_gpu():
    facts = facts_from_report("on the GPU nodes (Tesla V100) of our cluster")
    assert [g.name for g in facts.nvidia.gpus or []] == ["Tesla V100"]


TRAINER_FRAME = (
    'python3.10/site-packages/transformers-4.27.0.dev0-py3.10.egg/transformers/trainer.py", line 1460, '
    "in _wrap_model\n    self.model = model = FSDP(\n"
)
KEYWORD = (
    "TypeError: FullyShardedDataParallel.__init__() got an unexpected keyword argument 'forward_prefetch'"
)


def test_a_torch_class_called_by_transformers_with_an_unknown_keyword_is_transformers_torch_incompat():
    """The frame's 'File "' head is cut off and transformers is an egg install: still the caller."""
    first = explain_text("torch 1.12\n" + TRAINER_FRAME + KEYWORD).candidates[0].finding
    assert first.id == "transformers-torch-incompat"
    assert first.severity is Severity.WARNING  # keywords are not mined: which side is older is unknown
    assert first.evidence["caller"] == "transformers"
    assert first.evidence["packages.versions.torch"] == "1.12"
    assert "torch.distributed.fsdp.FullyShardedDataParallel" in first.message


def test_the_same_keyword_error_from_user_code_points_to_no_package_pair():
    ids = [d.finding.id for d in explain_text(KEYWORD).candidates]
    assert "transformers-torch-incompat" not in ids
