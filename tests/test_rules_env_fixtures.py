"""Package, library, runtime and container rules on recorded facts of machines that cannot exist here
(GPU boxes, containers, CUDA toolkits). Each fixture is a full ``check --json`` facts file."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.facts import Facts, load_facts
from envdoctor.findings import Finding, Manual, PipInstall, SetEnv, Severity
from envdoctor.rules import evaluate, get_rule

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
OWN_IDS = {
    "numpy-abi",
    "ext-abi-mismatch",
    "requirement-conflict",
    "transformers-torch-incompat",
    "cuda-lib-conflict",
    "nvcc-mismatch",
    "alloc-conf-invalid",
    "cuda-visible-devices-empty",
    "container-gpu",
    "shm-too-small",
}
E, W = Severity.ERROR, Severity.WARNING


def own_findings(name: str) -> list[Finding]:
    """Findings of this module's rules for fixture ``name``, in evaluation order."""
    findings = evaluate(load_facts(FIXTURES / f"{name}.json"))
    assert not [f for f in findings if f.id == "internal-error"], findings
    return [f for f in findings if f.id in OWN_IDS]


def summary(findings: list[Finding]) -> list[tuple[str, Severity]]:
    return [(f.id, f.severity) for f in findings]


def test_fixture_env_all_load_and_roundtrip() -> None:
    paths = sorted(FIXTURES.glob("env_*.json"))
    assert len(paths) >= 11
    for path in paths:
        facts = load_facts(path)
        assert facts.origin == "file"
        assert Facts.from_dict(facts.to_dict()).to_dict() == facts.to_dict()


def test_fixture_numpy2_torch22_is_numpy_abi_error() -> None:
    (finding,) = own_findings("env_numpy2_torch22")
    assert summary([finding]) == [("numpy-abi", E)]
    assert finding.actions == [PipInstall(("numpy<2",))]
    assert finding.evidence["packages.versions.numpy"] == "2.1.2"
    assert "compiled using NumPy 1.x" in finding.evidence["torch.warnings"][0]


def test_fixture_torchvision_mismatch_installs_pair_from_torch_index() -> None:
    findings = own_findings("env_torchvision_mismatch")
    # The unmet torch==2.5.1 pin of torchvision is explained by ext-abi-mismatch, not repeated.
    assert summary(findings) == [("ext-abi-mismatch", E), ("ext-abi-mismatch", W)]
    vision, audio = findings
    assert "torch==2.5.1" in vision.message
    assert vision.actions == [
        PipInstall(("torchvision==0.21.0+cu126",), index_url="https://download.pytorch.org/whl/cu126")
    ]
    assert audio.actions == [
        PipInstall(("torchaudio==2.6.0+cu126",), index_url="https://download.pytorch.org/whl/cu126")
    ]


def test_fixture_ld_library_path_cudnn8_torch24_cu121() -> None:
    findings = own_findings("env_ld_library_path_cudnn8")
    assert summary(findings) == [("cuda-lib-conflict", W), ("nvcc-mismatch", W)]
    libs, nvcc = findings
    assert "libcudnn.so.8 (major 8) vs nvidia-cudnn-cu12 9.1.0.70 (major 9)" in libs.message
    assert "libcublas.so.11" in libs.message
    # Only the CUDA 11.8 directory goes; the unrelated entry stays.
    assert libs.actions == [SetEnv("LD_LIBRARY_PATH", "/opt/intel/lib")]
    assert nvcc.evidence["cuda.nvcc_version"] == "11.8"


def test_fixture_docker_small_shm_is_manual_ipc_host() -> None:
    (finding,) = own_findings("env_docker_small_shm")
    assert summary([finding]) == [("shm-too-small", W)]
    assert finding.evidence["system.shm_size_mib"] == 64
    (action,) = finding.actions
    assert isinstance(action, Manual) and "--ipc=host" in action.text and "--shm-size=16g" in action.text


def test_fixture_bad_alloc_conf_keeps_valid_options_in_one_variable() -> None:
    findings = own_findings("env_bad_alloc_conf")
    assert summary(findings) == [("alloc-conf-invalid", E), ("alloc-conf-invalid", W)]
    target = [
        SetEnv("PYTORCH_ALLOC_CONF", "max_split_size_mb:128,garbage_collection_threshold:0.8"),
        SetEnv("PYTORCH_CUDA_ALLOC_CONF", None),
    ]
    assert findings[0].actions == target and findings[1].actions == target
    assert "expandable_segments" in findings[0].message and "'true'" in findings[0].message


def test_fixture_nvcc_118_torch_cu128_is_major_mismatch() -> None:
    (finding,) = own_findings("env_nvcc_118_torch_cu128")
    assert summary([finding]) == [("nvcc-mismatch", W)]
    assert finding.evidence == {
        "cuda.nvcc_version": "11.8",
        "cuda.nvcc_path": "/usr/local/cuda-11.8/bin/nvcc",
        "torch.cuda": "12.8",
    }
    assert finding.actions == [Manual(finding.fix)] and "12.8" in finding.fix


def test_fixture_transformers5_torch21_downgrades_transformers() -> None:
    (finding,) = own_findings("env_transformers5_torch21")
    assert summary([finding]) == [("transformers-torch-incompat", E)]
    assert "needs torch>=2.4" in finding.message
    # 4.56 is the first line that needs torch 2.2; torch stays as it is.
    assert finding.actions == [PipInstall(("transformers<4.56",))]


def test_fixture_container_no_gpu_warns_with_gpus_flag() -> None:
    (finding,) = own_findings("env_container_no_gpu")
    assert summary([finding]) == [("container-gpu", W)]
    assert finding.evidence["nvidia.error"] == "driver-missing"
    assert "--gpus all" in finding.actions[0].text


def test_fixture_docker_no_nvidia_runtime_suggests_nvidia_ctk() -> None:
    (finding,) = own_findings("env_docker_no_nvidia_runtime")
    assert summary([finding]) == [("container-gpu", W)]
    assert finding.actions == [
        Manual("sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker")
    ]


def test_fixture_cuda_visible_empty_unsets_variable() -> None:
    (finding,) = own_findings("env_cuda_visible_empty")
    assert summary([finding]) == [("cuda-visible-devices-empty", W)]
    assert finding.actions == [SetEnv("CUDA_VISIBLE_DEVICES", None)]


def test_fixture_torch_wheels_missing_installs_exact_pins() -> None:
    findings = own_findings("env_torch_wheels_missing")
    assert summary(findings) == [("requirement-conflict", E), ("cuda-lib-conflict", E)]
    psutil, wheels = findings
    assert psutil.actions == [PipInstall(("psutil",))]
    assert wheels.actions == [PipInstall(("nvidia-cudnn-cu12==9.1.0.70", "nvidia-cublas-cu12==12.1.3.1"))]


@pytest.mark.parametrize("rule_id", sorted(OWN_IDS))
def test_rule_documented_and_sourced(rule_id: str) -> None:
    r = get_rule(rule_id)
    assert len(r.doc) > 200
    assert "fix" in r.doc.lower()
    assert r.sources and all(s.startswith("https://") for s in r.sources)
    assert r.summary and r.fix


@pytest.mark.parametrize("rule_id", sorted(OWN_IDS))
def test_rule_silent_on_unknown_facts(rule_id: str) -> None:
    """All facts unknown (None): no finding, never a guess."""
    assert list(get_rule(rule_id).check(Facts())) == []
