"""A real torch (the 2.13.0 CPU wheel, installed with pip into a venv): imported only in the child."""

from __future__ import annotations

import pytest

from envdoctor.probes import collect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torch_python(venv_factory):
    return venv_factory("torch-2.13", ["torch==2.13.0"])


def test_real_torch_runtime_facts(torch_python, monkeypatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the venv alone, as a user's shell would run it
    facts = collect(python=str(torch_python))
    torch = facts.torch
    assert facts.probe_errors == {}
    assert (torch.status, torch.error) == ("ok", None)
    assert torch.version == "2.13.0+cpu" and torch.cuda is None and torch.hip is None
    assert (torch.cuda_available, torch.device_count, torch.arch_list, torch.devices) == (False, 0, [], [])
    assert torch.scaled_mm is None  # no GPU of capability >= 8.9
    assert {"float8_e4m3fn", "float8_e5m2"} <= set(torch.float8_dtypes)
    # numpy is not installed in this venv: torch says so itself, and nothing else is reported
    assert [w.split(":")[:2] for w in torch.warnings] == [["UserWarning", " Failed to initialize NumPy"]]
    assert torch.numpy_version is None
    # the file-level view agrees with the runtime one
    assert facts.packages.torch_build["version"] == torch.version
    assert [(d.version, d.has_metadata) for d in facts.packages.torch_installs] == [("2.13.0+cpu", True)]
    assert facts.packages.versions["torch"] == "2.13.0+cpu"
    assert facts.packages.unmet == []


def test_quick_reads_the_build_without_importing(torch_python) -> None:
    facts = collect(python=str(torch_python), quick=True)
    assert facts.torch.status == "skipped" and facts.torch.version is None
    assert facts.packages.torch_build["version"] == "2.13.0+cpu"
    assert "torch" not in facts.timings
