"""``python -m xformers.info`` read as tool output: torch, whether CUDA works, the GPU, the xFormers
release, and what the companion table says of the pair without the import warning."""

from __future__ import annotations

from envdoctor.explain import rank
from envdoctor.paste import facts_from_report

# xformers#1399 (RTX 5070, torch 2.12.1+cu130), as pasted.
REAL = """python -m xformers.info
xFormers 0.0.35+42fc265.d20260623
indexing.scaled_index_addF:                        available
indexing.scaled_index_addB:                        available
indexing.index_select:                             available
sp24.sparse24_sparsify_both_ways:                  available
sp24._cslt_sparse_mm@0.8.1:                        available
is_triton_available:                               True
pytorch.version:                                   2.12.1+cu130
pytorch.cuda:                                      available
gpu.compute_capability:                            12.0
gpu.name:                                          NVIDIA GeForce RTX 5070
"""


def test_real_output_states_torch_its_gpu_and_the_release_as_tool_output():
    facts = facts_from_report(REAL)
    assert facts.torch.version == "2.12.1+cu130" and facts.torch.cuda_available is True
    [gpu] = facts.nvidia.gpus
    assert (gpu.name, gpu.compute_capability, gpu.capability_inferred) == (
        "NVIDIA GeForce RTX 5070",
        "12.0",
        False,
    )
    assert facts.packages.versions["xformers"] == "0.0.35+42fc265.d20260623"
    assert not facts.stated  # a tool printed all of it


def test_a_release_built_for_another_torch_is_found_from_the_report_alone():
    report = """xFormers 0.0.23.post1
memory_efficient_attention.cutlassF:               available
pytorch.version:                                   2.2.0+cu121
pytorch.cuda:                                      available
gpu.compute_capability:                            8.6
gpu.name:                                          NVIDIA GeForce RTX 3090
"""
    facts = facts_from_report(report)
    assert not facts.error_lines
    top = rank(facts)[0].finding
    assert top.id == "ext-abi-mismatch" and "torch==2.1.2" in top.message


def test_the_release_paired_with_its_torch_raises_nothing():
    report = """xFormers 0.0.23.post1
pytorch.version:                                   2.1.2+cu121
pytorch.cuda:                                      available
gpu.compute_capability:                            8.9
gpu.name:                                          NVIDIA GeForce RTX 4090
"""
    assert not [d for d in rank(facts_from_report(report)) if d.finding.id == "ext-abi-mismatch"]


def test_cuda_not_available_is_read_and_names_no_gpu():
    report = "xFormers 0.0.22\npytorch.version:                                   2.1.0+cpu\n"
    report += "pytorch.cuda:                                      not available\n"
    facts = facts_from_report(report)
    assert facts.torch.cuda_available is False and not facts.nvidia.gpus
    assert facts.torch.version == "2.1.0+cpu"


def test_the_release_named_in_a_sentence_is_not_tool_output():
    facts = facts_from_report("I upgraded to xFormers 0.0.23 and torch 2.2.0 yesterday.")
    assert facts.packages.versions["xformers"] == "0.0.23"
    assert "packages.versions.xformers" in facts.stated  # read by prose, marked as words
