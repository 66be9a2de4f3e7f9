"""Environment summaries printed by a library's own diagnostics (MinkowskiEngine's
``print_diagnostics()``, stable-baselines3's ``get_system_info()``) are tool output: torch answered
them, so their torch version is not a person's words, and a healthy paste holding one raises nothing."""

from __future__ import annotations

from pathlib import Path

import yaml

from envdoctor.explain import rank
from envdoctor.findings import Severity
from envdoctor.paste import facts_from_report

CORPUS = Path(__file__).parent / "corpus"


def _case(name: str) -> dict:
    return yaml.safe_load((CORPUS / f"{name}.yaml").read_text(encoding="utf-8"))


def test_minkowski_diagnostics_state_torch_and_the_driver() -> None:
    facts = facts_from_report(_case("minkowskiengine-555-depthwise-from-fork-healthy")["report"])
    assert facts.torch.version == "1.8.0+cu111"
    assert facts.torch.cuda_available is True
    assert facts.nvidia.driver_version == "510.60.02"
    assert facts.nvidia.cuda_driver_version == "11.6"
    assert facts.packages.versions["minkowskiengine"] == "0.5.4"
    assert not {"torch.version", "nvidia.driver_version"} & set(facts.stated)


def test_minkowski_banner_without_values_states_nothing_of_torch() -> None:
    text = "==========Pytorch==========\nnot installed\n==========NVCC==========\n1.8.0\n"
    facts = facts_from_report(text + "==========NVIDIA-SMI==========\nDriver Version 535.54.03\n")
    assert facts.torch.version is None
    assert facts.nvidia.driver_version == "535.54.03"


def test_sb3_system_info_is_tool_output() -> None:
    facts = facts_from_report(_case("sb3-1911-load-policy-system-info-healthy")["report"])
    assert facts.torch.version == "1.13.1+cu116"
    assert facts.torch.cuda_available is True
    assert facts.packages.versions["numpy"] == "1.22.0"
    assert not {"torch.version", "packages.versions.torch"} & set(facts.stated)


def test_bullets_without_sb3_line_stay_words() -> None:
    facts = facts_from_report("- PyTorch: 1.13.1+cu116\n- GPU Enabled: True\n")
    assert "packages.versions.torch" in facts.stated
    assert facts.torch.cuda_available is None


def test_healthy_diagnostics_raise_no_error_finding() -> None:
    for name in (
        "minkowskiengine-555-depthwise-from-fork-healthy",
        "sb3-1911-load-policy-system-info-healthy",
    ):
        case = _case(name)
        ranked = rank(facts_from_report(case["report"] + "\n" + case["error"]))
        assert not [d.finding.id for d in ranked if d.finding.severity is Severity.ERROR]
