"""fix --recipe refuses a recipe that recommend rejects here, says why, and plans it only with --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import invoke

FACTS = Path(__file__).parent / "fixtures" / "facts"


def _no_gpu_facts(tmp_path: Path) -> Path:
    data = json.loads((FACTS / "healthy_h200.json").read_text())
    data["nvidia"] = {"source": "nvml", "error": "driver-missing", "error_detail": "NVML library not found"}
    data["torch"].update(cuda_available=False, device_count=0, devices=[])  # torch sees none either
    path = tmp_path / "no_gpu.json"
    path.write_text(json.dumps(data))
    return path


def test_fixture_cuda_recipe_on_a_machine_without_gpu_is_refused_with_the_reason(tmp_path):
    result = invoke(["fix", "--facts", _no_gpu_facts(tmp_path), "--recipe", "torch215-cu130"])
    assert result.exit_code == 1
    assert "REFUSED: recipe torch215-cu130 does not fit this machine: needs an NVIDIA GPU (none found)" in (
        result.stdout
    )
    assert "--force" in result.stdout
    plan = json.loads(
        invoke(["fix", "--facts", _no_gpu_facts(tmp_path), "--recipe", "torch215-cu130", "--json"]).stdout
    )
    assert plan["refusals"] and plan["steps"]  # the plan is shown, and refused


def test_fixture_force_plans_it_with_a_note(tmp_path):
    result = invoke(
        ["fix", "--facts", _no_gpu_facts(tmp_path), "--recipe", "torch215-cu130", "--force", "--json"]
    )
    plan = json.loads(result.stdout)
    assert plan["refusals"] == []
    assert any("does not fit this machine" in n and "--force" in n for n in plan["notes"])


def test_fixture_a_recipe_that_fits_is_not_refused(tmp_path):
    plan = json.loads(
        invoke(["fix", "--facts", _no_gpu_facts(tmp_path), "--recipe", "torch215-cpu", "--json"]).stdout
    )
    assert plan["refusals"] == []


def test_live_apply_of_a_rejected_recipe_changes_nothing_without_force(tmp_path):
    """On this machine (no NVIDIA GPU) --apply of a CUDA recipe stops at the refusal, before pip."""
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    before = sorted(p.name for p in (venv / "lib").rglob("*"))
    result = invoke(["fix", "--python", venv, "--recipe", "torch215-cu130", "--apply", "--quick"])
    if "does not fit" not in result.output:
        pytest.skip("this machine has an NVIDIA GPU the recipe fits")
    assert result.exit_code == 1
    assert sorted(p.name for p in (venv / "lib").rglob("*")) == before
