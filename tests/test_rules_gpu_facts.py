"""Torch/driver/GPU rules on small hand-built facts (states a CPU-only machine cannot produce)."""

from __future__ import annotations

import pytest
from gpu_rules_helpers import by_id, fixture, run

from envdoctor.facts import Distribution, Facts, Gpu, NvidiaFacts, ScaledMmResult
from envdoctor.findings import Manual, PipInstall, PipUninstall, Severity

CU = "https://download.pytorch.org/whl/"


def _facts(python="3.12.3", torch_version=None, cuda=None, status="ok") -> Facts:
    facts = Facts()
    facts.python.version = python
    facts.torch.status = status
    if torch_version:
        facts.torch.version = torch_version
        facts.torch.cuda = cuda
    return facts


def test_facts_driver_missing_is_warning_for_a_cuda_build():
    facts = _facts(torch_version="2.11.0", cuda="13.0")
    facts.nvidia = NvidiaFacts(
        source="nvml", error="driver-missing", error_detail="libnvidia-ml.so.1 not found"
    )
    f = by_id(run(facts))["driver-missing"]
    assert f.severity is Severity.WARNING
    assert "580" in f.actions[0].text
    assert f.evidence["nvidia.error_detail"] == "libnvidia-ml.so.1 not found"


def test_facts_driver_missing_is_info_for_a_cpu_build_or_no_torch():
    for torch_version, status in (("2.13.0+cpu", "ok"), (None, "missing")):
        facts = _facts(torch_version=torch_version, status=status)
        facts.nvidia = NvidiaFacts(source="nvml", error="driver-missing")
        f = by_id(run(facts))["driver-missing"]
        assert f.severity is Severity.INFO
        assert f.actions == []


def test_facts_no_device_from_error_or_from_an_empty_gpu_list():
    for nv in (
        NvidiaFacts(source="nvml", error="no-device"),
        NvidiaFacts(source="nvml", driver_version="580.95.05", cuda_driver_version="13.0", gpus=[]),
    ):
        facts = _facts(torch_version="2.11.0+cu128", cuda="12.8")
        facts.nvidia = nv
        f = by_id(run(facts))["driver-missing"]
        assert f.severity is Severity.WARNING
        assert "sees no GPU" in f.message


def test_facts_driver_library_mismatch_asks_for_reboot():
    facts = _facts()
    facts.nvidia = NvidiaFacts(source="nvml", error="driver-library-mismatch", error_detail="NVML: 580.95")
    f = by_id(run(facts))["driver-library-mismatch"]
    assert f.severity is Severity.ERROR
    assert len(f.actions) == 1 and isinstance(f.actions[0], Manual)
    assert "Reboot" in f.actions[0].text and "modprobe nvidia" in f.actions[0].text


def test_facts_torch_missing_with_gpu_installs_newest_fitting_release():
    facts = _facts(status="missing")
    facts.nvidia = NvidiaFacts(
        source="nvml", driver_version="570.172.08", gpus=[Gpu(0, "Tesla V100-SXM2-16GB", "7.0")]
    )
    f = by_id(run(facts))["torch-missing"]
    assert f.severity is Severity.WARNING
    # 2.15 has no Volta wheel; 2.14 cu126 has sm_70 and runs on 570 (cu130 needs 580).
    assert f.actions == [PipInstall(("torch==2.14.1",), index_url=CU + "cu126", reinstall=False)]


def test_facts_torch_missing_without_gpu_uses_cpu_index_and_unknown_gpu_uses_pypi():
    facts = _facts(status="missing")
    facts.nvidia = NvidiaFacts(source="nvml", error="driver-missing")
    assert by_id(run(facts))["torch-missing"].actions == [
        PipInstall(("torch==2.15.0",), index_url=CU + "cpu", reinstall=False)
    ]
    unknown = _facts(python="3.10.14", status="missing")
    assert by_id(run(unknown))["torch-missing"].actions == [PipInstall(("torch==2.14.1",), reinstall=False)]


def test_facts_import_crash_is_not_missing():
    facts = _facts(torch_version=None, status="crashed")
    facts.torch.error = "Segmentation fault (core dumped)"
    facts.packages.torch_build = {"version": "2.8.0+cu128", "cuda": "12.8", "hip": None, "git_version": None}
    found = by_id(run(facts))
    assert "torch-missing" not in found
    f = found["torch-import-error"]
    assert f.severity is Severity.ERROR
    assert f.evidence["torch.error"] == "Segmentation fault (core dumped)"
    assert f.actions == [PipInstall(("torch==2.8.0",), index_url=CU + "cu128", reinstall=True)]


def test_facts_import_timeout_is_an_error_with_a_manual_step():
    facts = _facts(status="timeout")
    facts.torch.error = "timed out after 60 s"
    f = by_id(run(facts))["torch-import-error"]
    assert f.severity is Severity.ERROR
    assert isinstance(f.actions[0], Manual)


@pytest.mark.parametrize(
    ("python", "torch_version", "spec"),
    [
        ("3.13.1", "2.4.1+cu124", "torch==2.5.1"),  # 3.13 wheels start at 2.5
        ("3.14.0", "2.8.0+cu128", "torch==2.9.1"),
        ("3.15.0", "2.14.1+cu130", "torch==2.15.0"),
        ("3.8.18", "2.6.0+cu126", "torch==2.4.1"),  # too old a Python: newest release that still has it
    ],
)
def test_facts_python_unsupported_moves_to_nearest_release(python, torch_version, spec):
    f = by_id(run(_facts(python=python, torch_version=torch_version)))["python-unsupported"]
    assert f.severity is Severity.ERROR
    assert f.actions[0].specs == (spec,)


def test_facts_python_313_on_torch_25_is_supported():
    assert "python-unsupported" not in by_id(run(_facts(python="3.13.0", torch_version="2.5.1+cu124")))


def test_facts_python_without_any_torch_release_yet():
    f = by_id(run(_facts(python="3.16.0", status="missing")))["python-unsupported"]
    assert f.severity is Severity.WARNING
    assert f.actions == [Manual("Create the environment with Python 3.15 (torch 2.15).")]


def test_facts_mixed_torch_installs_uninstall_then_reinstall():
    facts = _facts(torch_version="2.6.0+cu126", cuda="12.6")
    site = "/venv/lib/python3.12/site-packages"
    facts.packages.torch_installs = [
        Distribution("torch", "2.6.0+cu126", site),
        Distribution("torch", "2.5.1", site),
    ]
    f = by_id(run(facts))["mixed-torch-installs"]
    assert f.severity is Severity.ERROR
    assert f.actions[0] == PipUninstall(("torch",))
    assert isinstance(f.actions[1], Manual)
    assert f.actions[2] == PipInstall(("torch==2.6.0",), index_url=CU + "cu126", reinstall=True)


def test_facts_fp8_scaled_mm_failure_on_h100_is_an_error_with_its_text():
    facts = fixture("healthy_h200")
    facts.torch.scaled_mm = ScaledMmResult(ok=False, error="CUBLAS_STATUS_NOT_SUPPORTED")
    f = by_id(run(facts))["fp8-unsupported"]
    assert f.severity is Severity.ERROR
    assert f.evidence["torch.scaled_mm.error"] == "CUBLAS_STATUS_NOT_SUPPORTED"
    assert "CUBLAS_STATUS_NOT_SUPPORTED" in f.message


def test_facts_fp8_on_ada_with_cuda_118_build():
    facts = fixture("rtx4090_torch211_cu128")
    facts.torch.version, facts.torch.cuda = "2.3.1+cu118", "11.8"
    facts.torch.arch_list = None
    facts.packages.versions = {"torch": "2.3.1+cu118", "transformer-engine": "1.8.0"}
    f = by_id(run(facts))["fp8-unsupported"]
    assert f.severity is Severity.WARNING
    assert "12.1" in f.message


def test_facts_bf16_refused_by_runtime_is_warning():
    facts = fixture("v100_torch211_cu128")
    facts.torch.devices[0].bf16_supported = False
    f = by_id(run(facts))["bf16-unsupported"]
    assert f.severity is Severity.WARNING
    assert f.evidence == {"torch.devices[0].bf16_supported": False}


def test_facts_variant_mismatch_across_majors_is_a_warning():
    facts = _facts(torch_version="2.11.0", cuda="13.0")
    facts.system.env = {"CUDA_VERSION": "12.4.1"}
    f = by_id(run(facts))["torch-cuda-variant-mismatch"]
    assert f.severity is Severity.WARNING
    assert f.actions == []  # 2.11 has no cu124 build


def test_facts_variant_mismatch_defers_to_nvcc_mismatch_when_nvcc_is_known():
    facts = _facts(torch_version="2.11.0", cuda="13.0")
    facts.system.env = {"CUDA_VERSION": "12.4.1"}
    facts.cuda.nvcc_version = "12.4"
    assert "torch-cuda-variant-mismatch" not in by_id(run(facts))


def _on_one_gpu(facts: Facts, gpu_name: str, capability: str, driver: str, driver_cuda: str) -> Facts:
    """``facts`` with NVML listing one GPU under the driver given."""
    facts.nvidia = NvidiaFacts(
        source="nvml",
        driver_version=driver,
        cuda_driver_version=driver_cuda,
        gpus=[Gpu(index=0, name=gpu_name, compute_capability=capability)],
    )
    return facts


def _pasted_version_on(gpu_name: str, capability: str, torch_version: str) -> Facts:
    """A paste stating torch's version without its build (+cuXXX), and one GPU."""
    facts = _facts(torch_version=torch_version, status="unknown")
    return _on_one_gpu(facts, gpu_name, capability, "575.57.08", "12.9")


def test_facts_a_gpu_no_cuda_build_of_the_release_covers_is_arch_not_in_wheel_whatever_the_build():
    f = by_id(run(_pasted_version_on("NVIDIA GeForce RTX 5090", "12.0", "2.3.1")))["arch-not-in-wheel"]
    assert f.severity is Severity.ERROR
    assert "no CUDA build of torch 2.3" in f.message and "sm_120" in f.message
    assert any(key.startswith("knowledge.arch_lists[2.3/") for key in f.evidence)
    assert isinstance(f.actions[0], PipInstall) and "cu128" in f.actions[0].index_url


def test_facts_an_unknown_build_of_a_release_that_has_a_covering_build_says_nothing():
    found = by_id(run(_pasted_version_on("NVIDIA GeForce RTX 5090", "12.0", "2.7.1")))
    assert "arch-not-in-wheel" not in found
    found = by_id(run(_pasted_version_on("NVIDIA A100-SXM4-80GB", "8.0", "2.3.1")))
    assert "arch-not-in-wheel" not in found


def _serving_stack(package: str, version: str, gpu_name: str, capability: str) -> Facts:
    """torch 2.3.1+cu121 (kernels for sm_50 .. sm_90) with one CUDA package, on one GPU."""
    facts = _facts(torch_version="2.3.1+cu121", cuda="12.1")
    facts.packages.versions = {"torch": "2.3.1+cu121", package: version}
    return _on_one_gpu(facts, gpu_name, capability, "550.54.14", "12.4")


def test_facts_a_package_without_kernels_for_the_gpu_is_a_warning_naming_the_release_that_has_them():
    f = by_id(run(_serving_stack("flashinfer", "0.1.3", "Tesla T4", "7.5")))["arch-not-in-wheel"]
    assert f.severity is Severity.WARNING
    assert "flashinfer 0.1.3" in f.message and "sm_75" in f.message
    assert f.evidence["knowledge.kernel_floors[flashinfer<0.1.6]"] == "8.0"
    assert "flashinfer>=0.1.6" in f.fix


def test_facts_a_package_no_release_of_which_covers_the_gpu_says_to_move_or_build():
    f = by_id(run(_serving_stack("vllm", "0.5.3.post1", "Tesla P100-PCIE-16GB", "6.0")))["arch-not-in-wheel"]
    assert "vllm 0.5.3.post1" in f.message and "build it from source for sm_60" in f.fix


@pytest.mark.parametrize(
    ("package", "version", "gpu", "capability"),
    [
        ("flashinfer", "0.1.6+cu121torch2.4", "Tesla T4", "7.5"),  # 0.1.6 added sm_75
        ("vllm", "0.5.3.post1", "NVIDIA A100-SXM4-80GB", "8.0"),
        ("vllm", "0.18.0", "Tesla P100-PCIE-16GB", "6.0"),  # a release the table does not judge
    ],
)
def test_facts_a_package_whose_kernels_cover_the_gpu_or_that_the_table_does_not_judge_says_nothing(
    package: str, version: str, gpu: str, capability: str
):
    assert "arch-not-in-wheel" not in by_id(run(_serving_stack(package, version, gpu, capability)))
