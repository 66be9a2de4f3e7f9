"""Real environments: an unmet requirement planted with pip in a throwaway venv, and a bad allocator
config in the real process environment, each probed and checked end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from probes_helpers import run_envdoctor

from envdoctor.findings import PipInstall, SetEnv, Severity
from envdoctor.probes import collect
from envdoctor.rules import evaluate


@pytest.fixture(scope="module")
def broken_venv(venv_factory: Callable[..., Path]) -> Path:
    """requests 2.32.3 with idna 2.0 (it needs idna>=2.5,<4) and none of its other dependencies."""
    return venv_factory("rules-env-unmet", ["--no-deps", "requests==2.32.3", "idna==2.0"])


@pytest.mark.slow
def test_planted_unmet_requirement_is_error(broken_venv: Path) -> None:
    facts = collect(python=str(broken_venv), quick=True)
    conflicts = [f for f in evaluate(facts) if f.id == "requirement-conflict"]
    by_spec = {f.actions[0].specs[0]: f for f in conflicts if isinstance(f.actions[0], PipInstall)}
    idna = by_spec["idna<4,>=2.5"]
    assert idna.severity is Severity.ERROR
    assert idna.message == "requests 2.32.3 requires idna<4,>=2.5, but 2.0 is installed"
    assert {"urllib3<3,>=1.21.1", "certifi>=2017.4.17"} <= set(by_spec)


@pytest.mark.slow
def test_check_cli_exits_1_on_planted_conflict(broken_venv: Path, tmp_path: Path) -> None:
    done = run_envdoctor(["check", "--json", "--quick", "--python", str(broken_venv)], tmp_path)
    assert done.returncode == 1, done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert any(f["id"] == "requirement-conflict" and "idna" in f["message"] for f in findings)


def test_real_bad_alloc_conf_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:10,expandable_segments:True")
    monkeypatch.delenv("PYTORCH_ALLOC_CONF", raising=False)
    facts = collect(quick=True)
    assert facts.system.env["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:10,expandable_segments:True"
    (finding,) = [f for f in evaluate(facts) if f.id == "alloc-conf-invalid"]
    assert finding.severity is Severity.ERROR and "max_split_size_mb" in finding.message
    assert finding.actions == [SetEnv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")]
