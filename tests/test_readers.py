"""One reader per fact: the planner, recipe checks and rules see the same torch and the same GPUs."""

from __future__ import annotations

from envdoctor.facts import Facts, Gpu, TorchDevice
from envdoctor.findings import Finding, Manual, PipInstall, Severity
from envdoctor.fix.planner import build_plan
from envdoctor.readers import (
    gpu_capabilities,
    gpus,
    installed_torch,
    listed_torch,
    numpy_version,
    torch_build,
)
from envdoctor.recipes import all_recipes, assess


def _gpu_machine(torch_capability: str | None) -> Facts:
    """A driver that names a GPU it has no table row for; torch (if it ran) reports the capability."""
    facts = Facts()
    facts.python.executable, facts.python.prefix = "/env/bin/python", "/env"
    facts.python.externally_managed = False
    facts.packages.all = {"torch": "2.13.0+cpu"}
    facts.nvidia.driver_version = "580.95.05"
    facts.nvidia.cuda_driver_version = "13.0"
    facts.nvidia.gpus = [Gpu(0, "NVIDIA Graphics Device")]
    if torch_capability:
        facts.torch.devices = [TorchDevice(0, "NVIDIA Graphics Device", capability=torch_capability)]
    return facts


def test_torch_devices_come_before_the_driver_list_for_rules_and_plan_alike():
    facts = _gpu_machine("3.7")
    assert [(g.capability, g.path) for g in gpus(facts) or []] == [("3.7", "torch.devices[0].capability")]
    assert gpu_capabilities(facts) == ["3.7"]
    install = Finding("x", Severity.ERROR, "x", actions=[PipInstall(("torch==2.13.0",))])
    plan = build_plan([install], facts)
    # No CUDA build of torch 2.13 has kernels for a Kepler GPU: the planner says so, as a rule would.
    manual = [s.action.text for s in plan.steps if isinstance(s.action, Manual)]
    assert any("these GPUs (3.7)" in text for text in manual)


def test_an_unknown_capability_is_unknown_to_the_plan_too():
    facts = _gpu_machine(None)
    assert [(g.capability, g.inferred) for g in gpus(facts) or []] == [(None, True)]
    assert gpu_capabilities(facts) == []


def test_two_identical_gpus_are_not_a_gpu_of_unknown_capability():
    facts = _gpu_machine(None)
    facts.nvidia.gpus = [Gpu(0, "NVIDIA H100 80GB HBM3", "9.0"), Gpu(1, "NVIDIA H100 80GB HBM3", "9.0")]
    recipe = next(r for r in all_recipes() if r.hardware.gpu)
    assert "compute capability of some GPUs unknown" not in assess(recipe, facts).notes
    facts.nvidia.gpus[1] = Gpu(1, "NVIDIA Graphics Device")
    assert "compute capability of some GPUs unknown" in assess(recipe, facts).notes


def test_torch_version_reads_import_then_version_py_then_listing():
    facts = Facts()
    facts.packages.versions = {"torch": "2.5.1"}
    assert installed_torch(facts) == "2.5.1"
    facts.packages.torch_build = {"version": "2.6.0+cu126", "cuda": "12.6"}
    assert installed_torch(facts) == "2.6.0+cu126"
    facts.torch.version, facts.torch.cuda, facts.torch.status = "2.7.0+cu128", "12.8", "ok"
    build = torch_build(facts)
    assert installed_torch(facts) == "2.7.0+cu128" and build is not None and build.variant == "cu128"


def test_the_torch_pip_lists_takes_the_imported_local_tag_only_for_the_same_release():
    facts = Facts()
    assert listed_torch(facts) is None
    facts.packages.all = {"Torch": "2.6.0"}
    facts.torch.version = "2.6.0+cu126"
    assert listed_torch(facts) == "2.6.0+cu126"
    facts.torch.version = "2.7.0+cu128"  # a different torch is imported (shadowed): pip's stays
    assert listed_torch(facts) == "2.6.0"


def test_numpy_is_the_one_torch_imports_before_the_listed_one():
    facts = Facts()
    facts.packages.versions = {"numpy": "1.26.4"}
    assert numpy_version(facts) == "1.26.4"
    facts.torch.numpy_version = "2.0.0"  # another NumPy shadows the listed one inside torch's process
    assert numpy_version(facts) == "2.0.0"
