"""SGLang's ``python3 -m sglang.check_env`` read as tool output: torch, the driver, each GPU's compute
capability and every package version it lists (FlashInfer and sgl-kernel among them)."""

from __future__ import annotations

from envdoctor.explain import rank
from envdoctor.paste import facts_from_report

# sglang#5871 (2x A10), as pasted (package list cut).
A10 = """### Environment
```
Python: 3.10.12 (main, Feb  4 2025, 14:57:36) [GCC 11.4.0]
CUDA available: True
GPU 0,1: NVIDIA A10
GPU 0,1 Compute Capability: 8.6
CUDA_HOME: /usr/local/cuda
NVCC: Cuda compilation tools, release 12.4, V12.4.131
CUDA Driver Version: 535.216.01
PyTorch: 2.6.0+cu124
sglang: 0.4.6.post1
sgl_kernel: 0.1.0
flashinfer_python: 0.2.5
multipart: Module Not Found
NVIDIA Topology:
        GPU0    GPU1    CPU Affinity    NUMA Affinity
GPU0     X      PHB     0-3     0
"""

# sglang#748: an early release printing the driver once per GPU, on lines of their own.
REPEATED_DRIVER = """Python: 3.10.12 (main, Mar 22 2024, 16:50:05) [GCC 11.4.0]
CUDA available: True
GPU 0,1: NVIDIA GeForce RTX 2080 Ti
CUDA_HOME: /usr/local/cuda
CUDA Driver Version: 550.90.07
550.90.07
PyTorch: 2.3.1+cu121
sglang: 0.2.0
flashinfer: 0.1.1+cu121torch2.3
"""


def test_check_env_states_torch_driver_gpus_and_packages_as_tool_output():
    facts = facts_from_report(A10)
    assert facts.torch.version == "2.6.0+cu124" and facts.torch.cuda_available is True
    assert facts.nvidia.driver_version == "535.216.01"
    assert [(g.name, g.compute_capability, g.capability_inferred) for g in facts.nvidia.gpus] == [
        ("NVIDIA A10", "8.6", False),
        ("NVIDIA A10", "8.6", False),
    ]
    versions = facts.packages.versions
    assert (versions["sglang"], versions["sgl-kernel"], versions["flashinfer-python"]) == (
        "0.4.6.post1",
        "0.1.0",
        "0.2.5",
    )
    assert "multipart" not in versions  # "Module Not Found"
    assert not {"torch.version", "nvidia.driver_version", "nvidia.gpus"} & set(facts.stated)


def test_the_driver_repeated_per_gpu_and_a_local_tagged_release_are_read():
    facts = facts_from_report(REPEATED_DRIVER)
    assert facts.nvidia.driver_version == "550.90.07"
    assert facts.packages.versions["flashinfer"] == "0.1.1+cu121torch2.3"


def test_flashinfer_without_kernels_for_the_gpu_is_found_from_the_report_alone():
    top = rank(facts_from_report(REPEATED_DRIVER))[0].finding
    assert top.id == "arch-not-in-wheel" and "flashinfer 0.1.1" in top.message and "sm_75" in top.message


def test_key_value_lines_outside_a_check_env_block_are_not_packages():
    facts = facts_from_report("PyTorch: 2.6.0+cu124\nsomething: 1.2.3\nGPU 0: NVIDIA A10\n")
    assert "something" not in (facts.packages.versions or {})
