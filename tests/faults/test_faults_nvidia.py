"""Faults of the NVIDIA driver stack: a libnvidia-ml that crashes, hangs or lacks functions, and an
nvidia-smi that hangs. The libraries are real shared objects compiled here; envdoctor loads them
exactly as it would load the driver's (LD_LIBRARY_PATH)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fakes import build_fake_nvml, fake_smi
from fault_helpers import Fault, rows_by_test, run_fault

pytestmark = pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="a real driver answers first")

FAULTS = [
    Fault(
        "test_nvml_segfault_in_init",
        "libnvidia-ml.so.1 dereferences NULL in nvmlInitWithFlags",
        "LD_LIBRARY_PATH=DIR envdoctor check --quick --json",
        "NVML runs in a child process: it dies alone; finding nvidia-probe-failed (warning) with the signal",
        0,
        20,
    ),
    Fault(
        "test_nvml_segfault_recommend_build",
        "the same crashing libnvidia-ml under recommend and build",
        "LD_LIBRARY_PATH=DIR envdoctor recommend | build --print-dockerfile",
        "each command completes as on a machine without a driver (a CPU recipe fits)",
        0,
        20,
    ),
    Fault(
        "test_nvml_segfault_fix_plan",
        "the same crashing libnvidia-ml under fix",
        "LD_LIBRARY_PATH=DIR envdoctor fix --quick",
        "the plan holds the manual step of nvidia-probe-failed; exit 1 (a plan with steps)",
        1,
        20,
    ),
    Fault(
        "test_nvml_hangs_in_init",
        "nvmlInitWithFlags never returns (a wedged driver)",
        "LD_LIBRARY_PATH=DIR ENVDOCTOR_PROBE_TIMEOUT=2 envdoctor check --quick --json",
        "the NVML child is killed at the probe timeout; finding nvidia-probe-failed (timeout)",
        0,
        15,
    ),
    Fault(
        "test_nvml_function_not_found",
        "libnvidia-ml.so.1 without nvmlInitWithFlags (NVML 'Function Not Found')",
        "LD_LIBRARY_PATH=DIR envdoctor check --quick --json",
        "finding nvidia-probe-failed (warning) naming 'Function Not Found'",
        0,
        20,
    ),
    Fault(
        "test_nvml_partial_library",
        "NVML answers init and the driver version but lacks nvmlSystemGetCudaDriverVersion",
        "LD_LIBRARY_PATH=DIR envdoctor check --quick --json",
        "the driver version is kept; the missing call is a nvidia-probe-failed warning",
        0,
        20,
    ),
    Fault(
        "test_nvidia_smi_hangs",
        "no NVML, and nvidia-smi on PATH never answers",
        "PATH=DIR:$PATH ENVDOCTOR_PROBE_TIMEOUT=2 envdoctor check --quick --json",
        "nvidia-smi's process group is killed at the probe timeout; finding nvidia-probe-failed (timeout)",
        0,
        15,
    ),
]
ROW = rows_by_test(FAULTS)


def _findings(stdout: str) -> dict[str, dict]:
    return {f["id"]: f for f in json.loads(stdout)["findings"]}


def _nvml_env(tmp_path: Path, mode: str) -> dict[str, str]:
    build_fake_nvml(tmp_path / "lib", mode)
    return {"LD_LIBRARY_PATH": str(tmp_path / "lib")}


def test_nvml_segfault_in_init(tmp_path) -> None:
    ran = run_fault(
        ROW["test_nvml_segfault_in_init"], ["check", "--quick", "--json"], env=_nvml_env(tmp_path, "segv")
    )
    facts = json.loads(ran.stdout)["facts"]
    assert facts["nvidia"]["error"] == "crashed"
    assert "SIGSEGV" in facts["nvidia"]["error_detail"]
    finding = _findings(ran.stdout)["nvidia-probe-failed"]
    assert finding["severity"] == "warning" and "SIGSEGV" in finding["message"]


@pytest.mark.parametrize("args", [["recommend"], ["build", "--print-dockerfile"]], ids=str)
def test_nvml_segfault_recommend_build(tmp_path, args) -> None:
    ran = run_fault(ROW["test_nvml_segfault_recommend_build"], args, env=_nvml_env(tmp_path, "segv"))
    assert ran.stdout.strip()


def test_nvml_segfault_fix_plan(tmp_path) -> None:
    ran = run_fault(ROW["test_nvml_segfault_fix_plan"], ["fix", "--quick"], env=_nvml_env(tmp_path, "segv"))
    assert "[nvidia-probe-failed]" in ran.stdout


def test_nvml_hangs_in_init(tmp_path) -> None:
    env = {**_nvml_env(tmp_path, "hang"), "ENVDOCTOR_PROBE_TIMEOUT": "2"}
    ran = run_fault(ROW["test_nvml_hangs_in_init"], ["check", "--quick", "--json"], env=env)
    facts = json.loads(ran.stdout)["facts"]
    assert facts["nvidia"]["error"] == "timeout"
    assert _findings(ran.stdout)["nvidia-probe-failed"]["severity"] == "warning"


def test_nvml_function_not_found(tmp_path) -> None:
    ran = run_fault(
        ROW["test_nvml_function_not_found"],
        ["check", "--quick", "--json"],
        env=_nvml_env(tmp_path, "no-init"),
    )
    finding = _findings(ran.stdout)["nvidia-probe-failed"]
    assert "Function Not Found" in finding["message"], finding


def test_nvml_partial_library(tmp_path) -> None:
    ran = run_fault(
        ROW["test_nvml_partial_library"], ["check", "--quick", "--json"], env=_nvml_env(tmp_path, "no-gpu")
    )
    nvidia = json.loads(ran.stdout)["facts"]["nvidia"]
    assert (nvidia["driver_version"], nvidia["error"], nvidia["gpus"]) == ("550.54.15", "no-device", [])
    assert "nvmlSystemGetCudaDriverVersion" in nvidia["nvml_error"]
    assert "nvidia-probe-failed" in _findings(ran.stdout)


def test_nvidia_smi_hangs(tmp_path) -> None:
    smi = fake_smi(tmp_path / "bin", "sleep 60\n")
    env = {"PATH": f"{smi.parent}:{os.environ['PATH']}", "ENVDOCTOR_PROBE_TIMEOUT": "2"}
    ran = run_fault(ROW["test_nvidia_smi_hangs"], ["check", "--quick", "--json"], env=env)
    assert json.loads(ran.stdout)["facts"]["nvidia"]["error"] == "timeout"
    assert _findings(ran.stdout)["nvidia-probe-failed"]["severity"] == "warning"
