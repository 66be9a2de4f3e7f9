"""Torch/driver/GPU rules on recorded facts of GPU machines (no GPU or driver exists here)."""

from __future__ import annotations

import pytest
from gpu_rules_helpers import FIXTURES, by_id, fixture, run

from envdoctor.facts import SCHEMA_VERSION
from envdoctor.findings import Finding, Manual, PipInstall, Severity

CU = "https://download.pytorch.org/whl/"


def test_fixture_every_facts_file_loads():
    names = sorted(p.stem for p in FIXTURES.glob("*.json"))
    assert {"rtx5090_torch260_cu126", "healthy_h200", "a100_fp8"} <= set(names)
    for name in names:
        assert 1 <= fixture(name).schema_version <= SCHEMA_VERSION  # recorded before and after v2


def test_fixture_rtx5090_torch260_cu126_arch_not_in_wheel_moves_to_271_cu128():
    found = by_id(run(fixture("rtx5090_torch260_cu126")))
    assert set(found) == {"arch-not-in-wheel"}
    f = found["arch-not-in-wheel"]
    assert f.severity is Severity.ERROR
    assert "sm_120" in f.message
    assert f.evidence["torch.arch_list"][-1] == "sm_90"
    assert f.actions == [PipInstall(("torch==2.7.1",), index_url=CU + "cu128", reinstall=False)]
    assert f.fix == "pip install torch==2.7.1 --index-url https://download.pytorch.org/whl/cu128"
    assert not f.inferred


def test_fixture_rtx5090_torch260_cu126_without_runtime_probe_uses_the_table():
    facts = fixture("rtx5090_torch260_cu126")
    facts.torch.arch_list = None
    facts.torch.devices = None
    f = by_id(run(facts))["arch-not-in-wheel"]
    assert f.evidence["knowledge.arch_lists[2.6/cu126]"] == "5.0;6.0;7.0;7.5;8.0;8.6;9.0"
    assert f.actions == [PipInstall(("torch==2.7.1",), index_url=CU + "cu128", reinstall=False)]


def test_fixture_rtx5090_capability_inferred_from_name_marks_finding_inferred():
    facts = fixture("rtx5090_torch260_cu126")
    facts.torch.devices = None
    facts.nvidia.gpus[0].compute_capability = None
    f = by_id(run(facts))["arch-not-in-wheel"]
    assert f.inferred
    assert f.evidence["nvidia.gpus[0].name"] == "NVIDIA GeForce RTX 5090 (CC 12.0)"


def test_fixture_a100_fp8_warns_fp8_unsupported():
    found = by_id(run(fixture("a100_fp8")))
    assert set(found) == {"fp8-unsupported"}
    f = found["fp8-unsupported"]
    assert f.severity is Severity.WARNING  # the failed _scaled_mm on 8.0 is expected, not an error
    assert f.evidence["packages.versions.transformer-engine"] == "2.5.0"
    assert "CC 8.0" in f.message and "8.9" in f.message
    assert all(isinstance(a, Manual) for a in f.actions)


def test_fixture_a100_fp8_with_only_torchao_is_info():
    facts = fixture("a100_fp8")
    facts.packages.versions = {"torch": "2.8.0+cu128", "torchao": "0.13.0"}
    f = by_id(run(facts))["fp8-unsupported"]
    assert f.severity is Severity.INFO


def test_fixture_driver535_torch211_cu130_driver_too_old_offers_cu128():
    found = by_id(run(fixture("driver535_torch211_cu130")))
    assert set(found) == {"driver-too-old"}
    f = found["driver-too-old"]
    assert f.severity is Severity.ERROR
    assert f.evidence["nvidia.driver_version"] == "535.183.01"
    assert "580" in f.message
    assert f.actions[0] == PipInstall(("torch==2.11.0",), index_url=CU + "cu128", reinstall=True)
    assert f.actions[1] == Manual("Upgrade the NVIDIA driver to >= 580 to keep torch 2.11.0.")


def test_fixture_driver535_torch211_cu130_on_v100_offers_cu126():
    facts = fixture("driver535_torch211_cu130")
    facts.nvidia.gpus[0].name = "Tesla V100-SXM2-32GB"
    facts.nvidia.gpus[0].compute_capability = "7.0"
    f = by_id(run(facts))["driver-too-old"]
    assert f.actions[0] == PipInstall(("torch==2.11.0",), index_url=CU + "cu126", reinstall=True)


def test_fixture_driver535_torch211_cu130_driver_below_every_floor_is_manual_only():
    facts = fixture("driver535_torch211_cu130")
    facts.nvidia.driver_version = "470.256.02"
    f = by_id(run(facts))["driver-too-old"]
    assert f.actions == [Manual("Upgrade the NVIDIA driver to >= 580 to keep torch 2.11.0.")]


def test_fixture_v100_torch211_cu128_arch_fix_is_same_version_from_cu126():
    found = by_id(run(fixture("v100_torch211_cu128")))
    assert set(found) == {"arch-not-in-wheel", "bf16-unsupported"}
    f = found["arch-not-in-wheel"]
    assert f.severity is Severity.ERROR
    assert f.actions == [PipInstall(("torch==2.11.0",), index_url=CU + "cu126", reinstall=True)]
    assert found["bf16-unsupported"].severity is Severity.INFO


def test_fixture_rtx4090_torch211_cu128_is_fine():
    assert run(fixture("rtx4090_torch211_cu128")) == []


def test_fixture_h100_torch201_cu117_arch_not_in_wheel_points_to_cu118():
    found = by_id(run(fixture("h100_torch201_cu117")))
    assert set(found) == {"arch-not-in-wheel"}  # nvcc 11.8 is known: nvcc-mismatch speaks for the toolkit
    want = [PipInstall(("torch==2.0.1",), index_url=CU + "cu118", reinstall=True)]
    assert found["arch-not-in-wheel"].actions == want


def test_fixture_h100_torch201_cu117_variant_mismatch_from_image_env_only():
    facts = fixture("h100_torch201_cu117")
    facts.cuda.nvcc_version = None
    f = by_id(run(facts))["torch-cuda-variant-mismatch"]
    assert f.severity is Severity.INFO  # 11.7 vs 11.8: same major
    assert f.evidence["system.env.CUDA_VERSION"] == "11.8.0"
    assert f.actions == [PipInstall(("torch==2.0.1",), index_url=CU + "cu118", reinstall=True)]


def test_fixture_cpu_wheel_on_gpu_box_reinstalls_cu130():
    found = by_id(run(fixture("cpu_wheel_on_gpu_box")))
    assert set(found) == {"torch-cpu-build"}
    f = found["torch-cpu-build"]
    assert f.severity is Severity.ERROR
    assert f.actions == [PipInstall(("torch==2.13.0",), index_url=CU + "cu130", reinstall=True)]
    assert f.evidence["torch.version"] == "2.13.0+cpu"


def test_fixture_cpu_wheel_on_gpu_box_with_driver_570_picks_cu126():
    facts = fixture("cpu_wheel_on_gpu_box")
    facts.nvidia.driver_version = "570.172.08"
    f = by_id(run(facts))["torch-cpu-build"]
    assert f.actions == [PipInstall(("torch==2.13.0",), index_url=CU + "cu126", reinstall=True)]


def test_fixture_healthy_h200_has_no_findings():
    assert run(fixture("healthy_h200")) == []


@pytest.mark.parametrize(
    ("name", "index"), [("healthy_h200", None), ("rtx4090_torch211_cu128", CU + "cu128")]
)
def test_fixture_import_error_reinstalls_the_same_build_and_round_trips(name, index):
    facts = fixture(name)
    facts.torch.status = "import-error"
    facts.torch.error = "ImportError: libcudnn.so.9: cannot open shared object file\nmore"
    findings = run(facts)
    f = by_id(findings)["torch-import-error"]
    assert f.severity is Severity.ERROR
    assert f.message.endswith("libcudnn.so.9: cannot open shared object file")
    assert f.actions == [PipInstall(("torch==2.11.0",), index_url=index, reinstall=True)]
    for finding in findings:
        assert Finding.from_dict(finding.to_dict()) == finding
