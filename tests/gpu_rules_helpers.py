"""Helpers for the torch/driver/GPU rule tests: load recorded facts, run only these rule modules."""

from __future__ import annotations

from pathlib import Path

from envdoctor import rules
from envdoctor.facts import Facts, load_facts
from envdoctor.findings import Finding

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
GPU_RULE_MODULES = ("envdoctor.rules.torch_install", "envdoctor.rules.driver", "envdoctor.rules.gpu")
GPU_RULE_IDS = (
    "torch-missing",
    "torch-import-error",
    "python-unsupported",
    "mixed-torch-installs",
    "driver-missing",
    "driver-too-old",
    "driver-library-mismatch",
    "torch-cpu-build",
    "arch-not-in-wheel",
    "fp8-unsupported",
    "bf16-unsupported",
    "torch-cuda-variant-mismatch",
)


def gpu_rules() -> list[rules.Rule]:
    """The registered rules of the torch/driver/GPU modules (independent of the other rule modules)."""
    return [r for module in GPU_RULE_MODULES for r in rules.rules_of(module)]


def run(facts: Facts) -> list[Finding]:
    """Findings of the torch/driver/GPU rules for these facts."""
    return [f for r in gpu_rules() for f in r.check(facts)]


def fixture(name: str) -> Facts:
    """Recorded facts of a GPU machine (no GPU exists here), from tests/fixtures/facts/NAME.json."""
    return load_facts(FIXTURES / f"{name}.json")


def by_id(findings: list[Finding]) -> dict[str, Finding]:
    ids = [f.id for f in findings]
    assert len(ids) == len(set(ids)), f"a rule fired twice: {ids}"
    return {f.id: f for f in findings}
